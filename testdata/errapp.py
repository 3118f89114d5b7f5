"""Apps that break the WSGI contract in various ways; / is healthy."""


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise-before":
        raise RuntimeError("errapp-raise-before-marker")
    if path == "/return-str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return "a str is not a valid WSGI body"
    if path == "/return-int":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return 42
    if path == "/yield-str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter(["text, not bytes"])
    if path == "/no-start-response":
        return [b"body without a status"]
    if path == "/raise-in-iter":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            raise RuntimeError("errapp-raise-in-iter-marker")
            yield b"never"
        return gen()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"healthy"]
