//! JWT claims as `jwt_authn` leaves them: after it verified a token it stores
//! the payload in dynamic metadata (`payload_in_metadata: payload`, which
//! Istio sets for every provider), and the filter reads one claim at a time
//! through the attribute path
//! `metadata.filter_metadata."envoy.filters.http.jwt_authn".payload.<claim>…`.
//! No token, or a refused one, leaves no metadata: the read gives nothing and
//! no claim rule matches.
//!
//! Attribute bytes carry no type, so a value is interpreted by what the rule
//! asks: strings arrive raw, numbers as f64 little-endian, booleans as one
//! byte, arrays (and `scope`-style claims Envoy splits on spaces) as pairs.

use super::pairs::Pairs;
pub use super::path::{ClaimPath, PathError, MAX_DEPTH, PAYLOAD_PATH};
use crate::config::cohorts::Test;

/// Applies a rule's test to a claim's attribute bytes (`None` = no verified
/// token, or no such claim).
///
/// - `exact`: the raw string; for an 8-byte value also the number it encodes
///   (`"42"` matches 42.0; whole numbers only), for a 1-byte value the
///   boolean (`"true"`).
/// - `contains`: an element of an array claim, or a word of a space-delimited
///   string claim (`scope: "read write"` contains `write`).
/// - `prefix`: the raw string starts with it; `present`: any value.
pub fn test(t: &Test, value: Option<&[u8]>) -> bool {
    let Some(v) = value else { return false };
    match t {
        Test::Present => true,
        Test::Prefix(p) => v.starts_with(p),
        Test::Exact(want) => v == want.as_slice() || typed_eq(v, want),
        Test::Contains(item) => match Pairs::parse(v) {
            Some(list) => list.iter().any(|(k, _)| k == item.as_slice()),
            None => t.holds(Some(v)),
        },
    }
}

/// A number or boolean claim against the rule's text.
fn typed_eq(v: &[u8], want: &[u8]) -> bool {
    match v.len() {
        8 => {
            let Ok(raw) = <[u8; 8]>::try_from(v) else {
                return false;
            };
            // Whole numbers only: parsing decimal text into a float links
            // float code the module otherwise does without (about 18 KB).
            let n = f64::from_le_bytes(raw);
            std::str::from_utf8(want)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|w| w as f64 == n)
        }
        1 => matches!((v[0], want), (1, b"true") | (0, b"false")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::super::pairs::encode;
    use super::*;

    fn exact(s: &str) -> Test {
        Test::Exact(s.as_bytes().to_vec())
    }

    fn contains(s: &str) -> Test {
        Test::Contains(s.as_bytes().to_vec())
    }

    #[test]
    fn dotted_paths_become_segments_and_bad_ones_are_refused() {
        assert_eq!(
            ClaimPath::dotted("tenant.tier").unwrap().parts(),
            ["tenant", "tier"]
        );
        assert_eq!(ClaimPath::dotted("sub").unwrap().parts(), ["sub"]);
        for bad in ["", ".", "a.", ".a", "a..b", "a.b.c.d.e.f.g.h.i", "a\nb"] {
            assert!(ClaimPath::dotted(bad).is_err(), "{bad:?}");
        }
        let url = ClaimPath::segments(vec!["https://example.com/roles".into()]).unwrap();
        assert_eq!(url.parts().len(), 1);
        assert!(ClaimPath::segments(vec![]).is_err());
        assert!(ClaimPath::segments(vec!["x".repeat(300)]).is_err());
    }

    #[test]
    fn the_attribute_path_is_the_payload_path_then_the_claim() {
        let got = ClaimPath::dotted("tenant.tier")
            .unwrap()
            .with_attribute(|p| p.join("/"));
        assert_eq!(
            got,
            "metadata/filter_metadata/envoy.filters.http.jwt_authn/payload/tenant/tier"
        );
        let deepest = ClaimPath::dotted("a.b.c.d.e.f.g.h").unwrap();
        assert_eq!(deepest.with_attribute(|p| p.len()), 12);
    }

    #[test]
    fn string_claims_match_exactly_by_prefix_and_by_word() {
        assert!(super::test(&exact("user-42"), Some(b"user-42")));
        assert!(!super::test(&exact("user-42"), Some(b"user-4")));
        assert!(super::test(
            &Test::Prefix(b"user-".to_vec()),
            Some(b"user-42")
        ));
        assert!(super::test(&contains("write"), Some(b"read write")));
        assert!(super::test(&contains("read"), Some(b"  read\twrite ")));
        assert!(!super::test(&contains("writ"), Some(b"read write")));
        assert!(super::test(&Test::Present, Some(b"x")));
    }

    #[test]
    fn array_claims_match_by_element() {
        let groups = encode([(&b"staff"[..], &b""[..]), (b"beta-testers", b"")]);
        assert!(super::test(&contains("beta-testers"), Some(&groups)));
        assert!(super::test(&contains("staff"), Some(&groups)));
        assert!(!super::test(&contains("beta"), Some(&groups)));
        assert!(!super::test(&contains("beta-testers staff"), Some(&groups)));
        // A scope Envoy split on spaces arrives as a list too.
        let scope = encode([(&b"read"[..], &b""[..]), (b"write", b"")]);
        assert!(super::test(&contains("write"), Some(&scope)));
        assert!(!super::test(&exact("beta-testers"), Some(&groups)));
    }

    #[test]
    fn number_and_boolean_claims_match_their_text() {
        let n = 42.0f64.to_le_bytes();
        assert!(super::test(&exact("42"), Some(&n)));
        assert!(!super::test(&exact("42.0"), Some(&n)), "whole numbers only");
        assert!(super::test(&exact("-3"), Some(&(-3.0f64).to_le_bytes())));
        assert!(!super::test(&exact("43"), Some(&n)));
        assert!(!super::test(&exact("forty-two"), Some(&n)));
        assert!(super::test(&exact("true"), Some(&[1])));
        assert!(super::test(&exact("false"), Some(&[0])));
        assert!(!super::test(&exact("true"), Some(&[0])));
        assert!(!super::test(&exact("1"), Some(&[1])));
    }

    #[test]
    fn no_verified_token_matches_nothing() {
        for t in [
            exact("x"),
            contains("x"),
            Test::Present,
            Test::Prefix(vec![]),
        ] {
            assert!(!super::test(&t, None));
        }
    }
}
