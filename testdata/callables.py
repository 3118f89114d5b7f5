"""Three callables: `application` (the default), `app` and `other`."""


def _answer(text):
    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]
    return wsgi


application = _answer("callable application")
app = _answer("callable app")
other = _answer("callable other")
