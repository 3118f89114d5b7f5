"""Imports a module that only the virtualenv's site-packages provides."""
import venvonly


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [venvonly.VALUE.encode()]
