//! Tokens for the identity tests: an HS256 key set the test generates, JWTs
//! signed with it, and the Envoy `jwt_authn` filter that verifies them the
//! way Istio renders a RequestAuthentication (provider `origins-0`, payload
//! in dynamic metadata under `payload`, a missing token allowed, a bad one
//! refused with 401).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

pub const ISSUER: &str = "https://issuer.canary.test";
pub const PROVIDER: &str = "origins-0";

/// An HMAC-SHA256 signing key and the JWKS that publishes it.
pub struct Issuer {
    secret: Vec<u8>,
}

impl Default for Issuer {
    fn default() -> Self {
        Issuer::new()
    }
}

impl Issuer {
    /// A fresh random key (so no two test runs share one).
    pub fn new() -> Issuer {
        let mut secret = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).unwrap();
        Issuer { secret }
    }

    /// The key set as Envoy reads it: `{"kty": "oct", "k": <base64url>}`.
    pub fn jwks(&self) -> String {
        json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "test", "k": URL_SAFE_NO_PAD.encode(&self.secret)}]})
            .to_string()
    }

    /// A token carrying `claims`, plus `iss` and an `exp` an hour ahead
    /// unless the claims set them.
    pub fn token(&self, claims: Value) -> String {
        let mut payload = json!({"iss": ISSUER, "exp": now() + 3600});
        crate::sidecar::merge(&mut payload, &claims);
        self.sign(&payload)
    }

    /// Signs `payload` as it is.
    pub fn sign(&self, payload: &Value) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": "test"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        let sig = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// The `jwt_authn` HTTP filter verifying this issuer's tokens.
    pub fn filter(&self) -> Value {
        json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    PROVIDER: {
                        "issuer": ISSUER,
                        "local_jwks": {"inline_string": self.jwks()},
                        "payload_in_metadata": "payload",
                        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope", "permission"]},
                        // 0 would mean the default (60 s): one second of skew.
                        "clock_skew_seconds": 1,
                    }
                },
                "rules": [{
                    "match": {"prefix": "/"},
                    "requires": {"requires_any": {"requirements": [
                        {"provider_name": PROVIDER},
                        {"allow_missing": {}},
                    ]}},
                }],
            }
        })
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
