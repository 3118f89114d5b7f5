"""Jobs of cronapp.py that live in a module it imports (see there)."""
import os
import time

import wsgo

if "tick" in os.environ.get("CRONAPP_JOBS", "").split(","):
    _ticks = 0

    @wsgo.timer(0.5)
    def tick():
        global _ticks
        _ticks += 1
        print("cronapp: tick n=%d t=%.3f pid=%d" % (_ticks, time.monotonic(), os.getpid()), flush=True)
