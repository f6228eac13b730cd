//! Sticky bucketing: MurmurHash3 x86_32, the hash flagd and Unleash use for
//! percentage rollouts, so the same user lands in the same bucket everywhere.

/// Number of buckets a user key is hashed into: percent × 100, so 0.01 % steps.
pub const BUCKETS: u32 = 10_000;

/// MurmurHash3, x86 32-bit variant (Austin Appleby's reference algorithm).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    murmur3_x86_32_of(&[data], seed)
}

/// [`murmur3_x86_32`] of `parts` joined, without joining them: blocks are
/// gathered across part boundaries, so hashing a salted key needs no buffer.
fn murmur3_x86_32_of(parts: &[&[u8]], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let scramble = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut block = [0u8; 4];
    let mut filled = 0;
    let mut len: usize = 0;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        block[filled] = b;
        filled += 1;
        len += 1;
        if filled == 4 {
            h ^= scramble(u32::from_le_bytes(block));
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
            filled = 0;
        }
    }
    if filled > 0 {
        let mut k: u32 = 0;
        for (i, b) in block[..filled].iter().enumerate() {
            k ^= u32::from(*b) << (8 * i);
        }
        h ^= scramble(k);
    }
    // `usize as u32` wraps for keys over 4 GiB, exactly as the reference does.
    h ^= len as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The bucket of `key` under `salt`: `murmur3_x86_32(salt ":" key, seed 0) % 10000`.
///
/// The key is hashed as the raw bytes it arrived with, minus surrounding ASCII
/// whitespace; it is not case-folded because user ids are case-sensitive. The salt
/// keeps one service's canary population independent of another's: without it
/// the same 10 % of users would be guinea pigs for every release.
pub fn bucket(salt: &[u8], key: &[u8]) -> u32 {
    murmur3_x86_32_of(&[salt, b":", key.trim_ascii()], 0) % BUCKETS
}

/// A 64-bit fingerprint of a configuration's raw bytes: two murmur3 passes
/// with different seeds. It tells rollout steps apart, nothing more.
pub fn config_hash(bytes: &[u8]) -> u64 {
    (u64::from(murmur3_x86_32(bytes, 0x5eed_0001)) << 32)
        | u64::from(murmur3_x86_32(bytes, 0x5eed_0002))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn murmur3_matches_the_reference_vectors() {
        // Vectors from the reference implementation's test suite and SMHasher.
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(&[0, 0, 0, 0], 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(b"a", 0x9747_b28c), 0x7fa0_9ea6);
        assert_eq!(murmur3_x86_32(b"aa", 0x9747_b28c), 0x5d21_1726);
        assert_eq!(murmur3_x86_32(b"aaa", 0x9747_b28c), 0x283e_0130);
        assert_eq!(murmur3_x86_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 0x9747_b28c), 0x2488_4cba);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }

    #[test]
    fn hashing_in_parts_equals_hashing_the_joined_bytes() {
        let data = b"The quick brown fox jumps over the lazy dog";
        for a in 0..data.len() {
            for b in a..data.len() {
                let parts: [&[u8]; 3] = [&data[..a], &data[a..b], &data[b..]];
                assert_eq!(murmur3_x86_32_of(&parts, 7), murmur3_x86_32(data, 7));
            }
        }
    }

    #[test]
    fn a_bucket_ignores_surrounding_whitespace_but_not_case() {
        assert_eq!(bucket(b"s", b"  user-1 "), bucket(b"s", b"user-1"));
        assert_ne!(bucket(b"s", b"User-1"), bucket(b"s", b"user-1"));
    }

    #[test]
    fn long_keys_hash_like_short_ones_would() {
        let key = vec![b'k'; 1000];
        let mut joined = b"salt:".to_vec();
        joined.extend_from_slice(&key);
        assert_eq!(bucket(b"salt", &key), murmur3_x86_32(&joined, 0) % BUCKETS);
    }

    #[test]
    fn the_salt_changes_the_bucket_population() {
        let moved = (0..1000)
            .filter(|i| {
                let k = format!("u{i}");
                bucket(b"a", k.as_bytes()) != bucket(b"b", k.as_bytes())
            })
            .count();
        assert!(moved > 990, "only {moved} of 1000 users changed bucket");
    }

    #[test]
    fn buckets_are_spread_evenly_over_ten_thousand_users() {
        let under_10pct = (0..10_000)
            .filter(|i| bucket(b"reviews", format!("user-{i}").as_bytes()) < 1000)
            .count();
        assert!((900..=1100).contains(&under_10pct), "{under_10pct}");
    }
}
