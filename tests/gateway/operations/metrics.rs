//! What operators read: `/metrics` as a Prometheus parser sees it, and the
//! log line of a failed request.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use prometheus_parse::Value as Prom;
use serde_json::{json, Value};

use crate::support::*;

const NET: &str = "metered";
const KEY: &str = "metrics-key-8c1d77e0SECRET";
const INVENTED: &str = "eth_inventedSECRETMETHOD";

/// A config for network `metered` with one keyed client and a tight anonymous tier.
fn metered_yaml(chain_id: u64, ups: &[Up]) -> String {
    let mut y = yaml(chain_id, ups, ROUTING_ONLY).replace("  dev:\n", &format!("  {NET}:\n"));
    y.push_str(&format!(
        "policy:\n  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 3\n  clients:\n    meter-dapp:\n      key_sha256: [{}]\n",
        sha256_hex(KEY)
    ));
    y
}

async fn send(url: &str, key: Option<&str>, body: &str) -> (u16, Value) {
    let bearer = key.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    let reply = post_with_headers(url, &headers, body.to_string()).await;
    (reply.status, json_or_null(&reply.body))
}

#[tokio::test]
async fn request_metrics_follow_traffic_and_carry_no_client_input() {
    let fleet = fleet(2).await;
    fleet.mine_blocks(2).await.unwrap();
    let gw = start_gateway(&metered_yaml(fleet.chain_id(), &fleet_ups(&fleet))).await;
    wait_synced(&gw, 2, 2).await;
    let url = gw.url.as_str();
    let before = scrape(&gw.admin).await;
    let calls = |method: &str, client: &str, outcome: &str| {
        [
            ("network", NET),
            ("method", method),
            ("client", client),
            ("outcome", outcome),
        ]
        .map(|(k, v)| (k, v.to_string()))
    };
    let count = |s: &Scraped, l: [(&str, String); 4]| {
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.value("rpcgate_requests_total", &l)
    };
    assert_eq!(
        count(&before, calls("eth_getBalance", "meter-dapp", "ok")),
        0.0
    );

    let body = |id: u32, method: &str, params: Value| {
        json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string()
    };
    for i in 0..5 {
        let (status, answer) = send(
            url,
            Some(KEY),
            &body(i, "eth_getBalance", json!([DEV, "latest"])),
        )
        .await;
        assert_eq!(status, 200);
        assert!(answer["result"].is_string(), "{answer}");
    }
    // The node's own error, passed on.
    let (_, answer) = send(
        url,
        Some(KEY),
        &body(9, "eth_getTransactionCount", json!(["0x12", "latest"])),
    )
    .await;
    assert!(answer["error"].is_object(), "{answer}");
    // Blocked: a closed namespace, and a name nobody knows.
    let (_, answer) = send(url, Some(KEY), &body(10, "admin_peers", json!([]))).await;
    assert_eq!(answer["error"]["code"], -32601);
    let (_, answer) = send(url, Some(KEY), &body(11, INVENTED, json!([]))).await;
    assert_eq!(answer["error"]["code"], -32601);
    // An invalid entry in a batch.
    let (_, answer) = send(url, Some(KEY), r#"[{"jsonrpc":"2.0","id":12}]"#).await;
    assert_eq!(answer[0]["error"]["code"], -32600);
    // Anonymous: a burst of 3, then limited.
    let mut limited = 0;
    for i in 0..5 {
        let (status, _) = send(url, None, &body(20 + i, "eth_chainId", json!([]))).await;
        limited += u32::from(status == 429);
    }
    assert_eq!(limited, 2);

    let after = scrape(&gw.admin).await;
    let text = &after.text;
    assert_eq!(
        count(&after, calls("eth_getBalance", "meter-dapp", "ok")),
        5.0
    );
    assert_eq!(
        count(
            &after,
            calls("eth_getTransactionCount", "meter-dapp", "rpc_error")
        ),
        1.0
    );
    assert_eq!(
        count(&after, calls("admin_peers", "meter-dapp", "blocked")),
        1.0
    );
    assert_eq!(count(&after, calls("other", "meter-dapp", "blocked")), 1.0);
    assert_eq!(count(&after, calls("other", "meter-dapp", "invalid")), 1.0);
    assert_eq!(count(&after, calls("eth_chainId", "anonymous", "ok")), 3.0);
    assert_eq!(
        count(&after, calls("eth_chainId", "anonymous", "limited")),
        2.0
    );

    // Five observations of eth_getBalance latency, every bucket monotonic.
    let histogram = after
        .samples(
            "rpcgate_request_duration_seconds",
            &[("network", NET), ("method", "eth_getBalance")],
        )
        .next()
        .unwrap_or_else(|| panic!("no latency histogram:\n{text}"));
    let Prom::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram")
    };
    let top = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(top.count, 5.0);
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
    let upstream_ok = after.value(
        "rpcgate_upstream_requests_total",
        &[("network", NET), ("outcome", "ok")],
    );
    assert!(upstream_ok >= 5.0, "upstream ok {upstream_ok}");
    let upstream_error = after.value(
        "rpcgate_upstream_requests_total",
        &[("network", NET), ("outcome", "rpc_error")],
    );
    assert!(upstream_error >= 1.0);
    assert!(after.value("rpcgate_http_responses_total", &[("code", "429")]) >= 2.0);
    // 200s are counted through a series resolved at start (the common case's
    // fast path): the five reads above at least.
    let ok = |s: &Scraped| s.value("rpcgate_http_responses_total", &[("code", "200")]);
    assert!(ok(&after) - ok(&before) >= 5.0, "200s: {}", ok(&after));
    // The gateway's own registry: no other test adds to its policy counter.
    assert_eq!(
        after.value(
            "rpcgate_policy_rate_limited_total",
            &[("client", "anonymous")]
        ) - before.value(
            "rpcgate_policy_rate_limited_total",
            &[("client", "anonymous")]
        ),
        2.0
    );

    // Nothing a client sent is a label: no key, no key digest, no invented method.
    for secret in [KEY, &sha256_hex(KEY), "SECRET"] {
        assert!(!text.contains(secret), "{secret} appears in /metrics");
    }
    let known = &*rpcgate::metrics::KNOWN_METHODS;
    for s in after
        .scrape
        .samples
        .iter()
        .filter(|s| labelled(s, &[("network", NET)]))
    {
        if let Some(m) = s.labels.get("method") {
            assert!(m == "other" || known.contains(m), "method label {m}");
        }
        if let Some(c) = s.labels.get("client") {
            assert!(["meter-dapp", "anonymous"].contains(&c), "client label {c}");
        }
    }
}

