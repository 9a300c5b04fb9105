//! TLS for the tests: a certificate authority made on the spot ([`TestCa`],
//! rcgen), the certificates it issues ([`Leaf`]), a client that trusts it,
//! and [`TlsTerminator`], a TLS front for a node.
//!
//! The gateway's TLS on both sides is tested against these, never against a
//! mock: the listener is rotated onto a new [`Leaf`] written to disk, and an
//! `https://`/`wss://` upstream is a real anvil node behind a terminator
//! whose CA file the gateway is told to trust.
//!
//! The terminator relays bytes, not requests: after the handshake it opens a
//! TCP connection to the node and copies both ways, so HTTP keep-alive and
//! WebSocket upgrades pass as they would through a cloud load balancer. It
//! keeps the first bytes each client sent (request heads and bodies, at most
//! [`CAPTURE_BYTES`] a connection), so a test can ask which headers the
//! node was sent.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::FleetError;

/// Bytes of each connection's client-to-node stream a terminator keeps.
pub const CAPTURE_BYTES: usize = 64 * 1024;

fn tls_error(context: &str, e: impl std::fmt::Display) -> FleetError {
    FleetError::Tls(format!("{context}: {e}"))
}

/// A self-signed CA that issues certificates for loopback names.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A certificate issued by a [`TestCa`], with its key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate as a server presents it (compare with what a client saw).
    pub der: Vec<u8>,
    pub serial: u64,
}

impl TestCa {
    /// A new CA named `name` (its subject's common name).
    pub fn new(name: &str) -> Result<TestCa, FleetError> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_error("CA parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(|e| tls_error("CA key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_error("CA certificate", e))?;
        Ok(TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM (what a `tls.ca_file` holds).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.pem)
    }

    /// A server certificate for `localhost` and 127.0.0.1, with `serial`
    /// and the common name `rpcgate-test-<serial>`.
    pub fn issue(&self, serial: u64) -> Result<Leaf, FleetError> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(|e| tls_error("leaf parameters", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rpcgate-test-{serial}"));
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate().map_err(|e| tls_error("leaf key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| tls_error("leaf certificate", e))?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            serial,
        })
    }

    /// A client that trusts this CA alone and offers `alpn` (e.g. `h2`,
    /// `http/1.1`; none when empty).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let _ = roots.add(self.der.clone());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Leaf {
    /// Writes the certificate and the key as a rotation does: each file
    /// replaced at once (written aside, then renamed over), the certificate
    /// first. A reader in between sees the new certificate with the old
    /// key, a pair that does not match.
    pub fn write(&self, cert_file: &Path, key_file: &Path) -> io::Result<()> {
        replace(cert_file, self.cert_pem.as_bytes())?;
        replace(key_file, self.key_pem.as_bytes())
    }

    fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, FleetError> {
        use rustls::pki_types::pem::PemObject;
        let chain = vec![CertificateDer::from(self.der.clone())];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| tls_error("leaf key", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("server config", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| tls_error("server certificate", e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn replace(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".new");
    std::fs::write(&aside, content)?;
    std::fs::rename(&aside, path)
}

/// What a TLS client saw of the server.
pub struct Seen {
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// The server's certificate (DER).
    pub certificate: Vec<u8>,
    /// The protocol ALPN chose, if any.
    pub alpn: Option<Vec<u8>>,
}

/// Connects to `addr` over TLS as a client of `config`, checking the
/// server's certificate for `name`.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Seen, FleetError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| FleetError::Io {
            context: "connecting to a TLS server",
            source,
        })?;
    let server = ServerName::try_from(name.to_string()).map_err(|e| tls_error("server name", e))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(server, tcp)
        .await
        .map_err(|e| tls_error("handshake", e))?;
    let (_, session) = stream.get_ref();
    let certificate = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| tls_error("handshake", "the server sent no certificate"))?;
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    Ok(Seen {
        stream,
        certificate,
        alpn,
    })
}

