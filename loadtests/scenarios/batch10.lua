-- A batch of 10 calls per request, the kind a DApp sends when a page loads.
dofile("loadtests/scenarios/common.lua")
local body = '[' ..
  '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},' ..
  '{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]},' ..
  '{"jsonrpc":"2.0","id":3,"method":"eth_getBlockByNumber","params":["latest",false]},' ..
  '{"jsonrpc":"2.0","id":4,"method":"eth_getBalance","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","latest"]},' ..
  '{"jsonrpc":"2.0","id":5,"method":"eth_getBalance","params":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","latest"]},' ..
  '{"jsonrpc":"2.0","id":6,"method":"eth_getTransactionCount","params":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","latest"]},' ..
  '{"jsonrpc":"2.0","id":7,"method":"eth_gasPrice","params":[]},' ..
  '{"jsonrpc":"2.0","id":8,"method":"eth_getTransactionReceipt","params":["' .. tx .. '"]},' ..
  '{"jsonrpc":"2.0","id":9,"method":"eth_getCode","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","latest"]},' ..
  '{"jsonrpc":"2.0","id":10,"method":"eth_getBlockByNumber","params":["0x1",false]}' ..
  ']'

function request()
  return post(body)
end
