"""An app for the request parking tests (tests/parking_test.go).

  /park?ch=LIST[&timeout=T][&gate=NAME]
                  the first run reads the request body, counts the call
                  (see /parked-calls) and answers with "X-WSGo-Park: LIST"
                  and, when timeout is given, "X-WSGo-Park-Timeout: T"
                  (e.g. "0.3 retry"), and a body, b"parked", that must
                  never reach the client; its close() is counted (see
                  /closes). With gate=NAME it first prints "parkapp: gate
                  NAME waiting" on stderr and waits (at most 20 s) until a
                  file called NAME appears in the directory named by the
                  PARKAPP_GATES environment variable.
                  A run with HTTP_X_WSGO_PARK_ARG in its environ (a retry)
                  answers 200 "retried arg=ARG method=METHOD body=BODY
                  qs=QUERY_STRING x-test=X" instead (X: its X-Test
                  header, "-" when it has none), still sending X-WSGo-Park,
                  which the server must ignore on a retry. A request body
                  over 100 bytes shows as "<N bytes>".
  /notify?ch=LIST&action=A[&arg=X]
                  wsgo.notify_parked(LIST, A, X) in the request's thread; A
                  is retry, disconnect, http-204, http-504 or a number, X
                  is left out when arg is not given. Answers the number
                  woken, or "ValueError: ..." / "TypeError: ..."
  /notify-thread?...
                  the same, from a threading.Thread it starts and joins
  /notify-spin?ch=LIST&seconds=S
                  starts a thread that calls wsgo.notify_parked(LIST,
                  wsgo.HTTP_204) over and over for S seconds, adding up
                  what it woke (see /spin-woken); answers "spinning"
  /spin-woken     "N running" or "N done": what the last /notify-spin
                  thread has woken so far, and whether it still runs
  /parked-calls   how many first runs of /park have answered so far
                  (counted just before they return their park response)
  /closes         how many of those responses' bodies were closed
  anything else   "ok"

With PARKAPP_TIMER=1 it registers a @wsgo.timer(0.2) job that calls
wsgo.notify_parked("cron", wsgo.HTTP_504) and prints "parkapp: timer woke N"
on stdout when N > 0.
"""
import os
import sys
import threading
import time
from urllib.parse import parse_qs

import wsgo

_lock = threading.Lock()
_parked_calls = 0
_closes = 0

ACTIONS = {
    "retry": wsgo.RETRY,
    "disconnect": wsgo.DISCONNECT,
    "http-204": wsgo.HTTP_204,
    "http-504": wsgo.HTTP_504,
}


if os.environ.get("PARKAPP_TIMER") == "1":

    @wsgo.timer(0.2)
    def wake_cron_channel():
        n = wsgo.notify_parked("cron", wsgo.HTTP_504)
        if n:
            print("parkapp: timer woke %d" % n, flush=True)


class ParkBody:
    """The body of a park response: the server must discard it, and close
    it."""

    def __iter__(self):
        yield b"parked"

    def close(self):
        global _closes
        with _lock:
            _closes += 1


def _gate(name):
    print("parkapp: gate %s waiting" % name, file=sys.stderr, flush=True)
    path = os.path.join(os.environ.get("PARKAPP_GATES", ""), name)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.005)


def _notify(query):
    channels = query.get("ch", [""])[0]
    name = query.get("action", [""])[0]
    action = ACTIONS[name] if name in ACTIONS else int(name)
    args = (channels, action)
    if "arg" in query:
        args += (query["arg"][0],)
    try:
        return str(wsgo.notify_parked(*args))
    except (ValueError, TypeError) as e:
        return "%s: %s" % (type(e).__name__, e)


def _notify_thread(query):
    out = []
    th = threading.Thread(target=lambda: out.append(_notify(query)))
    th.start()
    th.join()
    return out[0]


_spin = {"woken": 0, "running": False}


def _notify_spin(query):
    channels = query.get("ch", [""])[0]
    deadline = time.monotonic() + float(query.get("seconds", ["1"])[0])

    def spin():
        woken = 0
        while time.monotonic() < deadline:
            woken += wsgo.notify_parked(channels, wsgo.HTTP_204)
            with _lock:
                _spin["woken"] = woken
        with _lock:
            _spin["running"] = False

    with _lock:
        _spin.update(woken=0, running=True)
    threading.Thread(target=spin, daemon=True).start()
    return "spinning"


def _read_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def application(environ, start_response):
    global _parked_calls
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    query = parse_qs(qs, keep_blank_values=True)
    headers = [("Content-Type", "text/plain")]
    if path == "/park":
        body = _read_body(environ)
        channels = query.get("ch", [""])[0]
        headers.append(("X-WSGo-Park", channels))
        if "HTTP_X_WSGO_PARK_ARG" in environ:
            shown = body if len(body) <= 100 else b"<%d bytes>" % len(body)
            out = b"retried arg=%s method=%s body=%s qs=%s x-test=%s" % (
                environ["HTTP_X_WSGO_PARK_ARG"].encode(), environ["REQUEST_METHOD"].encode(), shown, qs.encode(),
                environ.get("HTTP_X_TEST", "-").encode())
            headers.append(("Content-Length", str(len(out))))
            start_response("200 OK", headers)
            return [out]
        if "gate" in query:
            _gate(query["gate"][0])
        if "timeout" in query:
            headers.append(("X-WSGo-Park-Timeout", query["timeout"][0]))
        headers.append(("Content-Length", "6"))
        with _lock:
            _parked_calls += 1
        start_response("200 OK", headers)
        return ParkBody()
    if path == "/notify":
        out = _notify(query)
    elif path == "/notify-thread":
        out = _notify_thread(query)
    elif path == "/notify-spin":
        out = _notify_spin(query)
    elif path == "/spin-woken":
        with _lock:
            out = "%d %s" % (_spin["woken"], "running" if _spin["running"] else "done")
    elif path == "/parked-calls":
        with _lock:
            out = str(_parked_calls)
    elif path == "/closes":
        with _lock:
            out = str(_closes)
    else:
        out = "ok"
    out = out.encode()
    headers.append(("Content-Length", str(len(out))))
    start_response("200 OK", headers)
    return [out]
