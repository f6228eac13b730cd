//! The proxy-wasm "pairs" encoding Envoy uses for map and list attributes
//! (a verified JWT's `payload`, an array claim such as `groups`): a u32
//! count, then count × (u32 key length, u32 value length), then each key and
//! value followed by a NUL. Lists put each element in the key and leave the
//! value empty. The SDK's decoder is private and unwraps, so this one is ours;
//! it checks every length against the buffer and never panics.

/// A validated pairs buffer; iterating yields `(key, value)` slices of it.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'a> {
    sizes: &'a [u8],
    data: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let n = u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?);
    usize::try_from(n).ok()
}

impl<'a> Pairs<'a> {
    /// `None` unless `bytes` is exactly one well-formed pairs buffer: the
    /// lengths add up to the buffer's size and every terminator is a NUL.
    /// That strictness is what tells a list from a string claim, since
    /// attribute bytes carry no type.
    pub fn parse(bytes: &'a [u8]) -> Option<Pairs<'a>> {
        let count = u32_at(bytes, 0)?;
        let sizes_end = count.checked_mul(8)?.checked_add(4)?;
        let sizes = bytes.get(4..sizes_end)?;
        let data = bytes.get(sizes_end..)?;
        let mut at = 0usize;
        for i in 0..count {
            for half in [0, 4] {
                let len = u32_at(sizes, i * 8 + half)?;
                let nul = at.checked_add(len)?;
                if *data.get(nul)? != 0 {
                    return None;
                }
                at = nul + 1;
            }
        }
        (at == data.len()).then_some(Pairs { sizes, data })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.sizes.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let (sizes, data) = (self.sizes, self.data);
        let mut at = 0usize;
        sizes.chunks_exact(8).map(move |s| {
            // Lengths were checked by `parse`; `get` keeps this panic-free anyway.
            let mut take = |half: usize| {
                let len = u32_at(s, half).unwrap_or(0);
                let slice = data.get(at..at + len).unwrap_or_default();
                at += len + 1;
                slice
            };
            let key = take(0);
            let value = take(4);
            (key, value)
        })
    }
}

/// Encodes pairs the way Envoy does; the tests' fake host uses it to stand in
/// for jwt_authn's metadata.
pub fn encode<'k>(pairs: impl IntoIterator<Item = (&'k [u8], &'k [u8])>) -> Vec<u8> {
    let pairs: Vec<_> = pairs.into_iter().collect();
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&len32(pairs.len()));
    for (k, v) in &pairs {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(&len32(v.len()));
    }
    for (k, v) in &pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_list_decodes_into_its_elements_with_empty_values() {
        let bytes = encode([(&b"a"[..], &b""[..]), (b"beta-testers", b"")]);
        let p = Pairs::parse(&bytes).unwrap();
        assert_eq!(p.len(), 2);
        let keys: Vec<&[u8]> = p.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"beta-testers"]);
        assert!(p.iter().all(|(_, v)| v.is_empty()));
    }

    #[test]
    fn a_map_decodes_into_keys_and_values() {
        let bytes = encode([(&b"tier"[..], &b"gold"[..]), (b"", b"x")]);
        let got: Vec<_> = Pairs::parse(&bytes).unwrap().iter().collect();
        assert_eq!(got, vec![(&b"tier"[..], &b"gold"[..]), (b"", b"x")]);
        let empty = encode([]);
        assert!(Pairs::parse(&empty).unwrap().is_empty());
    }

    #[test]
    fn the_exact_bytes_envoy_sends_for_a_two_element_list_decode() {
        // ["a","bc"]: count 2, sizes (1,0) (2,0), then "a\0" "\0" "bc\0" "\0".
        let wire = b"\x02\0\0\0\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0a\0\0bc\0\0";
        let keys: Vec<&[u8]> = Pairs::parse(wire).unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"bc"]);
    }

    #[test]
    fn strings_and_malformed_buffers_are_not_pairs() {
        let good = encode([(&b"k"[..], &b"v"[..])]);
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        let mut trailing = good.clone();
        trailing.push(0);
        for bad in [
            &b""[..],
            b"abc",
            b"user-42",
            b"read write",
            &good[..good.len() - 1],
            &no_nul,
            &trailing,
            b"\xff\xff\xff\xff",
            b"\x01\0\0\0\xff\xff\xff\xff\0\0\0\0",
        ] {
            assert!(Pairs::parse(bad).is_none(), "{bad:?}");
        }
    }
}
