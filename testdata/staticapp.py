"""The app behind the static-file tests: what a request that is not served
from disk falls through to, and the source of X-Sendfile responses.

  /sendfile?path=P                  200 with X-Sendfile: P and a body that
                                      must never reach the client
  /sendfile-gen?path=P&token=T      the same from a generator that calls
                                      start_response on its first step; its
                                      close() is counted under T
  /sendfile-closing?path=P&token=T  the same from an iterable object whose
                                      close() is counted under T
  /accel?uri=U                      200 with X-Accel-Redirect: U
  /closed?token=T                   how often T's iterable was closed
  anything else                     200, "app:" + PATH_INFO (text/plain)
"""
import threading
from urllib.parse import parse_qs

NOT_SENT = b"SHOULD-NOT-BE-SENT"

_lock = threading.Lock()
_closed = {}


def _count_close(token):
    with _lock:
        _closed[token] = _closed.get(token, 0) + 1


def _text(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _file_headers(name, value):
    return [("Content-Type", "application/x-test"),
            ("Content-Disposition", "attachment"),
            (name, value)]


class Closing:
    """A body iterable whose close() is counted under a token."""

    def __init__(self, token):
        self.token = token

    def __iter__(self):
        yield NOT_SENT
        yield b" MORE"

    def close(self):
        _count_close(self.token)


def _sendfile_gen(start_response, path, token):
    # start_response only runs once the server takes the first chunk.
    try:
        start_response("200 OK", _file_headers("X-Sendfile", path))
        yield NOT_SENT
        yield b" MORE"
    finally:
        _count_close(token)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}

    if path == "/sendfile":
        start_response("200 OK", _file_headers("X-Sendfile", q.get("path", "")))
        return [NOT_SENT]
    if path == "/sendfile-gen":
        return _sendfile_gen(start_response, q.get("path", ""), q.get("token", ""))
    if path == "/sendfile-closing":
        start_response("200 OK", _file_headers("X-Sendfile", q.get("path", "")))
        return Closing(q.get("token", ""))
    if path == "/accel":
        start_response("200 OK", _file_headers("X-Accel-Redirect", q.get("uri", "")))
        return [NOT_SENT]
    if path == "/closed":
        with _lock:
            n = _closed.get(q.get("token", ""), 0)
        return _text(start_response, str(n).encode())
    # PATH_INFO is a latin-1 str holding the request's bytes.
    return _text(start_response, ("app:" + path).encode("latin-1", "backslashreplace"))
