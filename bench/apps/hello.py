"""hello: the smallest possible WSGI response, a 12-byte text/plain body."""

BODY = b"Hello world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
