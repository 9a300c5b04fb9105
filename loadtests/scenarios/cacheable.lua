-- A cacheable mix: reads of an old block, of a mined transaction and of
-- chain constants, the same for everyone and never changing.
dofile("loadtests/scenarios/common.lua")
request = rotation({
  '{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x1",false]}',
  '{"jsonrpc":"2.0","id":2,"method":"eth_getTransactionReceipt","params":["' .. tx .. '"]}',
  '{"jsonrpc":"2.0","id":3,"method":"eth_getTransactionByHash","params":["' .. tx .. '"]}',
  '{"jsonrpc":"2.0","id":4,"method":"eth_getBalance","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","0x1"]}',
  '{"jsonrpc":"2.0","id":5,"method":"eth_getBlockByNumber","params":["0x0",false]}',
  '{"jsonrpc":"2.0","id":6,"method":"net_version","params":[]}',
  '{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}',
})
