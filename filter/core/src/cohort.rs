//! Which cohort a request joins: the first declared cohort one of whose
//! rules matches, else the sticky canary bucket of its user key, else stable.
//! Rule values come out of client-controlled bytes (headers, cookies, query
//! strings); everything here takes `&[u8]` and never assumes UTF-8, because a
//! client can send any bytes and a panic would take the whole VM down. Values
//! are tested where they lie: nothing here copies or decodes into the heap.

use crate::config::{
    Cohort, CohortRule, Cohorts, Config, Match, MissingKey, Source, Test, UserKey,
};
use crate::hash;
use crate::host::Http;
use crate::identity;
use crate::trust;

/// The declared cohorts some rule claims: bit `i` is `cohorts.rules[i]`
/// (at most [`crate::config::MAX_COHORTS`] of them).
pub type Claims = u32;

/// What the rule headers of one request claim, each header read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderClaims {
    /// Claims from headers anyone may send.
    pub open: Claims,
    /// Claims from routing headers, believed only from trusted senders.
    pub guarded: Claims,
    /// Bit `i` set when `cohorts.headers[i]` was present (the first 64).
    pub sent: u64,
}

impl HeaderClaims {
    pub fn read(cohorts: &Cohorts, host: &impl Http) -> Self {
        let mut out = HeaderClaims::default();
        for (idx, h) in cohorts.headers.iter().enumerate() {
            let (present, claims) = host.request_header(&h.name, |first| {
                // Lines that disagree count as no value (trust::agreed).
                let v = first.and_then(|f| trust::agreed(host, &h.name, f));
                let claims = rule_claims(&cohorts.rules, |m| {
                    m.source == Source::Header(idx) && m.test.holds(v)
                });
                (first.is_some(), claims)
            });
            if present && idx < 64 {
                out.sent |= 1 << idx;
            }
            if h.guarded {
                out.guarded |= claims;
            } else {
                out.open |= claims;
            }
        }
        out
    }

    /// The claims the rules may act on, given whether routing headers are believed.
    pub fn believed(self, trusted: bool) -> Claims {
        if trusted {
            self.open | self.guarded
        } else {
            self.open
        }
    }
}

/// The rules among `rules` one of whose matches satisfies `holds`.
pub(crate) fn rule_claims(rules: &[CohortRule], holds: impl Fn(&Match) -> bool) -> Claims {
    let mut claims = 0;
    for (i, rule) in rules.iter().enumerate() {
        if rule.matches.iter().any(&holds) {
            claims |= 1 << i;
        }
    }
    claims
}

