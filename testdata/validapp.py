"""A simple app wrapped in wsgiref's validator: any server-side WSGI
violation turns into an AssertionError (a 500) or a warning on stderr."""
from wsgiref.validate import validator


def _app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        body = b"posted " + data
    else:
        body = b"valid hello"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validator(_app)
