-- Shared by the wrk scripts: counts answers that are not HTTP 200 or carry a
-- JSON-RPC error, per thread, and prints the total. `errors` is a global so
-- that `done` can read it from each thread. Load with dofile() from the
-- repository root (the load test scripts run there).
local threads = {}
errors = 0

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"error"', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("errors")
  end
  io.write(string.format("JSON-RPC errors: %d\n", total))
end
