//! Values that remember where they were written, so that every diagnostic,
//! semantic ones included, can point at the offending text.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// Where a value was written: 1-based line and column, and the byte range
/// when the parser knows it (it always does for in-memory text).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub line: u32,
    pub column: u32,
    pub bytes: Option<(usize, usize)>,
}

impl Span {
    /// A span for values that were not read from a file (defaults, tests).
    pub const UNKNOWN: Span = Span {
        line: 0,
        column: 0,
        bytes: None,
    };

    pub(crate) fn from_location(location: &serde_saphyr::Location) -> Span {
        let span = location.span();
        let bytes = match (span.byte_offset(), span.byte_len()) {
            (Some(offset), Some(len)) => Some((offset as usize, len as usize)),
            _ => None,
        };
        Span {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
            bytes,
        }
    }
}

/// A value with the place it was written. Equality, ordering and hashing
/// look at the value only, so a `Sp<String>` works as a map key that can be
/// looked up with a plain `&str`.
#[derive(Clone)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Sp { value, span }
    }

    /// A value that was not written in a file.
    pub fn unspanned(value: T) -> Self {
        Sp::new(value, Span::UNKNOWN)
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Sp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: fmt::Display> fmt::Display for Sp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Sp<T> {}

impl<T: PartialOrd> PartialOrd for Sp<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<T: Ord> Ord for Sp<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T: Hash> Hash for Sp<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl Borrow<str> for Sp<String> {
    fn borrow(&self) -> &str {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Sp::new(
            spanned.value,
            Span::from_location(&spanned.referenced),
        ))
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A scalar that must parse as `T`, kept with its text. Parsing happens while
/// loading but never fails the load: validation reports every malformed value
/// of a file together, with its location, instead of stopping at the first.
#[derive(Clone, Debug)]
pub struct Parsed<T> {
    pub text: Sp<String>,
    pub value: Result<T, String>,
}

impl<T> Parsed<T> {
    pub fn span(&self) -> Span {
        self.text.span
    }

    /// The parsed value; `None` only for a value validation has rejected.
    pub fn ok(&self) -> Option<&T> {
        self.value.as_ref().ok()
    }
}

impl<T: FromStr<Err = String>> Parsed<T> {
    pub fn parse(text: Sp<String>) -> Self {
        let value = text.value.parse();
        Parsed { text, value }
    }
}

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Parsed::parse(Sp::<String>::deserialize(deserializer)?))
    }
}

impl<T> JsonSchema for Parsed<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "String".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}
