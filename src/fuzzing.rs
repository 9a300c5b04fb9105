//! Entry points of the fuzz targets (`fuzz/`, cargo-fuzz) and of the corpus
//! replay (`tests/fuzz_corpus.rs`): one function per target, taking the raw
//! input, so that the nightly fuzzer and the stable test run the very same
//! code on the very same seeds.
//!
//! Each entry point feeds the input to the parser it names and asserts what
//! must hold for any input, panicking when it does not (which is what a fuzzer
//! reports): no panic in the parser itself, and round trips where a parse can
//! be written back (a call re-serialized parses to the same call; a rewrite of
//! the params pins to itself; a normalized cache key normalizes to itself; a
//! canonical subscription is its own canonical form). Inputs are plain text
//! where the target reads text, so the seeds in `fuzz/corpus/` are readable:
//! - [`envelope`]: a request body (single or batch);
//! - [`block_args`]: `method\nserved head[,safe,finalized]\nparams`;
//! - [`cache_key`]: `method\nparams`;
//! - [`config`]: a YAML config file;
//! - [`ws_messages`]: the bytes a client sends on an upgraded socket (masked
//!   frames), read as the listener reads them.
//!
//! Not an API: compiled only with the `fuzzing` feature (the fuzz crate and
//! the test command turn it on; a product build never carries it), hidden
//! from the docs, kept small, and changed with the parsers.

use std::io::{self, Read, Write};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

use crate::cache::{rule, Key};
use crate::calls::call_error::CallError;
use crate::calls::{heavy, rescue};
use crate::config::Config;
use crate::edge::ws;
use crate::eth::methods::{lookup, BlockArg};
use crate::eth::pinning::{pin_at, Heads};
use crate::eth::BlockRef;
use crate::jsonrpc::{self, error_response, join_batch, result_response, Entry, Id, Payload};
use crate::subscriptions::topic;

/// The bounds of the default config: a batch, a method name, params depth.
const MAX_BATCH: usize = 100;
const MAX_METHOD: usize = 128;
const MAX_DEPTH: usize = 64;
/// WebSocket messages in the fuzz target (small, so the bound is reached).
const WS_LIMIT: usize = 64 * 1024;

/// One target's entry point: the raw input, a panic when an invariant fails.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/` and `fuzz/corpus/` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("block_args", block_args),
    ("cache_key", cache_key),
    ("config", config),
    ("ws_messages", ws_messages),
];

fn is_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// A request body, single or batch, parsed with the default bounds.
pub fn envelope(data: &[u8]) {
    check_payload(data);
}

/// Parses a payload and checks every entry; returns the valid calls' raw
/// method names and params for the WebSocket target.
fn check_payload(data: &[u8]) -> Vec<(String, Option<String>)> {
    let mut calls = Vec::new();
    let payload = match jsonrpc::parse(data, MAX_BATCH, MAX_METHOD, MAX_DEPTH) {
        Ok(p) => p,
        Err(e) => {
            let rescued = rescue::rescue(&CallError::Payload(e.clone()));
            let answer = error_response(Id::NULL, &rescued.object);
            assert!(is_json(text(&answer)), "error answer is not JSON");
            if let Ok(body) = std::str::from_utf8(data) {
                match e {
                    jsonrpc::PayloadError::Parse(_) => {
                        assert!(!is_json(body), "valid JSON called a parse error: {e}")
                    }
                    _ => assert!(is_json(body), "invalid JSON not called a parse error: {e}"),
                }
            }
            return calls;
        }
    };
    let entries: Vec<Entry<'_>> = match payload {
        Payload::Single(e) => {
            let first = std::str::from_utf8(data)
                .ok()
                .and_then(|t| t.trim_start().bytes().next());
            assert_eq!(first, Some(b'{'), "a single call is an object");
            vec![e]
        }
        Payload::Batch(es) => {
            assert!((1..=MAX_BATCH).contains(&es.len()), "batch of {}", es.len());
            es
        }
    };
    let mut answers = Vec::with_capacity(entries.len());
    for entry in &entries {
        match entry {
            Ok(call) => {
                check_call(call);
                answers.push(result_response(call.reply_id(), b"null"));
                calls.push((
                    call.method.to_string(),
                    call.params.map(|p| p.get().to_string()),
                ));
            }
            Err(invalid) => {
                check_id(invalid.id);
                let rescued = rescue::rescue(&CallError::Invalid(invalid.reason));
                answers.push(error_response(invalid.id, &rescued.object));
            }
        }
    }
    let joined = join_batch(&answers);
    let back: Vec<IgnoredAny> = serde_json::from_slice(&joined).expect("a batch answer is JSON");
    assert_eq!(back.len(), entries.len());
    calls
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("answers are UTF-8")
}