/// The failure lines of a process logging JSON.
fn failures(gw: &RpcgateProcess) -> Vec<Value> {
    gw.json_lines()
        .into_iter()
        .filter(|v| v["fields"]["message"] == "request failed")
        .collect()
}

/// Two gateways in one process with the same network name: each counts in
/// its own registry, so traffic to one leaves the other's counters at 0.
#[tokio::test]
async fn two_gateways_with_one_network_name_count_apart() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = metered_yaml(fleet.chain_id(), &fleet_ups(&fleet));
    let busy = start_gateway(&config).await;
    let idle = start_gateway(&config).await;
    wait_synced(&busy, 1, 1).await;
    wait_synced(&idle, 1, 1).await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[DEV, "latest"]});
    for _ in 0..3 {
        let (status, _) = send(&busy.url, Some(KEY), &body.to_string()).await;
        assert_eq!(status, 200);
    }
    let calls = [
        ("network", NET),
        ("method", "eth_getBalance"),
        ("client", "meter-dapp"),
        ("outcome", "ok"),
    ];
    let sent = [("network", NET), ("outcome", "ok")];
    let busy = scrape(&busy.admin).await;
    let idle = scrape(&idle.admin).await;
    let text = &idle.text;
    assert_eq!(busy.value("rpcgate_requests_total", &calls), 3.0);
    assert!(busy.value("rpcgate_upstream_requests_total", &sent) >= 3.0);
    assert_eq!(idle.value("rpcgate_requests_total", &calls), 0.0, "{text}");
    assert_eq!(
        idle.value("rpcgate_upstream_requests_total", &sent),
        0.0,
        "{text}"
    );
    let ok = [("code", "200")];
    assert_eq!(
        idle.value("rpcgate_http_responses_total", &ok),
        0.0,
        "{text}"
    );
}

