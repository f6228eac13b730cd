//! Why a `pluginConfig` is refused, and the naming rules values must follow
//! (labels inside stat names, cohort names, HTTP header names).

use std::fmt;

/// Why a `pluginConfig` was refused: the dotted path of the offending field
/// and what is wrong with it. One boxed pointer, so that a `Result` carrying
/// it stays one word and each `?` of the config readers stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<Detail>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Detail {
    /// The JSON did not fit the schema (unknown field, wrong type, bad
    /// syntax), rather than fitting it with a value that is not acceptable.
    schema: bool,
    field: String,
    message: String,
}

impl ConfigError {
    /// The dotted path of the offending field, e.g. `cohorts[1].name`.
    pub fn field(&self) -> &str {
        &self.0.field
    }

    /// What is wrong with the field.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether the JSON did not fit the schema (unknown field, wrong type,
    /// bad syntax), as opposed to a value the rules refuse.
    pub fn is_schema(&self) -> bool {
        self.0.schema
    }

    #[inline(never)]
    pub(crate) fn schema(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(true, field.into(), message.into())
    }

    #[inline(never)]
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(false, field.into(), message.into())
    }

    #[inline(never)]
    fn new(schema: bool, field: String, message: String) -> Self {
        ConfigError(Box::new(Detail {
            schema,
            field,
            message,
        }))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pluginConfig field `{}`: {}",
            self.0.field, self.0.message
        )
    }
}

impl std::error::Error for ConfigError {}

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
