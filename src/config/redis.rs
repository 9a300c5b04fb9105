//! `redis:`: the state gateway replicas share (rate limits, filters, the
//! cache's shared tier, read-your-writes). One connection for the process.
//!
//! Secrets never live in the file: the URL carries no password (one written
//! there is refused), the ACL user's password comes from `password_file` or
//! `password_env` and is held as a [`Secret`], whose `Debug` hides it. Errors
//! about the URL quote it with any password replaced by `***`, so a typo
//! never prints a secret to stderr or the logs. `rediss://` is TLS (rustls),
//! trusting `ca_file` when given, else the system's roots.

use std::time::Duration;

use serde::Deserialize;

use super::error::Checks;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    pub prefix: Option<String>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<String>,
}

/// A value that must not be printed (an ACL password).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` or `rediss://host:port[/db]`, without a password.
    pub url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub db: i64,
    /// The ACL user (absent: `default`).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The CA certificates (PEM) a `rediss://` server is checked against.
    pub ca_pem: Option<Vec<u8>>,
    /// The first part of every key: one deployment's keys never meet another's.
    pub prefix: String,
    /// Failed or timed-out Redis calls in a row that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips Redis before one probe is let through.
    pub breaker_cooldown: Duration,
}

/// `url` with the password of its user part, if any, replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = match user.split_once(':') {
                Some((name, _)) => format!("{name}:***"),
                None => user.to_string(),
            };
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_string(),
    }
}

pub(super) fn validate(c: &mut Checks, raw: RawRedis) -> Option<RedisConfig> {
    let Some(url) = raw.url else {
        c.fail("redis.url", "is required (redis://host:port)");
        return None;
    };
    let shown = redact_url(&url);
    let Ok(parsed) = url.parse::<http::Uri>() else {
        c.fail("redis.url", format!("{shown:?} is not a URL"));
        return None;
    };
    let tls = match parsed.scheme_str() {
        Some("redis") => false,
        Some("rediss") => true,
        _ => {
            c.fail(
                "redis.url",
                format!("{shown:?} must look like redis://host:port or rediss://host:port"),
            );
            return None;
        }
    };
    let authority = parsed.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') {
        c.fail(
            "redis.url",
            format!("{shown:?} names a user or password; use redis.username and redis.password_file or redis.password_env"),
        );
        return None;
    }
    let Some(host) = parsed.host().filter(|h| !h.is_empty()) else {
        c.fail("redis.url", format!("{shown:?} has no host"));
        return None;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port_u16().unwrap_or(6379);
    let db = match parsed.path().trim_matches('/') {
        "" => 0,
        n => match n.parse::<i64>() {
            Ok(db) if db >= 0 => db,
            _ => {
                c.fail(
                    "redis.url",
                    format!("{shown:?}: the path must be a database number"),
                );
                return None;
            }
        },
    };
    let password = match (&raw.password_file, &raw.password_env) {
        (Some(_), Some(_)) => {
            c.fail(
                "redis.password_env",
                "give password_file or password_env, not both",
            );
            None
        }
        (Some(file), None) => match std::fs::read_to_string(file) {
            Ok(text) if !text.trim().is_empty() => Some(Secret(text.trim().to_string())),
            Ok(_) => {
                c.fail("redis.password_file", format!("{file} is empty"));
                None
            }
            Err(e) => {
                c.fail("redis.password_file", format!("cannot read {file}: {e}"));
                None
            }
        },
        (None, Some(var)) => match std::env::var(var) {
            Ok(text) if !text.is_empty() => Some(Secret(text)),
            _ => {
                c.fail(
                    "redis.password_env",
                    format!("environment variable {var} is not set"),
                );
                None
            }
        },
        (None, None) => None,
    };
    if raw.username.is_some() && password.is_none() {
        c.fail(
            "redis.username",
            "needs a password (redis.password_file or redis.password_env)",
        );
    }
    let ca_pem = match &raw.ca_file {
        Some(_) if !tls => {
            c.fail("redis.ca_file", "needs a rediss:// url");
            None
        }
        Some(file) => match std::fs::read(file) {
            Ok(pem) => Some(pem),
            Err(e) => {
                c.fail("redis.ca_file", format!("cannot read {file}: {e}"));
                None
            }
        },
        None => None,
    };
    let prefix = raw.prefix.unwrap_or_else(|| "rpcgate".to_string());
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if !prefix_ok {
        c.fail(
            "redis.prefix",
            "must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
        );
    }
    let breaker_failures = raw.breaker_failures.unwrap_or(5);
    if breaker_failures == 0 {
        c.fail("redis.breaker_failures", "must be at least 1");
    }
    let breaker_cooldown = c.duration(
        "redis.breaker_cooldown",
        raw.breaker_cooldown.as_deref(),
        Duration::from_secs(2),
    );
    Some(RedisConfig {
        url,
        tls,
        host,
        port,
        db,
        username: raw.username,
        password,
        ca_pem,
        prefix,
        breaker_failures,
        breaker_cooldown,
    })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("rediss://u:hunter2@h:1/0"),
            "rediss://u:***@h:1/0"
        );
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("nonsense"), "nonsense");
    }
}
