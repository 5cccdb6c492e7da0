//! A reader over a parsed JSON body that records every problem with its path.
//!
//! serde's derive stops at the first error and cannot tell a missing field
//! from a wrongly typed one in a way clients can act on; the contract wants all
//! problems at once, keyed by path. Fields are read by name, each read marks the
//! name as known, and [`Obj::finish`] reports every key nobody asked for.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Invalid,
    UnknownField,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub kind: ProblemKind,
}

#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn new() -> Self {
        Problems(Vec::new())
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into(), kind: ProblemKind::Invalid });
    }

    pub fn unknown(&mut self, path: String) {
        let message = format!("'{path}' is not a known field.");
        self.0.push(Problem { path, message, kind: ProblemKind::UnknownField });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn only_unknown_fields(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|p| p.kind == ProblemKind::UnknownField)
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    /// `Ok(value)` when nothing was wrong.
    pub fn check<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }
}

/// Joins a parent path and a key: `billingAddress` + `city` → `billingAddress.city`.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One JSON object being read.
pub struct Obj<'v> {
    map: &'v Map<String, Value>,
    prefix: String,
    known: Vec<&'static str>,
    dynamic: Vec<String>,
}

impl<'v> Obj<'v> {
    /// The body itself, which must be an object.
    pub fn root(value: &'v Value, problems: &mut Problems) -> Option<Obj<'v>> {
        Obj::at(value, String::new(), problems)
    }

    /// Any value at `path`, which must be an object.
    pub fn at(value: &'v Value, path: String, problems: &mut Problems) -> Option<Obj<'v>> {
        match value {
            Value::Object(map) => Some(Obj { map, prefix: path, known: Vec::new(), dynamic: Vec::new() }),
            other => {
                let shown = if path.is_empty() { "$".to_owned() } else { path };
                problems.push(shown.clone(), format!("'{shown}' must be an object, not {}.", type_name(other)));
                None
            }
        }
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.prefix, key)
    }

    /// The raw value; `null` reads as absent.
    pub fn get(&mut self, key: &'static str) -> Option<&'v Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A value under a name known only at run time (a declared custom parameter).
    pub fn get_dynamic(&mut self, key: &str) -> Option<&'v Value> {
        self.dynamic.push(key.to_owned());
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether the key was sent with a value other than `null`.
    pub fn is_set(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// Whether the key was sent at all, even as `null`.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn typed<T>(
        &mut self,
        key: &'static str,
        what: &str,
        p: &mut Problems,
        f: impl FnOnce(&'v Value) -> Option<T>,
    ) -> Option<T> {
        let v = self.get(key)?;
        let out = f(v);
        if out.is_none() {
            let path = self.path(key);
            p.push(path.clone(), format!("'{path}' must be {what}, not {}.", type_name(v)));
        }
        out
    }

    /// A string without NUL characters (no database column can hold one faithfully).
    pub fn string(&mut self, key: &'static str, p: &mut Problems) -> Option<&'v str> {
        let s = self.typed(key, "a string", p, Value::as_str)?;
        if s.contains('\0') {
            let path = self.path(key);
            p.push(path.clone(), format!("'{path}' must not contain NUL characters."));
            return None;
        }
        Some(s)
    }

    pub fn required_string(&mut self, key: &'static str, p: &mut Problems) -> Option<&'v str> {
        let present = self.map.get(key).is_some_and(|v| !v.is_null());
        if !present {
            self.known.push(key);
            let path = self.path(key);
            p.push(path.clone(), format!("'{path}' is required."));
            return None;
        }
        self.string(key, p)
    }

    pub fn bool(&mut self, key: &'static str, p: &mut Problems) -> Option<bool> {
        self.typed(key, "a boolean", p, Value::as_bool)
    }

    pub fn object(&mut self, key: &'static str, p: &mut Problems) -> Option<Obj<'v>> {
        let v = self.get(key)?;
        Obj::at(v, self.path(key), p)
    }

    /// An array of at most `max` items: every list a request can send is bounded,
    /// so that no body makes the service do unbounded work for it.
    pub fn array(&mut self, key: &'static str, max: usize, p: &mut Problems) -> Option<&'v Vec<Value>> {
        let items = self.typed(key, "an array", p, Value::as_array)?;
        if items.len() > max {
            let path = self.path(key);
            p.push(path.clone(), format!("'{path}' may hold at most {max} items."));
            return None;
        }
        Some(items)
    }

    /// Reports every key that no reader asked for.
    pub fn finish(self, p: &mut Problems) {
        for key in self.map.keys() {
            if !self.known.iter().any(|k| k == key) && !self.dynamic.iter().any(|k| k == key) {
                p.unknown(join(&self.prefix, key));
            }
        }
    }

    /// The keys read so far (used to check the documented schema against the parser).
    pub fn known(&self) -> &[&'static str] {
        &self.known
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_problem_with_its_path() {
        let v = json!({"a": 1, "b": {"c": true}, "zzz": 0});
        let mut p = Problems::new();
        let mut o = Obj::root(&v, &mut p).unwrap();
        assert!(o.string("a", &mut p).is_none());
        let mut b = o.object("b", &mut p).unwrap();
        assert!(b.string("c", &mut p).is_none());
        b.finish(&mut p);
        assert!(o.required_string("missing", &mut p).is_none());
        o.finish(&mut p);
        let got: Vec<_> = p.iter().map(|x| (x.path.as_str(), x.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("a", ProblemKind::Invalid),
                ("b.c", ProblemKind::Invalid),
                ("missing", ProblemKind::Invalid),
                ("zzz", ProblemKind::UnknownField)
            ]
        );
    }

    #[test]
    fn null_reads_as_absent() {
        let v = json!({"a": null});
        let mut p = Problems::new();
        let mut o = Obj::root(&v, &mut p).unwrap();
        assert_eq!(o.string("a", &mut p), None);
        o.finish(&mut p);
        assert!(p.is_empty());
    }
}
