//! TLS on the client listener (`server.tls`): HTTP/1.1 and h2 chosen by
//! ALPN, WebSocket (wss) on the same port, and a certificate that follows
//! its files.
//!
//! cert-manager (or any rotation) replaces the certificate and key files
//! while the gateway runs. A control loop owns the current pair: every
//! `reload_interval` it reads both files and, when their content changed
//! and they make a valid, matching pair, publishes the new pair with one
//! atomic swap. Handshakes read the pair from that snapshot
//! ([`CurrentCert`], rustls's certificate resolver), so new connections get
//! the new certificate at once while open ones keep the session they have;
//! nothing restarts. Content is compared rather than mtimes, which follows
//! a Kubernetes Secret's symlink swap as well as a file written in place.
//! A pair that does not load (a key written before its certificate, a
//! truncated file) is refused, logged once and counted, and the old one
//! keeps serving until the files make sense again.
//!
//! The handshake runs in the connection's own task, inside its
//! first-request deadline (`edge::lifetimes`), so a client that stops
//! halfway through it holds nothing for longer than a silent socket does.

use std::io;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerTls;
use crate::metrics::{Metrics, TlsReload};

/// The certificate new handshakes get: swapped by the watcher, read by
/// every handshake without a lock.
#[derive(Debug)]
struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The listener's TLS: the acceptor and the loop that follows the files.
/// Dropping it stops the loop.
pub(crate) struct ListenerTlsState {
    pub(crate) acceptor: TlsAcceptor,
    watcher: JoinHandle<()>,
}

impl Drop for ListenerTlsState {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Loads the pair of `config` (an error names the file at fault) and starts
/// following its files.
pub(crate) fn start(config: &ListenerTls, metrics: &Metrics) -> io::Result<ListenerTlsState> {
    let (cert, key) = read_pair(config)?;
    let pair = certified(&cert, &key, config)?;
    let current = Arc::new(CurrentCert(ArcSwap::from_pointee(pair)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    // h2 first: a client that speaks both gets multiplexing. A WebSocket
    // client offers http/1.1 alone (or nothing), and gets HTTP/1.1.
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let watcher = tokio::spawn(follow(
        config.clone(),
        current,
        (cert, key),
        metrics.clone(),
    ));
    Ok(ListenerTlsState {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        watcher,
    })
}

fn read(path: &Path, key: &str) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("server.tls.{key}: cannot read {}: {e}", path.display()),
        )
    })
}

fn read_pair(config: &ListenerTls) -> io::Result<(Vec<u8>, Vec<u8>)> {
    Ok((
        read(&config.cert_file, "cert_file")?,
        read(&config.key_file, "key_file")?,
    ))
}

/// The pair as rustls uses it, or why it cannot be used.
fn certified(cert: &[u8], key: &[u8], config: &ListenerTls) -> io::Result<CertifiedKey> {
    let invalid = |key: &str, path: &Path, why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server.tls.{key}: {}: {why}", path.display()),
        )
    };
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("cert_file", &config.cert_file, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(
            "cert_file",
            &config.cert_file,
            "holds no CERTIFICATE block".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        invalid(
            "key_file",
            &config.key_file,
            format!("no private key in it: {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, private, &rustls::crypto::ring::default_provider()).map_err(|e| {
        invalid(
            "key_file",
            &config.key_file,
            format!("does not go with the certificate: {e}"),
        )
    })
}

/// Re-reads the files every `reload_interval` and publishes a new valid pair.
async fn follow(
    config: ListenerTls,
    current: Arc<CurrentCert>,
    loaded: (Vec<u8>, Vec<u8>),
    metrics: Metrics,
) {
    let mut last = loaded;
    let mut tick = tokio::time::interval(config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        // A file missing for an instant (a symlink swap) is looked at again next time.
        let Ok(pair) = read_pair(&config) else {
            continue;
        };
        if pair == last {
            continue;
        }
        match certified(&pair.0, &pair.1, &config) {
            Ok(new) => {
                current.0.store(Arc::new(new));
                tracing::info!(cert_file = %config.cert_file.display(), "TLS certificate reloaded");
                metrics.listener.tls_reloads(TlsReload::Applied).inc();
            }
            Err(e) => {
                // Logged and counted once per content; the old pair serves.
                tracing::warn!(error = %e, "TLS certificate reload refused; the old one still serves");
                metrics.listener.tls_reloads(TlsReload::Refused).inc();
            }
        }
        last = pair;
    }
}