async fn blocked_call(url: &str, request_id: &str) -> http::Response<hyper::body::Incoming> {
    client()
        .request(
            http::Request::post(url)
                .header("content-type", "application/json")
                .header("x-request-id", request_id)
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"admin_peers"}"#.into())
                .unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_request_logs_one_line_with_its_id_at_the_configured_level() {
    let fleet = fleet(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rpcgate.yaml");
    let base = yaml(fleet.chain_id(), &fleet_ups(&fleet), "");
    let with_level = |level: &str| format!("{base}log:\n  level: {level}\n  format: json\n");
    std::fs::write(&config, with_level("info")).unwrap();
    let gw = RpcgateProcess::start_at(&config, &["--reload-interval", "100ms"]);

    // At info, a refused call is one line, and its answer carries the same id.
    let response = blocked_call(&gw.url, "req-loud-1").await;
    assert_eq!(response.headers()["x-request-id"], "req-loud-1");
    wait_for("one failure line", || {
        let n = failures(&gw).len();
        async move { n == 1 }
    })
    .await;
    let line = &failures(&gw)[0];
    assert_eq!(line["fields"]["request_id"], "req-loud-1", "{line}");
    assert_eq!(line["fields"]["outcome"], "blocked");
    assert_eq!(line["fields"]["method"], "admin_peers");
    assert_eq!(line["fields"]["code"], -32601);
    let said = |message: &'static str| {
        let gw = &gw;
        move || {
            let found = gw
                .json_lines()
                .iter()
                .any(|v| v["fields"]["message"] == message);
            async move { found }
        }
    };

    // A reload raises the level to warn: the same failure leaves no line. (The
    // refused reload after it logs at error; lines arrive in order, so once
    // that one is read, the failure's line would have been read too.)
    std::fs::write(&config, with_level("warn")).unwrap();
    wait_for("the level raised", said("log level changed")).await;
    let response = blocked_call(&gw.url, "req-quiet-2").await;
    assert_eq!(response.headers()["x-request-id"], "req-quiet-2");
    std::fs::write(&config, format!("{}\nnot: valid\n", with_level("warn"))).unwrap();
    wait_for(
        "the bad file refused",
        said("reload refused; the previous config keeps serving"),
    )
    .await;
    assert_eq!(
        failures(&gw).len(),
        1,
        "a line at warn: {:?}",
        failures(&gw)
    );

    std::fs::write(&config, with_level("info")).unwrap();
    wait_for("back at info", || {
        let n = gw
            .json_lines()
            .iter()
            .filter(|v| v["fields"]["message"] == "log level changed")
            .count();
        async move { n == 2 }
    })
    .await;
    // Without an id of its own, a failure gets a generated one, the same in
    // the answer and the log.
    let response = client()
        .request(
            http::Request::post(&gw.url)
                .header("content-type", "application/json")
                .body("{not json".into())
                .unwrap(),
        )
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 16);
    wait_for("the parse failure's line", || {
        let found = failures(&gw).iter().any(|v| {
            v["fields"]["request_id"] == id.as_str() && v["fields"]["outcome"] == "invalid"
        });
        async move { found }
    })
    .await;
}

/// A file the operator ships, from the repository root.
fn shipped(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A tool from Debian's `prometheus` package (scripts/test installs it).
fn prometheus_tool(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} is missing: scripts/test installs it (apt-get install prometheus)"
    );
    path
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    let promtool = prometheus_tool("promtool");
    for args in [
        ["check", "rules", "k8s/monitoring/alerts.yaml"],
        ["test", "rules", "k8s/monitoring/alerts.test.yaml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A real Prometheus server on loopback, gone with this value.
struct PrometheusServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusServer {
    /// Scrapes `target` (host:port) every second and evaluates `rules`.
    fn start(target: &str, rules: &std::path::Path) -> PrometheusServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: rpcgate\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(prometheus_tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("msg=\"Listening on\"") {
                    if let Some(at) = line.find("address=") {
                        let addr = line[at + 8..].split_whitespace().next().unwrap();
                        let _ = tx.send(addr.to_string());
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("prometheus listening");
        PrometheusServer {
            child,
            url: format!("http://{addr}"),
            _dir: dir,
        }
    }

    /// `GET /api/v1/<path>` with one query parameter; the parsed answer.
    async fn api(&self, path: &str, query: &str) -> Value {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!("{}/api/v1/{path}?query={encoded}", self.url);
        let (_, body) = get_bytes(&url).await;
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&body)))
    }

    /// Waits until the server answers queries (its storage is open).
    async fn ready(&self) {
        let url = format!("{}/-/ready", self.url);
        wait_for("Prometheus ready", || {
            let url = url.clone();
            async move {
                let request = http::Request::get(url).body(Default::default()).unwrap();
                matches!(client().request(request).await, Ok(r) if r.status() == 200)
            }
        })
        .await;
    }

    /// The value of an instant query that returns one sample, if it does.
    async fn scalar(&self, expr: &str) -> Option<f64> {
        let answer = self.api("query", expr).await;
        let result = answer["data"]["result"].as_array()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

/// The PromQL of the dashboard's panels and of the alert rules, with the
/// dashboard's variables filled in as Grafana would.
fn shipped_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped("k8s/monitoring/grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$network", ".*")
                .replace("$beacon_network", ".*")
                .replace("$__rate_interval", "1m");
            queries.push((format!("panel {}", panel["title"]), expr));
        }
    }
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(shipped("k8s/monitoring/alerts.yaml")).unwrap(),
    )
    .unwrap();
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        queries.push((
            format!("alert {}", rule["alert"].as_str().unwrap()),
            rule["expr"].as_str().unwrap().to_string(),
        ));
    }
    queries
}

