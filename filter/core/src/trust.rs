//! Who may set routing headers: downstream addresses in CIDR allow-lists and
//! mTLS peers (SPIFFE ids, as Istio issues them) in principal allow-lists.
//! Routing headers from anyone else are removed before any rule reads them.

use std::net::IpAddr;

use crate::config::cohorts::RuleHeader;
use crate::config::error::HeaderName;
use crate::host::Http;
use crate::peer::parse_ip;
pub use crate::peer::{Cidr, ParseError, Principal};

/// The `trust` section: which headers are routing headers, and who may send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Headers honoured only from trusted sources, removed otherwise.
    pub routing_headers: Vec<HeaderName>,
    pub source_cidrs: Vec<Cidr>,
    pub peer_principals: Vec<Principal>,
}

impl Trust {
    /// No policy means the module's behaviour: every routing header is believed.
    pub fn trusts_everyone(&self) -> bool {
        self.source_cidrs.is_empty() && self.peer_principals.is_empty()
    }

    /// Whether this request's sender may set routing headers: its downstream
    /// address is in a listed network or its mTLS peer's URI SAN is a listed
    /// principal. Each attribute is read only when its list is not empty.
    pub fn admits(&self, host: &impl Http) -> bool {
        if self.trusts_everyone() {
            return true;
        }
        let from_network = !self.source_cidrs.is_empty()
            && host.property(&["source", "address"], |a| {
                a.and_then(parse_socket_ip)
                    .is_some_and(|ip| self.source_cidrs.iter().any(|c| c.contains(ip)))
            });
        from_network
            || (!self.peer_principals.is_empty()
                && host.property(&["connection", "uri_san_peer_certificate"], |san| {
                    san.is_some_and(|san| self.peer_principals.iter().any(|p| p.matches(san)))
                }))
    }

    /// Screens the routing headers of one request and says whether the rules
    /// may believe them. `sent` has bit `i` set when `rules[i]` was present
    /// (indices from 64 on count as sent). The sender is looked at only when
    /// a routing header was actually sent; an untrusted sender's routing
    /// headers, including those no rule reads, are removed from the request.
    pub fn screen(&self, rules: &[RuleHeader], sent: u64, host: &mut impl Http) -> bool {
        if self.trusts_everyone() {
            return true;
        }
        let was_sent = |mask: u64, i: usize| i >= 64 || mask & (1 << i) != 0;
        let guarded_sent = rules
            .iter()
            .enumerate()
            .any(|(i, r)| r.guarded && was_sent(sent, i));
        // Routing headers no rule reads must still be stripped from untrusted callers.
        let (mut extra_sent, mut any_extra) = (0u64, false);
        for (i, h) in self.routing_headers.iter().enumerate() {
            if !rules.iter().any(|r| r.name == *h) && host.request_header(h, |v| v.is_some()) {
                any_extra = true;
                if i < 64 {
                    extra_sent |= 1 << i;
                }
            }
        }
        if (!guarded_sent && !any_extra) || self.admits(host) {
            return true;
        }
        for (i, rule) in rules.iter().enumerate() {
            if rule.guarded && was_sent(sent, i) {
                host.remove_request_header(&rule.name);
            }
        }
        for (i, h) in self.routing_headers.iter().enumerate() {
            if !rules.iter().any(|r| r.name == *h) && was_sent(extra_sent, i) {
                host.remove_request_header(h);
            }
        }
        false
    }
}

/// The value a present rule header counts with, given its `first` line: a
/// header sent on more than one line counts only when every line says the
/// same; otherwise it counts as absent, so no rule matches on it. The
/// single-value lookup returns the first line, and when a proxy in front
/// appends its own value to one the client sent, the first line is the
/// client's: believing it would let the client pick its cohort. This costs
/// one lookup, made only for a header that is present: Envoy's
/// `request.headers.<name>` attribute, which joins all lines with `,`.
pub fn agreed<'a>(host: &impl Http, name: &str, first: &'a [u8]) -> Option<&'a [u8]> {
    host.property(&["request", "headers", name], |joined| match joined {
        Some(all) if !lines_all_equal(first, all) => None,
        _ => Some(first),
    })
}

