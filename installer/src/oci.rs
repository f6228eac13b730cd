//! Pushing the module to an OCI registry in the form Istio's fetcher accepts:
//! the "compat" variant, a Docker schema2 image whose single tar+gzip layer
//! holds `plugin.wasm`. The layer is built deterministically (fixed mtime,
//! owner and mode), so the same module always has the same digest.
//!
//! The distribution protocol (uploads, token and basic auth, manifests) is
//! oci-client's. Its blob and raw-manifest calls send our bytes unchanged,
//! which its own image builder would not: it writes an OCI manifest of its
//! own shape, and the digest `render` computes offline must be the one pushed.

use std::future::Future;
use std::io::{Read, Write};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// `registry/repository:tag`, with or without `oci://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: &str| {
            Error::Usage(format!(
                "image {s:?}: {m} (expected registry/repository:tag)"
            ))
        };
        let rest = s.strip_prefix("oci://").unwrap_or(s);
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("no registry"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad("the first part must be a registry host"));
        }
        if path.contains('@') {
            return Err(bad("push by tag, not by digest"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (path, "latest"),
        };
        let valid = |p: &str| {
            !p.is_empty()
                && p.split('/').all(|c| {
                    !c.is_empty()
                        && c.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                        })
                })
        };
        if !valid(repository) {
            return Err(bad("invalid repository name"));
        }
        if tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad("invalid tag"));
        }
        Ok(ImageRef {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
        })
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// `registry/repository@sha256:<hex>` split into the reference and the hex
/// digest, or `None` when `s` is not pinned.
pub fn pinned_digest(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("oci://").unwrap_or(s);
    let (name, hex) = rest.split_once("@sha256:")?;
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some((name, hex))
}

impl ImageRef {
    /// The reference pinned by manifest digest.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

/// The layer: a tar with `plugin.wasm` alone, gzipped. Returns (layer, tar digest).
pub fn layer(wasm: &[u8]) -> Result<(Vec<u8>, String)> {
    let io = Error::Layer;
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("plugin.wasm").map_err(io)?;
    h.set_size(wasm.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    tar.append(&h, wasm).map_err(io)?;
    let tar = tar.into_inner().map_err(io)?;
    let diff_id = digest(&tar);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).map_err(io)?;
    Ok((gz.finish().map_err(io)?, diff_id))
}

/// The image for a module, built offline: config, layer and manifest bytes.
/// Deterministic, so `render` can print the digest a later push will have.
#[derive(Debug, Clone)]
pub struct Built {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl Built {
    pub fn new(wasm: &[u8]) -> Result<Built> {
        let (layer, diff_id) = layer(wasm)?;
        // Serializing a `Value` cannot fail (string keys only).
        let ser = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
        let config = ser(json!({
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }));
        let manifest = ser(json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": config.len(), "digest": digest(&config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": layer.len(), "digest": digest(&layer)}],
        }));
        Ok(Built {
            config,
            layer,
            manifest,
        })
    }

    /// `sha256:<hex>` of the manifest.
    pub fn digest(&self) -> String {
        digest(&self.manifest)
    }
}

/// What a push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub image: ImageRef,
    /// `sha256:<hex>` of the manifest: what a WasmPlugin's `sha256` pins.
    pub manifest_digest: String,
}

/// An image as Istio's fetcher would see it.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub layer_media_type: String,
    pub wasm: Vec<u8>,
}

/// A registry, spoken to through oci-client (distribution protocol, token
/// and basic auth). Only the bytes are ours: [`Built`] makes them so the
/// digest is known offline.
pub struct Registry {
    client: oci_client::Client,
    auth: RegistryAuth,
    name: String,
    timeout: Duration,
}

