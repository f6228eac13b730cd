//! Which cohort a request joins: the first declared cohort one of whose
//! rules matches, else the sticky canary bucket of its user key, else stable.
//! Rule values come out of client-controlled bytes (headers, cookies, query
//! strings); everything here takes `&[u8]` and never assumes UTF-8, because a
//! client can send any bytes and a panic would take the whole VM down.

use crate::config::{Cohort, Config, MissingKey, Source, Test, UserKey};
use crate::hash;
use crate::host::Http;

/// The cohort of one request. `headers` holds the values of
/// `cfg.cohorts.headers`, already cleared of untrusted routing headers;
/// `now_ns` stands in for a request id when a keyless request is split.
/// The cookies and `:path` are read only if a rule needs them.
pub fn choose(cfg: &Config, host: &impl Http, headers: &[Option<Vec<u8>>], now_ns: u64) -> Cohort {
    let mut cookie_header: Option<Option<Vec<u8>>> = None;
    let mut path: Option<Option<Vec<u8>>> = None;
    for (cohort, rule) in cfg.cohorts.declared() {
        for m in &rule.matches {
            let hit = match &m.source {
                Source::Header(h) => test(&m.test, headers.get(*h).and_then(|v| v.as_deref())),
                Source::Cookie(name) => {
                    let header = cookie_header.get_or_insert_with(|| cookies(host));
                    test(&m.test, header.as_deref().and_then(|h| cookie(h, name)))
                }
                Source::Query(name) => {
                    let path = path.get_or_insert_with(|| host.request_header(":path"));
                    let value = path.as_deref().and_then(|p| query_param(p, name));
                    test(&m.test, value.as_deref())
                }
            };
            if hit {
                return cohort;
            }
        }
    }
    let sticky = &cfg.sticky;
    if sticky.basis_points == 0 {
        return Cohort::STABLE;
    }
    let key = match &sticky.user_key {
        UserKey::Header(h) => host.request_header(h),
        UserKey::Cookie(name) => cookie_header
            .get_or_insert_with(|| cookies(host))
            .as_deref()
            .and_then(|h| cookie(h, name))
            .map(<[u8]>::to_vec),
    }
    .filter(|k| !k.trim_ascii().is_empty());
    let bucket = match (key, sticky.missing_key) {
        (Some(k), _) => Some(hash::bucket(sticky.salt.as_bytes(), &k)),
        (None, MissingKey::Stable) => None,
        (None, MissingKey::PerRequest) => Some(match host.request_header("x-request-id") {
            Some(id) => hash::bucket(b"", &id),
            // Nanoseconds are as good as random for one request.
            None => (now_ns / 1000 % u64::from(hash::BUCKETS)) as u32,
        }),
    };
    match bucket {
        Some(b) if b < sticky.basis_points => Cohort::CANARY,
        _ => Cohort::STABLE,
    }
}

/// Every `cookie` line of the request, in one value. An HTTP/1.1 client may
/// send several lines, and the single-value header lookup returns only the
/// first, so a cookie on a later line would be missed. Envoy's
/// `request.headers.<name>` attribute joins all lines with `,` (HTTP/2 cookie
/// crumbs arrive joined with `; ` already), at the cost of the one lookup the
/// header read would have taken.
fn cookies(host: &impl Http) -> Option<Vec<u8>> {
    host.property(&["request", "headers", "cookie"])
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

/// The percent-decoded value of query parameter `name` in a request `:path`.
/// `+` is a space, as in HTML forms; a bad escape is kept literally.
pub fn query_param(path: &[u8], name: &str) -> Option<Vec<u8>> {
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
        (percent_decode(k) == name.as_bytes()).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                match (hex(s[i + 1]), hex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        // Two hex digits make at most 0xff.
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Applies a rule's test to the value it read (`None` = absent).
pub fn test(t: &Test, value: Option<&[u8]>) -> bool {
    match (t, value) {
        (_, None) => false,
        (Test::Present, Some(_)) => true,
        (Test::Exact(want), Some(v)) => v == want.as_slice(),
        (Test::Prefix(p), Some(v)) => v.starts_with(p),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

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
        assert_eq!(query_param(p, "canary").as_deref(), Some(&b"1"[..]));
        assert_eq!(query_param(p, "name").as_deref(), Some(&b"a b c"[..]));
        assert_eq!(query_param(p, "flag").as_deref(), Some(&b""[..]));
        assert_eq!(query_param(p, "bad").as_deref(), Some(&b"%zz%4"[..]));
        assert_eq!(query_param(p, "missing"), None);
        assert_eq!(query_param(b"/no-query", "x"), None);
        assert_eq!(
            query_param(b"/p?%63anary=1", "canary").as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(query_param(b"/p?a=1#canary=1", "canary"), None);
        assert_eq!(query_param(b"/p?a=%", "a").as_deref(), Some(&b"%"[..]));
        assert_eq!(query_param(b"/p?a=%f", "a").as_deref(), Some(&b"%f"[..]));
        assert_eq!(query_param(b"/p?a=%ff", "a").as_deref(), Some(&b"\xff"[..]));
    }

    #[test]
    fn tests_compare_bytes_exactly() {
        assert!(super::test(
            &Test::Exact(b"internal".to_vec()),
            Some(b"internal")
        ));
        assert!(!super::test(
            &Test::Exact(b"internal".to_vec()),
            Some(b"Internal")
        ));
        assert!(!super::test(&Test::Exact(b"internal".to_vec()), None));
        assert!(super::test(
            &Test::Prefix(b"int".to_vec()),
            Some(b"internal")
        ));
        assert!(super::test(&Test::Present, Some(b"")));
        assert!(!super::test(&Test::Present, None));
    }
}
