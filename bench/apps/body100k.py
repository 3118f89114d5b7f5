"""body100k: a 100 KB (102,400-byte) body built once at import."""

BODY = bytes(i % 251 for i in range(100 * 1024))
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