impl Registry {
    /// `plain_http` for local registries without TLS; `basic` as `user:password`.
    /// Every call ends within `timeout`.
    pub fn new(
        image: &ImageRef,
        plain_http: bool,
        basic: Option<&str>,
        timeout: Duration,
    ) -> Registry {
        let config = ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(crate::http::connect_timeout(timeout)),
            read_timeout: Some(timeout),
            ..ClientConfig::default()
        };
        let auth = match basic.and_then(|b| b.split_once(':')) {
            Some((user, password)) => RegistryAuth::Basic(user.into(), password.into()),
            None => RegistryAuth::Anonymous,
        };
        Registry {
            client: oci_client::Client::new(config),
            auth,
            name: image.registry.clone(),
            timeout,
        }
    }

    fn reference(image: &ImageRef) -> Reference {
        Reference::with_tag(
            image.registry.clone(),
            image.repository.clone(),
            image.tag.clone(),
        )
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.name.clone(),
            message: message.into(),
            source: None,
        }
    }

    /// Runs one registry operation under the deadline and names the failure.
    async fn call<T>(
        &self,
        what: &str,
        op: impl Future<Output = std::result::Result<T, OciDistributionError>>,
    ) -> Result<T> {
        let outcome = tokio::time::timeout(self.timeout, op).await;
        let e = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Err(_) => {
                return Err(Error::RegistryTimeout {
                    registry: self.name.clone(),
                    after: self.timeout,
                })
            }
            Ok(Err(e)) => e,
        };
        let chain = crate::error::report(&e);
        Err(if crate::error::is_timeout(&e) {
            Error::RegistryTimeout {
                registry: self.name.clone(),
                after: self.timeout,
            }
        } else if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
            Error::RegistryPlainHttp {
                registry: self.name.clone(),
            }
        } else {
            let message = match &e {
                OciDistributionError::RequestError(r) if r.is_connect() => {
                    "cannot connect: check the address and that the registry is running".into()
                }
                OciDistributionError::UnauthorizedError { .. }
                | OciDistributionError::AuthenticationFailure(_) => {
                    format!("{what} failed (set CANARYCTL_REGISTRY_AUTH=user:password)")
                }
                _ => format!("{what} failed"),
            };
            Error::Registry {
                registry: self.name.clone(),
                message,
                source: Some(e),
            }
        })
    }

    /// Pushes `wasm` as `image`: config and layer blobs, then the manifest,
    /// each exactly as [`Built`] made it.
    pub async fn push(&self, image: &ImageRef, wasm: &[u8]) -> Result<Pushed> {
        let built = Built::new(wasm)?;
        tracing::debug!(%image, digest = %built.digest(), layer_bytes = built.layer.len(), "pushing");
        let r = Self::reference(image);
        self.call(
            "authenticating",
            self.client.auth(&r, &self.auth, RegistryOperation::Push),
        )
        .await?;
        for (what, blob) in [("config", &built.config), ("layer", &built.layer)] {
            self.call(
                &format!("uploading the {what} blob"),
                self.client.push_blob(&r, blob, &digest(blob)),
            )
            .await?;
        }
        let content_type = http::HeaderValue::from_static(MANIFEST_TYPE);
        self.call(
            "putting the manifest",
            self.client
                .push_manifest_raw(&r, built.manifest.clone(), content_type),
        )
        .await?;
        let manifest_digest = built.digest();
        let stored = self.digest_of(image).await?;
        if stored != manifest_digest {
            return Err(self.err(format!(
                "stored digest {stored}, expected {manifest_digest}"
            )));
        }
        Ok(Pushed {
            image: image.clone(),
            manifest_digest,
        })
    }

    /// The manifest digest the registry serves for `image`'s tag (what a
    /// deploy pins when it is given a tag and no module).
    pub async fn digest_of(&self, image: &ImageRef) -> Result<String> {
        let r = Self::reference(image);
        self.call(
            "authenticating",
            self.client.auth(&r, &self.auth, RegistryOperation::Pull),
        )
        .await?;
        self.call(
            &format!("resolving the digest of {image}"),
            self.client.fetch_manifest_digest(&r, &self.auth),
        )
        .await
    }

    /// Pulls an image back the way Istio's fetcher does, for verification.
    pub async fn pull(&self, image: &ImageRef) -> Result<Pulled> {
        let r = Self::reference(image);
        let (body, manifest_digest) = self
            .call(
                "pulling the manifest",
                self.client
                    .pull_manifest_raw(&r, &self.auth, &[MANIFEST_TYPE]),
            )
            .await?;
        let manifest: Value = serde_json::from_slice(&body)
            .map_err(|e| self.err(format!("the manifest is not JSON: {e}")))?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let [layer] = layers.as_slice() else {
            return Err(self.err(format!(
                "{} layers; the compat variant has exactly one",
                layers.len()
            )));
        };
        let ld = layer["digest"].as_str().unwrap_or_default().to_string();
        let mut blob: Vec<u8> = vec![];
        self.call(
            "pulling the layer",
            self.client.pull_blob(&r, ld.as_str(), &mut blob),
        )
        .await?;
        if digest(&blob) != ld {
            return Err(self.err("layer blob corrupt"));
        }
        Ok(Pulled {
            manifest_digest,
            manifest_media_type: manifest["mediaType"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            layer_media_type: layer["mediaType"].as_str().unwrap_or_default().to_string(),
            wasm: plugin_wasm(&blob).map_err(|m| self.err(m))?,
        })
    }
}

/// `plugin.wasm` out of a tar+gzip layer.
fn plugin_wasm(layer: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let bad = |e: std::io::Error| format!("layer: {e}");
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if path.trim_start_matches("./") == "plugin.wasm" {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(bad)?;
            return Ok(buf);
        }
    }
    Err("no plugin.wasm in the layer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_parse_with_a_registry_and_a_tag() {
        let r: ImageRef = "oci://localhost:5000/canary/filter:v1".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("localhost:5000", "canary/filter", "v1")
        );
        let r: ImageRef = "ghcr.io/acme/canary".parse().unwrap();
        assert_eq!(r.tag, "latest");
        assert_eq!(r.pinned("sha256:ab"), "ghcr.io/acme/canary@sha256:ab");
        for bad in [
            "canary:v1",
            "localhost:5000/",
            "localhost:5000/Canary:v1",
            "ghcr.io/a@sha256:00",
            "ghcr.io/a:t t",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_layer_is_deterministic_and_holds_plugin_wasm() {
        let (a, da) = layer(b"\0asm module").unwrap();
        let (b, db) = layer(b"\0asm module").unwrap();
        assert_eq!((a.clone(), da), (b, db));
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
        let mut names = vec![];
        for e in tar.entries().unwrap() {
            let e = e.unwrap();
            names.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().mode().unwrap(),
            ));
        }
        assert_eq!(names, vec![("plugin.wasm".to_string(), 0o644)]);
    }
}
