//! The pluginConfig as canaryctl handles it: validated with the filter's own
//! config code (`canary-core`, compiled natively) exactly as Istio will
//! deliver it, as JSON text, before anything is sent anywhere.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::input::{read_value, Format};

/// Validates a pluginConfig value.
pub fn validate(v: &Value) -> Result<canary_core::Config> {
    // Serializing a `Value` cannot fail (string keys only).
    let text = serde_json::to_vec(v).unwrap_or_default();
    Ok(canary_core::Config::from_json(&text)?)
}

/// Reads and validates a pluginConfig file; errors name the file.
pub fn validate_file(path: &Path, format: Option<Format>) -> Result<canary_core::Config> {
    let v = read_value(path, format)?;
    let text = serde_json::to_vec(&v).unwrap_or_default();
    canary_core::Config::from_json(&text).map_err(|source| Error::InvalidConfigFile {
        path: path.display().to_string(),
        source,
    })
}

/// The pluginConfig to ship: `file`'s if given, else `live`, else empty, with
/// `version.direction` filled in from the match mode when it does not say.
pub fn for_mode(file: Option<&Path>, live: Option<Value>, direction: &str) -> Result<Value> {
    let mut cfg = match (file, live) {
        (Some(path), _) => read_value(path, None)?,
        (None, Some(live)) => live,
        (None, None) => json!({}),
    };
    if let Some(obj) = cfg.as_object_mut() {
        let version = obj.entry("version").or_insert_with(|| json!({}));
        if let Some(v) = version.as_object_mut() {
            v.entry("direction").or_insert_with(|| json!(direction));
        }
    }
    validate(&cfg)?;
    Ok(cfg)
}
