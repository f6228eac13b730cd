//! Where a claim sits in the payload `jwt_authn` verified: a validated path
//! of segments (`tenant.tier`), and the attribute path Envoy reads it from.
//! A plain value, shared by the config (which checks it) and the claim
//! reader (which uses it), so neither depends on the other.

use std::fmt;

/// The attribute path up to the payload; claim segments follow it.
pub const PAYLOAD_PATH: [&str; 4] = [
    "metadata",
    "filter_metadata",
    "envoy.filters.http.jwt_authn",
    "payload",
];
/// Deepest claim path accepted (`a.b.c…`).
pub const MAX_DEPTH: usize = 8;
const MAX_SEGMENT: usize = 256;

/// A claim inside the verified payload: `sub`, or `tenant.tier` for nested
/// objects (one segment per level; a list index is a segment too).
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<String>);

/// Why a claim path was refused; the config adds the field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError(pub String);

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ClaimPath {
    /// A dotted path, `tenant.tier`. Claim names that themselves contain dots
    /// (`https://example.com/roles`) are given as segments instead.
    pub fn dotted(s: &str) -> Result<ClaimPath, PathError> {
        ClaimPath::segments(s.split('.').map(str::to_string).collect())
    }

    /// Explicit segments, `["https://example.com/roles"]`.
    pub fn segments(segments: Vec<String>) -> Result<ClaimPath, PathError> {
        if segments.is_empty() {
            return Err(PathError("a claim path needs at least one segment".into()));
        }
        if segments.len() > MAX_DEPTH {
            return Err(PathError(format!(
                "{} levels deep, at most {MAX_DEPTH}",
                segments.len()
            )));
        }
        for s in &segments {
            if s.is_empty() {
                return Err(PathError(
                    "empty segment (leading, trailing or doubled '.')".into(),
                ));
            }
            if s.len() > MAX_SEGMENT {
                return Err(PathError(format!(
                    "segment longer than {MAX_SEGMENT} bytes"
                )));
            }
            if s.chars().any(char::is_control) {
                return Err(PathError("control characters are not claim names".into()));
            }
        }
        Ok(ClaimPath(segments))
    }

    /// The claim's segments, outermost first.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// Calls `read` with the full attribute path, built on the stack: the
    /// filter reads claims per request and allocates nothing for the path.
    pub fn with_attribute<R>(&self, read: impl FnOnce(&[&str]) -> R) -> R {
        let mut path = [""; PAYLOAD_PATH.len() + MAX_DEPTH];
        path[..PAYLOAD_PATH.len()].copy_from_slice(&PAYLOAD_PATH);
        let mut n = PAYLOAD_PATH.len();
        for (slot, seg) in path[n..].iter_mut().zip(&self.0) {
            *slot = seg;
            n += 1;
        }
        read(&path[..n])
    }
}

impl fmt::Debug for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "claim {:?}", self.0.join("."))
    }
}
