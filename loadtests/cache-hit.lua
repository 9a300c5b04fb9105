-- Cache-hit load: one call the gateway answers from its cache (block 0 is
-- final), sent again and again.
dofile("loadtests/count-errors.lua")
local body = '{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x0",false]}'

function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