/// A TLS front on 127.0.0.1 for one node (HTTP and WebSocket on one port,
/// as anvil serves them). Stops when dropped.
pub struct TlsTerminator {
    addr: SocketAddr,
    shared: Arc<Captured>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Captured {
    /// The first bytes each connection sent, one entry per connection.
    streams: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
    accepted: AtomicU64,
    handshakes: AtomicU64,
}

impl TlsTerminator {
    /// Binds 127.0.0.1:0, presents `leaf`, and relays to the node at
    /// `target` (`http://host:port`).
    pub async fn start(target: &str, leaf: &Leaf) -> Result<TlsTerminator, FleetError> {
        let uri: http::Uri = target
            .parse()
            .map_err(|_| FleetError::BadUrl(target.to_string()))?;
        let target = match (uri.host(), uri.port_u16()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => return Err(FleetError::BadUrl(target.to_string())),
        };
        // What a WebSocket client and an HTTP/1.1 pool both speak.
        let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config(&[b"http/1.1"])?);
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| FleetError::Io {
                context: "binding the TLS terminator",
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FleetError::Io {
            context: "reading the TLS terminator's address",
            source,
        })?;
        let shared = Arc::new(Captured::default());
        let accept = tokio::spawn(accept_loop(listener, acceptor, target, shared.clone()));
        Ok(TlsTerminator {
            addr,
            shared,
            accept,
        })
    }

    /// `https://localhost:<port>`: the name its certificate holds.
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `wss://localhost:<port>`.
    pub fn wss_url(&self) -> String {
        format!("wss://localhost:{}", self.addr.port())
    }

    /// TCP connections accepted (before any handshake).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Completed handshakes.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// The request heads clients sent (as far as [`CAPTURE_BYTES`] of each
    /// connection reaches), in the order of each connection.
    pub fn heads(&self) -> Vec<RequestHead> {
        let streams = self.shared.streams.lock().clone();
        let mut heads = Vec::new();
        for stream in streams {
            let bytes = stream.lock().clone();
            heads.extend(parse_heads(&String::from_utf8_lossy(&bytes)));
        }
        heads
    }

    /// Every value of header `name` (any case) in the request heads.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.heads()
            .iter()
            .filter_map(|h| h.header(name).map(str::to_string))
            .collect()
    }

    /// The request lines (`GET / HTTP/1.1`, `POST / HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.heads().into_iter().map(|h| h.line).collect()
    }
}

/// One HTTP/1.1 request head as a client sent it.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// `METHOD target HTTP/1.1`
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The request heads in a client's byte stream: a line ending in
/// ` HTTP/1.1` starts one (the body before it, with no line break of its
/// own, is cut off at the method), and its header lines run to the empty
/// line.
fn parse_heads(text: &str) -> Vec<RequestHead> {
    const METHODS: [&str; 4] = ["GET ", "POST ", "OPTIONS ", "PUT "];
    let mut heads: Vec<RequestHead> = Vec::new();
    let mut in_head = false;
    for line in text.split("\r\n") {
        if line.ends_with(" HTTP/1.1") {
            let start = METHODS
                .iter()
                .filter_map(|m| line.rfind(m))
                .max()
                .unwrap_or(0);
            heads.push(RequestHead {
                line: line[start..].to_string(),
                headers: Vec::new(),
            });
            in_head = true;
        } else if line.is_empty() {
            in_head = false;
        } else if in_head {
            if let (Some(head), Some((k, v))) = (heads.last_mut(), line.split_once(':')) {
                head.headers
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    heads
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    target: String,
    shared: Arc<Captured>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let acceptor = acceptor.clone();
        let target = target.clone();
        let shared = shared.clone();
        connections.spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            shared.handshakes.fetch_add(1, Ordering::SeqCst);
            let Ok(node) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = node.set_nodelay(true);
            let capture = Arc::new(Mutex::new(Vec::new()));
            shared.streams.lock().push(capture.clone());
            relay(tls, node, capture).await;
        });
    }
}

/// Copies both ways until either side closes, keeping the first bytes the
/// client sent.
async fn relay(
    client: tokio_rustls::server::TlsStream<TcpStream>,
    node: TcpStream,
    capture: Arc<Mutex<Vec<u8>>>,
) {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut node_read, mut node_write) = node.into_split();
    let upward = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut kept = capture.lock();
                let room = CAPTURE_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            if node_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = node_write.shutdown().await;
    };
    let downward = async move {
        let _ = tokio::io::copy(&mut node_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upward, downward);
}
