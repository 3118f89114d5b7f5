"""An app for the HTTPS and HTTP/2 tests (tests/tls_test.go, h2_test.go).

  /stream?n=N&delay=D  yields N chunks "chunk I\\n" (default 3), sleeping D
                       seconds (default 0) before each one after the first;
                       no Content-Length
  /forever             yields a 1 KiB chunk every 20 ms for up to 30 s,
                       printing "h2app: forever started" on stderr first
  /closes              how many /stream and /forever bodies were closed
  /proto               "SERVER_PROTOCOL wsgi.url_scheme HTTPS" (HTTPS "-"
                       when absent)
  /park?ch=LIST[&timeout=T]
                       parks on LIST (X-WSGo-Park, and X-WSGo-Park-Timeout T
                       when given); a retry (X-WSGo-Park-Arg in its environ)
                       answers "retried arg=ARG body=BODY proto=P scheme=S"
  /parked?ch=LIST      how many first runs of /park on LIST have answered
  /notify?ch=LIST&action=A[&arg=X]
                       wsgo.notify_parked(LIST, A, X), A one of retry,
                       disconnect, http-204, http-504; answers the number
                       woken
  /environ-has-key     whether a value in os.environ holds a private key
  anything else        "ok"
"""
import os
import sys
import threading
import time
from urllib.parse import parse_qs

import wsgo

_lock = threading.Lock()
_closes = 0
_parked = {}

ACTIONS = {"retry": wsgo.RETRY, "disconnect": wsgo.DISCONNECT,
           "http-204": wsgo.HTTP_204, "http-504": wsgo.HTTP_504}


class Body:
    """A streamed body that counts its close()."""

    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return self.chunks

    def close(self):
        global _closes
        with _lock:
            _closes += 1


def _stream(n, delay):
    for i in range(n):
        if i and delay:
            time.sleep(delay)
        yield b"chunk %d\n" % i


def _forever():
    print("h2app: forever started", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        yield b"x" * 1024
        time.sleep(0.02)


def _text(start_response, out, status="200 OK", extra=()):
    out = out.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))] + list(extra))
    return [out]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body(_stream(int(query.get("n", 3)), float(query.get("delay", 0))))
    if path == "/forever":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body(_forever())
    if path == "/closes":
        with _lock:
            return _text(start_response, str(_closes))
    if path == "/proto":
        return _text(start_response, "%s %s %s" % (environ["SERVER_PROTOCOL"], environ["wsgi.url_scheme"],
                                                   environ.get("HTTPS", "-")))
    if path == "/park":
        body = environ["wsgi.input"].read()
        if "HTTP_X_WSGO_PARK_ARG" in environ:
            return _text(start_response, "retried arg=%s body=%s proto=%s scheme=%s" % (
                environ["HTTP_X_WSGO_PARK_ARG"], body.decode("latin-1"), environ["SERVER_PROTOCOL"],
                environ["wsgi.url_scheme"]))
        with _lock:
            _parked[query["ch"]] = _parked.get(query["ch"], 0) + 1
        extra = [("X-WSGo-Park", query["ch"])]
        if "timeout" in query:
            extra.append(("X-WSGo-Park-Timeout", query["timeout"]))
        return _text(start_response, "parked", extra=extra)
    if path == "/environ-has-key":
        return _text(start_response, str(any("PRIVATE KEY" in v for v in os.environ.values())))
    if path == "/parked":
        with _lock:
            return _text(start_response, str(_parked.get(query["ch"], 0)))
    if path == "/notify":
        args = (query["ch"], ACTIONS[query["action"]])
        if "arg" in query:
            args += (query["arg"],)
        return _text(start_response, str(wsgo.notify_parked(*args)))
    return _text(start_response, "ok")
