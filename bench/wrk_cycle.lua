-- wrk script for bench/turn_cost.py: cycles through pre-signed requests read from a file
-- (one per line: path TAB header TAB value TAB content-type TAB body), each wrk thread
-- taking every Nth line so no two threads send the same request. Counts answers that are
-- not HTTP 200 or lack the expected text, and prints one JSON line at the end.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file, expect, nthreads = args[1], args[2], tonumber(args[3])
  wanted = expect
  requests = {}
  local index = 0
  for line in io.lines(file) do
    if index % nthreads == id then
      local path, header, value, ctype, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = { ["Content-Type"] = ctype }
      if header ~= "" then headers[header] = value end
      table.insert(requests, wrk.format("POST", path, headers, body))
    end
    index = index + 1
  end
  position = 0
  sent = 0
  bad = 0
end

function request()
  position = position % #requests + 1
  sent = sent + 1
  return requests[position]
end

function response(status, headers, body)
  if status ~= 200 or (wanted ~= "" and not string.find(body, wanted, 1, true))
      or string.find(body, "went wrong", 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests_)
  local failures, distinct = 0, 0
  for _, thread in ipairs(threads) do
    failures = failures + thread:get("bad")
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "bad": %d, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, failures,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
