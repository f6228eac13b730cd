//! Reading JSON into the raw config shapes, one field at a time, with the
//! dotted path of every field at hand. serde_json parses the text into a
//! plain tree ([`Value`], objects as lists of fields in document order); the
//! readers take fields out of it by name, so each error names its field
//! (`cohorts[1].match[0].exakt`) and unknown fields are refused when an object
//! is closed. Derived `Deserialize` impls wrapped in a path tracker did the
//! same at a third of the module's size.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{ConfigError, Quoted};

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    Uint(u64),
    Float(f64),
    String(String),
    Array(Vec<Value>),
    /// Fields in document order, duplicates kept (and refused when read).
    Object(Vec<(String, Value)>),
}

impl Value {
    fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Uint(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(if i < 0 {
            Value::Int(i)
        } else {
            Value::Uint(i as u64)
        })
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Uint(u))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry()? {
            fields.push(entry);
        }
        Ok(Value::Object(fields))
    }
}

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
        Value::Int(i) => format!("integer `{i}`"),
        Value::Uint(u) => format!("integer `{u}`"),
        // Echoing the digits would pull float formatting into the module.
        Value::Float(_) => "floating point number".into(),
        Value::String(s) => format!("string {}", Quoted(s)),
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

    #[inline(never)]
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
        self.value
            .as_f64()
            .ok_or_else(|| self.invalid_type("a number"))
    }

    pub fn u32(self) -> Result<u32, ConfigError> {
        match self.value {
            Value::Uint(u) if u <= u64::from(u32::MAX) => Ok(u as u32),
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
        let mut out = Vec::with_capacity(items.len());
        for (i, value) in items.into_iter().enumerate() {
            out.push(each(Field {
                path: format!("{}[{i}]", self.path),
                value,
            })?);
        }
        Ok(out)
    }

    pub fn strings(self) -> Result<Vec<String>, ConfigError> {
        self.list(Field::string)
    }

    /// An object whose fields are `fields`; read them, then [`Obj::close`] it.
    #[inline(never)]
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
/// left when it is closed is unknown (or given twice).
pub(crate) struct Obj {
    path: String,
    map: Vec<(String, Value)>,
    fields: &'static [&'static str],
}

impl Obj {
    /// Field `name`; absent and `null` both mean "not set".
    #[inline(never)]
    pub fn field(&mut self, name: &str) -> Option<Field> {
        let i = self.map.iter().position(|(k, _)| k == name)?;
        match self.map.remove(i).1 {
            Value::Null => None,
            value => Some(Field {
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

    // One small, non-generic reader per type: each call site stays a call.

    #[inline(never)]
    pub fn string(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        self.field(name).map(Field::string).transpose()
    }

    #[inline(never)]
    pub fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.field(name).map(Field::strings).transpose()
    }

    #[inline(never)]
    pub fn f64(&mut self, name: &str) -> Result<Option<f64>, ConfigError> {
        self.field(name).map(Field::f64).transpose()
    }

    #[inline(never)]
    pub fn u32(&mut self, name: &str) -> Result<Option<u32>, ConfigError> {
        self.field(name).map(Field::u32).transpose()
    }

    #[inline(never)]
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.field(name).map(Field::bool).transpose()
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
    #[inline(never)]
    pub fn close(self) -> Result<(), ConfigError> {
        match self.map.first().map(|(k, _)| k) {
            None => Ok(()),
            Some(k) if self.fields.contains(&k.as_str()) => Err(schema(
                &join(&self.path, k),
                format!("duplicate field `{k}`"),
            )),
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
