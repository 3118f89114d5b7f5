"""Stand-in for the ``wsgo`` module that the wsgo server builds in.

Inside the server, ``import wsgo`` gives the server's own module, whatever
is installed. Everywhere else (a test suite, ``manage.py``, a REPL) it gives
this package, so that code which imports wsgo still runs: the decorators
check their arguments as the server's do and return the function unchanged,
but register nothing, so no job runs; ``notify_parked`` raises
RuntimeError, since there are no parked requests to wake.

Install it into a virtualenv with ``pip install ./python`` from the wsgo
source tree (it needs nothing from the network), or put that ``python``
directory on PYTHONPATH.
"""

import numbers as _numbers
import operator as _operator

__all__ = [
    "cron", "timer", "notify_parked", "RequestTimeoutException",
    "DISCONNECT", "RETRY", "HTTP_204", "HTTP_504",
]

# What a parked request's timeout or notify_parked does with it (the same
# values as the server's module).
DISCONNECT = 0
RETRY = 1
HTTP_204 = 2
HTTP_504 = 3


class RequestTimeoutException(BaseException):
    """Raised in a request's thread when it runs past --request-timeout (and
    in a job's past --cron-timeout). Only the server raises it."""

    __module__ = "wsgo"


def notify_parked(channels, action, arg=""):
    """Wakes the requests parked on any of the comma-separated channels.
    Only the server has parked requests: here it raises RuntimeError."""
    raise RuntimeError(
        "wsgo.notify_parked only works inside the wsgo server; this is the "
        "stand-in wsgo package, for running code that imports wsgo elsewhere")


# The decorators below check their arguments exactly as the server's
# built-in module does (internal/python/wsgo.c, MODULE_PY); keep the two in
# step. tests/cron_test.go compares them.

_CRON_FIELDS = (("min", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("mon", 1, 12), ("wday", 0, 7))
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def cron(min, hour, day, mon, wday):
    """Decorator: run the function in the background at every minute of
    local time that matches. Each field is an int, or -1 for any value:
    min 0-59, hour 0-23, day (of the month) 1-31, mon 1-12, wday 0-7
    (0 and 7 are Sunday, 1 is Monday, as in crontab). Every field that is
    not -1 must match. The function is returned unchanged.

    Outside the server nothing runs: the arguments are only checked."""
    spec = []
    for (field, low, high), value in zip(_CRON_FIELDS, (min, hour, day, mon, wday)):
        if isinstance(value, bool):
            raise TypeError("wsgo.cron: %s must be an int, not bool" % field)
        try:
            value = _operator.index(value)
        except TypeError:
            raise TypeError("wsgo.cron: %s must be an int, not %s" % (field, type(value).__name__)) from None
        if value != -1 and not low <= value <= high:
            raise ValueError("wsgo.cron: %s must be -1 (any) or from %d to %d, not %d" % (field, low, high, value))
        spec.append(value)
    if spec[2] != -1 and spec[3] != -1 and spec[2] > _MONTH_DAYS[spec[3]]:
        raise ValueError("wsgo.cron: day %d never comes in month %d" % (spec[2], spec[3]))
    return _decorator("cron")


def timer(period):
    """Decorator: run the function in the background every period seconds
    (an int or float above 0), counted from the server's start. The
    function is returned unchanged.

    Outside the server nothing runs: the argument is only checked."""
    if isinstance(period, bool) or not isinstance(period, _numbers.Real):
        raise TypeError("wsgo.timer: period must be a number of seconds, not %s" % type(period).__name__)
    if not 0 < period < float("inf"):
        raise ValueError("wsgo.timer: period must be a number of seconds above 0, not %r" % (period,))
    return _decorator("timer")


def _decorator(kind):
    def register(func):
        if not callable(func):
            raise TypeError("@wsgo.%s decorates a function, not %s" % (kind, type(func).__name__))
        return func
    return register
