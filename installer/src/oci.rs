//! Pushing the module to an OCI registry in the form Istio's fetcher accepts:
//! the "compat" variant, a Docker schema2 image whose single tar+gzip layer
//! holds `plugin.wasm`. The layer is built deterministically (fixed mtime,
//! owner and mode), so the same module always has the same digest.

use std::io::{Read, Write};

use http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::http::{Http, Response};

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

impl ImageRef {
    /// The reference pinned by manifest digest.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

/// The layer: a tar with `plugin.wasm` alone, gzipped. Returns (layer, tar digest).
pub fn layer(wasm: &[u8]) -> Result<(Vec<u8>, String)> {
    let io = |e: std::io::Error| Error::Usage(format!("building the image layer: {e}"));
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
        let ser = |v: Value| serde_json::to_vec(&v).map_err(|e| Error::Usage(e.to_string()));
        let config = ser(json!({
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))?;
        let manifest = ser(json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": config.len(), "digest": digest(&config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": layer.len(), "digest": digest(&layer)}],
        }))?;
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

impl Pushed {
    /// The manifest digest without the `sha256:` prefix, as WasmPlugin `sha256` takes it.
    pub fn sha256(&self) -> &str {
        self.manifest_digest.trim_start_matches("sha256:")
    }
}

/// A registry session: base URL and an optional bearer token it handed out.
pub struct Registry<'a> {
    http: &'a Http,
    base: String,
    name: String,
    basic: Option<String>,
    token: Option<String>,
}

