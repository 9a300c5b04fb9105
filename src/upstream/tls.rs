//! TLS to backends: `https://` and `wss://` upstream URLs through rustls.
//!
//! One stream type, [`UpstreamStream`] (plain TCP, or TLS over it), carries
//! both kinds of backend traffic: the pooled HTTP client gets it from
//! [`Connector`], and WebSocket feeds from [`connect`]. So both check
//! certificates the same way, against the same roots:
//! - by default the system's roots (`rustls-native-certs`: the OS store, or
//!   `SSL_CERT_FILE` / `SSL_CERT_DIR`), read once per process when the first
//!   TLS backend is built. The platform's store, not a list compiled into
//!   the binary, so that an operator's own CA in the image or a mounted
//!   bundle counts, and a root removed by an image update is gone without a
//!   new rpcgate release;
//! - or an upstream's `tls.ca_file` (read at config validation), and then
//!   only those roots: a private CA does not widen whom other backends trust.
//!
//! ALPN offers `http/1.1` only: the WebSocket handshake needs it, and an
//! HTTP/1.1 pool to a backend behaves as the plain one does (a provider's
//! h2 would multiplex, but would also put every call of a backend behind
//! one TCP connection's loss). The handshake has its own deadline, so a
//! backend that accepts TCP and then says nothing cannot hold a connect.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::UpstreamTls;

/// The longest a TLS handshake with a backend may take, after TCP connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `uri` asks for TLS (`https`, `wss`).
pub(crate) fn is_tls(uri: &http::Uri) -> bool {
    matches!(uri.scheme_str(), Some("https" | "wss"))
}

/// The TLS client settings for a backend: its `tls.ca_file` roots, or the
/// system's.
pub(crate) fn client_config(tls: Option<&UpstreamTls>) -> Arc<ClientConfig> {
    match tls {
        Some(t) => {
            let mut roots = rustls::RootCertStore::empty();
            // Validation added each of these to a store already.
            let (_added, _refused) = roots.add_parsable_certificates(t.roots.iter().cloned());
            build(roots)
        }
        None => system().clone(),
    }
}

/// The system's roots, loaded on first use and then shared.
fn system() -> &'static Arc<ClientConfig> {
    static SYSTEM: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's CA certificates");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (added, _refused) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                "no CA certificates in the system store (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs): \
                 https and wss upstreams without tls.ca_file will fail their handshakes"
            );
        } else {
            tracing::debug!(roots = added, "system CA certificates loaded");
        }
        build(roots)
    })
}

fn build(roots: rustls::RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A connection to a backend: plain TCP, or TLS over TCP.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The host of `uri` as a TLS server name (an IP address or a DNS name).
fn server_name(uri: &http::Uri) -> io::Result<ServerName<'static>> {
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a TLS server name"),
        )
    })
}

/// TLS over `tcp` to the server of `uri`, within [`HANDSHAKE_TIMEOUT`].
async fn handshake(
    tcp: TcpStream,
    uri: &http::Uri,
    config: Arc<ClientConfig>,
) -> io::Result<UpstreamStream> {
    let name = server_name(uri)?;
    let connecting = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(tls)) => Ok(UpstreamStream::Tls(Box::new(tls))),
        Ok(Err(e)) => Err(io::Error::new(e.kind(), format!("TLS handshake: {e}"))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake took over {HANDSHAKE_TIMEOUT:?}"),
        )),
    }
}

/// Opens a connection to the host of `uri` (for a WebSocket): TLS for
/// `wss`/`https`, checked against `tls` (the backend's settings).
pub(crate) async fn connect(
    uri: &http::Uri,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<UpstreamStream> {
    let secure = is_tls(uri);
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    if !secure {
        return Ok(UpstreamStream::Plain(tcp));
    }
    let config = tls.cloned().unwrap_or_else(|| system().clone());
    handshake(tcp, uri, config).await
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(s) => s.connected(),
            // Only http/1.1 is offered, so nothing else can be negotiated.
            UpstreamStream::Tls(s) => s.get_ref().0.connected(),
        }
    }
}

/// The HTTP client's connector: hyper's TCP connector, with TLS on top for
/// `https` URLs when the backend has TLS settings.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    tls: Option<Arc<ClientConfig>>,
}

impl Connector {
    pub(crate) fn new(mut tcp: HttpConnector, tls: Option<Arc<ClientConfig>>) -> Connector {
        // The scheme is judged here, not by the TCP connector.
        tcp.enforce_http(false);
        Connector { tcp, tls }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = match uri.scheme_str() {
            Some("https") => match &self.tls {
                Some(config) => Some(config.clone()),
                None => {
                    // A plain backend's client was asked for TLS: a bug
                    // upstream of here, refused instead of sent in clear.
                    return Box::pin(async {
                        Err("https URL on a client without TLS settings".into())
                    });
                }
            },
            Some("http") => None,
            other => {
                let message = format!("unsupported scheme {other:?}");
                return Box::pin(async move { Err(message.into()) });
            }
        };
        let connecting = self.tcp.call(uri.clone());
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let stream = match tls {
                None => UpstreamStream::Plain(tcp),
                Some(config) => handshake(tcp, &uri, config).await?,
            };
            Ok(TokioIo::new(stream))
        })
    }
}
