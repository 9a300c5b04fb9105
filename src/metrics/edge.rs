//! The families of the edge (`server`): HTTP responses, connections closed
//! or refused, panics caught, the TLS listener, compression.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter, counter_vec, Label};

/// Where a panic was caught: the `stage` label of `rpcgate_panics_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicStage {
    /// In one call's pipeline: answered with the call's id.
    Call,
    /// While a message was admitted or assembled: answered as a whole.
    Message,
}

impl Label for PanicStage {
    const ALL: &'static [PanicStage] = &[PanicStage::Call, PanicStage::Message];

    fn label(self) -> &'static str {
        match self {
            PanicStage::Call => "call",
            PanicStage::Message => "message",
        }
    }
}

/// What became of changed certificate files: the `result` label of
/// `rpcgate_tls_certificate_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReload {
    Applied,
    /// The new pair did not load: the old one kept serving.
    Refused,
}

impl Label for TlsReload {
    const ALL: &'static [TlsReload] = &[TlsReload::Applied, TlsReload::Refused];

    fn label(self) -> &'static str {
        match self {
            TlsReload::Applied => "applied",
            TlsReload::Refused => "refused",
        }
    }
}

/// How decoding a request body with a `Content-Encoding` ended: the
/// `outcome` label of `rpcgate_http_decoded_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeOutcome {
    Ok,
    /// The decoded size passed `server.max_body_bytes` (413).
    TooLarge,
    /// Not a valid stream of its coding (400).
    Corrupt,
    /// A coding not decoded, or several (415).
    Unsupported,
}

impl Label for DecodeOutcome {
    const ALL: &'static [DecodeOutcome] = &[
        DecodeOutcome::Ok,
        DecodeOutcome::TooLarge,
        DecodeOutcome::Corrupt,
        DecodeOutcome::Unsupported,
    ];

    fn label(self) -> &'static str {
        match self {
            DecodeOutcome::Ok => "ok",
            DecodeOutcome::TooLarge => "too_large",
            DecodeOutcome::Corrupt => "corrupt",
            DecodeOutcome::Unsupported => "unsupported",
        }
    }
}

/// The listener's families.
pub struct ListenerMetrics {
    /// `rpcgate_http_responses_total{code}`: HTTP responses by status code.
    pub http_responses: IntCounterVec,
    /// Its `code="200"` series, resolved once: nearly every response is one,
    /// and a lookup by label hashes the label and takes the family's lock.
    http_ok: IntCounter,
    /// `rpcgate_connections_closed_total{reason}`: client connections the
    /// listener closed at a deadline (`first_request`, `idle`, `write`).
    pub connections_closed: IntCounterVec,
    /// `rpcgate_policy_connections_refused_total`: connections over the per-IP cap.
    pub connections_refused: IntCounter,
    /// `rpcgate_panics_total{stage}`, by [`PanicStage`].
    panics: [IntCounter; 2],
    /// `rpcgate_tls_handshake_failures_total`: client connections to the TLS
    /// listener whose handshake failed (closed before any request).
    pub tls_handshake_failures: IntCounter,
    /// `rpcgate_tls_certificate_reloads_total{result}`, by [`TlsReload`].
    tls_reloads: [IntCounter; 2],
}

impl ListenerMetrics {
    pub(super) fn register(r: &Registry) -> ListenerMetrics {
        let http_responses = counter_vec(
            r,
            "rpcgate_http_responses_total",
            "HTTP responses on the JSON-RPC listener by status code.",
            &["code"],
        );
        let panics = counter_vec(
            r,
            "rpcgate_panics_total",
            "Panics caught while answering a request, by stage (call, message); each was answered with -32603.",
            &["stage"],
        );
        let tls_reloads = counter_vec(
            r,
            "rpcgate_tls_certificate_reloads_total",
            "Changes of the listener's certificate files, by result (applied, refused: the old pair kept serving).",
            &["result"],
        );
        ListenerMetrics {
            http_ok: http_responses.with_label_values(&["200"]),
            http_responses,
            connections_closed: counter_vec(
                r,
                "rpcgate_connections_closed_total",
                "Client connections closed at a deadline, by reason (first_request, idle, write).",
                &["reason"],
            ),
            connections_refused: counter(
                r,
                "rpcgate_policy_connections_refused_total",
                "Connections refused because their client IP had too many open.",
            ),
            panics: super::each::<PanicStage, 2>(&panics, &[]),
            tls_handshake_failures: counter(
                r,
                "rpcgate_tls_handshake_failures_total",
                "Client connections to the TLS listener whose handshake failed or did not finish in time.",
            ),
            tls_reloads: super::each::<TlsReload, 2>(&tls_reloads, &[]),
        }
    }

    /// Counts one HTTP response.
    pub fn http_response(&self, code: http::StatusCode) {
        if code == http::StatusCode::OK {
            self.http_ok.inc();
            return;
        }
        self.http_responses
            .with_label_values(&[code.as_str()])
            .inc();
    }

    /// The series of panics caught at `stage`.
    pub fn panics(&self, stage: PanicStage) -> &IntCounter {
        &self.panics[stage as usize]
    }

    /// The series of certificate reloads that ended with `result`.
    pub fn tls_reloads(&self, result: TlsReload) -> &IntCounter {
        &self.tls_reloads[result as usize]
    }
}

/// The series of `server::compression`. Labels are coding tokens (`gzip`,
/// `deflate`, `br`, `zstd`, or `other` for a coding we do not decode) and
/// fixed words, so a caller's header cannot grow the registry.
#[derive(Clone)]
pub struct CompressionMetrics {
    /// `rpcgate_http_compressed_responses_total{encoding}`: answers sent compressed.
    pub responses: IntCounterVec,
    /// `rpcgate_http_compression_saved_bytes_total{encoding}`: bytes not sent
    /// thanks to compression (answer size less compressed size).
    pub saved_bytes: IntCounterVec,
    /// `rpcgate_http_decoded_requests_total{encoding,outcome}`: request
    /// bodies with a `Content-Encoding`, by [`DecodeOutcome`].
    decoded_requests: IntCounterVec,
}

impl CompressionMetrics {
    pub(super) fn register(r: &Registry) -> CompressionMetrics {
        CompressionMetrics {
            responses: counter_vec(
                r,
                "rpcgate_http_compressed_responses_total",
                "Answers sent compressed, by content coding.",
                &["encoding"],
            ),
            saved_bytes: counter_vec(
                r,
                "rpcgate_http_compression_saved_bytes_total",
                "Answer bytes not sent thanks to compression, by content coding.",
                &["encoding"],
            ),
            decoded_requests: counter_vec(
                r,
                "rpcgate_http_decoded_requests_total",
                "Request bodies with a Content-Encoding, by coding and outcome (ok, too_large, corrupt, unsupported).",
                &["encoding", "outcome"],
            ),
        }
    }

    /// Counts a request body of `encoding` (a coding token, or `other`).
    pub fn decoded(&self, encoding: &str, outcome: DecodeOutcome) {
        self.decoded_requests
            .with_label_values(&[encoding, outcome.label()])
            .inc();
    }
}
