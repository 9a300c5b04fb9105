//! Connection lifetimes over raw TCP: silent sockets and half-sent HTTP/2
//! prefaces are closed at the first-request deadline while normal clients
//! are served, and a client that never reads its answer is closed at the
//! write deadline. Counts are modest here; `loadtests/` has the large run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn closed(gw: &Gw, reason: &str) -> u64 {
    gw.gateway
        .metrics()
        .listener
        .connections_closed
        .with_label_values(&[reason])
        .get()
}

fn addr(gw: &Gw) -> SocketAddr {
    gw.url.trim_start_matches("http://").parse().unwrap()
}

/// Reads until the peer closes (EOF or reset); `None` if it is still open at `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

#[tokio::test]
async fn silent_sockets_and_half_prefaces_are_closed_while_clients_are_served() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "{}server:\n  first_request_timeout: 1s\npolicy:\n  max_connections_per_ip: 100000\n",
        yaml(fleet.chain_id(), &[up("r0", fleet.http_url(0), None)], "")
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    let before = closed(&gw, "first_request");
    // `loadtests/connection-deadlines` sets 1,000 and 200.
    let count = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (silent, half) = (
        count("RPCGATE_ATTACK_SILENT", 200),
        count("RPCGATE_ATTACK_HALF_PREFACES", 50),
    );
    let started = Instant::now();
    let mut attackers = Vec::new();
    for i in 0..silent + half {
        let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
        if i >= silent {
            s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        attackers.push(s);
    }
    // Normal clients throughout the attack.
    let url = gw.url.clone();
    let normal = tokio::spawn(async move {
        let (mut ok, mut all) = (0, 0);
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            all += 1;
            let answer = call(&url, "eth_getBalance", json!([OTHER, "latest"])).await;
            ok += u32::from(answer["result"].is_string());
        }
        (ok, all)
    });
    let waits = attackers
        .iter_mut()
        .map(|s| until_closed(s, Duration::from_secs(5)));
    let results = futures_util::future::join_all(waits).await;
    let elapsed = started.elapsed();
    let open = results.iter().filter(|r| r.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} attacking sockets still open after {elapsed:?}"
    );
    // Closed at the deadline, not before it (1s, plus scheduling).
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let (ok, all) = normal.await.unwrap();
    eprintln!(
        "{} attacking sockets closed in {elapsed:?}; normal clients {ok}/{all} served",
        silent + half
    );
    assert_eq!(ok, all, "every normal call during the attack is served");
    assert!(all > 10, "{all}");
    assert!(closed(&gw, "first_request") - before >= (silent + half) as u64);
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_at_the_write_deadline() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "{}server:\n  write_timeout: 1s\n  idle_timeout: 30s\n  max_batch_len: 5000\n",
        yaml(fleet.chain_id(), &[up("r0", fleet.http_url(0), None)], "")
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    let before = closed(&gw, "write");
    // A batch whose answer echoes 4,500 ids of 1 kB each (under the id
    // cap): 4.5 MB per answer.
    let id = "x".repeat(990);
    let batch: Vec<_> = (0..4500)
        .map(|i| json!({"jsonrpc": "2.0", "id": format!("{id}{i}"), "method": "eth_chainId"}))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let request = |body: &[u8]| {
        let mut r = format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr(&gw).into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket)).unwrap();
    let (mut read, mut write) = stream.into_split();
    // Three answers pipelined (13.5 MB) are more than socket buffers hold.
    let one = request(&body);
    let writer = tokio::spawn(async move {
        for _ in 0..3 {
            if write.write_all(&one).await.is_err() {
                break;
            }
        }
        write
    });
    // The client takes nothing for 2.5s: past the write deadline.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), read.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => total += n,
        }
    };
    writer.abort();
    assert!(ended, "the connection stayed open ({total} bytes read)");
    assert!(
        total < 3 * 4_500_000,
        "only what was buffered arrived: {total}"
    );
    assert!(closed(&gw, "write") > before);
    // The gateway keeps serving others.
    assert!(result(&gw.url, "eth_getBalance", json!([OTHER, "latest"]))
        .await
        .is_string());
}

/// Python's urllib sends the whole body before it reads: over the cap, it
/// still reads the 413 (the rest of the body is drained, not reset).
#[tokio::test]
async fn a_client_that_sends_an_over_cap_body_reads_the_413() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "{}server:\n  max_body_bytes: 65536\n",
        yaml(fleet.chain_id(), &[up("r0", fleet.http_url(0), None)], "")
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    let script = r#"
import sys, urllib.request, urllib.error
body = b'[' + b' ' * (8 * 1024 * 1024) + b']'
for chunked in (False, True):
    data = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    headers = {'Content-Type': 'application/json'}
    if chunked:
        headers['Transfer-Encoding'] = 'chunked'
    req = urllib.request.Request(sys.argv[1], data=data, headers=headers)
    try:
        urllib.request.urlopen(req, timeout=20)
        print('200')
    except urllib.error.HTTPError as e:
        print(e.code)
    except Exception as e:
        print('error', type(e).__name__, e)
"#;
    let url = gw.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &url])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    // Declared too large (Content-Length), then found too large while reading (chunked).
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        ["413", "413"],
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(result(&gw.url, "eth_getBalance", json!([OTHER, "latest"]))
        .await
        .is_string());
}