impl<'a> Registry<'a> {
    /// `plain_http` for local registries without TLS; `basic` as `user:password`.
    pub fn new(
        http: &'a Http,
        image: &ImageRef,
        plain_http: bool,
        basic: Option<&str>,
    ) -> Registry<'a> {
        let scheme = if plain_http { "http" } else { "https" };
        Registry {
            http,
            base: format!("{scheme}://{}", image.registry),
            name: image.registry.clone(),
            basic: basic.map(|b| {
                use base64_lite::encode;
                encode(b.as_bytes())
            }),
            token: None,
        }
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.name.clone(),
            message: message.into(),
        }
    }

    async fn call(
        &mut self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        for attempt in 0..2 {
            let auth = match (&self.token, &self.basic) {
                (Some(t), _) => Some(format!("Bearer {t}")),
                (None, Some(b)) => Some(format!("Basic {b}")),
                _ => None,
            };
            let mut h: Vec<(&str, &str)> = headers.to_vec();
            if let Some(a) = &auth {
                h.push(("authorization", a));
            }
            let r = self
                .http
                .send(method.clone(), &url, &h, body.to_vec())
                .await?;
            if r.status == 401 && attempt == 0 {
                if let Some(challenge) = r.header("www-authenticate").map(str::to_string) {
                    if challenge.to_ascii_lowercase().starts_with("bearer ") {
                        self.token = Some(self.fetch_token(&challenge).await?);
                        continue;
                    }
                }
                return Err(
                    self.err("401 unauthorized (set CANARYCTL_REGISTRY_AUTH=user:password)")
                );
            }
            return Ok(r);
        }
        Err(self.err("authentication failed"))
    }

    /// The token flow of the distribution spec: realm, service and scope from
    /// the challenge, basic credentials if any.
    async fn fetch_token(&self, challenge: &str) -> Result<String> {
        let params: Vec<(String, String)> = challenge[7..]
            .split(',')
            .filter_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm = get("realm").ok_or_else(|| self.err("bearer challenge without realm"))?;
        let mut url = format!("{realm}?");
        for k in ["service", "scope"] {
            if let Some(v) = get(k) {
                url.push_str(&format!("{k}={}&", urlencoding::encode(&v)));
            }
        }
        let auth = self.basic.as_ref().map(|b| format!("Basic {b}"));
        let h: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = self.http.get(&url, &h).await?;
        if r.status != 200 {
            return Err(self.err(format!("token endpoint answered {}", r.status)));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| self.err(format!("token response: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.err("token response without a token"))
    }

    async fn put_blob(&mut self, repo: &str, blob: &[u8]) -> Result<String> {
        let d = digest(blob);
        let head = self
            .call(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"), &[], &[])
            .await?;
        if head.status == 200 {
            return Ok(d);
        }
        let start = self
            .call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                &[],
            )
            .await?;
        if start.status != 202 {
            return Err(self.err(format!(
                "starting an upload answered {}: {}",
                start.status,
                start.text()
            )));
        }
        let location = start
            .header("location")
            .ok_or_else(|| self.err("upload without a Location"))?
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", urlencoding::encode(&d));
        let len = blob.len().to_string();
        let put = self
            .call(
                Method::PUT,
                &url,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-length", &len),
                ],
                blob,
            )
            .await?;
        if put.status != 201 {
            return Err(self.err(format!(
                "uploading {d} answered {}: {}",
                put.status,
                put.text()
            )));
        }
        Ok(d)
    }

    /// Pushes `wasm` as `image` and returns the manifest digest.
    pub async fn push(&mut self, image: &ImageRef, wasm: &[u8]) -> Result<Pushed> {
        let built = Built::new(wasm)?;
        let repo = image.repository.clone();
        self.put_blob(&repo, &built.config).await?;
        self.put_blob(&repo, &built.layer).await?;
        let r = self
            .call(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{}", image.tag),
                &[("content-type", MANIFEST_TYPE)],
                &built.manifest,
            )
            .await?;
        if r.status != 201 {
            return Err(self.err(format!(
                "putting the manifest answered {}: {}",
                r.status,
                r.text()
            )));
        }
        let manifest_digest = built.digest();
        if let Some(server) = r.header("docker-content-digest") {
            if server != manifest_digest {
                return Err(self.err(format!(
                    "registry stored digest {server}, expected {manifest_digest}"
                )));
            }
        }
        Ok(Pushed {
            image: image.clone(),
            manifest_digest,
        })
    }

    /// Pulls an image back the way Istio's fetcher does, for verification.
    pub async fn pull(&mut self, image: &ImageRef) -> Result<Pulled> {
        let repo = image.repository.clone();
        let m = self
            .call(
                Method::GET,
                &format!("/v2/{repo}/manifests/{}", image.tag),
                &[("accept", MANIFEST_TYPE)],
                &[],
            )
            .await?;
        if m.status != 200 {
            return Err(self.err(format!("manifest answered {}", m.status)));
        }
        let manifest: Value =
            serde_json::from_slice(&m.body).map_err(|e| self.err(format!("manifest: {e}")))?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let [layer] = layers.as_slice() else {
            return Err(self.err(format!(
                "{} layers; the compat variant has exactly one",
                layers.len()
            )));
        };
        let media_type = layer["mediaType"].as_str().unwrap_or_default().to_string();
        let ld = layer["digest"].as_str().unwrap_or_default().to_string();
        let blob = self
            .call(Method::GET, &format!("/v2/{repo}/blobs/{ld}"), &[], &[])
            .await?;
        if blob.status != 200 || digest(&blob.body) != ld {
            return Err(self.err("layer blob missing or corrupt"));
        }
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob.body[..]));
        let mut wasm = None;
        let entries = tar.entries().map_err(|e| self.err(format!("layer: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.err(format!("layer: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| self.err(format!("layer: {e}")))?
                .to_string_lossy()
                .into_owned();
            if path.trim_start_matches("./") == "plugin.wasm" {
                let mut buf = Vec::new();
                entry
                    .read_to_end(&mut buf)
                    .map_err(|e| self.err(format!("layer: {e}")))?;
                wasm = Some(buf);
            }
        }
        Ok(Pulled {
            manifest_digest: digest(&m.body),
            manifest_media_type: manifest["mediaType"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            layer_media_type: media_type,
            wasm: wasm.ok_or_else(|| self.err("no plugin.wasm in the layer"))?,
        })
    }
}

/// An image as Istio's fetcher would see it.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub layer_media_type: String,
    pub wasm: Vec<u8>,
}

/// Base64 for basic auth, without another dependency.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn basic_credentials_are_base64_encoded() {
            assert_eq!(super::encode(b"user:pass"), "dXNlcjpwYXNz");
            assert_eq!(super::encode(b"a"), "YQ==");
            assert_eq!(super::encode(b"ab"), "YWI=");
            assert_eq!(super::encode(b""), "");
        }
    }
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
