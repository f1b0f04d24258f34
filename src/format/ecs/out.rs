//! Where an ECS document of a log-file row is written: straight into the sink's line buffer
//! ([`Bytes`]) or into an ordered tree that `serde` serializes ([`Tree`], the reference the
//! direct writer is tested against). The mapping describes each document once, as calls on
//! [`Out`]; both take back an object or array that ends up with nothing in it, as Elastic's
//! pipelines drop empty values.

use std::net::IpAddr;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use crate::format::json::{
    write_bool, write_f64, write_i64, write_ip, write_rfc3339_millis, write_str, write_u64,
};
use crate::format::rfc3339_millis;
use crate::format::row::FieldValue;

/// An object key: its name, and its JSON as [`Bytes`] writes it after an earlier entry
/// (`,"name":`), escaped once rather than for every row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    name: &'a str,
    json: &'a [u8],
}

impl Key<'static> {
    /// A literal key, `json` being `,"name":`: [`key!`] checks at compile time that the name
    /// needs no escape, which is what makes that `json` right.
    pub(crate) const fn plain(name: &'static str, json: &'static [u8]) -> Self {
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b >= 0x20 && b != b'"' && b != b'\\',
                "a key! name needs no JSON escape"
            );
            i += 1;
        }
        Key { name, json }
    }
}

/// A literal key (`key!("version")`), its JSON written at compile time.
macro_rules! key {
    ($name:literal) => {{
        const KEY: $crate::format::ecs::out::Key<'static> =
            $crate::format::ecs::out::Key::plain($name, concat!(",\"", $name, "\":").as_bytes());
        KEY
    }};
}
pub(crate) use key;

/// A key known at run time (a column's snake_case name, the data set's), escaped once.
#[derive(Debug)]
pub(crate) struct OwnedKey {
    name: Box<str>,
    json: Box<[u8]>,
}

