//! Why a `pluginConfig` is refused, and the naming rules values must follow
//! (labels inside stat names, cohort names, HTTP header names).

use std::fmt;

/// Why a `pluginConfig` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The JSON did not fit the schema (unknown field, wrong type, bad syntax).
    #[error("pluginConfig field `{field}`: {message}")]
    Schema { field: String, message: String },
    /// The JSON fit the schema but a value is not acceptable.
    #[error("pluginConfig field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    /// The dotted path of the offending field, e.g. `cohorts[1].name`.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Schema { field, .. } | ConfigError::Invalid { field, .. } => field,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A config value in double quotes for a message, with quotes, backslashes
/// and control characters escaped, as `{:?}` would; written by hand because
/// `{:?}` on strings brings Unicode tables into the module.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

/// A list of config values as `["a", "b"]`.
pub struct QuotedList<'a, T: AsRef<str>>(pub &'a [T]);

impl<T: AsRef<str>> fmt::Display for QuotedList<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(&Quoted(s.as_ref()), f)?;
        }
        f.write_str("]")
    }
}

/// A label value that can be embedded in an Envoy stat name and a Prometheus label.
pub(crate) fn is_label_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit.
pub(crate) fn is_cohort_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// A valid HTTP header name, lower-cased as Envoy stores it (header names are
/// case-insensitive), so comparing two names is comparing two strings. The
/// token rules leave out `:`, so pseudo-headers (`:path`) are refused too.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderName(String);

impl HeaderName {
    /// Checks `name` against the HTTP token rules; `field` names it in the error.
    pub(crate) fn parse(field: &str, name: &str) -> Result<Self, ConfigError> {
        let lower = name.to_ascii_lowercase();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if lower.is_empty() || !lower.bytes().all(token) {
            return Err(ConfigError::invalid(
                field,
                format!("{} is not a valid HTTP header name", Quoted(name)),
            ));
        }
        Ok(HeaderName(lower))
    }

    /// A name the filter itself defines; written lower-case in the source.
    pub(crate) fn fixed(name: &'static str) -> Self {
        HeaderName(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for HeaderName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for HeaderName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for HeaderName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Quoted(&self.0), f)
    }
}

impl AsRef<str> for HeaderName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn quoted_values_read_like_debug_strings() {
        for s in [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "x\u{e9}",
            "tab\tnew\nline\u{1}",
        ] {
            assert_eq!(Quoted(s).to_string(), format!("{s:?}"));
        }
        assert_eq!(
            QuotedList(&["a", "b"]).to_string(),
            format!("{:?}", ["a", "b"])
        );
    }

    #[test]
    fn header_names_are_lower_cased_tokens() {
        assert_eq!(HeaderName::parse("f", "X-User").unwrap(), "x-user");
        for bad in ["", "a b", "x\u{e9}", ":path"] {
            assert_eq!(HeaderName::parse("f", bad).unwrap_err().field(), "f");
        }
    }
}
