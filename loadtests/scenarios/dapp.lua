-- A realistic DApp mix: in 20 calls, 10 eth_call at latest (four distinct
-- calls that many clients make), then blocks, balances, receipts, logs,
-- chain id and block number. The shares follow the method breakdowns that
-- node providers publish (eth_call about half of all calls); the exact
-- numbers are ours. The calls go to an address without code (the answer is
-- "0x"): the gateway's work per call is the same, and anvil's is small.
dofile("loadtests/scenarios/common.lua")
local token = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
local function call(data, id)
  return string.format('{"jsonrpc":"2.0","id":%d,"method":"eth_call","params":[{"to":"%s","data":"%s"},"latest"]}', id, token, data)
end
local balanceOf = "0x70a08231000000000000000000000000"
request = rotation({
  call(balanceOf .. "70997970C51812dc3A010C7d01b54e5C0979720C", 1),
  '{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]}',
  call("0x18160ddd", 3),
  '{"jsonrpc":"2.0","id":4,"method":"eth_getBlockByNumber","params":["latest",false]}',
  call(balanceOf .. "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 5),
  '{"jsonrpc":"2.0","id":6,"method":"eth_getBalance","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","latest"]}',
  call("0x313ce567", 7),
  '{"jsonrpc":"2.0","id":8,"method":"eth_getTransactionReceipt","params":["' .. tx .. '"]}',
  call(balanceOf .. "70997970C51812dc3A010C7d01b54e5C0979720C", 9),
  '{"jsonrpc":"2.0","id":10,"method":"eth_getLogs","params":[{"fromBlock":"latest","toBlock":"latest"}]}',
  call("0x18160ddd", 11),
  '{"jsonrpc":"2.0","id":12,"method":"eth_chainId","params":[]}',
  call(balanceOf .. "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 13),
  '{"jsonrpc":"2.0","id":14,"method":"eth_getBlockByNumber","params":["latest",false]}',
  call("0x313ce567", 15),
  '{"jsonrpc":"2.0","id":16,"method":"eth_getBalance","params":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","latest"]}',
  call(balanceOf .. "70997970C51812dc3A010C7d01b54e5C0979720C", 17),
  '{"jsonrpc":"2.0","id":18,"method":"eth_blockNumber","params":[]}',
  call("0x18160ddd", 19),
  '{"jsonrpc":"2.0","id":20,"method":"eth_getTransactionReceipt","params":["' .. tx .. '"]}',
})