/// An id is JSON of an allowed kind.
fn check_id(id: Id<'_>) {
    let raw = id.raw();
    assert!(is_json(raw), "id is not JSON: {raw}");
    assert!(
        matches!(raw.as_bytes()[0], b'"' | b'-' | b'0'..=b'9' | b'n'),
        "id of a refused kind: {raw}"
    );
}

/// A valid call's parts are within bounds, its answer echoes its id, and
/// written back as a request it parses to the same call.
fn check_call(call: &jsonrpc::Call<'_>) {
    let id = call.reply_id();
    check_id(id);
    assert!(!call.method.is_empty() && call.method.len() <= MAX_METHOD);
    if let Some(p) = call.params {
        assert!(matches!(p.get().as_bytes()[0], b'[' | b'{'));
        assert!(is_json(p.get()));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(p.get()) {
            assert!(depth(&v) <= MAX_DEPTH, "params deeper than the bound");
        }
    }
    #[derive(Deserialize)]
    struct Echo<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
    }
    let answer = result_response(id, b"null");
    let echo: Echo<'_> = serde_json::from_slice(&answer).expect("an answer is JSON");
    assert_eq!(echo.id.get(), id.raw(), "the id is echoed byte for byte");

    let mut again = String::from(r#"{"jsonrpc":"2.0""#);
    if let Some(id) = call.id {
        again.push_str(&format!(r#","id":{}"#, id.raw()));
    }
    let method = serde_json::to_string(call.method.as_ref()).expect("a string serializes");
    again.push_str(&format!(r#","method":{method}"#));
    if let Some(p) = call.params {
        again.push_str(&format!(r#","params":{}"#, p.get()));
    }
    again.push('}');
    match jsonrpc::parse(again.as_bytes(), MAX_BATCH, MAX_METHOD, MAX_DEPTH) {
        Ok(Payload::Single(Ok(back))) => {
            assert_eq!(back.method, call.method);
            assert_eq!(back.id, call.id);
            assert_eq!(
                back.params.map(RawValue::get),
                call.params.map(RawValue::get)
            );
        }
        other => panic!("a call written back does not parse to itself: {again} -> {other:?}"),
    }
}

/// Nesting of arrays and objects (a scalar is 0).
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `method\nserved head[,safe,finalized]\nparams`: block pinning, the log
/// range bound and the cache rule, which must agree with each other and
/// with how nodes read the params sent ([`range_read_is_range_judged`]).
pub fn block_args(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = input.splitn(3, '\n');
    let (method, served, params) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next(),
    );
    let mut heads = served.trim().split(',').map(crate::eth::parse_quantity);
    // No chain's head is past `i64::MAX` (a block number nodes accept); the
    // seeds that try the top for overflows get the top a node can have.
    let served = heads.next().flatten().unwrap_or(0x20).min(i64::MAX as u64);
    let heads = Heads {
        served,
        safe: heads.next().flatten(),
        finalized: heads.next().flatten(),
    };
    let spec = lookup(method).map(|(_, m)| m);
    let arg = spec.map_or(BlockArg::None, |m| m.block);
    let raw = match params.map(|p| RawValue::from_string(p.to_string())) {
        Some(Ok(raw)) => Some(raw),
        Some(Err(_)) => return,
        None => None,
    };
    let pinned = pin_at(arg, raw.as_deref(), heads);
    if arg == BlockArg::LogFilter {
        range_read_is_range_judged(&pinned, heads);
    }
    assert_eq!(
        pinned.pinned_latest,
        matches!(pinned.params, Some(std::borrow::Cow::Owned(_))),
        "pinned_latest says whether the params were rewritten"
    );
    match (arg, pinned.block) {
        (BlockArg::At(_) | BlockArg::AtOrLatest(_), Some(BlockRef::Number(n))) => {
            assert_eq!(pinned.min_head, n)
        }
        (BlockArg::At(_) | BlockArg::AtOrLatest(_), Some(BlockRef::Earliest)) => {
            assert_eq!(pinned.min_head, 0)
        }
        (BlockArg::LogFilter, _) => {}
        _ => assert_eq!(pinned.min_head, served),
    }
    if arg != BlockArg::LogFilter {
        assert_eq!(pinned.log_blocks, None);
    }
    // The bound refuses exactly the spans above it.
    if let Some(blocks) = pinned.log_blocks {
        assert!(heavy::check_logs(&pinned, blocks).is_ok());
        if blocks > 0 {
            assert!(heavy::check_logs(&pinned, blocks - 1).is_err());
        }
    }
    // A range the cache keys by is the range the bound measured.
    if let rule::CacheRule::LogRange { from, to } = rule::decide(spec, &pinned) {
        assert!(from <= to);
        assert_eq!(
            pinned.log_blocks,
            Some((to - from).saturating_add(1)),
            "the cache and the log range bound read different ranges"
        );
    }
    // A rewrite is JSON and pins to itself.
    if pinned.pinned_latest {
        let text = pinned.params.as_deref().unwrap_or_default();
        let again = RawValue::from_string(text.to_string()).expect("a rewrite is JSON");
        let twice = pin_at(arg, Some(&again), heads);
        assert!(!twice.pinned_latest, "a pinned call pins again: {text}");
        assert_eq!(twice.params.as_deref(), Some(text));
        assert_eq!(twice.log_blocks, pinned.log_blocks);
        assert_eq!(twice.min_head, pinned.min_head);
    }
    // Every element is a block reference or not; a number reads back.
    if let Some(list) = raw
        .as_deref()
        .and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r.get()).ok())
    {
        for item in list {
            if let BlockRef::Number(n) = BlockRef::parse(item) {
                let quoted = crate::eth::quantity::quoted_quantity(n);
                let back = RawValue::from_string(quoted).expect("a quantity is JSON");
                assert_eq!(BlockRef::parse(&back), BlockRef::Number(n));
            }
        }
    }
}

/// How two kinds of node read one bound of a log filter (`end` 0: from, 1: to).
#[derive(Clone, Copy)]
enum Node {
    /// go-ethereum: the bytes between the quotes, unescaped; `0x` or `0X`,
    /// no leading zero (`hexutil`), at most `i64::MAX`.
    Geth,
    /// A serde-based node: the unescaped string; `0x` only; leading zeros fine.
    Serde,
}

/// The block `node` reads for one bound (`None`: it refuses it). Tags read
/// as the view's numbers; one the view does not know as its widest (a
/// node's `safe` lies between 0 and its head).
fn node_reads(node: Node, raw: Option<&RawValue>, end: usize, heads: Heads) -> Option<u64> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Some(heads.served);
    };
    let text = match node {
        Node::Geth => raw
            .get()
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))?
            .to_string(),
        Node::Serde => serde_json::from_str::<String>(raw.get()).ok()?,
    };
    let widest = |n: Option<u64>| Some(n.unwrap_or(if end == 0 { 0 } else { heads.served }));
    match text.as_str() {
        "latest" | "pending" => return Some(heads.served),
        "earliest" => return Some(0),
        "safe" => return widest(heads.safe.map(|n| n.min(heads.served))),
        "finalized" => return widest(heads.finalized.map(|n| n.min(heads.served))),
        _ => {}
    }
    let digits = match node {
        Node::Geth => text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))?,
        Node::Serde => text.strip_prefix("0x")?,
    };
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if matches!(node, Node::Geth) && digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    let n = u64::from_str_radix(digits, 16).ok()?;
    match node {
        Node::Geth => i64::try_from(n).is_ok().then_some(n),
        Node::Serde => Some(n),
    }
}

