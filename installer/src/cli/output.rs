//! Printing results: `-o json` and `-o yaml` print the objects (what was, or
//! would be, sent); `-o table` prints the human line.

use serde_json::{json, Value};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    Table,
}

/// `values` as JSON (one object, or an array of several) or as a YAML
/// stream; `table` for `-o table`.
pub fn print(out: Output, values: &[Value], table: impl FnOnce() -> String) -> Result<String> {
    match out {
        Output::Json => {
            let v = match values {
                [one] => one.clone(),
                many => json!(many),
            };
            serde_json::to_string_pretty(&v)
                .map(|s| s + "\n")
                .map_err(|e| Error::Print {
                    format: "JSON",
                    source: Box::new(e),
                })
        }
        Output::Yaml => {
            let mut s = String::new();
            for v in values {
                s.push_str("---\n");
                s.push_str(&serde_yaml::to_string(v).map_err(|e| Error::Print {
                    format: "YAML",
                    source: Box::new(e),
                })?);
            }
            Ok(s)
        }
        Output::Table => Ok(table()),
    }
}
