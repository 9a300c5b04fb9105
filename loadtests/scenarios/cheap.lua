-- Cheap calls: chain id and block number, what wallets poll most.
dofile("loadtests/scenarios/common.lua")
request = rotation({
  '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
  '{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]}',
})
