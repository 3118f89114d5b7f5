"""An app for the process-lifecycle tests (workers, crashes, reload, shutdown).

  /pid             the worker process's pid
  /multiprocess    wsgi.multiprocess, as "True" or "False"
  /slow            prints "lifeapp: slow request running" on stderr, sleeps
                   1 s, then answers 100,000 bytes of "x"
  /segfault        crashes the worker process with SIGSEGV
  /exit            ends the worker process at once with status 7
  anything else    "ok"

At import, if $LIFEAPP_FAIL_FLAG names a file that exists, the import fails.
At exit, each worker process prints "lifeapp: atexit ran in pid N" on stderr.
"""
import atexit
import ctypes
import os
import sys
import time

_flag = os.environ.get("LIFEAPP_FAIL_FLAG")
if _flag and os.path.exists(_flag):
    raise RuntimeError("lifeapp refuses to import: %s exists" % _flag)


@atexit.register
def _goodbye():
    print("lifeapp: atexit ran in pid %d" % os.getpid(), file=sys.stderr, flush=True)


SLOW_BODY = b"x" * 100_000


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/multiprocess":
        body = str(environ["wsgi.multiprocess"]).encode()
    elif path == "/slow":
        print("lifeapp: slow request running", file=sys.stderr, flush=True)
        time.sleep(1)
        body = SLOW_BODY
    elif path == "/segfault":
        ctypes.string_at(0)
        body = b"still alive after a segfault?"
    elif path == "/exit":
        os._exit(7)
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
