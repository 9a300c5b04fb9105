-- Upstream-batch load: one client batch of ten distinct reads (balances of
-- ten addresses at latest), sent again and again; the gateway under test has
-- its cache off, so every batch goes to the backend.
dofile("loadtests/count-errors.lua")
local calls = {}
for i = 1, 10 do
  calls[i] = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"eth_getBalance","params":["0x%040x","latest"]}', i, i)
end
local body = "[" .. table.concat(calls, ",") .. "]"

function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