impl OwnedKey {
    pub(crate) fn new(name: &str) -> Self {
        let mut json = vec![b','];
        write_str(&mut json, name);
        json.push(b':');
        OwnedKey {
            name: name.into(),
            json: json.into(),
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> Key<'_> {
        Key {
            name: &self.name,
            json: &self.json,
        }
    }

    /// The name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// A document being written. Keys are written as given (escaped); values are never empty
/// strings (the mapping leaves those out before calling).
pub(crate) trait Out {
    /// Opens the object `key` (or, inside an array, an object element: `key` is ignored).
    fn open(&mut self, key: Key<'_>);
    /// Closes the innermost object or array, taking it back if nothing was written in it.
    fn close(&mut self);
    /// Opens the array `key`.
    fn open_array(&mut self, key: Key<'_>);
    fn str(&mut self, key: Key<'_>, v: &str);
    fn i64(&mut self, key: Key<'_>, v: i64);
    fn u64(&mut self, key: Key<'_>, v: u64);
    fn f64(&mut self, key: Key<'_>, v: f64);
    fn bool(&mut self, key: Key<'_>, v: bool);
    fn ip(&mut self, key: Key<'_>, v: IpAddr);
    fn time(&mut self, key: Key<'_>, v: OffsetDateTime);
    /// A typed column value as the NDJSON format writes it (datetimes in UTC).
    fn field(&mut self, key: Key<'_>, v: &FieldValue<'_>) {
        match *v {
            FieldValue::String(s) | FieldValue::Id(s) => self.str(key, s),
            FieldValue::Integer(i) => self.i64(key, i),
            FieldValue::Float(f) => self.f64(key, f),
            FieldValue::Boolean(b) => self.bool(key, b),
            FieldValue::DateTime(t) => self.time(key, t),
            FieldValue::Ip(ip) => self.ip(key, ip),
        }
    }
    /// A one-element array of a string (`event.category`, `user.roles`).
    fn one(&mut self, key: Key<'_>, v: &str) {
        self.open_array(key);
        self.str(key!(""), v);
        self.close();
    }
    /// Writes what `write` writes: calls that depend on nothing but the file and the options,
    /// so that they write the same for every row of a file. [`Bytes`] copies `part`'s bytes
    /// from the file's first row instead of writing them again.
    #[inline]
    fn constant(&mut self, part: Part, write: impl FnOnce(&mut Self))
    where
        Self: Sized,
    {
        let _ = part;
        write(self);
    }
}

/// The parts of a document that are the same for every row of a file ([`Out::constant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// `ecs`, `data_stream` and the first fields of `event`.
    Head,
    /// `event.category` and `event.type`.
    Category,
    /// `salesforce.instance_url`, `salesforce.event_log_file` and the data set's object opened.
    File,
}

impl Part {
    const COUNT: usize = 3;
}

/// A part's bytes as the file's first row wrote them, and the objects or arrays the part
/// left open (their marks relative to where the part starts).
#[derive(Debug, Default)]
struct Cached {
    bytes: Vec<u8>,
    opened: Vec<Open>,
    /// Whether the object the part was written in already had entries: the part's first
    /// byte (a comma or not) depends on it.
    after_entries: bool,
}

/// What a [`Bytes`] keeps from one document to the next: its stack's buffer and the file's
/// constant parts. [`clear_parts`](Self::clear_parts) when the file or the options change.
#[derive(Debug, Default)]
pub(crate) struct Reuse {
    stack: Vec<Open>,
    parts: [Option<Cached>; Part::COUNT],
}

impl Reuse {
    /// Forgets the constant parts: the next document writes them again.
    pub(crate) fn clear_parts(&mut self) {
        self.parts = Default::default();
    }
}

/// An object or array open in [`Bytes`]: where its key starts (to take it back) and where its
/// entries start (to know whether a comma goes before the next one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Open {
    mark: usize,
    entries: usize,
    array: bool,
}

/// The direct writer: JSON bytes appended to `out`, the same bytes `serde_json` writes for the
/// [`Tree`] the same calls build.
pub(crate) struct Bytes<'o> {
    out: &'o mut Vec<u8>,
    stack: Vec<Open>,
    parts: [Option<Cached>; Part::COUNT],
    /// The lowest the stack has been since a constant part started: a part that closed an
    /// object opened before it is not cached (its bytes could depend on that object's).
    low: usize,
}

impl<'o> Bytes<'o> {
    /// Starts the document's own object.
    pub(crate) fn new(out: &'o mut Vec<u8>, reuse: Reuse) -> Self {
        let mut bytes = Bytes {
            out,
            stack: reuse.stack,
            parts: reuse.parts,
            low: 0,
        };
        bytes.stack.clear();
        bytes.out.push(b'{');
        let at = bytes.out.len();
        bytes.stack.push(Open {
            mark: at,
            entries: at,
            array: false,
        });
        bytes
    }

    /// Closes the document; gives the stack and the constant parts back for reuse.
    pub(crate) fn finish(mut self) -> Reuse {
        self.out.push(b'}');
        Reuse {
            stack: std::mem::take(&mut self.stack),
            parts: std::mem::take(&mut self.parts),
        }
    }

    /// Whether the innermost object or array has entries.
    #[inline]
    fn has_entries(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|top| self.out.len() != top.entries)
    }

    #[inline]
    fn entry(&mut self, key: Key<'_>) {
        let Some(top) = self.stack.last() else {
            return;
        };
        let first = self.out.len() == top.entries;
        match (top.array, first) {
            (false, false) => self.out.extend_from_slice(key.json),
            (false, true) => self
                .out
                .extend_from_slice(key.json.get(1..).unwrap_or_default()),
            (true, false) => self.out.push(b','),
            (true, true) => {}
        }
    }
}

impl Out for Bytes<'_> {
    #[inline]
    fn open(&mut self, key: Key<'_>) {
        let mark = self.out.len();
        self.entry(key);
        self.out.push(b'{');
        let entries = self.out.len();
        self.stack.push(Open {
            mark,
            entries,
            array: false,
        });
    }

    #[inline]
    fn open_array(&mut self, key: Key<'_>) {
        let mark = self.out.len();
        self.entry(key);
        self.out.push(b'[');
        let entries = self.out.len();
        self.stack.push(Open {
            mark,
            entries,
            array: true,
        });
    }

    #[inline]
    fn close(&mut self) {
        if let Some(open) = self.stack.pop() {
            self.low = self.low.min(self.stack.len());
            if self.out.len() == open.entries {
                self.out.truncate(open.mark);
            } else {
                self.out.push(if open.array { b']' } else { b'}' });
            }
        }
    }

    #[inline]
    fn str(&mut self, key: Key<'_>, v: &str) {
        self.entry(key);
        write_str(self.out, v);
    }

    #[inline]
    fn i64(&mut self, key: Key<'_>, v: i64) {
        self.entry(key);
        write_i64(self.out, v);
    }

    #[inline]
    fn u64(&mut self, key: Key<'_>, v: u64) {
        self.entry(key);
        write_u64(self.out, v);
    }

    #[inline]
    fn f64(&mut self, key: Key<'_>, v: f64) {
        self.entry(key);
        write_f64(self.out, v);
    }

    #[inline]
    fn bool(&mut self, key: Key<'_>, v: bool) {
        self.entry(key);
        write_bool(self.out, v);
    }

    #[inline]
    fn ip(&mut self, key: Key<'_>, v: IpAddr) {
        self.entry(key);
        write_ip(self.out, v);
    }

    #[inline]
    fn time(&mut self, key: Key<'_>, v: OffsetDateTime) {
        self.entry(key);
        write_rfc3339_millis(self.out, v);
    }

    fn constant(&mut self, part: Part, write: impl FnOnce(&mut Self)) {
        let after_entries = self.has_entries();
        let start = self.out.len();
        if let Some(cached) = &self.parts[part as usize]
            && cached.after_entries == after_entries
        {
            self.out.extend_from_slice(&cached.bytes);
            self.stack.extend(cached.opened.iter().map(|open| Open {
                mark: open.mark + start,
                entries: open.entries + start,
                array: open.array,
            }));
            return;
        }
        let depth = self.stack.len();
        let low = std::mem::replace(&mut self.low, depth);
        write(self);
        let closed_outer = self.low < depth;
        self.low = low.min(self.low);
        self.parts[part as usize] = (!closed_outer).then(|| Cached {
            bytes: self.out.get(start..).unwrap_or_default().to_vec(),
            opened: self
                .stack
                .get(depth..)
                .unwrap_or_default()
                .iter()
                .map(|open| Open {
                    mark: open.mark.saturating_sub(start),
                    entries: open.entries.saturating_sub(start),
                    array: open.array,
                })
                .collect(),
            after_entries,
        });
    }
}

/// A JSON value of the reference tree, objects in the order their entries were written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tree {
    Obj(Vec<(String, Tree)>),
    Arr(Vec<Tree>),
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Obj(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Tree::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Tree::Str(v) => s.serialize_str(v),
            Tree::I64(v) => s.serialize_i64(*v),
            Tree::U64(v) => s.serialize_u64(*v),
            Tree::F64(v) => s.serialize_f64(*v),
            Tree::Bool(v) => s.serialize_bool(*v),
        }
    }
}

/// The reference: builds a [`Tree`].
pub(crate) struct TreeOut {
    /// Open containers, each with the key it goes under in its parent.
    stack: Vec<(String, Tree)>,
}

impl TreeOut {
    pub(crate) fn new() -> Self {
        TreeOut {
            stack: vec![(String::new(), Tree::Obj(Vec::new()))],
        }
    }

    /// The document.
    pub(crate) fn finish(mut self) -> Tree {
        while self.stack.len() > 1 {
            self.close();
        }
        self.stack
            .pop()
            .map_or(Tree::Obj(Vec::new()), |(_, tree)| tree)
    }

    fn push(&mut self, key: &str, value: Tree) {
        match self.stack.last_mut() {
            Some((_, Tree::Obj(entries))) => entries.push((key.to_string(), value)),
            Some((_, Tree::Arr(items))) => items.push(value),
            _ => {}
        }
    }
}

impl Out for TreeOut {
    fn open(&mut self, key: Key<'_>) {
        self.stack
            .push((key.name.to_string(), Tree::Obj(Vec::new())));
    }

    fn open_array(&mut self, key: Key<'_>) {
        self.stack
            .push((key.name.to_string(), Tree::Arr(Vec::new())));
    }

    fn close(&mut self) {
        if self.stack.len() < 2 {
            return;
        }
        if let Some((key, value)) = self.stack.pop() {
            let empty = match &value {
                Tree::Obj(entries) => entries.is_empty(),
                Tree::Arr(items) => items.is_empty(),
                _ => false,
            };
            if !empty {
                self.push(&key, value);
            }
        }
    }

    fn str(&mut self, key: Key<'_>, v: &str) {
        self.push(key.name, Tree::Str(v.to_string()));
    }

    fn i64(&mut self, key: Key<'_>, v: i64) {
        self.push(key.name, Tree::I64(v));
    }

    fn u64(&mut self, key: Key<'_>, v: u64) {
        self.push(key.name, Tree::U64(v));
    }

    fn f64(&mut self, key: Key<'_>, v: f64) {
        self.push(key.name, Tree::F64(v));
    }

    fn bool(&mut self, key: Key<'_>, v: bool) {
        self.push(key.name, Tree::Bool(v));
    }

    fn ip(&mut self, key: Key<'_>, v: IpAddr) {
        self.push(key.name, Tree::Str(v.to_string()));
    }

    fn time(&mut self, key: Key<'_>, v: OffsetDateTime) {
        let utc = v.to_offset(time::UtcOffset::UTC);
        self.push(key.name, Tree::Str(rfc3339_millis(utc)));
    }
}
