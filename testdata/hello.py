"""The smallest app: fixed greeting, or /size?n=N for an N-byte body.

Used by the access-log, keep-alive, bad-HTTP and memory tests.
"""


def application(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    if query.startswith("n="):
        body = b"x" * int(query[2:])
    else:
        body = b"hello world\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
