"""Reports the worker thread's ident and a per-thread request counter."""
import json
import threading

_local = threading.local()


def application(environ, start_response):
    _local.count = getattr(_local, "count", 0) + 1
    body = json.dumps({"ident": threading.get_ident(), "count": _local.count}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
