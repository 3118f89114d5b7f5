-- wrk script for the post64k workload: every request POSTs the same 65,536-byte body.
-- The Go harness builds the identical body (the 64-byte pattern below, repeated 1024 times)
-- to check the digest the server returns.
wrk.method = "POST"
wrk.body = string.rep("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
