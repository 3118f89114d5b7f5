"""Responses for the response cache tests, shaped by the query string.

  /count/P   how often the app ran for path /P (this call not counted);
             never cacheable (Cache-Control: no-store)
  anything else counts a call for its PATH_INFO and answers

      calls=N method=M path=P qs=Q host=H cookie=C lang=L

  padded with "." to size bytes, shaped by these query parameters:

      cc=V           Cache-Control: V
      vary=V         Vary: V
      varycookies=V  X-WSGo-Vary-Cookies: V
      cookie=1       Set-Cookie: a=b
      size=N         body padded to N bytes
      status=N       status N (default 200)
      sleep=S        sleep S seconds before answering (after counting)

The counter goes up when the call starts, so a test sees a call as soon as
the app runs, before its answer is sent.
"""
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_calls = {}

_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error",
            503: "Service Unavailable"}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/count/"):
        with _lock:
            n = _calls.get(path[len("/count"):], 0)
        body = str(n).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Cache-Control", "no-store"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    with _lock:
        n = _calls.get(path, 0) + 1
        _calls[path] = n
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""),
                                      keep_blank_values=True).items()}
    if "sleep" in q:
        time.sleep(float(q["sleep"]))

    text = "calls=%d method=%s path=%s qs=%s host=%s cookie=%s lang=%s" % (
        n, environ.get("REQUEST_METHOD", ""), path,
        environ.get("QUERY_STRING", ""), environ.get("HTTP_HOST", ""),
        environ.get("HTTP_COOKIE", ""),
        environ.get("HTTP_ACCEPT_LANGUAGE", ""))
    body = text.encode()
    if "size" in q:
        size = int(q["size"])
        if size > len(body):
            body += b"." * (size - len(body))

    headers = [("Content-Type", "text/plain")]
    if "cc" in q:
        headers.append(("Cache-Control", q["cc"]))
    if "vary" in q:
        headers.append(("Vary", q["vary"]))
    if "varycookies" in q:
        headers.append(("X-WSGo-Vary-Cookies", q["varycookies"]))
    if q.get("cookie") == "1":
        headers.append(("Set-Cookie", "a=b"))
    headers.append(("Content-Length", str(len(body))))

    code = int(q.get("status", "200"))
    start_response("%d %s" % (code, _REASONS.get(code, "Status")), headers)
    return [body]
