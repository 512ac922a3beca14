-- Shared by the bench scripts: each thread reads the targets file (one request per line, fields separated by
-- tabs: method, path, token, body) and sends them round-robin from a per-thread offset; done() prints the
-- figures as one JSON line for bench/run.py.

local targets = {}
local next_index = 1
local thread_count = 0

function setup(thread)
  thread:set("thread_number", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local path = args[1]
  for line in io.lines(path) do
    local method, target, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    targets[#targets + 1] = { method = method, path = target, token = token, body = body }
  end
  -- spread the threads over the targets
  next_index = 1 + (thread_number * 7919) % #targets
end

function request()
  local t = targets[next_index]
  next_index = next_index + 1
  if next_index > #targets then next_index = 1 end
  local headers = { ["Authorization"] = "Bearer " .. t.token }
  local body = nil
  if t.body ~= nil and t.body ~= "" then
    headers["Content-Type"] = "application/json"
    body = t.body
  end
  return wrk.format(t.method, t.path, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
