-- Pass-through load: eth_getBalance at latest of a new address every
-- request, so no answer is shared or served from the cache (each is
-- forwarded). The address is the wrk thread, the start time and a counter
-- (decimal digits are hex digits too), so that neither two threads nor two
-- runs repeat each other.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prefix = ""
local n = 0

function init(args)
  prefix = string.format("0x%08x%08x", tid or 0, os.time() % 2 ^ 31)
end

function request()
  n = n + 1
  local body = string.format(
    '{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["%s%024d","latest"]}', prefix, n)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
