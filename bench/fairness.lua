-- wrk script for the fairness workload's flood: every request carries X-Forwarded-For with the
-- address given after "--", so that a server which believes it from a trusted proxy (wsgo trusts
-- loopback, where wrk connects from) sees one client:
--   wrk -t1 -c100 -d10s -s fairness.lua http://127.0.0.1:PORT/slow -- 203.0.113.7
-- Headers set in init() go into the request wrk builds once per thread.
function init(args)
  wrk.headers["X-Forwarded-For"] = args[1]
end
