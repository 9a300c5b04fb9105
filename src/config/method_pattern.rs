//! Method patterns: the one grammar for naming methods in the config, used
//! by client `allow`/`deny` rules, `policy.costs`, `routes`, `hedge` and
//! `method_timeouts`.
//!
//! A pattern is an exact method name or a glob in which `*` stands for any
//! run of characters (also none), anywhere: `eth_call`, `eth_get*`,
//! `*_trace*`, `*`. Other characters are ASCII letters, digits and `_`,
//! the alphabet of JSON-RPC method names. A pattern is parsed once, at load;
//! matching a call's method allocates nothing, and the common shapes (an
//! exact name, a trailing `prefix*`) cost one comparison.

use std::fmt;

/// A validated method name or glob.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MethodPattern {
    text: Box<str>,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    /// No `*`.
    Exact,
    /// One `*`, last: the text before it is a prefix.
    Prefix,
    /// Any other placement of `*`.
    Glob,
}

impl MethodPattern {
    /// Parses `text`; the error says what a pattern may hold.
    pub fn parse(text: &str) -> Result<MethodPattern, String> {
        let ok = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*');
        if !ok {
            return Err(format!(
                "{text:?} is not a method name or glob (letters, digits, '_', and '*' for any run of characters)"
            ));
        }
        let stars = text.bytes().filter(|&b| b == b'*').count();
        let shape = match stars {
            0 => Shape::Exact,
            1 if text.ends_with('*') => Shape::Prefix,
            _ => Shape::Glob,
        };
        Ok(MethodPattern {
            text: text.into(),
            shape,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a plain method name (no `*`).
    pub fn is_exact(&self) -> bool {
        self.shape == Shape::Exact
    }

    pub fn matches(&self, method: &str) -> bool {
        match self.shape {
            Shape::Exact => method == &*self.text,
            Shape::Prefix => method.starts_with(&self.text[..self.text.len() - 1]),
            Shape::Glob => glob(&self.text, method),
        }
    }
}

impl fmt::Debug for MethodPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for MethodPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `*` matches any run of characters (also none); everything else itself.
/// Greedy with one backtrack point: linear in practice, O(n·m) at worst, and
/// both sides are bounded (method names by `server.max_method_len`).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, method: &str) -> bool {
        MethodPattern::parse(p).unwrap().matches(method)
    }

    #[test]
    fn the_grammar_accepts_what_some_place_accepted_and_rejects_the_rest() {
        for ok in [
            "eth_call",
            "eth_*",
            "*",
            "*_trace*",
            "eth_*call",
            "a*b*c",
            "debug_",
        ] {
            assert!(MethodPattern::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "eth-*", "eth call", "eth.call", "@default", "eth_*x-"] {
            assert!(MethodPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        assert!(m("eth_*", "eth_call"));
        assert!(m("eth_*", "eth_"));
        assert!(!m("eth_*", "debug_eth_call"));
        assert!(m("*_trace*", "debug_traceTransaction"));
        assert!(m("debug_traceTransaction", "debug_traceTransaction"));
        assert!(!m("debug_trace", "debug_traceTransaction"));
        assert!(!m("debug_traceTransaction", "debug_trace"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYYb"));
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("eth_*call", "eth_call"));
        assert!(!m("eth_*call", "eth_callx"));
        assert!(MethodPattern::parse("eth_call").unwrap().is_exact());
        assert!(!MethodPattern::parse("eth_*").unwrap().is_exact());
    }
}
