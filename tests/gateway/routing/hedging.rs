//! Hedged reads (`hedge:`): a read the first backend has not answered
//! within the delay goes to a second one, and the first answer wins.
//!
//! Three anvil replicas behind taps; one at a time delays its answers by
//! 200 ms, a different one each round. A replica that *stays* slow would
//! not do: P2C over Peak-EWMA stops choosing it after its first slow
//! answer, with or without hedging. What hedging is for is the slowness
//! the estimate cannot foresee, a backend that was fast until this call,
//! which moving the delay from replica to replica gives every round.
//!
//! What is asserted is counted, not timed: which backend served each call
//! (the served-by header), the hedges the metrics count, and the sends the
//! taps count. Durations are measured only to be printed.

use std::time::{Duration, Instant};

use rpcgate_fleet::{Fault, Tap};
use serde_json::json;

use crate::support::*;

/// The network the hedging counters are read for.
const NETWORK: &str = "hedged";
const ROUNDS: usize = 12;
const CALLS_PER_ROUND: usize = 8;
const DELAY: Duration = Duration::from_millis(200);

/// What one phase (hedging on or off) saw.
#[derive(Debug, Default)]
struct Phase {
    calls: u64,
    /// eth_getBalance sends that reached any replica.
    sends: u64,
    /// Sends that reached the replica slow in that round.
    slow_asked: u64,
    /// Answers served by the replica slow in that round.
    slow_used: u64,
    /// Answers that took two backend calls (a hedge, or a retry).
    two_attempts: u64,
    /// The most backend calls one answer took (`x-rpcgate-attempts`).
    most_attempts: u32,
    durations: Vec<Duration>,
    /// The phase's gateway's `rpcgate_hedged_calls_total` by outcome, and
    /// its `rpcgate_hedged_losers_cancelled_total`.
    hedge_won: u64,
    first_won: u64,
    not_needed: u64,
    cancelled: u64,
}

impl Phase {
    fn quantile(&self, q: f64) -> Duration {
        let mut d = self.durations.clone();
        d.sort();
        d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1]
    }

    fn over(&self, limit: Duration) -> usize {
        self.durations.iter().filter(|d| **d > limit).count()
    }
}

/// Rounds of sequential reads through a gateway configured with `extra`,
/// the replica `round % 3` delayed in each round.
async fn phase(fleet: &rpcgate_fleet::Fleet, taps: &[Tap], extra: &str) -> Phase {
    let ups: Vec<_> = (0..3)
        .map(|i| up(&format!("r{i}"), taps[i].url(), Some(fleet.ws_url(i))))
        .collect();
    let config =
        yaml(fleet.chain_id(), &ups, extra).replace("  dev:\n", &format!("  {NETWORK}:\n"));
    let gw = start_gateway(&format!(
        "server:\n  expose_upstream_headers: true\n{config}"
    ))
    .await;
    wait_synced(&gw, 3, 1).await;
    let mut seen = Phase::default();
    for t in taps {
        t.reset();
    }
    for round in 0..ROUNDS {
        let slow = round % 3;
        for (i, t) in taps.iter().enumerate() {
            if i == slow {
                t.set_fault_on("eth_getBalance", Fault::Delay(DELAY));
            } else {
                t.set_fault(Fault::None);
            }
        }
        let asked_before = taps[slow].count("eth_getBalance");
        for call in 0..CALLS_PER_ROUND {
            // A distinct account each call, so no two calls are the same question.
            let account = format!("0x{:040x}", 0x1000 + round * CALLS_PER_ROUND + call);
            let body = json!({"jsonrpc": "2.0", "id": call, "method": "eth_getBalance", "params": [account, "latest"]});
            let started = Instant::now();
            let reply = post_with_headers(&gw.url, &[], body.to_string()).await;
            seen.durations.push(started.elapsed());
            assert_eq!(reply.status, 200);
            let answer = json_or_null(&reply.body);
            assert_eq!(answer["result"], "0x0", "{answer}");
            let header = |h: &str| {
                reply
                    .headers
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            if header("x-rpcgate-upstream") == Some(format!("r{slow}")) {
                seen.slow_used += 1;
            }
            let attempts: u32 = header("x-rpcgate-attempts").unwrap().parse().unwrap();
            seen.two_attempts += u64::from(attempts == 2);
            seen.most_attempts = seen.most_attempts.max(attempts);
            seen.calls += 1;
        }
        seen.slow_asked += taps[slow].count("eth_getBalance") - asked_before;
    }
    for t in taps {
        t.set_fault(Fault::None);
    }
    seen.sends = taps.iter().map(|t| t.count("eth_getBalance")).sum();
    let hedges = &gw.gateway.metrics().hedges;
    let count = |outcome: &str| hedges.calls.with_label_values(&[NETWORK, outcome]).get();
    seen.hedge_won = count("hedge_won");
    seen.first_won = count("first_won");
    seen.not_needed = count("not_needed");
    seen.cancelled = hedges.cancelled.with_label_values(&[NETWORK]).get();
    eprintln!(
        "hedging phase [{extra}]: {} calls, {} sends; slow replica asked {} times, its answer used {} times; \
         {} answers after two sends; p50 {:?}, p99 {:?}, max {:?}; {} calls over 150ms",
        seen.calls,
        seen.sends,
        seen.slow_asked,
        seen.slow_used,
        seen.two_attempts,
        seen.quantile(0.5),
        seen.quantile(0.99),
        seen.quantile(1.0),
        seen.over(Duration::from_millis(150)),
    );
    seen
}

#[tokio::test]
async fn a_hedge_answers_for_a_replica_turned_slow_and_no_call_is_sent_more_than_twice() {
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let taps = tap_all(&fleet).await;
    let base = "cache: {enabled: false}";

    let off = phase(&fleet, &taps, base).await;
    // Without hedging every call is sent once, and the slow replica's
    // answers are the ones used whenever it was asked.
    assert_eq!(off.sends, off.calls);
    assert_eq!(off.most_attempts, 1);
    assert_eq!(off.slow_used, off.slow_asked);
    assert_eq!(off.hedge_won + off.first_won, 0);

    let on = phase(
        &fleet,
        &taps,
        &format!("{base}\nhedge: [{{methods: [eth_getBalance, 'eth_getBlockBy*'], delay: 50ms}}]"),
    )
    .await;
    let (won, losers) = (on.hedge_won, on.cancelled);
    eprintln!(
        "hedging on: hedge_won {won}, first_won {}, not_needed {}, losers cancelled {losers}",
        on.first_won, on.not_needed,
    );
    // At most one hedge per call: never more than two sends, in all and
    // for each call (the gateway's own count, in the served-by header).
    assert!(on.sends <= 2 * on.calls, "{on:?}");
    assert!(on.most_attempts <= 2, "{on:?}");
    // The replica turned slow was asked, and a hedge answered for it: its
    // own answers were mostly not the ones used.
    assert!(on.slow_asked >= 1, "{on:?}");
    assert!(won >= 1, "no hedge answered: {on:?}");
    assert!(
        on.slow_used * 2 <= on.slow_asked,
        "the slow replica's answers were used: {on:?}"
    );
    // Each answer a hedge won cancelled the slower send.
    assert!(losers >= won, "{losers} cancelled for {won} hedge wins");
}
