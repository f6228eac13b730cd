//! Every Envoy configuration the project ships or renders passes
//! `envoy --mode validate`.

use canary_e2e::envoy::validate;
use canary_e2e::paths::repo_root;
use canary_e2e::sidecar::{Probe, Tls};
use canary_e2e::{FilterSpec, Sidecar};

fn check(name: &str, s: &Sidecar) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.json");
    std::fs::write(&path, s.render(dir.path()).to_string()).unwrap();
    if let Err(e) = validate(&path) {
        panic!("{name} does not validate:\n{e}");
    }
}

#[test]
fn every_rendered_sidecar_configuration_validates() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let up = [("v1", addr), ("v2", addr), ("v3", addr)];
    let w = [("v1", 80), ("v2", 20)];
    for (name, filter) in [
        ("inline canary", FilterSpec::Canary(String::new())),
        ("ECDS canary", FilterSpec::CanaryEcds(String::new())),
        ("no-op wasm", FilterSpec::Noop),
        (
            "no-op wasm, floor probe",
            FilterSpec::NoopProbe(Probe::Floor),
        ),
        (
            "no-op wasm, floor-rest probe",
            FilterSpec::NoopProbe(Probe::FloorRest),
        ),
        ("lua", FilterSpec::Lua),
        ("bare", FilterSpec::None),
    ] {
        check(name, &Sidecar::outbound(filter.clone(), &up, &w));
        check(name, &Sidecar::inbound(filter, addr, "v2"));
    }
    let pki = canary_e2e::certs::Pki::new();
    let leaf = pki.leaf(None);
    let mut tls = Sidecar::outbound(FilterSpec::Canary(String::new()), &up, &w);
    tls.tls = Some(Tls {
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
        client_ca_pem: pki.ca_pem.clone(),
    });
    tls.http2_upstream = true;
    check("mTLS + h2 upstream", &tls);
}

#[test]
fn every_shipped_envoy_configuration_validates() {
    let files =
        canary_e2e::paths::files_under(&repo_root().join("manifests/envoy"), &["yaml", "json"]);
    assert!(!files.is_empty());
    // Shipped examples name the module relative to the repository root.
    std::env::set_current_dir(repo_root()).unwrap();
    for f in files {
        if let Err(e) = validate(&f) {
            panic!("{} does not validate:\n{e}", f.display());
        }
    }
}
