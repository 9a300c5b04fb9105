-- The same request from many clients: every connection asks for one balance
-- at latest (a gateway can answer all but one per head from its cache or a
-- shared in-flight call; a plain proxy forwards each).
dofile("loadtests/scenarios/common.lua")
local body = '{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","latest"]}'

function request()
  return post(body)
end
