"""An app for the --request-timeout tests.

  /spin            loops in Python for ever (prints "timeoutapp: spinning"
                   on stderr first)
  /spin-cleanup    like /spin, but when interrupted it spends 0.5 s cleaning
                   up before letting the exception go on
  /spin-catch      loops for ever inside `try: ... except Exception:`, which
                   answers "swallowed" if it ever catches anything
  /sleep           time.sleep(1000): blocked in C, where the exception
                   cannot land
  /log-slow-repr   logs an object whose repr takes 3 s (many short sleeps)
                   through the "timeoutapp" logger
  /log             logs a plain message through the same logger
  anything else    "ok"
"""
import logging
import sys
import time

log = logging.getLogger("timeoutapp")
log.addHandler(logging.StreamHandler(sys.stderr))
log.propagate = False


class SlowRepr:
    def __repr__(self):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return "<SlowRepr>"


def _spin():
    print("timeoutapp: spinning", file=sys.stderr, flush=True)
    while True:
        pass


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = b"ok"
    if path == "/spin":
        _spin()
    elif path == "/spin-cleanup":
        try:
            _spin()
        except BaseException:
            time.sleep(0.5)
            raise
    elif path == "/spin-catch":
        try:
            _spin()
        except Exception:
            body = b"swallowed"
    elif path == "/sleep":
        print("timeoutapp: sleeping", file=sys.stderr, flush=True)
        time.sleep(1000)
    elif path == "/log-slow-repr":
        log.error("slow: %r", SlowRepr())
    elif path == "/log":
        log.error("timeoutapp: plain log line")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
