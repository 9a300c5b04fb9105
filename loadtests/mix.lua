-- The request mix of the load test: common DApp reads, in rotation.
-- eth_blockNumber is the only call rpcgate answers itself (from its served head).
dofile("loadtests/count-errors.lua")
local bodies = {
  '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
  '{"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","latest"]}',
  '{"jsonrpc":"2.0","id":3,"method":"eth_getBlockByNumber","params":["latest",false]}',
  '{"jsonrpc":"2.0","id":4,"method":"eth_call","params":[{"to":"0x70997970C51812dc3A010C7d01b54e5C0979720C","data":"0x"},"latest"]}',
  '{"jsonrpc":"2.0","id":5,"method":"eth_getTransactionCount","params":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","latest"]}',
  '{"jsonrpc":"2.0","id":6,"method":"eth_gasPrice","params":[]}',
}
local i = 0

function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
