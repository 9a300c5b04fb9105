// ethers v6 `contract.on(event)` and viem `watchContractEvent`, both over
// HTTP (so both watch through filters: eth_newFilter, eth_getFilterChanges),
// against the gateway at argv[2]. argv: gw, chainId, contract, events.
// Prints {"ready": ...} per client once its filter is polled, then one line
// per client with every event it saw, its errors and the methods it sent.
import { ethers } from "ethers";
import { createPublicClient, http, parseAbi } from "viem";

const [gw, chainIdArg, contract, wantArg] = process.argv.slice(2);
const chainId = Number(chainIdArg);
const want = Number(wantArg);
const timeoutMs = Number(process.env.WATCH_TIMEOUT_MS || 120000);
const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");

function watchEthers() {
  const methods = new Set();
  const provider = new ethers.JsonRpcProvider(gw, chainId, {
    staticNetwork: true,
    pollingInterval: 150,
  });
  provider.pollingInterval = 150;
  provider.on("debug", (e) => {
    if (e.action !== "sendRpcPayload") return;
    for (const call of [e.payload].flat()) methods.add(call.method);
  });
  const events = [];
  const errors = [];
  provider.on("error", (e) => errors.push(String(e)));
  const abi = ["event Ping(uint256 n)"];
  const c = new ethers.Contract(contract, abi, provider);
  return new Promise((resolve) => {
    let reported = false;
    const ready = setInterval(() => {
      if (!reported && methods.has("eth_getFilterChanges")) {
        reported = true;
        clearInterval(ready);
        print({ ready: "ethers" });
      }
    }, 20);
    c.on("Ping", (n, ev) => {
      events.push({ n: Number(n), block: ev.log.blockNumber, tx: ev.log.transactionHash, removed: ev.log.removed });
      if (events.length >= want) {
        c.removeAllListeners();
        provider.destroy();
        resolve({ client: "ethers", events, errors, methods: [...methods] });
      }
    });
  });
}

function watchViem() {
  const methods = new Set();
  const client = createPublicClient({
    pollingInterval: 150,
    transport: http(gw, {
      onFetchRequest: async (request) => {
        const body = JSON.parse(await request.clone().text());
        for (const call of [body].flat()) methods.add(call.method);
      },
    }),
  });
  const events = [];
  const errors = [];
  return new Promise((resolve) => {
    let reported = false;
    const ready = setInterval(() => {
      if (!reported && methods.has("eth_getFilterChanges")) {
        reported = true;
        clearInterval(ready);
        print({ ready: "viem" });
      }
    }, 20);
    const unwatch = client.watchContractEvent({
      address: contract,
      abi: parseAbi(["event Ping(uint256 n)"]),
      eventName: "Ping",
      poll: true,
      pollingInterval: 150,
      onError: (e) => errors.push(String(e)),
      onLogs: (logs) => {
        for (const log of logs) {
          events.push({ n: Number(log.args.n), block: Number(log.blockNumber), tx: log.transactionHash, removed: Boolean(log.removed) });
        }
        if (events.length >= want) {
          unwatch();
          resolve({ client: "viem", events, errors, methods: [...methods] });
        }
      },
    });
  });
}

const timer = setTimeout(() => {
  print({ timeout: `fewer than ${want} events in ${timeoutMs} ms` });
  process.exit(1);
}, timeoutMs);
const results = await Promise.all([watchEthers().then((r) => (print(r), r)), watchViem().then((r) => (print(r), r))]);
clearTimeout(timer);
print({ done: results.length });
process.exit(0);
