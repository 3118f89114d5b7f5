"""Fails at import time."""
import wsgo_test_no_such_dependency  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
