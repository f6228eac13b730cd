//! A throwaway CA with server and client certificates, as Istio's mTLS would
//! give: the client's identity is a SPIFFE id in its URI SAN.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

pub struct Pki {
    pub ca_pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "canary test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki {
            ca_pem: issuer.pem(),
            issuer,
        }
    }

    /// A certificate for `localhost` with an optional SPIFFE URI SAN.
    pub fn leaf(&self, spiffe: Option<&str>) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        if let Some(id) = spiffe {
            params
                .subject_alt_names
                .push(SanType::URI(id.try_into().unwrap()));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "canary test");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}
