"""An app whose import can be made slow, for the health check tests.

When the file named by the SLOWSTART_FILE environment variable exists, the
import sleeps for the number of seconds it holds; so a test lets the first
worker processes start at once and makes their replacements slow. Every
request answers "ok", except /sleep?s=S, which sleeps S seconds first.
"""
import os
import time
from urllib.parse import parse_qs

_path = os.environ.get("SLOWSTART_FILE", "")
if _path and os.path.exists(_path):
    with open(_path) as f:
        time.sleep(float(f.read().strip() or 0))


def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(float(parse_qs(environ["QUERY_STRING"])["s"][0]))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
