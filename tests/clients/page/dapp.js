// A DApp page as a browser runs it, on another origin than the gateway.
// Query: gw (the gateway URL), key (sent as a Bearer token, so every call
// needs a preflight), chain, contract (emits Ping(uint256 n) on every call),
// events (how many Ping events to wait for), mode ("dapp" or "blocked").
// Each finding goes to the console as one line "RPCGATE <json>", which the
// driver (browser.mjs) relays to the Rust test.
import { createPublicClient, defineChain, http, parseAbi } from "viem";

const q = new URLSearchParams(location.search);
const gw = q.get("gw");
const key = q.get("key");
const DEV = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const report = (o) => {
  console.log("RPCGATE " + JSON.stringify(o));
  document.getElementById("log").textContent += JSON.stringify(o) + "\n";
};

async function plainFetch(method = "eth_blockNumber") {
  const r = await fetch(gw, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method, params: [] }),
  });
  return {
    status: r.status,
    body: await r.json(),
    // Set on failed calls (to match the gateway's log line); readable from
    // script only when the gateway exposes it.
    requestId: r.headers.get("x-request-id"),
  };
}

async function blocked() {
  try {
    const r = await plainFetch();
    report({ blocked: false, status: r.status });
  } catch (e) {
    report({ blocked: true, error: e.name });
  }
  report({ done: true });
}

async function dapp() {
  report({ fetch: await plainFetch() });
  report({ refused: await plainFetch("eth_noSuchMethod") });
  const chain = defineChain({
    id: Number(q.get("chain")),
    name: "dev",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [gw] } },
  });
  const sent = [];
  const client = createPublicClient({
    chain,
    pollingInterval: 150,
    transport: http(gw, {
      fetchOptions: { headers: { authorization: `Bearer ${key}` } },
      onFetchRequest: async (request) => {
        const body = JSON.parse(await request.clone().text());
        for (const call of [body].flat()) sent.push(call.method);
      },
    }),
  });
  report({ blockNumber: Number(await client.getBlockNumber()) });
  report({ balance: (await client.getBalance({ address: DEV })).toString() });

  const want = Number(q.get("events"));
  const events = [];
  const errors = [];
  await new Promise((resolve) => {
    const unwatch = client.watchContractEvent({
      address: q.get("contract"),
      abi: parseAbi(["event Ping(uint256 n)"]),
      eventName: "Ping",
      poll: true,
      pollingInterval: 150,
      onError: (e) => {
        errors.push(String(e));
        report({ watchError: String(e) });
      },
      onLogs: (logs) => {
        for (const log of logs) {
          events.push({
            n: Number(log.args.n),
            block: Number(log.blockNumber),
            tx: log.transactionHash,
            removed: Boolean(log.removed),
          });
        }
        if (events.length >= want) {
          unwatch();
          resolve();
        }
      },
    });
    // The filter exists once its first poll has been sent: then the test mines.
    const ready = setInterval(() => {
      if (sent.includes("eth_getFilterChanges")) {
        clearInterval(ready);
        report({ watching: true });
      }
    }, 20);
  });
  report({ events, errors, methods: [...new Set(sent)] });
  report({ done: true });
}

(q.get("mode") === "blocked" ? blocked() : dapp()).catch((e) => {
  report({ failed: String(e && e.stack ? e.stack : e) });
  report({ done: true });
});
