//! Validating Istio objects without a cluster, against the CRDs' own OpenAPI
//! v3 schemas (the structural part the API server enforces, with unknown
//! fields refused as `fieldValidation=Strict` does) and their CEL rules
//! (`x-kubernetes-validations`, evaluated by kube-cel). Test support only:
//! `canaryctl` itself does not carry it.

use std::path::Path;

use serde_json::{Map, Value};

/// One served version of one CRD.
#[derive(Debug, Clone)]
struct Version {
    api_version: String,
    kind: String,
    schema: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Crds {
    versions: Vec<Version>,
}

impl Crds {
    /// Loads every CustomResourceDefinition in the YAML files of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Crds, String> {
        let file_err = |p: &Path, m: String| format!("{}: {m}", p.display());
        let mut crds = Crds::default();
        let entries = std::fs::read_dir(dir).map_err(|e| file_err(dir, e.to_string()))?;
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        {
            let text = std::fs::read_to_string(&p).map_err(|e| file_err(&p, e.to_string()))?;
            for doc in parse_yaml_docs(&text).map_err(|e| file_err(&p, e))? {
                if doc["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let group = doc["spec"]["group"].as_str().unwrap_or_default();
                let kind = doc["spec"]["names"]["kind"].as_str().unwrap_or_default();
                for v in doc["spec"]["versions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if v["served"] == false {
                        continue;
                    }
                    crds.versions.push(Version {
                        api_version: format!("{group}/{}", v["name"].as_str().unwrap_or_default()),
                        kind: kind.to_string(),
                        schema: v["schema"]["openAPIV3Schema"].clone(),
                    });
                }
            }
        }
        Ok(crds)
    }

    pub fn kinds(&self) -> Vec<(String, String)> {
        self.versions
            .iter()
            .map(|v| (v.api_version.clone(), v.kind.clone()))
            .collect()
    }

    fn find(&self, obj: &Value) -> Option<&Version> {
        let (av, kind) = (obj["apiVersion"].as_str()?, obj["kind"].as_str()?);
        self.versions
            .iter()
            .find(|v| v.api_version == av && v.kind == kind)
    }

    /// Every problem with `obj`, each as `path: message`; empty when valid.
    pub fn validate(&self, obj: &Value) -> Vec<String> {
        let Some(v) = self.find(obj) else {
            return vec![format!(
                "no CRD for apiVersion {} kind {}",
                obj["apiVersion"].as_str().unwrap_or("?"),
                obj["kind"].as_str().unwrap_or("?")
            )];
        };
        let mut errors = vec![];
        let mut body = obj.clone();
        if let Some(m) = body.as_object_mut() {
            // The API server handles these itself; the CRD schema only covers the rest.
            for k in ["apiVersion", "kind", "metadata"] {
                m.remove(k);
            }
        }
        check(&v.schema, &body, "", &mut errors);
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            errors.push("metadata.name: required".into());
        }
        if errors.is_empty() {
            if let Err(e) = kube_cel::Validator::new().validate(&v.schema, &body, None) {
                for x in e.into_vec() {
                    errors.push(format!(
                        "{}: {} (rule `{}`)",
                        x.field_path, x.message, x.rule
                    ));
                }
            }
        }
        errors
    }
}

