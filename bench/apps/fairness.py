"""fairness: `/` answers at once (the polite client's page); `/slow` sleeps 50 ms
first (time.sleep, which releases the GIL), as the flooded endpoint."""

import time

FAST = b"fast\n"
SLOW = b"slept 50ms\n"
FAST_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(FAST)))]
SLOW_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(SLOW)))]


def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.05)
        start_response("200 OK", SLOW_HEADERS)
        return [SLOW]
    start_response("200 OK", FAST_HEADERS)
    return [FAST]
