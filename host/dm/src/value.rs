//! TR-106 value types. Values travel as their TR-106 string forms (R-ENC.6) everywhere in the
//! engine; this module owns the types, the facets that restrict them ([`Constraints`], also
//! reachable as `schema::Constraints`), and checks a string against a type and its facets. It
//! depends on no other module of the crate: `schema` builds on it.

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

/// An inclusive numeric range facet. Bounds are kept as the TR-106 text so that integer,
/// unsigned and decimal ranges share one representation; `None` means unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Range {
    /// Smallest allowed value.
    pub min: Option<String>,
    /// Largest allowed value.
    pub max: Option<String>,
}

/// Facets that restrict a parameter's or argument's values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Constraints {
    /// Allowed values (empty = any). For lists, each item must be one of these.
    pub enumeration: Vec<String>,
    /// Allowed numeric ranges (empty = any; a value must fall into one of them).
    pub ranges: Vec<Range>,
    /// Minimum length in characters (for strings) or bytes (base64/hexBinary).
    pub min_length: Option<u32>,
    /// Maximum length in characters (for strings) or bytes (base64/hexBinary).
    pub max_length: Option<u32>,
    /// `Some` when the value is a comma-separated list of items of the type.
    pub list: Option<ListFacet>,
}

/// The list facet: the value is a comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFacet {
    /// Maximum number of items, if bounded.
    pub max_items: Option<u32>,
    /// Maximum length of the whole list text, if bounded.
    pub max_length: Option<u32>,
}
/// Why a value was refused. 7011 for [`ValueError::WrongType`], 7012 for the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The text is not a value of the type (7011).
    #[error("\"{value}\" is not a valid {}", expected.name())]
    WrongType {
        /// The expected type.
        expected: ValueType,
        /// The offending text (or list item).
        value: String,
    },
    /// Outside every allowed range (7012).
    #[error("{value} is out of range")]
    OutOfRange {
        /// The offending value.
        value: String,
    },
    /// Not one of the enumerated values (7012).
    #[error("\"{value}\" is not one of the allowed values")]
    NotEnumerated {
        /// The offending value.
        value: String,
    },
    /// Too long or too short (7012).
    #[error("length {length} is outside {min}..={max}")]
    BadLength {
        /// The measured length (characters for strings, bytes for binary types).
        length: usize,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// A strong reference to an object that does not exist (R-ARC.12; 7012).
    #[error("{value} does not refer to an existing object")]
    NoSuchTarget {
        /// The reference that leads nowhere.
        value: String,
    },
    /// An `Alias` that is empty or does not start with a letter (TR-181 Alias data type,
    /// digest §3.3; 7012).
    #[error("\"{value}\" is not a valid Alias: it must be non-empty and start with a letter")]
    BadAlias {
        /// The offending value.
        value: String,
    },
    /// Too many list items (7012).
    #[error("{count} list items, at most {max} allowed")]
    TooManyItems {
        /// Items given.
        count: usize,
        /// Items allowed.
        max: u32,
    },
}

/// The "nothing set yet" value of a type: `false`, `0`, the Unknown Time
/// `0001-01-01T00:00:00Z`, or `""` for strings, binary types and lists (an empty list is valid
/// whatever its item type). A range that excludes 0 does not move it: 0 is what the agent reads
/// as "not configured" (`PeriodicNotifInterval` 0 sends no `Periodic!`, `Order` 0 sorts last),
/// where the lowest allowed value would switch behaviour on.
pub fn zero_value(value_type: ValueType, constraints: &Constraints) -> String {
    if constraints.list.is_some() {
        return String::new();
    }
    match value_type {
        ValueType::String | ValueType::Base64 | ValueType::HexBinary => String::new(),
        ValueType::Boolean => "false".to_string(),
        ValueType::DateTime => "0001-01-01T00:00:00Z".to_string(),
        ValueType::Int
        | ValueType::UnsignedInt
        | ValueType::Long
        | ValueType::UnsignedLong
        | ValueType::Decimal => "0".to_string(),
    }
}

