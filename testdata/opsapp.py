"""An app for the operations tests (SIGUSR1/SIGUSR2 reports, recycling).

  /block?token=T   prints "opsapp: blocked T" on stderr, then waits (in
                   wait_for_release, at most 10 s) until /release?token=T;
                   answers "released T" (or "gave up T")
  /release?token=T lets the /block request with token T go on
  /sleep?s=S       prints "opsapp: sleeping" on stderr, sleeps S seconds,
                   then answers "slept"
  /raise           the app raises RuntimeError
  /pid             the worker process's pid
  anything else    "ok"
"""
import os
import sys
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_events = {}


def _event(token):
    with _lock:
        return _events.setdefault(token, threading.Event())


def wait_for_release(token):
    print("opsapp: blocked %s" % token, file=sys.stderr, flush=True)
    return _event(token).wait(10)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    token = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
    if path == "/block":
        body = ("released %s" if wait_for_release(token) else "gave up %s") % token
    elif path == "/release":
        _event(token).set()
        body = "ok"
    elif path == "/sleep":
        print("opsapp: sleeping", file=sys.stderr, flush=True)
        time.sleep(float(parse_qs(environ["QUERY_STRING"])["s"][0]))
        body = "slept"
    elif path == "/raise":
        raise RuntimeError("opsapp raises on purpose")
    elif path == "/pid":
        body = str(os.getpid())
    else:
        body = "ok"
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
