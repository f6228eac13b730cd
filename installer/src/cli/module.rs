//! Shipping the module: `render`, `push`, `deploy`, `remove` and
//! `validate-config`. Every WasmPlugin canaryctl writes is pinned by digest.

use std::path::Path;

use serde_json::{json, Value};

use crate::cli::args::{
    DeployArgs, ModuleArgs, PluginArgs, PushArgs, RemoveArgs, RenderArgs, ValidateArgs,
};
use crate::cli::output::{print, Output};
use crate::cli::route_spec;
use crate::error::{Error, Result};
use crate::kubeops::{DryRun, Kind, Kube, DEPLOY_MANAGER};
use crate::objects::PluginSpec;
use crate::oci::{pinned_digest, Built, ImageRef, Registry};
use crate::pluginconfig;
use crate::rollout::{apply_step, sticky_step};

fn read_wasm(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: "cannot read".into(),
        source: Some(Box::new(e)),
    })?;
    if !bytes.starts_with(b"\0asm") {
        return Err(Error::file(path, "not a WebAssembly module"));
    }
    Ok(bytes)
}

fn registry_auth() -> Option<String> {
    std::env::var("CANARYCTL_REGISTRY_AUTH").ok()
}

/// Where the sidecars get the module and the digest that pins it, as far as
/// it can be known offline.
struct ModuleRef {
    url: String,
    /// `None` only for an OCI tag whose digest the registry must tell.
    sha256: Option<String>,
    /// The image and module to push first (`--image` with `--wasm`).
    push: Option<(ImageRef, Vec<u8>)>,
    /// The tag to resolve to a digest (`--image` alone).
    resolve: Option<ImageRef>,
}

fn module_ref(m: &ModuleArgs) -> Result<ModuleRef> {
    if let Some(s) = &m.sha256 {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::Usage(format!(
                "--sha256 {s:?} must be 64 lowercase hex digits"
            )));
        }
    }
    let wasm = m.wasm.as_deref().map(read_wasm).transpose()?;
    if let Some(image) = &m.image {
        if let Some((_, hex)) = pinned_digest(image) {
            let url = format!("oci://{}", image.trim_start_matches("oci://"));
            return Ok(ModuleRef {
                url,
                sha256: Some(hex.to_string()),
                push: None,
                resolve: None,
            });
        }
        let r: ImageRef = image.parse()?;
        let pull: ImageRef = match &m.pull_image {
            Some(p) => p.parse()?,
            None => r.clone(),
        };
        let url = format!("oci://{pull}");
        return Ok(match (wasm, &m.sha256) {
            (Some(w), _) => {
                let digest = Built::new(&w)?.digest();
                ModuleRef {
                    url,
                    sha256: Some(digest.trim_start_matches("sha256:").to_string()),
                    push: Some((r, w)),
                    resolve: None,
                }
            }
            (None, Some(s)) => ModuleRef {
                url,
                sha256: Some(s.clone()),
                push: None,
                resolve: None,
            },
            (None, None) => ModuleRef {
                url,
                sha256: None,
                push: None,
                resolve: Some(r),
            },
        });
    }
    let sha = match (&wasm, &m.sha256) {
        (Some(w), _) => crate::oci::sha256_hex(w),
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(Error::Usage(
                "--url and --file need --wasm FILE or --sha256 HEX: canaryctl only ships modules pinned by digest".into(),
            ))
        }
    };
    let url = match (&m.url, &m.file) {
        (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => url.clone(),
        (Some(url), _) => {
            return Err(Error::Usage(format!(
                "--url {url:?} must be http:// or https://"
            )))
        }
        (None, Some(file)) => format!("file://{}", file.strip_prefix("file://").unwrap_or(file)),
        (None, None) => {
            return Err(Error::Usage(
                "say where the module comes from: --image, --url or --file".into(),
            ))
        }
    };
    Ok(ModuleRef {
        url,
        sha256: Some(sha),
        push: None,
        resolve: None,
    })
}

fn plugin_spec(
    ns: &str,
    p: &PluginArgs,
    url: String,
    sha256: Option<String>,
    config: Value,
) -> Result<PluginSpec> {
    if !p.selector.is_empty() && !p.target_refs.is_empty() {
        return Err(Error::Usage(
            "use --selector or --target-ref, not both".into(),
        ));
    }
    Ok(PluginSpec {
        name: p.name.name.clone(),
        namespace: ns.to_string(),
        url,
        sha256,
        selector: p.selector.clone(),
        target_refs: p.target_refs.clone(),
        mode: p.mode,
        ports: p.ports.clone(),
        phase: p.phase,
        priority: p.priority,
        fail_strategy: p.fail_strategy,
        pull_policy: p.pull_policy,
        pull_secret: p.pull_secret.clone(),
        env: p.env.clone(),
        plugin_config: config,
    })
}

fn config_of(p: &PluginArgs, live: Option<Value>) -> Result<Value> {
    pluginconfig::for_mode(p.config.as_deref(), live, p.mode.direction())
}