/// Checks `value` against a type and its facets; returns the canonical form.
pub fn check(
    value_type: ValueType,
    constraints: &Constraints,
    value: &str,
) -> Result<String, ValueError> {
    let Some(list) = &constraints.list else {
        return check_item(value_type, constraints, value);
    };
    if let Some(max) = list.max_length
        && value.chars().count() > max as usize
    {
        return Err(ValueError::BadLength {
            length: value.chars().count(),
            min: 0,
            max,
        });
    }
    if value.is_empty() {
        return Ok(String::new());
    }
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if let Some(max) = list.max_items
        && items.len() > max as usize
    {
        return Err(ValueError::TooManyItems {
            count: items.len(),
            max,
        });
    }
    let checked = items
        .into_iter()
        .map(|item| check_item(value_type, constraints, item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(checked.join(","))
}

fn wrong(expected: ValueType, value: &str) -> ValueError {
    ValueError::WrongType {
        expected,
        value: value.to_string(),
    }
}

fn check_item(
    value_type: ValueType,
    constraints: &Constraints,
    value: &str,
) -> Result<String, ValueError> {
    let canonical = canonical(value_type, value).ok_or_else(|| wrong(value_type, value))?;
    if !constraints.enumeration.is_empty() && !constraints.enumeration.contains(&canonical) {
        return Err(ValueError::NotEnumerated { value: canonical });
    }
    let length = match value_type {
        ValueType::Base64 => Some(base64_len(&canonical)),
        ValueType::HexBinary => Some(canonical.len() / 2),
        ValueType::String => Some(canonical.chars().count()),
        _ => None,
    };
    if let Some(length) = length {
        let min = constraints.min_length.unwrap_or(0);
        let max = constraints.max_length.unwrap_or(u32::MAX);
        if length < min as usize || length > max as usize {
            return Err(ValueError::BadLength { length, min, max });
        }
    }
    if !constraints.ranges.is_empty()
        && let Some(number) = Number::parse(value_type, &canonical)
    {
        let inside = constraints.ranges.iter().any(|range| {
            let above = range
                .min
                .as_deref()
                .and_then(|min| Number::parse(value_type, min))
                .is_none_or(|min| number >= min);
            let below = range
                .max
                .as_deref()
                .and_then(|max| Number::parse(value_type, max))
                .is_none_or(|max| number <= max);
            above && below
        });
        if !inside {
            return Err(ValueError::OutOfRange { value: canonical });
        }
    }
    Ok(canonical)
}

/// The canonical text of a value of a type, or `None` when it is not one.
pub fn canonical(value_type: ValueType, value: &str) -> Option<String> {
    match value_type {
        ValueType::String => Some(value.to_string()),
        ValueType::Boolean => parse_bool(value).map(|b| b.to_string()),
        ValueType::Int => value.parse::<i32>().ok().map(|n| n.to_string()),
        ValueType::UnsignedInt => value.parse::<u32>().ok().map(|n| n.to_string()),
        ValueType::Long => value.parse::<i64>().ok().map(|n| n.to_string()),
        ValueType::UnsignedLong => value.parse::<u64>().ok().map(|n| n.to_string()),
        ValueType::Decimal => is_decimal(value).then(|| value.to_string()),
        ValueType::DateTime => DateTime::parse(value).map(|_| value.to_string()),
        ValueType::Base64 => is_base64(value).then(|| value.to_string()),
        ValueType::HexBinary => (value.len().is_multiple_of(2)
            && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_string()),
    }
}

/// `true`/`false`, with `1`/`0` accepted (R-ENC.6).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn is_decimal(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty())
}

fn is_base64(value: &str) -> bool {
    let trimmed = value.trim_end_matches('=');
    value.len().is_multiple_of(4)
        && value.len() - trimmed.len() <= 2
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn base64_len(value: &str) -> usize {
    let padding = value.len() - value.trim_end_matches('=').len();
    (value.len() / 4 * 3).saturating_sub(padding)
}

/// A number of any numeric type, ordered semantically (`0123` == `123`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum Number {
    /// Integer types.
    Integer(i128),
    /// `decimal`.
    Decimal(f64),
}

impl Number {
    /// Parses the text as a number of the type; `None` for non-numeric types or bad text.
    pub fn parse(value_type: ValueType, value: &str) -> Option<Number> {
        match value_type {
            ValueType::Int | ValueType::UnsignedInt | ValueType::Long | ValueType::UnsignedLong => {
                value.parse::<i128>().ok().map(Number::Integer)
            }
            ValueType::Decimal if is_decimal(value) => {
                value.parse::<f64>().ok().map(Number::Decimal)
            }
            _ => None,
        }
    }
}

/// A parsed TR-106 dateTime, ordered by instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DateTime {
    /// `0001-01-01T00:00:00Z`: the Unknown Time (only `==`/`!=` make sense for it).
    Unknown,
    /// Seconds and nanoseconds since 1970-01-01T00:00:00Z (UTC when no zone is given).
    At(i64, u32),
}

