//! TR-106 value types. Values travel as their TR-106 string forms (R-ENC.6) everywhere in the
//! engine; this module owns the types and checks a string against a type and its facets.

/// A TR-106 base type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `string`
    String,
    /// `boolean` (`true`/`false`, `1`/`0` accepted on input)
    Boolean,
    /// `int` (32-bit signed)
    Int,
    /// `unsignedInt` (32-bit unsigned)
    UnsignedInt,
    /// `long` (64-bit signed)
    Long,
    /// `unsignedLong` (64-bit unsigned)
    UnsignedLong,
    /// `dateTime` (ISO 8601, `Z`; `0001-01-01T00:00:00Z` is the Unknown Time)
    DateTime,
    /// `base64`
    Base64,
    /// `hexBinary`
    HexBinary,
    /// `decimal`
    Decimal,
}

impl ValueType {
    /// The TR-106 name (`unsignedInt`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Boolean => "boolean",
            ValueType::Int => "int",
            ValueType::UnsignedInt => "unsignedInt",
            ValueType::Long => "long",
            ValueType::UnsignedLong => "unsignedLong",
            ValueType::DateTime => "dateTime",
            ValueType::Base64 => "base64",
            ValueType::HexBinary => "hexBinary",
            ValueType::Decimal => "decimal",
        }
    }

    /// The type for a TR-106 name, if it is one of the base types.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ValueType::String,
            ValueType::Boolean,
            ValueType::Int,
            ValueType::UnsignedInt,
            ValueType::Long,
            ValueType::UnsignedLong,
            ValueType::DateTime,
            ValueType::Base64,
            ValueType::HexBinary,
            ValueType::Decimal,
        ]
        .into_iter()
        .find(|value_type| value_type.name() == name)
    }
}
