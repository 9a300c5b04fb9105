//! TLS settings: the listener's certificate (`server.tls`) and whom an
//! upstream's `https://` and `wss://` URLs are trusted by (`tls.ca_file`).
//!
//! The two sides load their files at different times, on purpose:
//! - An upstream's CA file is read here, at validation: a missing file or one
//!   with no certificate is a config error naming `...tls.ca_file`, and its
//!   certificates become part of the upstream's config, so a reload that
//!   finds a new CA rebuilds that backend's client (and one that finds the
//!   same keeps it).
//! - The listener's certificate and key are only named here. They are loaded
//!   when the listener binds and then re-read every `reload_interval` by the
//!   listener itself (`edge::tls`), because cert-manager rotates them on
//!   its own schedule, unrelated to config reloads; a config reload that
//!   caught a half-written pair would otherwise be refused for it.

use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use super::error::{Checks, Problem};

/// How often the listener looks at its certificate files by default.
pub(super) const DEFAULT_CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// `server.tls` as written: the listener's certificate and key (PEM files).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub reload_interval: Option<String>,
}

/// An upstream's `tls` as written: whom to trust for its https:// and wss:// URLs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamTls {
    pub ca_file: Option<String>,
}

/// `server.tls`: TLS on the client listener (HTTP/1.1 and h2 by ALPN, wss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// PEM: the certificate, then its chain.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Both files are read this often; a changed, valid pair is used for new
    /// handshakes (connections already open keep theirs).
    pub reload_interval: Duration,
}

/// An upstream's `tls`: the roots its certificates are checked against,
/// instead of the system's.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    pub ca_file: PathBuf,
    /// The certificates of `ca_file`, as read at validation.
    pub roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca_file", &self.ca_file)
            .field("roots", &self.roots.len())
            .finish()
    }
}

pub(super) fn listener(c: &mut Checks, raw: RawListenerTls) -> Option<ListenerTls> {
    let mut path = |key: &str, value: Option<String>| {
        let v = value.filter(|v| !v.trim().is_empty()).map(PathBuf::from);
        if v.is_none() {
            c.fail(format!("server.tls.{key}"), "is required (a PEM file)");
        }
        v
    };
    let cert_file = path("cert_file", raw.cert_file);
    let key_file = path("key_file", raw.key_file);
    let reload_interval = c.duration(
        "server.tls.reload_interval",
        raw.reload_interval.as_deref(),
        DEFAULT_CERT_RELOAD_INTERVAL,
    );
    Some(ListenerTls {
        cert_file: cert_file?,
        key_file: key_file?,
        reload_interval,
    })
}

/// An upstream's `tls` (at `at`), given whether any of its URLs uses TLS.
pub(super) fn upstream(
    at: &str,
    raw: Option<RawUpstreamTls>,
    uses_tls: bool,
) -> Result<Option<UpstreamTls>, Problem> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let at = format!("{at}.tls.ca_file");
    let ca_file = raw
        .ca_file
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Problem::new(&at, "is required (a PEM file of CA certificates)"))?;
    if !uses_tls {
        return Err(Problem::new(
            &at,
            "applies to https:// and wss:// URLs, and this upstream has neither",
        ));
    }
    let pem = std::fs::read(&ca_file)
        .map_err(|e| Problem::new(&at, format!("cannot read {}: {e}", ca_file.display())))?;
    let roots = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::new(&at, format!("{} is not PEM: {e}", ca_file.display())))?;
    if roots.is_empty() {
        return Err(Problem::new(
            &at,
            format!("{} holds no CERTIFICATE block", ca_file.display()),
        ));
    }
    // What a TLS client would refuse as a trust anchor is refused now.
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in roots.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            Problem::new(
                &at,
                format!(
                    "certificate {} of {} is not usable as a CA: {e}",
                    i + 1,
                    ca_file.display()
                ),
            )
        })?;
    }
    Ok(Some(UpstreamTls { ca_file, roots }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const NET: &str = "networks:\n  mainnet:\n    chain_id: 1\n    upstreams:\n      - name: p\n";

    fn err(yaml: &str) -> (String, String) {
        match Config::from_yaml(yaml) {
            Err(ConfigError::Invalid(p)) => (p[0].path.clone(), p[0].message.clone()),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn tls_keys_are_accepted_and_checked() {
        let c = Config::from_yaml(&format!(
            "server:\n  tls: {{ cert_file: /c.pem, key_file: /k.pem }}\n{NET}        http: https://h.example/v1\n        ws: wss://h.example/ws\n"
        ))
        .unwrap();
        let tls = c.listener.tls.as_ref().unwrap();
        assert_eq!(tls.reload_interval, std::time::Duration::from_secs(5));
        assert_eq!(c.networks[0].upstreams[0].http.scheme_str(), Some("https"));
        assert!(c.networks[0].upstreams[0].tls.is_none());
        let (path, _) = err(&format!(
            "server:\n  tls: {{ cert_file: /c.pem }}\n{NET}        http: http://h\n"
        ));
        assert_eq!(path, "server.tls.key_file");

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let (path, message) = err(&format!(
            "{NET}        http: https://h\n        tls: {{ ca_file: {} }}\n",
            missing.display()
        ));
        assert_eq!(path, "networks.mainnet.upstreams[0].tls.ca_file");
        assert!(message.contains("cannot read"), "{message}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let (_, message) = err(&format!(
            "{NET}        http: https://h\n        tls: {{ ca_file: {} }}\n",
            empty.display()
        ));
        assert!(message.contains("no CERTIFICATE"), "{message}");
        // tls on an upstream that uses no TLS is a mistake worth naming.
        let (path, _) = err(&format!(
            "{NET}        http: http://h\n        tls: {{ ca_file: {} }}\n",
            empty.display()
        ));
        assert_eq!(path, "networks.mainnet.upstreams[0].tls.ca_file");
    }
}
