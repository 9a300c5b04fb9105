-- Shared by the scenario scripts of loadtests/run (load with dofile() from
-- the repository root). Gives each wrk thread a number (`tid`), counts the
-- answers that are not HTTP 200 or carry a JSON-RPC error, and prints
-- "JSON-RPC errors: N" at the end. `cell` (env CELL) differs per measured
-- cell, so that distinct requests of one cell are never those of another.
local threads = {}
local next_tid = 0
errors = 0
tid = 0
cell = tonumber(os.getenv("CELL") or "0") or 0
tx = os.getenv("TX") or "0x0000000000000000000000000000000000000000000000000000000000000000"

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
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

function post(body)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

-- Calls from a list in rotation, each thread starting elsewhere in it.
function rotation(bodies)
  local i = nil
  return function()
    if i == nil then i = (tid * 7) % #bodies end
    i = i % #bodies + 1
    return post(bodies[i])
  end
end
