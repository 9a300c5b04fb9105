//! `${VAR}` in upstream URLs and headers: secrets (a provider's API key)
//! come from the environment, not from the file.
//!
//! Expansion happens once, at validation; a variable that is not set is a
//! config error naming the key and the variable. Messages about a value
//! that was expanded show the text as written (`${PROVIDER_KEY}`), never
//! the secret it stands for.

use super::error::Problem;

/// Replaces each `${NAME}` in `text` by `lookup(NAME)`. `at` is the key path
/// for errors. A `$` not followed by `{` is kept as it is.
pub(super) fn expand(
    at: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Problem> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Problem::new(at, "has a `${` without its closing `}`"))?;
        let name = &after[..end];
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(Problem::new(
                at,
                format!("`${{{name}}}` is not a variable name (letters, digits, _)"),
            ));
        }
        let value = lookup(name)
            .ok_or_else(|| Problem::new(at, format!("environment variable {name} is not set")))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand`] from the process environment.
pub(super) fn from_env(at: &str, text: &str) -> Result<String, Problem> {
    expand(at, text, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "s3cret".to_string())
    }

    #[test]
    fn variables_are_replaced_and_a_missing_one_is_named() {
        let got = expand("a.http", "https://x/v1/${KEY}?k=${KEY}", env).unwrap();
        assert_eq!(got, "https://x/v1/s3cret?k=s3cret");
        assert_eq!(expand("a", "cost $5 {x}", env).unwrap(), "cost $5 {x}");
        let err = expand("a.headers.X-Api-Key", "${NOPE}", env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.headers.X-Api-Key: environment variable NOPE is not set"
        );
        assert!(expand("a", "${KEY", env).is_err());
        assert!(expand("a", "${}", env).is_err());
        assert!(expand("a", "${A-B}", env).is_err());
    }
}