pub fn render(a: &RenderArgs) -> Result<String> {
    let config = config_of(&a.plugin, None)?;
    let cfg = pluginconfig::validate(&config)?;
    let m = module_ref(&a.module)?;
    let Some(sha) = m.sha256 else {
        return Err(Error::Usage(
            "render works offline: give --wasm FILE or --sha256 HEX with --image so the output is pinned by digest".into(),
        ));
    };
    let step = sticky_step(&config) as u32;
    let mut probe = config.clone();
    let weights = apply_step(&mut probe, step, a.route.step_mode)?;
    let plugin = plugin_spec(&a.namespace, &a.plugin, m.url, Some(sha), config)?.render();
    let route = route_spec(&a.namespace, &a.route, &cfg.cohort_header, weights).render();
    let out = match a.output.output {
        Output::Table => Output::Yaml,
        other => other,
    };
    print(out, &[plugin, route], String::new)
}

pub async fn push(a: &PushArgs) -> Result<String> {
    let wasm = read_wasm(&a.wasm)?;
    let image: ImageRef = a.image.parse()?;
    let digest = match a.dry_run.dry_run {
        DryRun::None => {
            Registry::new(
                &image,
                a.plain_http,
                registry_auth().as_deref(),
                a.net.request_timeout,
            )
            .push(&image, &wasm)
            .await?
            .manifest_digest
        }
        DryRun::Client => Built::new(&wasm)?.digest(),
        DryRun::Server => return Err(Error::Usage(
            "push --dry-run=server: a registry has no server-side dry run; use --dry-run=client"
                .into(),
        )),
    };
    let dry = a.dry_run.dry_run.is_dry();
    let pinned = image.pinned(&digest);
    let v = json!({"image": image.to_string(), "digest": digest, "pinned": pinned, "pushed": !dry});
    print(a.output.output, &[v], || {
        if dry {
            format!("would push {image} (dry run: nothing sent)\npinned oci://{pinned}\n")
        } else {
            format!("pushed {image}\npinned oci://{pinned}\n")
        }
    })
}

pub fn validate_config(a: &ValidateArgs) -> Result<String> {
    let c = pluginconfig::validate_file(&a.file, a.format)?;
    Ok(format!(
        "{}: valid ({} cohorts, sticky {} %, gates {})\n",
        a.file.display(),
        c.cohorts.len(),
        f64::from(c.sticky.basis_points) / 100.0,
        if c.gates.is_some() { "on" } else { "off" }
    ))
}

fn live_plugin_config(obj: &kube::api::DynamicObject) -> Option<Value> {
    obj.data.pointer("/spec/pluginConfig").cloned()
}

pub async fn deploy(a: &DeployArgs, kube: &Kube) -> Result<String> {
    // Everything that can be checked locally is checked before anything is sent.
    if a.plugin.config.is_some() {
        config_of(&a.plugin, None)?;
    }
    let m = module_ref(&a.module)?;
    plugin_spec(&kube.namespace, &a.plugin, m.url.clone(), None, json!({}))?;
    let live = kube.get(Kind::WasmPlugin, &a.plugin.name.name).await?;
    let config = config_of(&a.plugin, live.as_ref().and_then(live_plugin_config))?;
    let registry = |image: &ImageRef| {
        Registry::new(
            image,
            a.module.plain_http,
            registry_auth().as_deref(),
            a.change.net.request_timeout,
        )
    };
    let mut lines = String::new();
    let mut sha = m.sha256;
    if let Some((image, wasm)) = &m.push {
        let digest = format!("sha256:{}", sha.clone().unwrap_or_default());
        if kube.dry_run.is_dry() {
            lines = format!(
                "would push oci://{} (dry run: nothing sent)\n",
                image.pinned(&digest)
            );
        } else {
            let pushed = registry(image).push(image, wasm).await?;
            lines = format!("pushed oci://{}\n", image.pinned(&pushed.manifest_digest));
        }
    }
    if let Some(image) = &m.resolve {
        let digest = registry(image).digest_of(image).await?;
        lines = format!("pinned oci://{}\n", image.pinned(&digest));
        sha = Some(digest.trim_start_matches("sha256:").to_string());
    }
    let obj = plugin_spec(&kube.namespace, &a.plugin, m.url, sha, config)?.render();
    let applied = kube
        .apply(
            Kind::WasmPlugin,
            &a.plugin.name.name,
            &obj,
            DEPLOY_MANAGER,
            a.force_conflicts,
        )
        .await?;
    let what = format!("WasmPlugin {}/{}", kube.namespace, a.plugin.name.name);
    let done = match applied {
        Some(o) => format!(
            "{what} applied, generation {}{}",
            o.metadata.generation.unwrap_or_default(),
            kube.dry_run.note()
        ),
        None => format!("{what} would be applied{}", kube.dry_run.note()),
    };
    print(a.change.output.output, &[obj], || {
        format!("{lines}{done}\n")
    })
}

pub async fn remove(a: &RemoveArgs, kube: &Kube) -> Result<String> {
    let name = &a.name.name;
    let deleted = kube.delete_ours(Kind::WasmPlugin, name).await?;
    let what = format!("WasmPlugin {}/{name}", kube.namespace);
    Ok(match (deleted, kube.dry_run.is_dry()) {
        (false, _) => format!("{what} not found: nothing to remove\n"),
        (true, true) => format!("{what} would be deleted{}\n", kube.dry_run.note()),
        (true, false) => format!("{what} deleted\n"),
    })
}
