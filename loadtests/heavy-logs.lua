-- A heavy call: eth_getLogs, each for an address no other call names (so
-- nothing is shared); the fixed node answers it after --slow-logs-ms.
dofile("loadtests/scenarios/common.lua")
local n = 0

function request()
  n = n + 1
  return post(string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"eth_getLogs","params":[{"fromBlock":"0x1","toBlock":"0x2","address":"0x%08x%04x%028x"}]}',
    n, cell, tid, n))
end