#[tokio::test]
async fn a_real_prometheus_scrapes_rpcgate_and_evaluates_the_shipped_queries() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let y = metered_yaml(fleet.chain_id(), &fleet_ups(&fleet)).replace(NET, "scraped");
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, 1).await;
    let rules = shipped("k8s/monitoring/alerts.yaml");
    let prometheus = PrometheusServer::start(gw.admin.trim_start_matches("http://"), &rules);
    prometheus.ready().await;

    // Traffic of every kind, so that every series the dashboard reads exists.
    let body = |method: &str, params: Value| {
        json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string()
    };
    for _ in 0..20 {
        let (status, _) = send(
            &gw.url,
            Some(KEY),
            &body("eth_getBalance", json!([DEV, "latest"])),
        )
        .await;
        assert_eq!(status, 200);
    }
    send(
        &gw.url,
        Some(KEY),
        &body("eth_getBlockByNumber", json!(["0x0", false])),
    )
    .await;
    send(
        &gw.url,
        Some(KEY),
        &body("eth_getBlockByNumber", json!(["0x0", false])),
    )
    .await;
    send(&gw.url, Some(KEY), &body("admin_peers", json!([]))).await;
    send(
        &gw.url,
        Some("not-a-known-key-000000"),
        &body("eth_chainId", json!([])),
    )
    .await;
    for _ in 0..4 {
        send(&gw.url, None, &body("eth_chainId", json!([]))).await;
    }

    let ok =
        r#"sum(rpcgate_requests_total{network="scraped",method="eth_getBalance",outcome="ok"})"#;
    wait_for("Prometheus has scraped the 20 calls", || async {
        prometheus.scalar(ok).await == Some(20.0)
    })
    .await;
    assert_eq!(prometheus.scalar(r#"up{job="rpcgate"}"#).await, Some(1.0));
    // rate() needs the counters to move between two scrapes.
    for _ in 0..5 {
        send(
            &gw.url,
            Some(KEY),
            &body("eth_getBalance", json!([DEV, "latest"])),
        )
        .await;
    }
    let rate = r#"sum(rate(rpcgate_requests_total{network="scraped"}[1m]))"#;
    wait_for("a request rate", || async {
        prometheus.scalar(rate).await.is_some_and(|r| r > 0.0)
    })
    .await;

    // Every panel and every alert is valid PromQL over names rpcgate exports.
    let scraped = scrape(&gw.admin).await;
    let exported: std::collections::HashSet<&str> = scraped
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for (what, expr) in shipped_queries() {
        let answer = prometheus.api("query", &expr).await;
        assert_eq!(answer["status"], "success", "{what}: {expr}: {answer}");
        // The beacon families exist once a beacon node has answered: the
        // beacon test (tests/beacon, real Lodestar nodes) checks those names.
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("rpcgate_") && !w.starts_with("rpcgate_beacon_"))
        {
            let base = name.strip_suffix("_bucket").unwrap_or(name);
            assert!(
                exported.contains(base),
                "{what} reads {name}, which rpcgate does not export"
            );
        }
    }

    // The alert rules load and evaluate over rpcgate's series.
    wait_for("the rules evaluated", || async {
        let rules = prometheus.api("rules", "").await;
        let group = &rules["data"]["groups"][0];
        group["rules"].as_array().is_some_and(|r| {
            r.len() == 8
                && r.iter().all(|rule| {
                    rule["health"] == "ok" && rule["lastEvaluation"] != "0001-01-01T00:00:00Z"
                })
        })
    })
    .await;
}
