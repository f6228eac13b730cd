//! Test doubles for the host traits: an in-memory request/response and a
//! metrics sink that remembers names, so tests read like Envoy's `/stats`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::host::{Http, MetricKind, Metrics, SharedStore};

#[derive(Debug, Default)]
pub struct FakeHost {
    pub request: Vec<(String, Vec<u8>)>,
    pub response: Vec<(String, Vec<u8>)>,
    pub trailers: Vec<(String, Vec<u8>)>,
    pub properties: HashMap<String, Vec<u8>>,
    pub now: Cell<u64>,
    /// Hostcalls made, to keep the hot path honest.
    pub calls: Cell<usize>,
    /// The properties read, in order: the dearest hostcalls.
    pub properties_read: RefCell<Vec<String>>,
}

fn get<'a>(list: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    list.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

impl FakeHost {
    pub fn with_request(headers: &[(&str, &[u8])]) -> Self {
        FakeHost {
            request: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
            ..Default::default()
        }
    }

    pub fn prop(mut self, path: &str, value: &[u8]) -> Self {
        self.properties.insert(path.to_string(), value.to_vec());
        self
    }

    pub fn prop_int(self, path: &str, value: i64) -> Self {
        self.prop(path, &value.to_le_bytes())
    }

    /// A response with this status, as Envoy shows it: the `:status`
    /// response header and the `response.code` attribute.
    pub fn status(mut self, code: i64) -> Self {
        self.response
            .push((":status".into(), code.to_string().into_bytes()));
        self.prop_int("response.code", code)
    }

    pub fn req(&self, name: &str) -> Option<String> {
        get(&self.request, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn resp_all(&self, name: &str) -> Vec<String> {
        self.response
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    fn tick(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

impl Http for FakeHost {
    fn request_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        self.tick();
        read(get(&self.request, name))
    }
    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        self.tick();
        self.request.retain(|(k, _)| k != name);
        self.request.push((name.to_string(), value.to_vec()));
    }
    fn remove_request_header(&mut self, name: &str) {
        self.tick();
        self.request.retain(|(k, _)| k != name);
    }
    fn response_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        self.tick();
        read(get(&self.response, name))
    }
    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        self.tick();
        self.response.retain(|(k, _)| k != name);
        self.response.push((name.to_string(), value.to_vec()));
    }
    fn add_response_header(&mut self, name: &str, value: &[u8]) {
        self.tick();
        self.response.push((name.to_string(), value.to_vec()));
    }
    fn response_trailer<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        self.tick();
        read(get(&self.trailers, name))
    }
    fn property<R>(&self, path: &[&str], read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        self.tick();
        let path_text = path.join(".");
        self.properties_read.borrow_mut().push(path_text.clone());
        if let ["request", "headers", name] = path {
            // Envoy joins every line of a request header with `,`.
            let lines: Vec<&[u8]> = self
                .request
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
                .collect();
            let joined = (!lines.is_empty()).then(|| lines.join(&b","[..]));
            return read(joined.as_deref());
        }
        read(self.properties.get(&path_text).map(Vec::as_slice))
    }
    fn now_nanos(&self) -> u64 {
        self.tick();
        self.now.get()
    }
}

#[derive(Debug, Default)]
pub struct FakeMetrics {
    pub names: Vec<(MetricKind, String)>,
    pub counters: HashMap<u32, u64>,
    pub records: HashMap<u32, Vec<u64>>,
    pub defines: usize,
}

impl FakeMetrics {
    fn id_of(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|(_, n)| n == name)
            .map(|i| i as u32)
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.id_of(name)
            .and_then(|id| self.counters.get(&id))
            .copied()
            .unwrap_or(0)
    }

    pub fn histogram(&self, name: &str) -> Vec<u64> {
        self.id_of(name)
            .and_then(|id| self.records.get(&id))
            .cloned()
            .unwrap_or_default()
    }

    /// Sum of a counter family across all label sets whose name contains `part`.
    pub fn sum(&self, family: &str, part: &str) -> u64 {
        self.names
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| n.ends_with(family) && n.contains(part))
            .map(|(i, _)| self.counters.get(&(i as u32)).copied().unwrap_or(0))
            .sum()
    }
}

impl Metrics for FakeMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.defines += 1;
        if let Some(id) = self.id_of(name) {
            return Some(id);
        }
        self.names.push((kind, name.to_string()));
        Some((self.names.len() - 1) as u32)
    }
    fn increment(&mut self, id: u32, by: i64) {
        *self.counters.entry(id).or_default() += by as u64;
    }
    fn record(&mut self, id: u32, value: u64) {
        self.records.entry(id).or_default().push(value);
    }
}

/// proxy-wasm shared data: a value and a CAS counter per key.
#[derive(Default)]
pub struct FakeStore {
    pub data: HashMap<String, (Vec<u8>, u32)>,
    /// Makes the next N sets fail as if another VM had written first.
    pub fail_next: usize,
}

impl SharedStore for FakeStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
        self.data.get(key).map(|(v, c)| (v.clone(), Some(*c)))
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            let e = self.data.entry(key.to_string()).or_default();
            e.1 += 1;
            return false;
        }
        let e = self.data.entry(key.to_string()).or_default();
        if cas.is_some_and(|c| c != e.1) {
            return false;
        }
        *e = (value.to_vec(), e.1 + 1);
        true
    }
}
