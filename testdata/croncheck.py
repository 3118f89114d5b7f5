"""How a wsgo module's decorators take good and bad arguments.

report(wsgo) runs the same cases against the server's built-in module (from
cronapp.py's /checks) and against the stand-in package in python/ (under a
plain interpreter), so that tests/cron_test.go can check that they agree.
"""

NAN = float("nan")
INF = float("inf")

CASES = [
    ("cron", (0, 0, 1, 1, 0)),
    ("cron", (-1, -1, -1, -1, -1)),
    ("cron", (59, 23, 31, 12, 7)),
    ("cron", (60, -1, -1, -1, -1)),
    ("cron", (-2, -1, -1, -1, -1)),
    ("cron", (-1, 24, -1, -1, -1)),
    ("cron", (-1, -1, 0, -1, -1)),
    ("cron", (-1, -1, 32, -1, -1)),
    ("cron", (-1, -1, -1, 0, -1)),
    ("cron", (-1, -1, -1, 13, -1)),
    ("cron", (-1, -1, -1, -1, 8)),
    ("cron", (-1, -1, 29, 2, -1)),
    ("cron", (-1, -1, 30, 2, -1)),
    ("cron", (-1, -1, 31, 4, -1)),
    ("cron", (1.5, -1, -1, -1, -1)),
    ("cron", (True, -1, -1, -1, -1)),
    ("cron", ("5", -1, -1, -1, -1)),
    ("cron", (-1, -1, -1)),
    ("timer", (1,)),
    ("timer", (0.25,)),
    ("timer", (0,)),
    ("timer", (-1,)),
    ("timer", (NAN,)),
    ("timer", (INF,)),
    ("timer", ("1",)),
    ("timer", (True,)),
    ("timer", (None,)),
]


def _target():
    pass


def report(wsgo):
    lines = []
    for kind, args in CASES:
        try:
            decorator = getattr(wsgo, kind)(*args)
            same = decorator(_target) is _target
            outcome = "returns the function" if same else "returns something else"
        except Exception as e:
            outcome = "%s: %s" % (type(e).__name__, e)
        lines.append("%s%r -> %s" % (kind, args, outcome))
    try:
        wsgo.timer(1)(42)
        lines.append("timer(1)(42) -> accepted")
    except Exception as e:
        lines.append("timer(1)(42) -> %s: %s" % (type(e).__name__, e))
    lines.append("constants: DISCONNECT=%r RETRY=%r HTTP_204=%r HTTP_504=%r"
                 % (wsgo.DISCONNECT, wsgo.RETRY, wsgo.HTTP_204, wsgo.HTTP_504))
    lines.append("RequestTimeoutException: %s" % " < ".join(
        "%s.%s" % (c.__module__, c.__qualname__) for c in wsgo.RequestTimeoutException.__mro__))
    return "\n".join(lines) + "\n"
