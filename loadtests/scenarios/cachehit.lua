-- Cache hits: one call the gateway answers from its cache (block 0 is
-- final), against the minimal hyper server answering the very same bytes.
dofile("loadtests/scenarios/common.lua")
local body = '{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x0",false]}'

function request()
  return post(body)
end
