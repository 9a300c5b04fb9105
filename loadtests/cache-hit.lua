-- Cache-hit load: one call the gateway answers from its cache (block 0 is
-- final), sent again and again. `errors` is a global so `done` can read it.
local body = '{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x0",false]}'
local threads = {}
errors = 0

function setup(thread)
  table.insert(threads, thread)
end

function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
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