/// The cohort of one request, given what its rule headers claim. Cookie and
/// query rules are looked at only for cohorts ahead of the first header
/// claim, and the cookies and `:path` are read only then (the
/// cookie header also when it carries the sticky user key). The request's
/// start time, `now_ns` (read here when the caller has not), stands in for a
/// request id when a keyless request is split.
pub fn choose(
    cfg: &Config,
    host: &impl Http,
    header_claims: Claims,
    now_ns: Option<u64>,
) -> Cohort {
    let rules = &cfg.cohorts.rules;
    let ahead = &rules[..(header_claims.trailing_zeros() as usize).min(rules.len())];
    let reads = |pick: fn(&Source) -> bool| {
        ahead
            .iter()
            .any(|r| r.matches.iter().any(|m| pick(&m.source)))
    };
    let cookie_rules = reads(|s| matches!(s, Source::Cookie(_)));
    let sticky = &cfg.sticky;
    let key_cookie = match &sticky.user_key {
        UserKey::Cookie(name) if sticky.basis_points > 0 => Some(name.as_str()),
        _ => None,
    };
    let mut claims = header_claims;
    // The sticky bucket of a cookie key, learnt while the header is at hand.
    let mut cookie_bucket = None;
    if cookie_rules || key_cookie.is_some() {
        // Every `cookie` line: the single-value header lookup returns only the
        // first, and a cookie on a later line would be missed. Envoy's
        // attribute joins the lines with `,` (HTTP/2 crumbs arrive joined
        // with `; ` already), for the one lookup the header read would take.
        host.property(&["request", "headers", "cookie"], |h| {
            if cookie_rules {
                claims |= rule_claims(ahead, |m| match &m.source {
                    Source::Cookie(name) => m.test.holds(h.and_then(|h| cookie(h, name))),
                    _ => false,
                });
            }
            if let Some(name) = key_cookie {
                cookie_bucket = h
                    .and_then(|h| cookie(h, name))
                    .and_then(|k| key_bucket(sticky.salt.as_bytes(), k));
            }
        });
    }
    if reads(|s| matches!(s, Source::Query(_))) {
        claims |= host.request_header(":path", |p| {
            rule_claims(ahead, |m| match &m.source {
                Source::Query(name) => p
                    .and_then(|p| query_param(p, name))
                    .is_some_and(|v| test_decoded(&m.test, v)),
                _ => false,
            })
        });
    }
    if reads(|s| matches!(s, Source::Claim(_) | Source::Principal(_))) {
        claims |= identity_claims(ahead, host);
    }
    if claims != 0 {
        return Cohort::declared(claims.trailing_zeros() as usize);
    }
    if sticky.basis_points == 0 {
        return Cohort::STABLE;
    }
    let bucket = match &sticky.user_key {
        UserKey::Header(h) => {
            host.request_header(h, |k| k.and_then(|k| key_bucket(sticky.salt.as_bytes(), k)))
        }
        UserKey::Cookie(_) => cookie_bucket,
        UserKey::Claim(c) => c.with_attribute(|path| {
            host.property(path, |k| {
                k.and_then(|k| key_bucket(sticky.salt.as_bytes(), k))
            })
        }),
    };
    let bucket = match (bucket, sticky.missing_key) {
        (Some(b), _) => Some(b),
        (None, MissingKey::Stable) => None,
        (None, MissingKey::PerRequest) => Some(
            host.request_header("x-request-id", |id| id.map(|id| hash::bucket(b"", id)))
                // Nanoseconds are as good as random for one request.
                .unwrap_or_else(|| {
                    let ns = now_ns.unwrap_or_else(|| host.now_nanos());
                    (ns / 1000 % u64::from(hash::BUCKETS)) as u32
                }),
        ),
    };
    match bucket {
        Some(b) if b < sticky.basis_points => Cohort::CANARY,
        _ => Cohort::STABLE,
    }
}

/// The sticky bucket of a user key; a blank key is no key.
fn key_bucket(salt: &[u8], key: &[u8]) -> Option<u32> {
    (!key.trim_ascii().is_empty()).then(|| hash::bucket(salt, key))
}

/// The value of cookie `name` in the request's cookies, without surrounding
/// quotes. Pairs are separated by `;`, and by `,` where Envoy joined two
/// `cookie` lines (a cookie value cannot hold either, RFC 6265 section 4.1.1).
/// The first occurrence wins, as in browsers' and Envoy's own cookie lookup.
pub fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';' || b == b',').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = (&pair[..eq], &pair[eq + 1..]);
        if k.trim_ascii() != name.as_bytes() {
            return None;
        }
        let v = v.trim_ascii();
        Some(
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    })
}

/// The value of query parameter `name` in a request `:path`, percent-decoded
/// as it is read. `+` is a space, as in HTML forms; a bad escape is kept
/// literally.
pub fn query_param<'a>(path: &'a [u8], name: &str) -> Option<Decoded<'a>> {
    let start = path.iter().position(|&b| b == b'?')? + 1;
    let query = &path[start..];
    let query = match query.iter().position(|&b| b == b'#') {
        Some(end) => &query[..end],
        None => query,
    };
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        Decoded(k).eq(name.bytes()).then_some(Decoded(v))
    })
}

/// Percent-decoded bytes of a query component, produced one at a time.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a>(&'a [u8]);

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let hex = |b: u8| (b as char).to_digit(16);
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        match first {
            b'+' => Some(b' '),
            b'%' => match rest {
                [h, l, ..] => match (hex(*h), hex(*l)) {
                    (Some(h), Some(l)) => {
                        self.0 = &rest[2..];
                        // Two hex digits make at most 0xff.
                        Some((h * 16 + l) as u8)
                    }
                    _ => Some(b'%'),
                },
                _ => Some(b'%'),
            },
            b => Some(b),
        }
    }
}

