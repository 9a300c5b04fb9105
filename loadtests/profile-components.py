#!/usr/bin/env python3
"""Instructions per request by component, from one callgrind dump of the gateway
(`loadtests/profile` runs it on each rpcgate dump).

Usage: profile-components.py CALLGRIND_FILE REQUESTS

The method. Callgrind records, for every call site, the inclusive cost of the
call (`calls=` followed by a cost line). A function's inclusive cost here is
the sum over the edges that enter it from another function: that counts the
function whole, whatever parts of it the compiler inlined from other files
(callgrind_annotate splits such a function into one row per source file,
which do not add up to anything useful). A component is either one entry
function (`incl`), or a set of functions given by a name pattern, costed by
the edges that enter the set from outside it (`set_incl`, so a set that
calls itself is not counted twice). Components that nest are separated by
subtraction, from the outside in:

  runtime       the whole dump minus the connection tasks
                (`rpcgate::edge::until_deadline`): tokio's scheduler, the
                reactor, task wake-ups between requests;
  connection    the connection task minus the request handler
                (`rpcgate::edge::http::handle`): the client-side hyper
                server connection (reading, parsing, writing HTTP/1.1);
  edge          the handler minus the message (`Ctx::answer_calls`) and the
                metrics it updates: body collection, headers, the caller's
                identity, the answer's HTTP response;
  pipeline      the message minus the cache, the router and the metrics it
                updates: envelope, policy admission, block pinning, the
                answer's assembly with the caller's id;
  cache         the functions of `rpcgate::cache` and moka, entered from
                outside them (the lookup's own body is inlined into the
                pipeline's and counted there; what it calls is counted
                here);
  router        `rpcgate::router` minus the upstream client and the metrics
                the router updates: backend choice, attempts, hedging;
  upstream      `Backend::call` (the call on the request path) minus the
                metrics it updates: request encoding, the lean client, the
                deadline's timer, the reply's parse, the latency estimate;
  metrics       prometheus and `rpcgate::metrics`, entered from outside
                them, wherever they are called from.

The rows add up to the dump's total per request: metrics updated outside a
request (control loops that ran during the dump) are counted in `metrics`
and taken from `runtime`.
"""

import re
import sys
from collections import defaultdict


def parse(path):
    """Self cost per function, and inclusive cost per (caller, callee) edge."""
    names = {}
    self_cost = defaultdict(int)
    edges = defaultdict(int)
    total = 0
    fn = None
    callee = None
    pending_call = False
    name_re = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def name(value):
        m = name_re.match(value)
        if not m:
            return value
        ident, text = m.group(1), m.group(2)
        if text is not None:
            names[ident] = text
        return names.get(ident, ident)

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_call:
                    edges[(fn, callee)] += cost
                    pending_call = False
                else:
                    self_cost[fn] += cost
                continue
            key, _, value = line.partition("=")
            if key == "fn":
                fn = name(value)
            elif key == "cfn":
                callee = name(value)
            elif key == "calls":
                pending_call = True
            elif key in ("fl", "fi", "fe", "cfi", "cfl", "ob", "cob"):
                # File and object names share other tables; kept out of `names`.
                pass
            elif line.startswith("totals:") or line.startswith("summary:"):
                n = int(line.split()[1])
                total = max(total, n)
    return self_cost, edges, total


def main():
    path, requests = sys.argv[1], int(sys.argv[2])
    self_cost, edges, total = parse(path)
    if total == 0:
        total = sum(self_cost.values())

    def set_incl(pattern, callers=None):
        """Cost of the functions matching `pattern`, entered from outside
        them (only from callers matching `callers`, when given)."""
        inside = re.compile(pattern)
        only = re.compile(callers) if callers else None
        n = 0
        for (caller, callee), cost in edges.items():
            if inside.search(callee) and not inside.search(caller or ""):
                if only is None or only.search(caller or ""):
                    n += cost
        return n

    def incl(exact):
        return set_incl("^" + re.escape(exact) + "$")

    metrics = r"^(prometheus::|rpcgate::metrics::|<prometheus::)"
    conn = incl("rpcgate::edge::until_deadline::{{closure}}")
    handle = incl("rpcgate::edge::http::handle::{{closure}}")
    message = incl("rpcgate::calls::Ctx::answer_calls::{{closure}}")
    upstream_all = incl("rpcgate::upstream::client::Backend::call::{{closure}}")
    router_all = set_incl(r"^rpcgate::router::")
    cache = set_incl(r"^(rpcgate::cache::|moka::|<moka::)")
    m_all = set_incl(metrics)
    m_up = set_incl(metrics, r"^rpcgate::upstream::")
    m_router = set_incl(metrics, r"^rpcgate::router::")
    m_edge = set_incl(metrics, r"^rpcgate::edge::")
    m_cache = set_incl(metrics, r"^rpcgate::cache::")
    m_calls = set_incl(metrics, r"^rpcgate::(calls|policy)::")
    # Metrics updated outside a request (control loops during the dump).
    m_rest = m_all - m_up - m_router - m_edge - m_cache - m_calls
    rows = [
        ("runtime", total - conn - m_rest),
        ("connection", conn - handle),
        ("edge", handle - message - m_edge),
        ("pipeline", message - cache - router_all - m_calls),
        ("cache", cache - m_cache),
        ("router", router_all - upstream_all - m_router),
        ("upstream", upstream_all - m_up),
        ("metrics", m_all),
    ]
    print(f"{'total':<11} {total // requests:>7}")
    for label, n in rows:
        print(f"{label:<11} {n // requests:>7}")


if __name__ == "__main__":
    main()
