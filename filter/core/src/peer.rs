//! Who a caller is, as the trust policy names it: networks its address may
//! be in (CIDRs) and the mTLS identities it may present (SPIFFE ids, exact
//! or as a prefix). Plain values with their parsers, used by the `trust`
//! section and by principal cohort rules alike, so neither depends on the other.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
        let net = parse_ip(addr).ok_or_else(|| ParseError("not an IP address or CIDR".into()))?;
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

/// An IPv4 or IPv6 address in the forms std's `IpAddr::from_str` accepts
/// (dotted quads without leading zeros; hex groups with at most one `::`
/// and an optional dotted quad at the end), written here because std's
/// parser is about 3 KB of module.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    if let Some(v4) = parse_v4(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    let mut groups = [0u16; 8];
    match b.windows(2).position(|w| w == b"::") {
        None => {
            if read_groups(b, &mut groups, true)? != 8 {
                return None;
            }
        }
        Some(at) => {
            // `::` stands for at least one zero group.
            let head = read_groups(&b[..at], &mut groups, false)?;
            let mut tail = [0u16; 8];
            let n = read_groups(&b[at + 2..], &mut tail, true)?;
            if head + n > 7 {
                return None;
            }
            groups[8 - n..].copy_from_slice(&tail[..n]);
        }
    }
    Some(IpAddr::V6(Ipv6Addr::from(groups)))
}

/// A dotted quad: four decimal numbers 0-255, no leading zeros.
fn parse_v4(b: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = b.split(|&c| c == b'.');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p[0] == b'0') {
            return None;
        }
        let mut v: u32 = 0;
        for &d in p {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Hex groups separated by `:` into `out`; the last may be a dotted quad
/// (two groups) when `quad_last`. Empty input is no group. Returns the count.
fn read_groups(b: &[u8], out: &mut [u16; 8], quad_last: bool) -> Option<usize> {
    if b.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    let mut parts = b.split(|&c| c == b':').peekable();
    while let Some(p) = parts.next() {
        if quad_last && parts.peek().is_none() && p.contains(&b'.') {
            let [a, b, c, d] = parse_v4(p)?;
            if n > 6 {
                return None;
            }
            out[n] = u16::from_be_bytes([a, b]);
            out[n + 1] = u16::from_be_bytes([c, d]);
            return Some(n + 2);
        }
        if p.is_empty() || p.len() > 4 || n == 8 {
            return None;
        }
        let mut v: u16 = 0;
        for &c in p {
            v = (v << 4) | char::from(c).to_digit(16)? as u16;
        }
        out[n] = v;
        n += 1;
    }
    Some(n)
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
