//! Reading JSON into the raw config shapes, one field at a time, with the
//! dotted path of every field at hand. serde_json parses the text into a
//! plain tree ([`Value`], objects as lists of fields in document order); each
//! reader walks an object's fields with their paths, so each error names its
//! field (`cohorts[1].match[0].exakt`) and unknown fields are refused. Derived `Deserialize` impls wrapped in a path tracker did the
//! same at a third of the module's size.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{ConfigError, Quoted};

/// A parsed JSON value.
#[derive(Debug, PartialEq)]
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
    ConfigError::schema(if field.is_empty() { "." } else { field }, message)
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
                let mut expected = String::new();
                for (j, (k, _)) in variants.iter().enumerate() {
                    expected.push_str(if j == 0 { "`" } else { ", `" });
                    expected.push_str(k);
                    expected.push('`');
                }
                Err(schema(
                    &path,
                    format!("unknown variant `{s}`, expected one of {expected}"),
                ))
            }
        }
    }

    /// Each element of an array, with its `[i]` path.
    pub fn list<T>(
        self,
        mut each: impl FnMut(Field) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let mut out = Vec::new();
        self.each_item(&mut |f| {
            out.push(each(f)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Field::list`] behind one `dyn` call, so the loop exists once.
    #[inline(never)]
    fn each_item(
        self,
        each: &mut dyn FnMut(Field) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        let Value::Array(items) = self.value else {
            return Err(self.invalid_type("a sequence"));
        };
        for (i, value) in items.into_iter().enumerate() {
            each(Field {
                path: format!("{}[{i}]", self.path),
                value,
            })?;
        }
        Ok(())
    }

    pub fn strings(self) -> Result<Vec<String>, ConfigError> {
        self.list(Field::string)
    }

    /// Reads an object: `each` gets every field that is set (not `null`), in
    /// document order, and says whether it knows it. Unknown and repeated
    /// fields are refused, and so is an object lacking one of `required`.
    /// `known` is for the message. One loop per object keeps the module small.
    pub fn fields(
        self,
        known: &'static [&'static str],
        required: &'static [&'static str],
        mut each: impl FnMut(&str, Field) -> Result<bool, ConfigError>,
    ) -> Result<(), ConfigError> {
        self.each_field(known, required, &mut each)
    }

    /// [`Field::fields`] behind one `dyn` call, so the loop exists once.
    #[inline(never)]
    fn each_field(
        self,
        known: &'static [&'static str],
        required: &'static [&'static str],
        each: &mut dyn FnMut(&str, Field) -> Result<bool, ConfigError>,
    ) -> Result<(), ConfigError> {
        let Value::Object(entries) = self.value else {
            return Err(self.invalid_type("an object"));
        };
        let names: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        for (i, (name, value)) in entries.into_iter().enumerate() {
            let path = join(&self.path, &name);
            if names[..i].contains(&name) {
                return Err(schema(&path, format!("duplicate field `{name}`")));
            }
            if matches!(value, Value::Null) {
                continue;
            }
            if !each(
                &name,
                Field {
                    path: path.clone(),
                    value,
                },
            )? {
                let mut expected = String::new();
                for (j, k) in known.iter().enumerate() {
                    expected.push_str(if j == 0 { "`" } else { ", `" });
                    expected.push_str(k);
                    expected.push('`');
                }
                return Err(schema(
                    &path,
                    format!("unknown field `{name}`, expected one of {expected}"),
                ));
            }
        }
        match required.iter().find(|r| !names.iter().any(|n| n == *r)) {
            Some(r) => Err(schema(&self.path, format!("missing field `{r}`"))),
            None => Ok(()),
        }
    }
}