impl DateTime {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±hh:mm]`.
    pub fn parse(value: &str) -> Option<DateTime> {
        let bytes = value.as_bytes();
        if bytes.len() < 19
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || bytes[10] != b'T'
            || bytes[13] != b':'
            || bytes[16] != b':'
        {
            return None;
        }
        let field = |range: std::ops::Range<usize>| -> Option<i64> {
            let text = value.get(range)?;
            text.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| text.parse().ok())
                .flatten()
        };
        let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
        let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut rest = &value[19..];
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let padded = format!("{:0<9}", &fraction[..digits.min(9)]);
            nanos = padded.parse().ok()?;
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "" | "Z" => 0,
            zone => {
                let sign = match zone.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let zone = &zone[1..];
                if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                    return None;
                }
                let hours: i64 = zone[..2].parse().ok()?;
                let minutes: i64 = zone[3..].parse().ok()?;
                sign * (hours * 3600 + minutes * 60)
            }
        };
        if (year, month, day, hour, minute, second) == (1, 1, 1, 0, 0, 0) && nanos == 0 {
            return Some(DateTime::Unknown);
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
        Some(DateTime::At(seconds, nanos))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_digits_and_canonicalise() {
        assert_eq!(
            check(ValueType::Boolean, &Constraints::default(), "1"),
            Ok("true".into())
        );
        assert!(matches!(
            check(ValueType::Boolean, &Constraints::default(), "yes"),
            Err(ValueError::WrongType { .. })
        ));
    }

    #[test]
    fn integers_are_checked_for_width_and_range() {
        let plain = Constraints::default();
        assert_eq!(
            check(ValueType::UnsignedInt, &plain, "+0123"),
            Ok("123".into())
        );
        assert!(check(ValueType::UnsignedInt, &plain, "-1").is_err());
        assert!(check(ValueType::Int, &plain, "2147483648").is_err());
        let ranged = Constraints {
            ranges: vec![Range {
                min: Some("1".into()),
                max: Some("10".into()),
            }],
            ..Constraints::default()
        };
        assert_eq!(
            check(ValueType::Int, &ranged, "11"),
            Err(ValueError::OutOfRange { value: "11".into() })
        );
        assert!(check(ValueType::Int, &ranged, "10").is_ok());
    }

    #[test]
    fn strings_are_checked_for_length_and_enumeration() {
        let facets = Constraints {
            enumeration: vec!["Up".into(), "Down".into()],
            max_length: Some(4),
            ..Constraints::default()
        };
        assert!(check(ValueType::String, &facets, "Up").is_ok());
        assert!(matches!(
            check(ValueType::String, &facets, "Sideways"),
            Err(ValueError::NotEnumerated { .. })
        ));
    }

    #[test]
    fn lists_check_each_item_and_the_count() {
        let facets = Constraints {
            list: Some(ListFacet {
                max_items: Some(2),
                max_length: None,
            }),
            ..Constraints::default()
        };
        assert_eq!(check(ValueType::Int, &facets, "1, 2"), Ok("1,2".into()));
        assert!(matches!(
            check(ValueType::Int, &facets, "1,2,3"),
            Err(ValueError::TooManyItems { .. })
        ));
        assert!(matches!(
            check(ValueType::Int, &facets, "1,x"),
            Err(ValueError::WrongType { .. })
        ));
    }

    #[test]
    fn datetimes_parse_and_order_across_zones() {
        let utc = DateTime::parse("2021-06-06T08:00:00Z");
        let shifted = DateTime::parse("2021-06-06T10:00:00+02:00");
        assert_eq!(utc, shifted);
        assert!(DateTime::parse("2021-06-06T07:59:59.5Z") < utc);
        assert_eq!(
            DateTime::parse("0001-01-01T00:00:00Z"),
            Some(DateTime::Unknown)
        );
        assert_eq!(DateTime::parse("2021-13-06T08:00:00Z"), None);
        assert_eq!(DateTime::parse("yesterday"), None);
    }

    #[test]
    fn zero_values_are_valid_values_of_their_type() {
        let plain = Constraints::default();
        for value_type in [
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
        ] {
            let zero = zero_value(value_type, &plain);
            assert!(
                check(value_type, &plain, &zero).is_ok(),
                "{} zero {zero:?}",
                value_type.name()
            );
        }
        assert_eq!(zero_value(ValueType::UnsignedInt, &plain), "0");
        assert_eq!(zero_value(ValueType::Boolean, &plain), "false");
        assert_eq!(
            zero_value(ValueType::DateTime, &plain),
            "0001-01-01T00:00:00Z"
        );
    }

    #[test]
    fn zero_value_stays_zero_under_a_range_and_empty_for_lists() {
        let from_one = Constraints {
            ranges: vec![Range {
                min: Some("1".into()),
                max: None,
            }],
            ..Constraints::default()
        };
        assert_eq!(zero_value(ValueType::UnsignedInt, &from_one), "0");
        let list = Constraints {
            list: Some(ListFacet::default()),
            ..Constraints::default()
        };
        assert_eq!(zero_value(ValueType::UnsignedInt, &list), "");
    }

    #[test]
    fn binary_types_are_checked() {
        let plain = Constraints::default();
        assert!(check(ValueType::HexBinary, &plain, "0aFF").is_ok());
        assert!(check(ValueType::HexBinary, &plain, "0aF").is_err());
        assert!(check(ValueType::Base64, &plain, "aGVsbG8=").is_ok());
        assert!(check(ValueType::Base64, &plain, "aGVsbG8").is_err());
        assert!(check(ValueType::Decimal, &plain, "-1.25").is_ok());
        assert!(check(ValueType::Decimal, &plain, "1.").is_err());
    }
}
