"""The driver of loadtests/sse-fanout: N event-stream clients through the
gateway and one stream on the node directly; per head event, the delay from
its arrival on the direct stream to its arrival at each client; the
gateway's RSS before, with every client open, and at peak. Prints one JSON
line."""
import argparse, asyncio, json, time
from urllib.parse import urlparse

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

async def stream(url, on_event, opened):
    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port, limit=1 << 20)
    path = u.path + "?topics=head&topics=block"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    opened()
    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("stream ended")
        now = time.monotonic()
        buf += chunk
        # Chunked transfer framing: keep only the event lines.
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            topic = data = None
            for line in block.split(b"\n"):
                if line.startswith(b"event: "):
                    topic = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = line[6:]
            if topic == "head" and data:
                on_event(json.loads(data)["slot"], now)

async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway"); ap.add_argument("--direct")
    ap.add_argument("--clients", type=int); ap.add_argument("--duration", type=float)
    ap.add_argument("--pid", type=int)
    a = ap.parse_args()
    direct_at, client_at = {}, []
    opened = [0]; errors = [0]
    rss_start = rss_mib(a.pid)
    def opened_one(): opened[0] += 1
    async def client():
        try:
            await stream(a.gateway + "/eth/v1/events", lambda s, t: client_at.append((s, t)), opened_one)
        except Exception:
            errors[0] += 1
    tasks = [asyncio.create_task(stream(a.direct + "/eth/v1/events", lambda s, t: direct_at.setdefault(s, t), lambda: None))]
    for i in range(a.clients):
        tasks.append(asyncio.create_task(client()))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    t0 = time.monotonic()
    while opened[0] + errors[0] < a.clients and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.1)
    rss_idle = rss_mib(a.pid); peak = rss_idle
    start = time.monotonic()
    client_at.clear()
    while time.monotonic() - start < a.duration:
        await asyncio.sleep(0.25)
        peak = max(peak, rss_mib(a.pid))
    delays = sorted((t - direct_at[s]) * 1000 for s, t in client_at if s in direct_at)
    pick = lambda q: round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else None
    heads = len({s for s, _ in client_at})
    print(json.dumps({"clients": a.clients, "opened": opened[0], "errors": errors[0], "heads": heads,
                      "deliveries": len(delays), "rss_start_mib": round(rss_start, 1),
                      "rss_open_mib": round(rss_idle, 1), "rss_peak_mib": round(peak, 1),
                      "delay_p50_ms": pick(0.5), "delay_p99_ms": pick(0.99), "delay_max_ms": pick(1.0)}))
    for t in tasks:
        t.cancel()

asyncio.run(main())
