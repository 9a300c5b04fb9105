//! Config problems, collected: a file is judged whole, and every mistake in
//! it is reported at once with the dotted key path at fault, so an operator
//! fixes a file in one pass instead of one error per try.
//!
//! Each section's `validate` takes a [`Checks`], records what is wrong and
//! goes on with the key's default, so the checks after it still run; the
//! loader turns a non-empty list into [`ConfigError::Invalid`]. Only serde's
//! own errors (an unknown key, a wrong type) stop at the first: the
//! deserializer cannot go on past them.

use std::fmt;
use std::time::Duration;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path: `networks.mainnet.upstreams[1].url`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Every problem found, section by section (never empty).
    #[error("{}", Lines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems of an invalid file (none for one that could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            ConfigError::Read { .. } => &[],
        }
    }
}

struct Lines<'a>(&'a [Problem]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The problems found so far while validating one file.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    problems: Vec<Problem>,
}

impl Checks {
    pub(crate) fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    pub(crate) fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The value, or `None` with its problem recorded.
    pub(crate) fn ok<T>(&mut self, result: Result<T, Problem>) -> Option<T> {
        result.map_err(|p| self.push(p)).ok()
    }

    /// `value` (else `default`) when it lies in `min..=max`; else the
    /// problem is recorded and `default` stands in.
    pub(crate) fn range(
        &mut self,
        at: &str,
        value: Option<u64>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            self.fail(at, format!("{v} is out of range ({min} to {max})"));
            return default;
        }
        v
    }

    /// A duration greater than zero (else `default` when absent or wrong).
    pub(crate) fn duration(&mut self, at: &str, text: Option<&str>, default: Duration) -> Duration {
        match text {
            None => default,
            Some(t) => self.ok(duration(at, t)).unwrap_or(default),
        }
    }

    /// An `Invalid` error holding every problem, when there is one.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::Invalid(self.problems))
        }
    }
}

/// A duration greater than zero, as operators write it (`50ms`, `30s`, `1h`).
pub(crate) fn duration(at: &str, text: &str) -> Result<Duration, Problem> {
    let d = super::parse_duration(text).map_err(|e| Problem::new(at, e))?;
    if d.is_zero() {
        return Err(Problem::new(at, "must be greater than zero"));
    }
    Ok(d)
}

/// A socket address such as `127.0.0.1:8545`.
pub(crate) fn address(at: &str, text: &str) -> Result<std::net::SocketAddr, Problem> {
    text.parse().map_err(|_| {
        Problem::new(
            at,
            format!("{text:?} is not an address like 127.0.0.1:8545"),
        )
    })
}
