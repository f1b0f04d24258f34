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

/// A document being written. Keys are written as given (escaped); values are never empty
/// strings (the mapping leaves those out before calling).
pub(crate) trait Out {
    /// Opens the object `key` (or, inside an array, an object element: `key` is ignored).
    fn open(&mut self, key: &str);
    /// Closes the innermost object or array, taking it back if nothing was written in it.
    fn close(&mut self);
    /// Opens the array `key`.
    fn open_array(&mut self, key: &str);
    fn str(&mut self, key: &str, v: &str);
    fn i64(&mut self, key: &str, v: i64);
    fn u64(&mut self, key: &str, v: u64);
    fn f64(&mut self, key: &str, v: f64);
    fn bool(&mut self, key: &str, v: bool);
    fn ip(&mut self, key: &str, v: IpAddr);
    fn time(&mut self, key: &str, v: OffsetDateTime);
    /// A typed column value as the NDJSON format writes it (datetimes in UTC).
    fn field(&mut self, key: &str, v: &FieldValue<'_>) {
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
    fn one(&mut self, key: &str, v: &str) {
        self.open_array(key);
        self.str("", v);
        self.close();
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
}

impl<'o> Bytes<'o> {
    /// Starts the document's own object.
    pub(crate) fn new(out: &'o mut Vec<u8>, stack: Vec<Open>) -> Self {
        let mut bytes = Bytes { out, stack };
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

    /// Closes the document; gives the stack back for reuse.
    pub(crate) fn finish(mut self) -> Vec<Open> {
        self.out.push(b'}');
        std::mem::take(&mut self.stack)
    }

    #[inline]
    fn entry(&mut self, key: &str) {
        let Some(top) = self.stack.last() else {
            return;
        };
        if self.out.len() != top.entries {
            self.out.push(b',');
        }
        if !top.array {
            write_str(self.out, key);
            self.out.push(b':');
        }
    }
}

impl Out for Bytes<'_> {
    #[inline]
    fn open(&mut self, key: &str) {
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
    fn open_array(&mut self, key: &str) {
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
            if self.out.len() == open.entries {
                self.out.truncate(open.mark);
            } else {
                self.out.push(if open.array { b']' } else { b'}' });
            }
        }
    }

    #[inline]
    fn str(&mut self, key: &str, v: &str) {
        self.entry(key);
        write_str(self.out, v);
    }

    #[inline]
    fn i64(&mut self, key: &str, v: i64) {
        self.entry(key);
        write_i64(self.out, v);
    }

    #[inline]
    fn u64(&mut self, key: &str, v: u64) {
        self.entry(key);
        write_u64(self.out, v);
    }

    #[inline]
    fn f64(&mut self, key: &str, v: f64) {
        self.entry(key);
        write_f64(self.out, v);
    }

    #[inline]
    fn bool(&mut self, key: &str, v: bool) {
        self.entry(key);
        write_bool(self.out, v);
    }

    #[inline]
    fn ip(&mut self, key: &str, v: IpAddr) {
        self.entry(key);
        write_ip(self.out, v);
    }

    #[inline]
    fn time(&mut self, key: &str, v: OffsetDateTime) {
        self.entry(key);
        write_rfc3339_millis(self.out, v);
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
    fn open(&mut self, key: &str) {
        self.stack.push((key.to_string(), Tree::Obj(Vec::new())));
    }

    fn open_array(&mut self, key: &str) {
        self.stack.push((key.to_string(), Tree::Arr(Vec::new())));
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

    fn str(&mut self, key: &str, v: &str) {
        self.push(key, Tree::Str(v.to_string()));
    }

    fn i64(&mut self, key: &str, v: i64) {
        self.push(key, Tree::I64(v));
    }

    fn u64(&mut self, key: &str, v: u64) {
        self.push(key, Tree::U64(v));
    }

    fn f64(&mut self, key: &str, v: f64) {
        self.push(key, Tree::F64(v));
    }

    fn bool(&mut self, key: &str, v: bool) {
        self.push(key, Tree::Bool(v));
    }

    fn ip(&mut self, key: &str, v: IpAddr) {
        self.push(key, Tree::Str(v.to_string()));
    }

    fn time(&mut self, key: &str, v: OffsetDateTime) {
        let utc = v.to_offset(time::UtcOffset::UTC);
        self.push(key, Tree::Str(rfc3339_millis(utc)));
    }
}