/// [`Test::holds`] on a present value that is decoded as it is compared.
fn test_decoded(t: &Test, mut value: Decoded<'_>) -> bool {
    match t {
        Test::Present => true,
        Test::Exact(want) => value.eq(want.iter().copied()),
        Test::Prefix(p) => p.iter().all(|b| value.next() == Some(*b)),
        // Configs refuse `contains` outside claims.
        Test::Contains(_) => false,
    }
}

/// The attribute holding the mTLS peer's URI SAN (its SPIFFE id).
const PEER: [&str; 2] = ["connection", "uri_san_peer_certificate"];

/// The first of `rules` a verified identity claims, as a one-bit mask (0
/// for none). Rules are tried in order: one claim attribute read per claim
/// match reached, and the peer's id read once, when the first principal
/// rule is reached.
fn identity_claims(rules: &[CohortRule], host: &impl Http) -> Claims {
    let mut peer: Option<Claims> = None;
    for (i, rule) in rules.iter().enumerate() {
        for m in &rule.matches {
            let holds = match &m.source {
                Source::Claim(c) => c.with_attribute(|path| {
                    host.property(path, |v| identity::claim::test(&m.test, v))
                }),
                Source::Principal(_) => {
                    let mask = *peer.get_or_insert_with(|| {
                        host.property(&PEER, |san| {
                            rule_claims(rules, |m| match &m.source {
                                Source::Principal(p) => san.is_some_and(|s| p.matches(s)),
                                _ => false,
                            })
                        })
                    });
                    mask & (1 << i) != 0
                }
                _ => false,
            };
            if holds {
                return 1 << i;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn q(path: &[u8], name: &str) -> Option<Vec<u8>> {
        query_param(path, name).map(Iterator::collect)
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = b"a=1; beta=yes;uid = \"u-42\" ; beta=no";
        assert_eq!(cookie(h, "beta"), Some(&b"yes"[..]));
        assert_eq!(cookie(h, "uid"), Some(&b"u-42"[..]));
        assert_eq!(cookie(h, "bet"), None);
        assert_eq!(cookie(b"", "a"), None);
        assert_eq!(cookie(b";;=;a", "a"), None);
        assert_eq!(cookie(b"a=", "a"), Some(&b""[..]));
        assert_eq!(cookie(b"\xff\xfe=1; a=\xff", "a"), Some(&b"\xff"[..]));
        assert_eq!(cookie(b"a=\"", "a"), Some(&b"\""[..]));
        // Two `cookie` lines as Envoy joins them.
        assert_eq!(cookie(b"a=1; uid=7,beta=1", "beta"), Some(&b"1"[..]));
        assert_eq!(cookie(b"a=1; uid=7,beta=1", "uid"), Some(&b"7"[..]));
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let p = b"/reviews?x=1&canary=%31&name=a+b%20c&flag&bad=%zz%4";
        assert_eq!(q(p, "canary").as_deref(), Some(&b"1"[..]));
        assert_eq!(q(p, "name").as_deref(), Some(&b"a b c"[..]));
        assert_eq!(q(p, "flag").as_deref(), Some(&b""[..]));
        assert_eq!(q(p, "bad").as_deref(), Some(&b"%zz%4"[..]));
        assert_eq!(q(p, "missing"), None);
        assert_eq!(q(b"/no-query", "x"), None);
        assert_eq!(q(b"/p?%63anary=1", "canary").as_deref(), Some(&b"1"[..]));
        assert_eq!(q(b"/p?a=1#canary=1", "canary"), None);
        assert_eq!(q(b"/p?a=%", "a").as_deref(), Some(&b"%"[..]));
        assert_eq!(q(b"/p?a=%f", "a").as_deref(), Some(&b"%f"[..]));
        assert_eq!(q(b"/p?a=%ff", "a").as_deref(), Some(&b"\xff"[..]));
    }
}
