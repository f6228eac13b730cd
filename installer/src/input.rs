//! Reading the files an operator hands `canaryctl` (pluginConfig, cohorts,
//! gates). JSON is read as strict JSON; YAML only when the file's extension
//! or `--format` says so. Both refuse duplicate keys (the filter would see
//! only one of them) and nesting deeper than [`MAX_DEPTH`], checked before
//! the parser runs so a pathological file is refused at once.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Deeper than any real pluginConfig (about 6 levels) and far below where
/// a parser's own recursion becomes a problem.
pub const MAX_DEPTH: usize = 32;
/// Larger than any real pluginConfig by two orders of magnitude.
pub const MAX_BYTES: usize = 1 << 20;

/// The syntax of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// YAML for `.yaml`/`.yml`, JSON for everything else.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        }
    }
}

/// Reads one JSON or YAML document from `path`.
pub fn read_value(path: &Path, format: Option<Format>) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: "cannot read".into(),
        source: Some(Box::new(e)),
    })?;
    parse(&text, format.unwrap_or_else(|| Format::of(path))).map_err(|m| Error::file(path, m))
}

/// Parses one document, refusing duplicate keys and deep nesting.
pub fn parse(text: &str, format: Format) -> std::result::Result<Value, String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "{} bytes is larger than {MAX_BYTES}: not a pluginConfig",
            text.len()
        ));
    }
    let depth = nesting(text, format);
    if depth > MAX_DEPTH {
        return Err(format!(
            "nested {depth} levels deep, more than the {MAX_DEPTH} allowed"
        ));
    }
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let v = de.deserialize_any(Strict).map_err(|e| e.to_string())?;
            de.end().map_err(|e| e.to_string())?;
            Ok(v.unwrap_or(Value::Null))
        }
        Format::Yaml => {
            let mut docs = serde_yaml::Deserializer::from_str(text);
            let Some(doc) = docs.next() else {
                return Ok(Value::Object(Map::new()));
            };
            let v = doc.deserialize_any(Strict).map_err(|e| e.to_string())?;
            if docs.next().is_some() {
                return Err("more than one YAML document".into());
            }
            Ok(v.unwrap_or(Value::Object(Map::new())))
        }
    }
}

/// How deep the text nests, found by a linear scan before any parser runs:
/// the deepest bracket nesting outside strings and comments, and for YAML
/// also the deepest chain of growing indentation.
fn nesting(text: &str, format: Format) -> usize {
    let yaml = format == Format::Yaml;
    let block = if yaml { indentation_depth(text) } else { 0 };
    let mut flow = 0usize;
    let mut deepest = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    for c in text.chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' => quote = Some('"'),
            '\'' if yaml => quote = Some('\''),
            '#' if yaml => comment = true,
            '[' | '{' => {
                flow += 1;
                deepest = deepest.max(flow);
            }
            ']' | '}' => flow = flow.saturating_sub(1),
            _ => {}
        }
    }
    block.max(deepest)
}

/// The longest chain of lines each indented deeper than the one before.
fn indentation_depth(text: &str) -> usize {
    let mut open: Vec<usize> = vec![];
    let mut deepest = 0;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        while open.last().is_some_and(|i| *i >= indent) {
            open.pop();
        }
        open.push(indent);
        deepest = deepest.max(open.len());
    }
    deepest
}

/// A `serde_json::Value` built by a visitor that refuses a key seen twice in
/// one object (serde_json's own `Value` keeps the last silently).
struct Strict;

/// `Option` so a YAML document that is only a comment reads as empty.
type Out = Option<Value>;

impl<'de> Visitor<'de> for Strict {
    type Value = Out;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Out, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Out, E> {
        Ok(Some(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Out, E> {
        Ok(Some(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Out, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Out, E> {
        Ok(Some(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Out, E> {
        Ok(Some(Value::String(v)))
    }
    fn visit_unit<E>(self) -> std::result::Result<Out, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> std::result::Result<Out, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Out, D::Error> {
        d.deserialize_any(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Out, A::Error> {
        let mut out = vec![];
        while let Some(v) = seq.next_element_seed(Seed)? {
            out.push(v.unwrap_or(Value::Null));
        }
        Ok(Some(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Out, A::Error> {
        let mut out = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let v = map.next_value_seed(Seed)?;
            out.insert(key, v.unwrap_or(Value::Null));
        }
        Ok(Some(Value::Object(out)))
    }
}

struct Seed;

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Out;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Out, D::Error> {
        d.deserialize_any(Strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_read_as_strict_json() {
        assert_eq!(
            parse(r#"{"sticky": {"percent": 10}}"#, Format::Json).unwrap(),
            json!({"sticky": {"percent": 10}})
        );
        let trailing = parse(r#"{"sticky": {"percent": 10},}"#, Format::Json).unwrap_err();
        assert!(trailing.contains("trailing comma"), "{trailing}");
        let dup = parse(
            r#"{"cohortHeader": "a", "cohortHeader": "b"}"#,
            Format::Json,
        )
        .unwrap_err();
        assert!(dup.contains("duplicate key `cohortHeader`"), "{dup}");
        // YAML syntax is not JSON.
        assert!(parse("sticky:\n  percent: 10\n", Format::Json).is_err());
    }

    #[test]
    fn yaml_is_read_when_asked_and_refuses_duplicates_too() {
        assert_eq!(
            parse("sticky:\n  percent: 10 # ten\n", Format::Yaml).unwrap(),
            json!({"sticky": {"percent": 10}})
        );
        let dup = parse("sticky: {}\nsticky: {}\n", Format::Yaml).unwrap_err();
        assert!(dup.contains("duplicate"), "{dup}");
        assert_eq!(parse("# nothing\n", Format::Yaml).unwrap(), json!({}));
    }

    #[test]
    fn deep_nesting_is_refused_at_once() {
        let deep = "[".repeat(200_000);
        for format in [Format::Json, Format::Yaml] {
            let start = std::time::Instant::now();
            let e = parse(&deep, format).unwrap_err();
            assert!(e.contains("more than the 32 allowed"), "{e}");
            assert!(start.elapsed() < std::time::Duration::from_secs(1));
        }
        let mut yaml = String::new();
        for i in 0..40 {
            yaml.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert!(parse(&yaml, Format::Yaml).is_err());
        // Brackets inside strings do not count.
        assert!(parse(&format!("{{\"a\": \"{}\"}}", "[".repeat(100)), Format::Json).is_ok());
    }
}
