"""stream1m: a generator yielding 100 chunks of 10 KB (1,024,000 bytes), no Content-Length.

The server has to stream it: chunked transfer-encoding on HTTP/1.1, or close-delimited.
"""

CHUNK = b"x" * (10 * 1024)
CHUNKS = 100


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(CHUNKS):
        yield CHUNK
