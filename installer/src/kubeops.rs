//! The Kubernetes side: server-side apply of Istio objects as
//! `DynamicObject`s, reads, a guarded delete, pod listing and the pod proxy
//! to a sidecar's Prometheus port. Every kube error becomes one clear line.
//! Writes follow `--dry-run`: `server` sends them with `dryRun=All`, `client`
//! does not send them at all (reads still happen: what would change depends
//! on what is live).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, ValidationDirective,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::objects::{MANAGED_BY, VIRTUALSERVICE_CRD, WASMPLUGIN_CRD};

/// The field manager of `deploy`: the module, selector, match, phase, ...
pub const DEPLOY_MANAGER: &str = "canaryctl";
/// The field manager of `set`/`promote`/`rollback`: pluginConfig and weights.
pub const ROLLOUT_MANAGER: &str = "canaryctl-rollout";
/// Envoy's Prometheus endpoint in an Istio sidecar.
pub const SIDECAR_STATS_PORT: u16 = 15090;

/// An Istio kind canaryctl manages.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    WasmPlugin,
    VirtualService,
}

impl Kind {
    fn resource(self) -> ApiResource {
        match self {
            Kind::WasmPlugin => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("extensions.istio.io", "v1alpha1", "WasmPlugin"),
                "wasmplugins",
            ),
            Kind::VirtualService => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
                "virtualservices",
            ),
        }
    }

    pub fn crd(self) -> &'static str {
        match self {
            Kind::WasmPlugin => WASMPLUGIN_CRD,
            Kind::VirtualService => VIRTUALSERVICE_CRD,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::WasmPlugin => "WasmPlugin",
            Kind::VirtualService => "VirtualService",
        }
    }
}

/// kubectl's `--dry-run` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    /// Make the change.
    #[default]
    None,
    /// Send nothing that changes anything; print what would be sent.
    Client,
    /// Send the change with dryRun=All: the API server validates, stores nothing.
    Server,
}

impl DryRun {
    pub fn is_dry(self) -> bool {
        self != DryRun::None
    }

    /// What to append to a "done" line.
    pub fn note(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run: nothing sent)",
            DryRun::Server => " (server dry run: nothing stored)",
        }
    }
}

pub struct Kube {
    pub client: Client,
    pub namespace: String,
    pub dry_run: DryRun,
    /// The API server's URL, for messages.
    pub server: String,
    /// The per-request timeout the client was built with, for messages.
    pub timeout: Duration,
}

impl Kube {
    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.resource())
    }

    fn err(&self, kind: Kind, name: &str) -> impl Fn(kube::Error) -> Error + '_ {
        let name = name.to_string();
        move |e| self.map_err(e, kind.crd(), kind.name(), &name)
    }

    fn map_err(&self, e: kube::Error, crd: &str, kind: &str, name: &str) -> Error {
        Error::from_kube(
            e,
            &self.server,
            self.timeout,
            crd,
            kind,
            &self.namespace,
            name,
        )
    }

    /// Server-side apply of `obj` under `manager`. `force` takes over fields
    /// other managers own; without it the API server answers 409 on conflict.
    /// `None` for a client dry run, which sends nothing.
    pub async fn apply(
        &self,
        kind: Kind,
        name: &str,
        obj: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Option<DynamicObject>> {
        tracing::debug!(kind = kind.name(), name, manager, force, dry_run = ?self.dry_run, "server-side apply");
        if self.dry_run == DryRun::Client {
            return Ok(None);
        }
        let mut pp = PatchParams::apply(manager);
        pp.force = force;
        pp.dry_run = self.dry_run == DryRun::Server;
        pp.field_validation = Some(ValidationDirective::Strict);
        self.api(kind)
            .patch(name, &pp, &Patch::Apply(obj))
            .await
            .map(Some)
            .map_err(self.err(kind, name))
    }

    /// The object, or `None` when it does not exist (a missing CRD is an error).
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<DynamicObject>> {
        match self.api(kind).get(name).await.map_err(self.err(kind, name)) {
            Ok(o) => Ok(Some(o)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object, or a not-found error naming it.
    pub async fn get_existing(&self, kind: Kind, name: &str) -> Result<DynamicObject> {
        self.get(kind, name).await?.ok_or_else(|| Error::NotFound {
            kind: kind.name().into(),
            namespace: self.namespace.clone(),
            name: name.into(),
        })
    }

    /// Deletes an object canaryctl created, refusing anything else.
    pub async fn delete_ours(&self, kind: Kind, name: &str) -> Result<bool> {
        let Some(obj) = self.get(kind, name).await? else {
            return Ok(false);
        };
        let ours = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .map(String::as_str)
            == Some(MANAGED_BY);
        if !ours {
            return Err(Error::NotOurs {
                kind: kind.name().into(),
                namespace: self.namespace.clone(),
                name: name.into(),
            });
        }
        if self.dry_run == DryRun::Client {
            return Ok(true);
        }
        let dp = DeleteParams {
            dry_run: self.dry_run == DryRun::Server,
            ..DeleteParams::default()
        };
        self.api(kind)
            .delete(name, &dp)
            .await
            .map_err(self.err(kind, name))?;
        Ok(true)
    }

    /// Pods matching a label selector such as `app=productpage`.
    pub async fn pods(&self, selector: &str) -> Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels(selector);
        api.list(&lp)
            .await
            .map(|l| l.items)
            .map_err(|e| self.map_err(e, "pods", "Pod", selector))
    }

    /// A sidecar's `/stats/prometheus`, through the API server's pod proxy.
    pub async fn sidecar_stats(&self, pod: &str) -> Result<String> {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{pod}:{SIDECAR_STATS_PORT}/proxy/stats/prometheus",
            self.namespace
        );
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| Error::Usage(format!("pod name {pod:?}: {e}")))?;
        self.client
            .request_text(req)
            .await
            .map_err(|e| self.map_err(e, "pods", "Pod", pod))
    }
}
