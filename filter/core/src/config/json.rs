//! Reading parsed JSON (`serde_json::Value`) into the raw config shapes, one
//! field at a time, with the dotted path of every field at hand. A derived
//! `Deserialize` wrapped in a path tracker did the same at a third of the
//! module's size; here each error names its field (`cohorts[1].match[0].exakt`)
//! and unknown fields are refused when an object is closed.

use serde_json::{Map, Value};

use super::error::ConfigError;

fn schema(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Schema {
        field: if field.is_empty() { "." } else { field }.to_string(),
        message: message.into(),
    }
}

/// `parent.name`, or `name` at the root.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// What a value is, in serde's words, for "invalid type" messages.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => format!("integer `{i}`"),
            (None, Some(u)) => format!("integer `{u}`"),
            // Echoing the digits would pull float formatting into the module.
            _ => "floating point number".into(),
        },
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

/// A value at a path.
pub(crate) struct Field {
    pub path: String,
    pub value: Value,
}

impl Field {
    pub fn root(value: Value) -> Field {
        Field {
            path: String::new(),
            value,
        }
    }

    pub fn invalid_type(&self, expected: &str) -> ConfigError {
        schema(
            &self.path,
            format!("invalid type: {}, expected {expected}", kind(&self.value)),
        )
    }

    pub fn string(self) -> Result<String, ConfigError> {
        match self.value {
            Value::String(s) => Ok(s),
            _ => Err(self.invalid_type("a string")),
        }
    }

    pub fn f64(self) -> Result<f64, ConfigError> {
        match &self.value {
            Value::Number(n) => n.as_f64().ok_or_else(|| self.invalid_type("a number")),
            _ => Err(self.invalid_type("a number")),
        }
    }

    pub fn u32(self) -> Result<u32, ConfigError> {
        match self.value.as_u64().map(u32::try_from) {
            Some(Ok(n)) => Ok(n),
            _ => Err(self.invalid_type("a whole number from 0 to 4294967295")),
        }
    }

    pub fn bool(self) -> Result<bool, ConfigError> {
        match self.value {
            Value::Bool(b) => Ok(b),
            _ => Err(self.invalid_type("a boolean")),
        }
    }

    /// A string that must be one of `variants` (as `(spelling, value)`).
    pub fn variant<T: Copy>(self, variants: &[(&str, T)]) -> Result<T, ConfigError> {
        let path = self.path.clone();
        let s = self.string()?;
        match variants.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => Ok(*v),
            None => {
                let names: Vec<String> = variants.iter().map(|(n, _)| format!("`{n}`")).collect();
                Err(schema(
                    &path,
                    format!(
                        "unknown variant `{s}`, expected one of {}",
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// Each element of an array, with its `[i]` path.
    pub fn list<T>(
        self,
        mut each: impl FnMut(Field) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let Value::Array(items) = self.value else {
            return Err(self.invalid_type("a sequence"));
        };
        let path = self.path;
        items
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                each(Field {
                    path: format!("{path}[{i}]"),
                    value,
                })
            })
            .collect()
    }

    pub fn strings(self) -> Result<Vec<String>, ConfigError> {
        self.list(Field::string)
    }

    /// An object whose fields are `fields`; read them, then [`Obj::close`] it.
    pub fn object(self, fields: &'static [&'static str]) -> Result<Obj, ConfigError> {
        match self.value {
            Value::Object(map) => Ok(Obj {
                path: self.path,
                map,
                fields,
            }),
            _ => Err(Field {
                path: self.path,
                value: self.value,
            }
            .invalid_type("an object")),
        }
    }
}

/// An object being read: each field is taken out as it is read, so what is
/// left when it is closed is unknown.
pub(crate) struct Obj {
    path: String,
    map: Map<String, Value>,
    fields: &'static [&'static str],
}

impl Obj {
    /// Field `name`; absent and `null` both mean "not set".
    pub fn field(&mut self, name: &str) -> Option<Field> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(value) => Some(Field {
                path: join(&self.path, name),
                value,
            }),
        }
    }

    /// Field `name` read by `read`, `None` when not set.
    pub fn opt<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(Field) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        self.field(name).map(read).transpose()
    }

    /// Field `name`, which must be set.
    pub fn req<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(Field) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.field(name) {
            Some(f) => read(f),
            None => Err(schema(&self.path, format!("missing field `{name}`"))),
        }
    }

    /// Refuses any field that was not read.
    pub fn close(self) -> Result<(), ConfigError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => {
                let known: Vec<String> = self.fields.iter().map(|f| format!("`{f}`")).collect();
                Err(schema(
                    &join(&self.path, k),
                    format!("unknown field `{k}`, expected one of {}", known.join(", ")),
                ))
            }
        }
    }
}