/// Parses a multi-document YAML string into JSON values (empty documents skipped).
pub fn parse_yaml_docs(text: &str) -> std::result::Result<Vec<Value>, String> {
    use serde::Deserialize;
    let mut out = vec![];
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Structural validation of `v` against `s`, appending `path: message` errors.
fn check(s: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let here = if path.is_empty() { "<root>" } else { path };
    let mut err = |m: String| errors.push(format!("{here}: {m}"));
    if v.is_null() {
        if s["nullable"] != true && s.get("type").is_some() {
            err("must not be null".into());
        }
        return;
    }
    let int_or_string = s["x-kubernetes-int-or-string"] == true;
    if let Some(t) = s["type"].as_str() {
        let actual = type_name(v);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && (actual == "integer" || actual == "string"));
        if !ok {
            err(format!("expected {t}, got {actual}"));
            return;
        }
    } else if int_or_string && !matches!(type_name(v), "integer" | "string") {
        err(format!("expected integer or string, got {}", type_name(v)));
        return;
    }
    if let Some(options) = s["enum"].as_array() {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            err(format!("{v} is not one of [{}]", list.join(", ")));
        }
    }
    match v {
        Value::String(text) => {
            let chars = text.chars().count() as u64;
            if let Some(max) = s["maxLength"].as_u64() {
                if chars > max {
                    err(format!("longer than {max} characters"));
                }
            }
            if let Some(min) = s["minLength"].as_u64() {
                if chars < min {
                    err(format!("shorter than {min} characters"));
                }
            }
            if let Some(p) = s["pattern"].as_str() {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(text) => err(format!("{text:?} does not match {p}")),
                    Err(e) => err(format!("pattern {p} does not compile: {e}")),
                    _ => {}
                }
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (s["minimum"].as_f64(), n.as_f64()) {
                if x < min {
                    err(format!("{x} is below the minimum {min}"));
                }
            }
            if let (Some(max), Some(x)) = (s["maximum"].as_f64(), n.as_f64()) {
                if x > max {
                    err(format!("{x} is above the maximum {max}"));
                }
            }
            if s["format"] == "int32" && n.as_i64().is_none_or(|x| i32::try_from(x).is_err()) {
                err(format!("{n} does not fit int32"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = s["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    err(format!("more than {max} items"));
                }
            }
            if let Some(min) = s["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    err(format!("fewer than {min} items"));
                }
            }
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(is, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => check_object(s, map, path, errors),
        _ => {}
    }
    for (kw, need) in [("oneOf", Some(1)), ("anyOf", None)] {
        if let Some(subs) = s[kw].as_array() {
            let matching = subs.iter().filter(|sub| accepts(sub, v)).count();
            let ok = match need {
                Some(n) => matching == n,
                None => matching >= 1,
            };
            if !ok {
                errors.push(format!(
                    "{here}: must match {} of its {kw} alternatives ({matching} match)",
                    if need.is_some() {
                        "exactly one"
                    } else {
                        "at least one"
                    }
                ));
            }
        }
    }
    if let Some(subs) = s["allOf"].as_array() {
        for sub in subs {
            check(sub, v, path, errors);
        }
    }
    if let Some(not) = s.get("not") {
        if accepts(not, v) {
            errors.push(format!("{here}: matches a forbidden combination"));
        }
    }
}

fn accepts(s: &Value, v: &Value) -> bool {
    let mut e = vec![];
    check(s, v, "", &mut e);
    e.is_empty()
}

fn check_object(s: &Value, map: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    let props = s["properties"].as_object();
    let extra = s.get("additionalProperties");
    let preserve = s["x-kubernetes-preserve-unknown-fields"] == true;
    if let Some(req) = s["required"].as_array() {
        for r in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errors.push(format!("{}: required", join(path, r)));
            }
        }
    }
    if let Some(max) = s["maxProperties"].as_u64() {
        if map.len() as u64 > max {
            errors.push(format!(
                "{}: more than {max} properties",
                if path.is_empty() { "<root>" } else { path }
            ));
        }
    }
    for (k, val) in map {
        let p = join(path, k);
        match (props.and_then(|ps| ps.get(k)), extra) {
            (Some(sub), _) => check(sub, val, &p, errors),
            (None, Some(Value::Object(sub))) => check(&Value::Object(sub.clone()), val, &p, errors),
            (None, Some(Value::Bool(true))) => {}
            _ if preserve => {}
            // A schema made only of combinators (oneOf/required) constrains, it does not list fields.
            _ if props.is_none() && s.get("type").is_none() => {}
            _ => errors.push(format!("{p}: unknown field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structural_rules_are_enforced() {
        let s = json!({
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "minLength": 1},
                "n": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "list": {"type": "array", "maxItems": 1, "items": {"type": "string", "pattern": "^[a-z]+$"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": true}
            }
        });
        let errs = |v: Value| {
            let mut e = vec![];
            check(&s, &v, "", &mut e);
            e
        };
        assert!(errs(json!({"url": "x", "n": 3, "mode": "A", "list": ["ok"], "free": {"any": 1}, "map": {"a": "b"}, "port": "http"})).is_empty());
        assert_eq!(errs(json!({})), vec!["url: required"]);
        assert_eq!(
            errs(json!({"url": "x", "n": 11})),
            vec!["n: 11 is above the maximum 10"]
        );
        assert_eq!(
            errs(json!({"url": "x", "n": "3"})),
            vec!["n: expected integer, got string"]
        );
        assert_eq!(
            errs(json!({"url": "x", "mode": "C"})),
            vec!["mode: \"C\" is not one of [\"A\", \"B\"]"]
        );
        assert_eq!(
            errs(json!({"url": "x", "list": ["a", "b"]})),
            vec!["list: more than 1 items"]
        );
        assert_eq!(
            errs(json!({"url": "x", "list": ["A"]})),
            vec!["list[0]: \"A\" does not match ^[a-z]+$"]
        );
        assert_eq!(
            errs(json!({"url": "x", "typo": 1})),
            vec!["typo: unknown field"]
        );
        assert_eq!(
            errs(json!({"url": "x", "map": {"a": 1}})),
            vec!["map.a: expected string, got integer"]
        );
        assert_eq!(
            errs(json!({"url": "x", "port": true})),
            vec!["port: expected integer or string, got boolean"]
        );
    }

    #[test]
    fn one_of_unions_accept_exactly_one_member() {
        let s = json!({
            "type": "object",
            "properties": {"exact": {"type": "string"}, "prefix": {"type": "string"}},
            "oneOf": [
                {"not": {"anyOf": [{"required": ["exact"]}, {"required": ["prefix"]}]}},
                {"required": ["exact"]},
                {"required": ["prefix"]}
            ]
        });
        let ok = |v: Value| accepts(&s, &v);
        assert!(ok(json!({})));
        assert!(ok(json!({"exact": "a"})));
        assert!(!ok(json!({"exact": "a", "prefix": "b"})));
    }
}
