"""An app for the client priority, queue bound and blocking tests.

  /gate/NAME      prints "priorityapp: gate NAME waiting" on stderr, then
                  holds its worker until /release/NAME is requested or a
                  file called NAME appears in the directory named by the
                  PRIORITYAPP_GATES environment variable (at most 20 s);
                  answers "released NAME" (or "gave up NAME"). The file is
                  how a test frees a worker when no other worker is free
                  to run /release.
  /release/NAME   lets /gate/NAME go on
  /record/TAG     appends TAG to a list, in the order the app is called;
                  answers TAG (any query string is ignored)
  /order          answers the list, comma-separated, and clears it
  /peek           answers the list without clearing it
  /block?s=N      answers with "X-WSGo-Block: N" (N as given)
  /whoami         answers "REMOTE_ADDR wsgi.url_scheme"
  /sleep?s=S      prints "priorityapp: sleeping S" on stderr, sleeps S
                  seconds (in C, where a request timeout cannot interrupt
                  it), then answers "slept"
  anything else   "ok"
"""
import os
import sys
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_events = {}
_order = []


def _event(name):
    with _lock:
        return _events.setdefault(name, threading.Event())


def _gate(name):
    print("priorityapp: gate %s waiting" % name, file=sys.stderr, flush=True)
    ev = _event(name)
    gates = os.environ.get("PRIORITYAPP_GATES", "")
    path = os.path.join(gates, name) if gates else None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ev.wait(0.005) or (path and os.path.exists(path)):
            return "released %s" % name
    return "gave up %s" % name


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    headers = [("Content-Type", "text/plain")]
    if path.startswith("/gate/"):
        body = _gate(path[len("/gate/"):])
    elif path.startswith("/release/"):
        _event(path[len("/release/"):]).set()
        body = "ok"
    elif path.startswith("/record/"):
        body = path[len("/record/"):]
        with _lock:
            _order.append(body)
    elif path == "/order":
        with _lock:
            body = ",".join(_order)
            del _order[:]
    elif path == "/peek":
        with _lock:
            body = ",".join(_order)
    elif path == "/block":
        headers.append(("X-WSGo-Block", query.get("s", [""])[0]))
        body = "blocking"
    elif path == "/whoami":
        body = "%s %s" % (environ.get("REMOTE_ADDR"), environ["wsgi.url_scheme"])
    elif path == "/sleep":
        print("priorityapp: sleeping %s" % query["s"][0], file=sys.stderr, flush=True)
        time.sleep(float(query["s"][0]))
        body = "slept"
    else:
        body = "ok"
    body = body.encode()
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]
