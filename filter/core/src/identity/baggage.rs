//! The W3C `baggage` header: a comma-separated list of `key=value` members,
//! each optionally followed by `;`-separated properties, with optional
//! whitespace (spaces and tabs) around every separator and percent-encoded
//! values. The filter owns one member (by default `canary-cohort`) and
//! leaves every other member as the application sent it.
//!
//! All of it works on raw bytes: the header is client data.

use std::borrow::Cow;

/// One list member, split but not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// The whole member, surrounding whitespace removed.
    pub raw: &'a [u8],
    pub key: &'a [u8],
    /// The value before any `;` properties, still percent-encoded.
    pub value: &'a [u8],
}

impl<'a> Member<'a> {
    /// The value with percent-escapes decoded (a bad escape stays literal).
    pub fn decoded(&self) -> Cow<'a, [u8]> {
        percent_encoding::percent_decode(self.value).into()
    }
}

/// Optional whitespace as the spec defines it: spaces and horizontal tabs.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// An HTTP token (RFC 9110), the syntax of a baggage key.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The well-formed members of a header, in order. Empty list elements and
/// members without `key=` are skipped, as the spec lets a receiver do.
pub fn members(header: &[u8]) -> impl Iterator<Item = Member<'_>> {
    header.split(|&b| b == b',').filter_map(|m| {
        let raw = trim_ows(m);
        let kv = raw.split(|&b| b == b';').next().unwrap_or_default();
        let eq = kv.iter().position(|&b| b == b'=')?;
        let key = trim_ows(&kv[..eq]);
        let value = trim_ows(&kv[eq + 1..]);
        is_token(key).then_some(Member { raw, key, value })
    })
}

/// What the header says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Absent,
    One(Member<'a>),
    /// The key appears more than once: ambiguous, so believed for neither.
    Repeated,
}

/// Looks `key` up; keys compare exactly (baggage keys are case-sensitive).
pub fn lookup<'a>(header: &'a [u8], key: &str) -> Lookup<'a> {
    let mut found = Lookup::Absent;
    for m in members(header).filter(|m| m.key == key.as_bytes()) {
        found = match found {
            Lookup::Absent => Lookup::One(m),
            _ => return Lookup::Repeated,
        };
    }
    found
}

/// The header without any `key` member; other members keep their bytes
/// (whitespace around them dropped), empty list elements go.
pub fn without_member(header: &[u8], key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    for m in header.split(|&b| b == b',') {
        let raw = trim_ows(m);
        if raw.is_empty()
            || members(raw)
                .next()
                .is_some_and(|mm| mm.key == key.as_bytes())
        {
            continue;
        }
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(raw);
    }
    out
}

/// The header with every `key` member replaced by one `key=value` at the
/// end. `value` must already be baggage-safe: the filter only writes cohort
/// names and base64url tags.
pub fn with_member(header: Option<&[u8]>, key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = header.map_or_else(Vec::new, |h| without_member(h, key));
    out.reserve(key.len() + value.len() + 2);
    if !out.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn value_of(header: &[u8], key: &str) -> Option<Vec<u8>> {
        match lookup(header, key) {
            Lookup::One(m) => Some(m.decoded().into_owned()),
            _ => None,
        }
    }

    #[test]
    fn members_are_found_among_unrelated_ones_with_odd_spacing() {
        let h = b"userId=alice,serverNode=DF%2028,isProduction=false ,\t canary-cohort \t=\t beta.tag ;ttl=5;flag , k2=v2";
        assert_eq!(
            value_of(h, "canary-cohort").as_deref(),
            Some(&b"beta.tag"[..])
        );
        assert_eq!(value_of(h, "serverNode").as_deref(), Some(&b"DF 28"[..]));
        assert_eq!(value_of(h, "isProduction").as_deref(), Some(&b"false"[..]));
        assert_eq!(value_of(h, "k2").as_deref(), Some(&b"v2"[..]));
        assert_eq!(value_of(h, "Canary-Cohort"), None);
        assert_eq!(value_of(h, "ttl"), None, "properties are not members");
    }

    #[test]
    fn percent_encoded_values_are_decoded() {
        assert_eq!(
            value_of(b"canary-cohort=beta%2Eabc", "canary-cohort").as_deref(),
            Some(&b"beta.abc"[..])
        );
        assert_eq!(value_of(b"a=%zz%4", "a").as_deref(), Some(&b"%zz%4"[..]));
    }

    #[test]
    fn a_repeated_key_is_ambiguous() {
        assert_eq!(
            lookup(
                b"canary-cohort=a.x, other=1,canary-cohort=b.y",
                "canary-cohort"
            ),
            Lookup::Repeated
        );
        assert_eq!(lookup(b"other=1", "canary-cohort"), Lookup::Absent);
        assert_eq!(lookup(b"", "canary-cohort"), Lookup::Absent);
    }

    #[test]
    fn malformed_members_are_skipped() {
        let h = b",,novalue, =x,bad key=1,\xff=2,ok=1,";
        let keys: Vec<&[u8]> = members(h).map(|m| m.key).collect();
        assert_eq!(keys, vec![&b"ok"[..]]);
        assert_eq!(value_of(b"a=", "a").as_deref(), Some(&b""[..]));
    }

    #[test]
    fn writing_replaces_every_old_member_and_keeps_the_rest() {
        let h = b" userId=alice , canary-cohort=forged;p=1,, k=v;prop ,canary-cohort=x";
        let out = with_member(Some(h), "canary-cohort", b"beta.t");
        assert_eq!(out, b"userId=alice,k=v;prop,canary-cohort=beta.t");
        assert_eq!(
            with_member(None, "canary-cohort", b"stable.t"),
            b"canary-cohort=stable.t"
        );
        assert_eq!(
            with_member(Some(b""), "canary-cohort", b"v"),
            b"canary-cohort=v"
        );
        // A member whose key only starts like ours is someone else's.
        let kept = with_member(Some(b"canary-cohort-x=1"), "canary-cohort", b"v");
        assert_eq!(kept, b"canary-cohort-x=1,canary-cohort=v");
        assert_eq!(
            without_member(b"a=1, canary-cohort=x ,b=2", "canary-cohort"),
            b"a=1,b=2"
        );
        assert_eq!(without_member(b"canary-cohort=x", "canary-cohort"), b"");
    }
}
