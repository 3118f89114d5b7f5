"""An app for the @wsgo.timer and @wsgo.cron tests (tests/cron_test.go).

$CRONAPP_JOBS, a comma-separated list, says which jobs to register; each
prints markers on stdout ("cronapp: ..."):

  tick       (in cronjobs.py, a module this one imports) timer(0.5): prints
             "cronapp: tick n=N t=MONOTONIC pid=PID"
  slow       timer(1), but each run sleeps 2.5 s between "cronapp: slow
             start n=N t=T" and "cronapp: slow end n=N t=T"
  boom       timer(0.5): prints "cronapp: boom n=N", then raises
             RuntimeError("cronapp-boom-N")
  spin       timer(0.5): the first run prints "cronapp: spin start" and
             loops in Python for ever; later ones print "cronapp: spin
             again n=N"
  sleeper    timer(0.2): prints "cronapp: sleeper start", then blocks in
             time.sleep(1000), where no exception can land
  finisher   timer(0.2): the first run prints "cronapp: finisher start",
             sleeps 1.5 s and prints "cronapp: finisher end"
  weekly     cron(30, 4, -1, -1, 7): Sundays at 04:30; never waited for

  /slow-running   "yes" while a run of slow is in progress, else "no"
  /checks         croncheck.report(wsgo): how the decorators take good and
                  bad arguments, to compare with the stand-in package
  /late           uses @wsgo.timer after start-up (only warns)
  /module         where the wsgo module comes from: "built-in", or its file
  anything else   "ok"

At exit it prints "cronapp: atexit ran" on stdout.
"""
import atexit
import os
import sys
import threading
import time

import wsgo

import croncheck
import cronjobs  # noqa: F401 (its jobs register when it is imported)

JOBS = os.environ.get("CRONAPP_JOBS", "").split(",")
slow_running = threading.Event()


def say(text):
    print("cronapp: " + text, flush=True)


@atexit.register
def _goodbye():
    say("atexit ran")


if "slow" in JOBS:
    _slow_runs = 0

    @wsgo.timer(1)
    def slow():
        global _slow_runs
        _slow_runs += 1
        n = _slow_runs
        slow_running.set()
        say("slow start n=%d t=%.3f" % (n, time.monotonic()))
        time.sleep(2.5)
        say("slow end n=%d t=%.3f" % (n, time.monotonic()))
        slow_running.clear()


if "boom" in JOBS:
    _booms = 0

    @wsgo.timer(0.5)
    def boom():
        global _booms
        _booms += 1
        say("boom n=%d" % _booms)
        raise RuntimeError("cronapp-boom-%d" % _booms)


if "spin" in JOBS:
    _spins = 0

    @wsgo.timer(0.5)
    def spin():
        global _spins
        _spins += 1
        if _spins > 1:
            say("spin again n=%d" % _spins)
            return
        say("spin start")
        while True:
            pass


if "sleeper" in JOBS:
    @wsgo.timer(0.2)
    def sleeper():
        say("sleeper start")
        time.sleep(1000)


if "finisher" in JOBS:
    _finished = False

    @wsgo.timer(0.2)
    def finisher():
        global _finished
        if _finished:
            return
        _finished = True
        say("finisher start")
        time.sleep(1.5)
        say("finisher end")


if "weekly" in JOBS:
    @wsgo.cron(30, 4, -1, -1, 7)
    def weekly():
        say("weekly ran")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = "ok"
    if path == "/slow-running":
        body = "yes" if slow_running.is_set() else "no"
    elif path == "/checks":
        body = croncheck.report(wsgo)
    elif path == "/module":
        body = getattr(wsgo, "__file__", None) or "built-in"
    elif path == "/late":
        @wsgo.timer(1)
        def too_late():
            pass
        body = "late"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
