"""sleep20ms: blocks for 20 ms (time.sleep, which gevent monkey-patches) then answers briefly.

Measures how many requests a server keeps in flight at once, not how fast it runs Python.
"""

import time

BODY = b"slept 20ms\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    time.sleep(0.02)
    start_response("200 OK", HEADERS)
    return [BODY]
