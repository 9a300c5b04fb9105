//! `redis:`: the state gateway replicas share (rate limits, the cache's
//! shared tier). One URL for the whole process.

use serde::Deserialize;

use super::error::Checks;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`
    pub url: String,
}

pub(super) fn validate(c: &mut Checks, raw: RawRedis) -> Option<RedisConfig> {
    let Some(url) = raw.url else {
        c.fail("redis.url", "is required (redis://host:port)");
        return None;
    };
    let Ok(parsed) = url.parse::<http::Uri>() else {
        c.fail("redis.url", format!("{url:?} is not a URL"));
        return None;
    };
    if parsed.scheme_str() != Some("redis") || parsed.host().is_none_or(str::is_empty) {
        c.fail(
            "redis.url",
            format!("{url:?} must look like redis://host:port"),
        );
        return None;
    }
    Some(RedisConfig { url })
}