/// The invariant of issue 22: the range judged is the range the node reads.
/// For every kind of node, the params sent (after pinning) read as a range
/// no wider than the one judged (and exactly it when the view knows its
/// tags); a bound two kinds of node read differently is never sent.
fn range_read_is_range_judged(pinned: &crate::eth::Pinned<'_>, heads: Heads) {
    #[derive(Deserialize)]
    struct Filter<'a> {
        #[serde(borrow, rename = "fromBlock")]
        from: Option<&'a RawValue>,
        #[serde(borrow, rename = "toBlock")]
        to: Option<&'a RawValue>,
        #[serde(borrow, rename = "blockHash")]
        hash: Option<&'a RawValue>,
    }
    if pinned.unreadable.is_some() || pinned.odd_filter_key.is_some() {
        return;
    }
    let Some(judged) = pinned.log_blocks else {
        return;
    };
    let sent = pinned.params.as_deref().unwrap_or("[]");
    let Some(filter) = serde_json::from_str::<Vec<&RawValue>>(sent)
        .ok()
        .and_then(|l| {
            l.first()
                .and_then(|f| serde_json::from_str::<Filter>(f.get()).ok())
        })
    else {
        return;
    };
    if filter.hash.is_some_and(|h| h.get() != "null") {
        assert_eq!(judged, 1, "a blockHash filter is one block");
        return;
    }
    let ends = [filter.from, filter.to];
    let read = |node: Node| [0, 1].map(|end| node_reads(node, ends[end], end, heads));
    let (geth, serde) = (read(Node::Geth), read(Node::Serde));
    assert_eq!(geth, serde, "a bound nodes read two ways was sent: {sent}");
    let (Some(from), Some(to)) = (geth[0], geth[1]) else {
        return;
    };
    let read_span = if from <= to {
        (to - from).saturating_add(1)
    } else {
        0
    };
    assert!(
        read_span <= judged,
        "the node reads {read_span} blocks, {judged} were judged: {sent}"
    );
    let tags_known = heads.safe.is_some() && heads.finalized.is_some();
    if tags_known {
        assert_eq!(read_span, judged, "judged otherwise than read: {sent}");
    }
}

