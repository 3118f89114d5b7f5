"""Response shapes, start_response semantics and close() bookkeeping.

  /list                  body from a list of several bytes chunks
  /single                body from a one-item list
  /gen                   body from a generator (no Content-Length)
  /content-length        generator, but the app sets Content-Length
  /write                 start_response's write(), then the iterable
  /chunks?n=N&k=K        body from a list of K chunks of N bytes; byte i of
                           chunk j is (i + j) % 251
  /stream?token=T        yields "first", waits for /release?token=T, yields more
  /release?token=T       lets /stream?token=T go on
  /closing?token=T&mode= iterable with close(); mode is
                           normal      three chunks
                           raise       one chunk, then RuntimeError
                           endless     64 KiB chunks until the client leaves
  /closecount?token=T    how often close() ran for T
  /filewrapper?path=P    wsgi.file_wrapper over the file P
  /bytesio?n=N           wsgi.file_wrapper over a BytesIO of N bytes
  /excinfo-before        200, then start_response(500 Oops, exc_info)
  /excinfo-after?token=T headers sent, then start_response(exc_info)
  /reraised?token=T      whether that start_response re-raised
  /badheader?kind=K&catch=C  start_response with a bad header value
"""
import hashlib
import io
import json
import sys
import threading
from urllib.parse import parse_qs

_lock = threading.Lock()
_events = {}
_closes = {}
_reraised = {}


def _event(token):
    with _lock:
        return _events.setdefault(token, threading.Event())


def _text(start_response, text, status="200 OK"):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


class Closing:
    """An iterable that counts its close() calls under a token."""

    def __init__(self, token, mode):
        self.token = token
        self.mode = mode

    def __iter__(self):
        if self.mode == "normal":
            yield b"one "
            yield b"two "
            yield b"three"
        elif self.mode == "raise":
            yield b"partial "
            raise RuntimeError("respapp-iteration-failed")
        elif self.mode == "endless":
            chunk = b"z" * 65536
            for _ in range(20000):  # bounded: about 1.3 GB at most
                yield chunk

    def close(self):
        with _lock:
            _closes[self.token] = _closes.get(self.token, 0) + 1


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    ctype = [("Content-Type", "text/plain")]

    if path == "/list":
        start_response("200 OK", ctype)
        return [b"hello ", b"from ", b"a ", b"list"]
    if path == "/single":
        start_response("200 OK", ctype)
        return [b"single chunk"]
    if path == "/gen":
        start_response("200 OK", ctype)
        return (c for c in [b"gen-one ", b"gen-two ", b"gen-three"])
    if path == "/content-length":
        start_response("200 OK", ctype + [("Content-Length", "6")])
        return (c for c in [b"abc", b"def"])
    if path == "/chunks":
        n, k = int(q["n"]), int(q["k"])
        start_response("200 OK", ctype)
        return [bytes((i + j) % 251 for i in range(n)) for j in range(k)]
    if path == "/write":
        write = start_response("200 OK", ctype)
        write(b"first ")
        write(b"second ")
        return [b"third"]

    if path == "/stream":
        event = _event(q["token"])
        start_response("200 OK", ctype)

        def gen():
            yield b"first\n"
            if event.wait(10):
                yield b"released\n"
            else:
                yield b"timed out waiting for release\n"
        return gen()
    if path == "/release":
        _event(q["token"]).set()
        return _text(start_response, "ok")

    if path == "/closing":
        start_response("200 OK", ctype)
        return Closing(q["token"], q["mode"])
    if path == "/closecount":
        with _lock:
            n = _closes.get(q["token"], 0)
        return _text(start_response, str(n))

    if path == "/filewrapper":
        f = open(q["path"], "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/bytesio":
        data = bytes(i % 251 for i in range(int(q["n"])))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Sha256", hashlib.sha256(data).hexdigest())])
        return environ["wsgi.file_wrapper"](io.BytesIO(data), 8192)

    if path == "/excinfo-before":
        start_response("200 OK", ctype)
        try:
            raise ValueError("respapp-excinfo-before")
        except ValueError:
            start_response("500 Oops", ctype, sys.exc_info())
        return [b"oops body"]
    if path == "/excinfo-after":
        write = start_response("200 OK", ctype)
        write(b"partial data ")
        try:
            raise ValueError("respapp-excinfo-after")
        except ValueError:
            try:
                start_response("500 Oops", ctype, sys.exc_info())
            except ValueError:
                with _lock:
                    _reraised[q["token"]] = True
                raise
        return [b"must never be sent"]
    if path == "/reraised":
        with _lock:
            return _text(start_response, json.dumps(_reraised.get(q["token"], False)))

    if path == "/badheader":
        value = {"crlf": "a\r\nX-Injected: yes", "latin1": "caf\u20ac"}[q["kind"]]
        if q.get("catch") != "1":
            start_response("200 OK", ctype + [("X-Bad", value)])
            return [b"accepted"]
        try:
            start_response("200 OK", ctype + [("X-Bad", value)])
        except Exception as exc:  # the refusal we are looking for
            return _text(start_response, "refused " + type(exc).__name__)
        return [b"accepted"]

    return _text(start_response, "unknown path", "404 Not Found")
