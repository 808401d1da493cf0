//! Lenient, lossless field access for card JSON.
//!
//! Reading takes each known key out of the object only when its value has the expected type;
//! anything else (unknown keys, known keys holding a value of an unexpected type, `null`s)
//! stays behind in the "extra" map and is written back verbatim on export. Writing starts from
//! that extra map and lays the typed fields over it, except a typed field still at its default
//! whose key is in the extra map: that raw value was what the file had, so it wins. Editing the
//! typed field away from its default replaces the raw value.

use serde_json::{Map, Value};

pub(crate) struct FieldReader(Map<String, Value>);

impl FieldReader {
    pub fn new(map: Map<String, Value>) -> Self {
        Self(map)
    }

    fn take<T>(&mut self, key: &str, convert: impl FnOnce(&Value) -> Option<T>) -> Option<T> {
        let value = convert(self.0.get(key)?)?;
        self.0.remove(key);
        Some(value)
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        self.take(key, |v| v.as_str().map(str::to_owned))
    }

    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        self.take(key, |v| v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        self.take(key, Value::as_bool)
    }

    pub fn int(&mut self, key: &str) -> Option<i64> {
        self.take(key, Value::as_i64)
    }

    pub fn object(&mut self, key: &str) -> Option<Map<String, Value>> {
        self.take(key, |v| v.as_object().cloned())
    }

    /// A string or a number (lorebook entry ids are either).
    pub fn id(&mut self, key: &str) -> Option<Value> {
        self.take(key, |v| (v.is_string() || v.is_number()).then(|| v.clone()))
    }

    /// Take a key whose conversion needs more than a type check; `convert` gets the value by
    /// value and returns it back on failure so it can stay in the extra map.
    pub fn with<T>(&mut self, key: &str, convert: impl FnOnce(Value) -> Result<T, Value>) -> Option<T> {
        let value = self.0.remove(key)?;
        match convert(value) {
            Ok(t) => Some(t),
            Err(back) => {
                self.0.insert(key.to_owned(), back);
                None
            }
        }
    }

    pub fn into_extra(self) -> Map<String, Value> {
        self.0
    }
}

pub(crate) struct FieldWriter<'a> {
    map: Map<String, Value>,
    extra: &'a Map<String, Value>,
}

impl<'a> FieldWriter<'a> {
    pub fn new(extra: &'a Map<String, Value>) -> Self {
        Self { map: extra.clone(), extra }
    }

    /// A field that always has a value; `is_default` lets a raw value from the file win.
    pub fn put(&mut self, key: &str, value: Value, is_default: bool) {
        if is_default && self.extra.contains_key(key) {
            return;
        }
        self.map.insert(key.to_owned(), value);
    }

    pub fn string(&mut self, key: &str, value: &str) {
        self.put(key, Value::String(value.to_owned()), value.is_empty());
    }

    pub fn strings(&mut self, key: &str, value: &[String]) {
        self.put(key, strings_value(value), value.is_empty());
    }

    pub fn opt<T: Into<Value> + Clone>(&mut self, key: &str, value: &Option<T>) {
        if let Some(v) = value {
            self.map.insert(key.to_owned(), v.clone().into());
        }
    }

    pub fn opt_strings(&mut self, key: &str, value: &Option<Vec<String>>) {
        if let Some(v) = value {
            self.map.insert(key.to_owned(), strings_value(v));
        }
    }

    pub fn finish(self) -> Map<String, Value> {
        self.map
    }
}

pub(crate) fn strings_value(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}