/// `method\nparams` (no newline: no params): the cache key.
pub fn cache_key(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (method, params) = match input.split_once('\n') {
        Some((m, p)) => (m, Some(p)),
        None => (input, None),
    };
    let key = Key::new(method, params);
    let prefix = format!("{}:{method}", method.len());
    let normalized = key
        .as_str()
        .strip_prefix(&prefix)
        .expect("a key starts with its method");
    let Some(params) = params else {
        assert!(normalized.is_empty());
        return;
    };
    // Normalizing is idempotent: a key's params are their own normal form.
    assert_eq!(Key::new(method, Some(normalized)), key, "not idempotent");
    // JSON stays the same JSON (hex strings lowercased); escapes are left
    // as written, so only text without them is compared by value.
    if params.contains('\\') {
        return;
    }
    if let Ok(mut before) = serde_json::from_str::<serde_json::Value>(params) {
        let after: serde_json::Value =
            serde_json::from_str(normalized).expect("normalized JSON is JSON");
        lower_hex(&mut before);
        assert_eq!(before, after, "normalizing changed the request");
    }
}

fn lower_hex(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
            if digits.is_some_and(|d| d.bytes().all(|b| b.is_ascii_hexdigit())) {
                *s = s.to_ascii_lowercase();
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(lower_hex),
        serde_json::Value::Object(o) => o.values_mut().for_each(lower_hex),
        _ => {}
    }
}

/// A YAML config file: loading never panics, and is deterministic.
pub fn config(data: &[u8]) {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_yaml(yaml) {
        Ok(config) => {
            assert!(!config.networks.is_empty());
            for n in &config.networks {
                assert!(config.network(&n.name).is_some());
            }
            let again = Config::from_yaml(yaml).expect("the same text validates again");
            assert_eq!(format!("{again:?}"), format!("{config:?}"));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Client bytes on an upgraded socket, read with the listener's socket
/// config and turned into payloads as the listener does; each payload is
/// checked as a body, and `eth_subscribe` params as a subscription.
pub fn ws_messages(data: &[u8]) {
    let stream = Loopback {
        input: data,
        written: 0,
    };
    let mut socket = WebSocket::from_raw_socket(
        stream,
        Role::Server,
        Some(ws::socket_config(WS_LIMIT, WS_LIMIT)),
    );
    for _ in 0..10_000 {
        let message = match socket.read() {
            Ok(m) => m,
            Err(e) => {
                // A Close frame's reason fits a control frame (125 bytes).
                if let Some(frame) = ws::read_failure_close(&e) {
                    assert!(frame.reason.len() <= 123);
                }
                return;
            }
        };
        let ws::Inbound::Payload(body) = ws::inbound(message) else {
            continue;
        };
        for (method, params) in check_payload(&body) {
            if method != "eth_subscribe" {
                continue;
            }
            let params = params.map(|p| RawValue::from_string(p).expect("params are JSON"));
            let Ok(topic) = topic::parse(params.as_deref()) else {
                continue;
            };
            let canonical =
                RawValue::from_string(topic.params.clone()).expect("canonical params are JSON");
            let again = topic::parse(Some(&canonical)).expect("canonical params parse");
            assert_eq!(again, topic, "the canonical form is not its own");
        }
    }
}

/// A socket that reads `input` and discards what is written (pongs, closes).
struct Loopback<'a> {
    input: &'a [u8],
    written: usize,
}

impl Read for Loopback<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Loopback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