/// Whether `joined` (lines joined with `,`) is `first` once or repeated.
fn lines_all_equal(first: &[u8], joined: &[u8]) -> bool {
    let mut rest = joined;
    loop {
        let Some(r) = rest.strip_prefix(first) else {
            return false;
        };
        if r.is_empty() {
            return true;
        }
        let Some(r) = r.strip_prefix(b",") else {
            return false;
        };
        rest = r;
    }
}

/// Parses Envoy's `source.address` (`1.2.3.4:5678` or `[::1]:5678`).
pub fn parse_socket_ip(addr: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(addr).ok()?;
    if let Some(rest) = s.strip_prefix('[') {
        return parse_ip(rest.split_once(']')?.0);
    }
    match s.rsplit_once(':') {
        Some((ip, _port)) if !ip.contains(':') => parse_ip(ip),
        _ => parse_ip(s),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_match_by_prefix_length() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        let odd: Cidr = "127.0.0.2/31".parse().unwrap();
        assert!(odd.contains(ip("127.0.0.3")));
        assert!(!odd.contains(ip("127.0.0.1")));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("8.8.8.8")));
        assert!(!any.contains(ip("::1")));
        let host: Cidr = "::1".parse().unwrap();
        assert!(host.contains(ip("::1")));
        assert!(!host.contains(ip("::2")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let c: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("::ffff:127.0.0.9")));
    }

    #[test]
    fn malformed_cidrs_are_refused() {
        for bad in ["", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0/8", "x/1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn principals_match_exactly_or_by_trailing_star() {
        let exact: Principal = "spiffe://td/ns/a/sa/b".parse().unwrap();
        assert!(exact.matches(b"spiffe://td/ns/a/sa/b"));
        assert!(!exact.matches(b"spiffe://td/ns/a/sa/bb"));
        let ns: Principal = "spiffe://td/ns/a/*".parse().unwrap();
        assert!(ns.matches(b"spiffe://td/ns/a/sa/anything"));
        assert!(!ns.matches(b"spiffe://td/ns/ab/sa/x"));
        for bad in ["", "*", "spiffe://*/ns/a"] {
            assert!(bad.parse::<Principal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_repeated_rule_header_counts_only_when_every_line_agrees() {
        assert!(lines_all_equal(b"internal", b"internal"));
        assert!(lines_all_equal(b"internal", b"internal,internal,internal"));
        assert!(lines_all_equal(b"", b""));
        assert!(!lines_all_equal(b"internal", b"internal,external"));
        assert!(!lines_all_equal(b"internal", b"internal,"));
        assert!(!lines_all_equal(b"internal", b"internal,internalx"));
        assert!(lines_all_equal(b"", b","));
        assert!(!lines_all_equal(b"a", b"b"));
    }

    #[test]
    fn addresses_parse_exactly_as_std_parses_them() {
        let cases = [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1..2.3",
            "1.2.3.4 ",
            "",
            ".",
            "a.b.c.d",
            "1234.1.1.1",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1::8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4::5:6:7:8",
            "1::2::3",
            ":::",
            ":1::",
            "1:",
            ":1",
            "::ffff:127.0.0.9",
            "::127.0.0.1",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1.2.3.4::",
            "1.2.3.4:1::",
            "::1.2.3.4:1",
            "12345::",
            "fFfF::AbCd",
            "g::",
            "::ffff:01.2.3.4",
            "fe80::1%eth0",
            "[::1]",
            "1:2:3:4:5::1.2.3.4",
        ];
        for s in cases {
            assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "{s:?}");
        }
    }

    #[test]
    fn socket_addresses_in_envoy_format_are_parsed() {
        assert_eq!(parse_socket_ip(b"127.0.0.2:4455"), Some(ip("127.0.0.2")));
        assert_eq!(parse_socket_ip(b"[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_socket_ip(b"10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(parse_socket_ip(b"::1"), Some(ip("::1")));
        assert_eq!(parse_socket_ip(b"pipe:/tmp/x"), None);
        assert_eq!(parse_socket_ip(b"\xff:1"), None);
    }
}
