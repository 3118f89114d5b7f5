"""Counts how often it is called per token; reads the whole body.

  /count?token=T   how often the app ran for T (this call not counted)
  anything else    counts a call for token T (if given), answers the body length
"""
import threading
from urllib.parse import parse_qs

_lock = threading.Lock()
_calls = {}


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    token = q.get("token", "")
    if environ["PATH_INFO"] == "/count":
        with _lock:
            body = str(_calls.get(token, 0)).encode()
    else:
        with _lock:
            _calls[token] = _calls.get(token, 0) + 1
        body = b"got %d bytes" % len(environ["wsgi.input"].read())
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
