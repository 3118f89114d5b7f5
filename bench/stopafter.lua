-- wrk script that stops after a number of responses, given after "--" on the wrk command line:
--   wrk -t1 -c50 -d600s -s stopafter.lua URL -- 100000
-- wrk has no request-count option, and a thread that stops itself does not end the run: wrk's main
-- thread still sleeps out -d. So on reaching the limit the script stops its thread and prints
-- "wsgo-bench: limit reached" on stdout; the harness watches for that line and sends wrk SIGINT,
-- which ends the run early and still prints the usual summary. -d remains the upper bound on time.
-- Meant for -t1: with more threads each thread would count (and stop) on its own.
local limit = 0
local seen = 0
local stopped = false

function init(args)
  limit = tonumber(args[1]) or 0
end

function response(status, headers, body)
  seen = seen + 1
  if not stopped and limit > 0 and seen >= limit then
    stopped = true
    wrk.thread:stop()
    io.write("wsgo-bench: limit reached\n")
    io.stdout:flush()
  end
end
