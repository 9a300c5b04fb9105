//! `networks.<beacon network>.paths`: the operator's additions to the
//! Beacon API allowlist. The built-in table (`crate::beacon::paths`) says
//! what is open by default; these path prefixes open reads of a closed
//! namespace (`allow`) or close anything (`deny`), the longest matching
//! prefix winning. Checked here so a mistake names its key path instead of
//! silently opening or closing the wrong thing.

use crate::config::error::Checks;

/// Prefixes per list, at most: the table is scanned per request.
const MAX_ENTRIES: usize = 64;
/// Bytes per prefix, at most.
const MAX_LEN: usize = 256;

/// `paths:` as validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BeaconPathsConfig {
    /// Path prefixes opened for reads (GET, HEAD) on top of the default table.
    pub allow: Vec<String>,
    /// Path prefixes closed, whatever the default table says.
    pub deny: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawPaths {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

/// Checks `paths:` of the network at `net` (`networks.<name>`).
pub(super) fn validate(c: &mut Checks, net: &str, raw: Option<RawPaths>) -> BeaconPathsConfig {
    let raw = raw.unwrap_or_default();
    let allow = list(c, &format!("{net}.paths.allow"), raw.allow);
    let deny = list(c, &format!("{net}.paths.deny"), raw.deny);
    for (i, d) in deny.iter().enumerate() {
        if allow.contains(d) {
            c.fail(
                format!("{net}.paths.deny[{i}]"),
                format!("{d:?} is also in paths.allow: a prefix is either allowed or denied"),
            );
        }
    }
    BeaconPathsConfig { allow, deny }
}

/// The valid prefixes of one list; each bad one is recorded by its index.
fn list(c: &mut Checks, at: &str, raw: Option<Vec<String>>) -> Vec<String> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_ENTRIES {
        c.fail(at, format!("{} prefixes: at most {MAX_ENTRIES}", raw.len()));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        match problem(&p) {
            Some(why) => c.fail(format!("{at}[{i}]"), format!("{p:?} {why}")),
            None if out.contains(&p) => {
                c.fail(format!("{at}[{i}]"), format!("{p:?} is listed twice"))
            }
            None => out.push(p),
        }
    }
    out
}

/// What is wrong with a prefix, if anything. A request path with an empty,
/// `.` or `..` segment is refused whatever the lists say, so a prefix with
/// one could never match; percent-escapes are decoded before matching, so a
/// prefix is written decoded.
fn problem(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return Some("must start with '/' (a path prefix such as /eth/v1/debug/)".into());
    }
    if p.len() > MAX_LEN {
        return Some(format!("is {} bytes long: at most {MAX_LEN}", p.len()));
    }
    if p.contains(['?', '#']) {
        return Some("is a path prefix: no query string or fragment".into());
    }
    if p.contains('%') {
        return Some("has a percent-escape: write the path decoded".into());
    }
    if p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Some("has whitespace or a control character".into());
    }
    let inner = p.strip_suffix('/').unwrap_or(p);
    if inner.len() > 1
        && inner[1..]
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("has an empty, '.' or '..' segment".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::Problem;

    fn found(c: Checks) -> Vec<Problem> {
        c.finish(()).unwrap_err().problems().to_vec()
    }

    #[test]
    fn prefixes_are_checked_by_key_path() {
        let mut c = Checks::default();
        let raw = RawPaths {
            allow: Some(vec![
                "/eth/v1/debug/".into(),
                "eth/v1/x".into(),
                "/eth/v1/node?x=1".into(),
                "/eth/v1/../x".into(),
                "/eth/v1/debug/".into(),
            ]),
            deny: Some(vec!["/eth/v1/node/peers".into(), "/eth/v1/debug/".into()]),
        };
        let paths = validate(&mut c, "networks.b", Some(raw));
        assert_eq!(paths.allow, ["/eth/v1/debug/"]);
        let problems: Vec<String> = found(c).iter().map(|p| p.path.clone()).collect();
        assert_eq!(
            problems,
            [
                "networks.b.paths.allow[1]",
                "networks.b.paths.allow[2]",
                "networks.b.paths.allow[3]",
                "networks.b.paths.allow[4]",
                "networks.b.paths.deny[1]",
            ]
        );
        let mut c = Checks::default();
        let many = RawPaths {
            allow: Some((0..65).map(|i| format!("/x{i}")).collect()),
            deny: Some(vec![format!("/{}", "a".repeat(300))]),
        };
        let paths = validate(&mut c, "networks.b", Some(many));
        assert!(paths.allow.is_empty() && paths.deny.is_empty());
        let problems: Vec<String> = found(c).iter().map(|p| p.to_string()).collect();
        assert!(
            problems[0].starts_with("networks.b.paths.allow: 65 prefixes"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("networks.b.paths.deny[0]: "),
            "{problems:?}"
        );
        assert!(problem("/").is_none() && problem("/lighthouse/").is_none());
    }
}
