//! The keys a config table may hold, read from the struct it deserializes into, so that a
//! struct's fields are the schema and a new key is added in one place.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The fields of `T`, a struct deriving `Deserialize` (without `#[serde(flatten)]`, which
/// hides them), in declaration order; empty for anything else.
pub fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields = Fields(&[]);
    // Always an error: the point is what `deserialize_struct` was told on the way.
    let _ = T::deserialize(&mut fields);
    fields.0
}

/// A deserializer that only notes the fields a struct asks for, then refuses to go on.
struct Fields(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut Fields {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("fields noted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Two {
        first: Option<String>,
        #[serde(rename = "second_key")]
        second: Option<u8>,
    }

    #[test]
    fn the_keys_are_the_fields_as_serde_names_them() {
        assert_eq!(keys_of::<Two>(), ["first", "second_key"]);
        assert!(keys_of::<String>().is_empty());
    }
}
