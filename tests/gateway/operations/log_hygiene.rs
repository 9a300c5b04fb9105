//! What a client can do to the logs: nothing it sends breaks a line (a
//! method name with a newline, terminal escapes, Unicode separators), in
//! either format; and a key scan is counted in full while its log lines
//! stay at `log.refusals_per_second`, with a line saying how many were left out.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

/// An unknown method (refused, so logged) carrying a forged log line, a
/// carriage return, a tab, an ANSI sequence, DEL, a C1 control (CSI) and
/// the Unicode line separator.
const FORGED: &str = "eth_x\n2026-01-01T00:00:00Z FORGED\r\t\u{1b}[2J\u{7f}\u{9b}\u{2028}end";

/// A character no log line may hold raw.
fn breaks_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

async fn send_forged(url: &str) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": FORGED}).to_string();
    let (status, answer) = post(url, body).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
}

#[tokio::test]
async fn a_method_name_with_a_newline_stays_one_escaped_line_in_the_human_format() {
    let fleet = fleet(1).await;
    let config = yaml(fleet.chain_id(), &fleet_ups(&fleet), "");
    let gw = RpcgateProcess::start(&format!("{config}log:\n  format: human\n"), &[]);
    send_forged(&gw.url).await;
    let line = gw
        .wait_line("the refused call's line", |l| l.contains("request failed"))
        .await;
    // The method (quoted) and the error message that repeats it (as text),
    // each with every control character escaped, on the event's own line.
    let escaped = r"eth_x\n2026-01-01T00:00:00Z FORGED\r\t\u{1b}[2J\u{7f}\u{9b}\u{2028}end";
    assert!(line.contains(&format!("method=\"{escaped}\"")), "{line}");
    assert!(
        line.contains(&format!("error=method {escaped} is not allowed")),
        "{line}"
    );
    for l in gw.lines() {
        assert!(
            !l.chars().any(breaks_a_line),
            "a raw control character: {l:?}"
        );
        assert!(!l.starts_with("2026-01-01"), "a forged line: {l:?}");
        // Every line is an event: it starts with the timestamp of its own.
        assert!(l.as_bytes()[..4].iter().all(u8::is_ascii_digit), "{l:?}");
    }
    assert_eq!(
        gw.lines().iter().filter(|l| l.contains("FORGED")).count(),
        1
    );
}

#[tokio::test]
async fn a_method_name_with_a_newline_stays_one_line_in_the_json_format() {
    let fleet = fleet(1).await;
    let config = yaml(fleet.chain_id(), &fleet_ups(&fleet), "");
    let gw = RpcgateProcess::start(&format!("{config}log:\n  format: json\n"), &[]);
    send_forged(&gw.url).await;
    let line = gw
        .wait_line("the refused call's line", |l| l.contains("request failed"))
        .await;
    for l in gw.lines() {
        assert!(
            !l.chars().any(breaks_a_line),
            "a raw control character: {l:?}"
        );
        serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
    }
    // JSON escapes, and the value is the method exactly as it was sent.
    assert!(line.contains(r"\n2026-01-01T00:00:00Z"), "{line}");
    assert!(
        line.contains(r"\r\t\u001b[2J\u007f\u009b\u2028end"),
        "{line}"
    );
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["fields"]["method"], FORGED);
}

#[tokio::test]
async fn a_key_scan_is_counted_in_full_and_logged_at_a_bounded_rate() {
    const SCAN: usize = 2000;
    const PER_SECOND: usize = 5;
    let fleet = fleet(1).await;
    let config = format!(
        "{}log:\n  format: json\n  refusals_per_second: {PER_SECOND}\n  refusals_summary_interval: 1s\npolicy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), ""),
        sha256_hex("the-one-real-key-9f2c41d07be3")
    );
    let gw = RpcgateProcess::start(&config, &[]);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
    let started = Instant::now();
    // 16 scanners, each trying its share of keys one after the other.
    let statuses = join_all((0..16).map(|s| {
        let url = gw.url.clone();
        async move {
            let mut statuses = Vec::new();
            for i in (s..SCAN).step_by(16) {
                let key = format!("Bearer scanned-key-{i:06}-0123456789");
                let reply = post_with_headers(&url, &[("authorization", &key)], call).await;
                statuses.push(reply.status);
            }
            statuses
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let statuses: Vec<u16> = statuses.into_iter().flatten().collect();
    assert_eq!(statuses.len(), SCAN);
    assert!(statuses.iter().all(|s| *s == 401));

    // Every refusal is either a line or counted in a summary line.
    let refused = |lines: &[Value]| {
        lines
            .iter()
            .filter(|v| v["fields"]["message"] == "request refused")
            .count()
    };
    let suppressed = |lines: &[Value]| -> u64 {
        lines
            .iter()
            .filter_map(|v| v["fields"]["suppressed"].as_u64())
            .sum()
    };
    let parsed = || gw.json_lines();
    wait_for("every refusal logged or counted as left out", || {
        let lines = parsed();
        let total = refused(&lines) as u64 + suppressed(&lines);
        async move { total == SCAN as u64 }
    })
    .await;
    let lines = parsed();
    let (logged, left_out) = (refused(&lines), suppressed(&lines));
    let summaries = lines
        .iter()
        .filter(|v| v["fields"]["suppressed"].is_u64())
        .count();
    // The scan touched at most elapsed + 2 distinct seconds of the limiter.
    let seconds = elapsed.as_secs() as usize + 2;
    println!(
        "key scan: {SCAN} refusals in {elapsed:?}: {logged} lines, {left_out} left out, {summaries} summary lines"
    );
    assert!(logged >= PER_SECOND, "{logged}");
    assert!(
        logged <= PER_SECOND * seconds,
        "{logged} lines in {elapsed:?}"
    );
    assert!((1..=seconds + 2).contains(&summaries), "{summaries}");

    // The metrics count all of them.
    let metrics = scrape(&gw.admin).await;
    let metric = |name: &str, labels: &[(&str, &str)]| -> f64 {
        metrics
            .get(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} not in /metrics"))
    };
    assert_eq!(
        metric("rpcgate_policy_unauthorized_total", &[]),
        SCAN as f64
    );
    assert_eq!(
        metric("rpcgate_http_responses_total", &[("code", "401")]),
        SCAN as f64
    );
    assert_eq!(
        metric("rpcgate_log_refusals_suppressed_total", &[]),
        left_out as f64
    );
}
