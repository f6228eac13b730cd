//! Who a caller is, as the trust policy names it: networks its address may
//! be in (CIDRs) and the mTLS identities it may present (SPIFFE ids, exact
//! or as a prefix). Plain values with their parsers, used by the `trust`
//! section and by principal cohort rules alike, so neither depends on the other.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 peer (dual-stack listener) is matched as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Cidr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| ParseError("not an IP address or CIDR".into()))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| ParseError(format!("prefix length must be 0-{max}")))?,
        };
        Ok(Cidr { net, len })
    }
}

/// A peer identity: exact, or a prefix when it ends in `*`
/// (`spiffe://cluster.local/ns/frontend/*` trusts a whole namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Exact(String),
    Prefix(String),
}

impl Principal {
    pub fn matches(&self, peer: &[u8]) -> bool {
        match self {
            Principal::Exact(p) => p.as_bytes() == peer,
            Principal::Prefix(p) => peer.starts_with(p.as_bytes()),
        }
    }
}

impl FromStr for Principal {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s == "*" {
            return Err(ParseError(
                "must name a peer (\"*\" alone would trust every mTLS peer)".into(),
            ));
        }
        let prefix = s.strip_suffix('*');
        if prefix.unwrap_or(s).contains('*') {
            return Err(ParseError("'*' is only allowed at the end".into()));
        }
        Ok(match prefix {
            Some(p) => Principal::Prefix(p.to_string()),
            None => Principal::Exact(s.to_string()),
        })
    }
}
