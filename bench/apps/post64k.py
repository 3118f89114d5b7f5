"""post64k: reads the whole request body from wsgi.input and returns its SHA-256 hex digest."""

import hashlib


def application(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    h = hashlib.sha256()
    stream = environ["wsgi.input"]
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        h.update(chunk)
        remaining -= len(chunk)
    body = h.hexdigest().encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
