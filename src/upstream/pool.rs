//! One TLS backend's own pool of HTTP/1.1 connections (hyper's
//! `client::conn::http1` senders), kept by hand. Plain-HTTP backends use
//! the lean client (`lean`) instead; this one serves `https` URLs, whose
//! streams go through rustls.
//!
//! hyper-util's pooled `Client` serves any host: per request it parses the
//! URI into a pool key, takes its pool's lock, checks idle connections out
//! through a generic checkout future, races it against a new connect, and
//! rewrites the request's URI and headers. A backend always talks to one
//! host, so all of that reduces to a stack of idle senders behind a lock
//! held for one push or pop (never across an await), and a request built
//! once in origin form with its `Host` header.
//!
//! A sender goes back to the stack only after its response body was read to
//! the end (a half-read HTTP/1 connection cannot carry another request); a
//! call that times out or fails drops its sender, which closes that
//! connection. An idle connection the backend closed is noticed when it is
//! taken (`is_closed`, or `ready` failing) and dropped; one that the backend
//! closed while our request was on its way is not retried: hyper hands the
//! request back (`try_send_request`) only when it was never written, and
//! only then is it sent again, on another connection. Connections idle for
//! longer than [`IDLE_TIMEOUT`] are dropped when next looked at (the pooled
//! client reaped them with a timer; a backend closes its own idle ones
//! anyway, and a closed one costs only its place in the stack).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use parking_lot::Mutex;
use tower_service::Service;

use super::tls::Connector;

/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per backend at most.
const MAX_IDLE: usize = 1024;

type Sender = SendRequest<Full<Bytes>>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The connections of one backend.
pub(super) struct Pool {
    connector: Connector,
    /// The backend's URL (for connecting).
    url: http::Uri,
    /// What requests carry: the URL's path in origin form, and its host.
    target: http::Uri,
    host: HeaderValue,
    idle: Mutex<Vec<Idle>>,
}

/// Why a request got no response.
#[derive(Debug)]
pub(super) enum SendError {
    /// No connection could be opened: the request was surely not received.
    Connect(String),
    /// The connection failed with the request on it (or before its response).
    Transport(String),
}

/// A connection lent to one request, given back by [`Lease::done`].
pub(super) struct Lease {
    pool: Arc<Pool>,
    sender: Sender,
}

impl Lease {
    /// The response was read to its end: the connection may carry another.
    pub(super) fn done(self) {
        if self.sender.is_closed() {
            return;
        }
        let mut idle = self.pool.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender: self.sender,
                since: Instant::now(),
            });
        }
    }
}

impl Pool {
    pub(super) fn new(connector: Connector, url: &http::Uri) -> Arc<Pool> {
        let target = url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        // The authority without user info, as a client puts it in `Host`.
        let authority = url.authority().map_or("", |a| a.as_str());
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let host = HeaderValue::from_str(authority).unwrap_or(HeaderValue::from_static(""));
        Arc::new(Pool {
            connector,
            url: url.clone(),
            target,
            host,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A POST of `body` to the backend, with `headers` (its configured ones).
    pub(super) fn request(&self, body: Bytes, headers: &http::HeaderMap) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.target.clone();
        let h = request.headers_mut();
        h.reserve(2 + headers.len());
        h.insert(http::header::HOST, self.host.clone());
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            h.insert(name, value.clone());
        }
        request
    }

    /// Sends `request` on an idle connection, or on a new one.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        loop {
            let (mut sender, fresh) = match self.take_idle().await {
                Some(sender) => (sender, false),
                None => (self.connect().await?, true),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        pool: self.clone(),
                        sender,
                    };
                    return Ok((response, lease));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: an idle connection that had just closed.
                    Some(back) if !fresh => request = back,
                    _ => return Err(SendError::Transport(super::client::with_sources(e.error()))),
                },
            }
        }
    }

    /// The most recently used idle connection that can take a request.
    async fn take_idle(&self) -> Option<Sender> {
        loop {
            let Idle { mut sender, since } = self.idle.lock().pop()?;
            if sender.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Ready at once unless its last response was only just read.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.url.clone())
            .await
            .map_err(|e| SendError::Connect(super::client::with_sources(&*e)))?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| SendError::Connect(super::client::with_sources(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Idle connections now (for tests).
    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A real backend on port 0 that counts the connections it accepted;
    /// with `close_after_each`, it ends every connection after one answer.
    async fn backend(close_after_each: bool) -> (http::Uri, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/rpc", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let host = req.headers().get(http::header::HOST).cloned();
                        let path = req.uri().to_string();
                        let body = format!("{path} {host:?}");
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(!close_after_each)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url.parse().unwrap(), accepted)
    }

    fn pool(url: &http::Uri) -> Arc<Pool> {
        let tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        Pool::new(Connector::new(tcp, None), url)
    }

    async fn call(pool: &Arc<Pool>) -> String {
        let request = pool.request(Bytes::from_static(b"{}"), &http::HeaderMap::new());
        let (response, lease) = pool
            .send(request)
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        lease.done();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sequential_calls_share_one_connection_in_origin_form_with_the_host() {
        let (url, accepted) = backend(false).await;
        let pool = pool(&url);
        let authority = url.authority().unwrap().as_str().to_string();
        for _ in 0..20 {
            assert_eq!(call(&pool).await, format!("/rpc Some({authority:?})"));
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            1,
            "one connection, reused"
        );
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_backend_that_closes_each_connection_still_answers_every_call() {
        let (url, accepted) = backend(true).await;
        let pool = pool(&url);
        for _ in 0..20 {
            assert!(call(&pool).await.starts_with("/rpc "));
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 20);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // Port 9 (discard) is closed on loopback.
        let pool = pool(&"http://127.0.0.1:9".parse().unwrap());
        let request = pool.request(Bytes::from_static(b"{}"), &http::HeaderMap::new());
        assert!(matches!(
            pool.send(request).await,
            Err(SendError::Connect(_))
        ));
    }
}
