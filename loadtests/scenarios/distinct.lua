-- Pass-through of distinct requests: every call asks for the balance of an
-- address no other call asks for, so nothing is shared or cached and every
-- call is forwarded: the cost of forwarding.
dofile("loadtests/scenarios/common.lua")
local n = 0

function request()
  n = n + 1
  return post(string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"eth_getBalance","params":["0x%08x%04x%028x","latest"]}',
    n, cell, tid, n))
end
