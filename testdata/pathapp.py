"""Imports modules that only --pythonpath directories provide."""
import ppone
import pptwo


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s" % (ppone.VALUE, pptwo.VALUE)).encode()]
