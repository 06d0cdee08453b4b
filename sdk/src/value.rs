//! TR-106 typed values and their string forms. Values cross the plugin boundary as TR-106
//! strings; [`Tr106`] converts between those strings and Rust types, so a plugin works with
//! `bool`, `u32`, [`DateTime`] and so on, and reports a 7011/7012 [`Fault`] for bad input.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fault::{ErrorCode, Fault};

/// A TR-106 base type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `string`
    String,
    /// `boolean`
    Boolean,
    /// `int` (32-bit signed)
    Int,
    /// `unsignedInt` (32-bit unsigned)
    UnsignedInt,
    /// `long` (64-bit signed)
    Long,
    /// `unsignedLong` (64-bit unsigned)
    UnsignedLong,
    /// `dateTime`
    DateTime,
    /// `base64`
    Base64,
    /// `hexBinary`
    HexBinary,
    /// `decimal`
    Decimal,
}

/// A Rust type with a TR-106 string form.
pub trait Tr106: Sized {
    /// The TR-106 type this Rust type stands for.
    const TYPE: Type;

    /// The TR-106 string form.
    fn to_tr106(&self) -> String;

    /// Parses the TR-106 string form; the error says why the text is not a valid value.
    fn from_tr106(text: &str) -> Result<Self, String>;

    /// Parses the value of parameter `path`, reporting 7011 (invalid type) naming the path.
    fn parse_param(path: impl fmt::Display, text: &str) -> Result<Self, Fault> {
        Self::from_tr106(text).map_err(|why| {
            Fault::new(
                ErrorCode::InvalidType,
                format!("{path}: invalid value \"{text}\": {why}"),
            )
        })
    }
}

impl Tr106 for String {
    const TYPE: Type = Type::String;
    fn to_tr106(&self) -> String {
        self.clone()
    }
    fn from_tr106(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

impl Tr106 for bool {
    const TYPE: Type = Type::Boolean;
    fn to_tr106(&self) -> String {
        if *self { "true" } else { "false" }.to_string()
    }
    fn from_tr106(text: &str) -> Result<Self, String> {
        match text {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("not a boolean (true, false, 1, 0)".to_string()),
        }
    }
}

macro_rules! integer {
    ($rust:ty, $tr106:expr, $name:literal) => {
        impl Tr106 for $rust {
            const TYPE: Type = $tr106;
            fn to_tr106(&self) -> String {
                self.to_string()
            }
            fn from_tr106(text: &str) -> Result<Self, String> {
                text.parse()
                    .map_err(|_| format!("not an {} in range", $name))
            }
        }
    };
}

integer!(i32, Type::Int, "int");
integer!(u32, Type::UnsignedInt, "unsignedInt");
integer!(i64, Type::Long, "long");
integer!(u64, Type::UnsignedLong, "unsignedLong");

impl Tr106 for f64 {
    const TYPE: Type = Type::Decimal;
    fn to_tr106(&self) -> String {
        self.to_string()
    }
    fn from_tr106(text: &str) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            _ => Err("not a decimal".to_string()),
        }
    }
}

/// Bytes in their `hexBinary` form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HexBinary(pub Vec<u8>);

impl Tr106 for HexBinary {
    const TYPE: Type = Type::HexBinary;
    fn to_tr106(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
    fn from_tr106(text: &str) -> Result<Self, String> {
        if !text.len().is_multiple_of(2) {
            return Err("odd number of hex digits".to_string());
        }
        (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| "not hex digits".to_string())
            })
            .collect::<Result<Vec<u8>, String>>()
            .map(HexBinary)
    }
}

/// Bytes in their `base64` form (RFC 4648, with padding).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base64(pub Vec<u8>);

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Tr106 for Base64 {
    const TYPE: Type = Type::Base64;
    fn to_tr106(&self) -> String {
        let mut out = String::with_capacity(self.0.len().div_ceil(3) * 4);
        for chunk in self.0.chunks(3) {
            let bits = chunk.iter().enumerate().fold(0u32, |acc, (at, byte)| {
                acc | (u32::from(*byte) << (16 - 8 * at))
            });
            for at in 0..4 {
                if at <= chunk.len() {
                    let index = (bits >> (18 - 6 * at)) & 0x3f;
                    out.push(char::from(BASE64_ALPHABET[index as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
    fn from_tr106(text: &str) -> Result<Self, String> {
        if !text.len().is_multiple_of(4) {
            return Err("base64 length is not a multiple of 4".to_string());
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        for chunk in text.as_bytes().chunks(4) {
            let padding = chunk.iter().rev().take_while(|byte| **byte == b'=').count();
            if padding > 2 {
                return Err("too much base64 padding".to_string());
            }
            let mut bits = 0u32;
            for (at, byte) in chunk.iter().enumerate() {
                let sextet = if at >= 4 - padding {
                    0
                } else {
                    BASE64_ALPHABET
                        .iter()
                        .position(|candidate| candidate == byte)
                        .ok_or_else(|| "not a base64 character".to_string())?
                        as u32
                };
                bits |= sextet << (18 - 6 * at);
            }
            let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
            out.extend_from_slice(&bytes[..3 - padding]);
        }
        Ok(Base64(out))
    }
}

/// A TR-106 `dateTime`: seconds since the Unix epoch, shown in UTC (`2026-11-25T20:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix_seconds: i64,
}

/// Days from 1970-01-01 to 0001-01-01 (the TR-106 Unknown Time).
const UNKNOWN_TIME_DAYS: i64 = -719_162;

impl DateTime {
    /// The Unknown Time, `0001-01-01T00:00:00Z`.
    pub const UNKNOWN: DateTime = DateTime {
        unix_seconds: UNKNOWN_TIME_DAYS * 86_400,
    };

    /// The current wall-clock time (the host's clock).
    pub fn now() -> DateTime {
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        DateTime { unix_seconds }
    }
}

/// Civil date from days since the Unix epoch (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since the Unix epoch of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl Tr106 for DateTime {
    const TYPE: Type = Type::DateTime;
    fn to_tr106(&self) -> String {
        let days = self.unix_seconds.div_euclid(86_400);
        let second_of_day = self.unix_seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
    fn from_tr106(text: &str) -> Result<Self, String> {
        let bad = || format!("not a dateTime (YYYY-MM-DDThh:mm:ssZ): {text}");
        let bytes = text.as_bytes();
        if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
            return Err(bad());
        }
        let number = |range: std::ops::Range<usize>| -> Result<u32, String> {
            text.get(range)
                .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse().ok())
                .ok_or_else(bad)
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        let rest = &text[19..];
        let rest = match rest.strip_prefix('.') {
            Some(fraction) => fraction.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => rest,
        };
        if rest != "Z" {
            return Err(bad());
        }
        let days = days_from_civil(i64::from(year), month, day);
        Ok(DateTime {
            unix_seconds: days * 86_400
                + i64::from(hour) * 3600
                + i64::from(minute) * 60
                + i64::from(second),
        })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_tr106())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_numeric_forms_and_print_words() {
        assert_eq!(bool::from_tr106("1"), Ok(true));
        assert_eq!(bool::from_tr106("false"), Ok(false));
        assert!(bool::from_tr106("yes").is_err());
        assert_eq!(true.to_tr106(), "true");
    }

    #[test]
    fn unsigned_int_rejects_negative_and_overflow() {
        assert!(u32::from_tr106("-1").is_err());
        assert!(u32::from_tr106("4294967296").is_err());
        assert_eq!(u32::from_tr106("4294967295"), Ok(u32::MAX));
    }

    #[test]
    fn date_time_round_trips_and_knows_the_unknown_time() {
        let text = "2026-11-25T20:11:09Z";
        let parsed = DateTime::from_tr106(text).unwrap();
        assert_eq!(parsed.unix_seconds, 1_795_637_469);
        assert_eq!(parsed.to_tr106(), text);
        assert_eq!(DateTime::UNKNOWN.to_tr106(), "0001-01-01T00:00:00Z");
        assert!(DateTime::from_tr106("2026-13-01T00:00:00Z").is_err());
        assert!(DateTime::from_tr106("2026-11-25 20:11:09").is_err());
    }

    #[test]
    fn binary_forms_round_trip() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob"] {
            let encoded = Base64(bytes.to_vec()).to_tr106();
            assert_eq!(Base64::from_tr106(&encoded), Ok(Base64(bytes.to_vec())));
        }
        assert_eq!(Base64(b"foob".to_vec()).to_tr106(), "Zm9vYg==");
        assert_eq!(HexBinary(vec![0xde, 0xad]).to_tr106(), "dead");
        assert_eq!(
            HexBinary::from_tr106("DEAD"),
            Ok(HexBinary(vec![0xde, 0xad]))
        );
        assert!(HexBinary::from_tr106("abc").is_err());
    }

    #[test]
    fn parse_param_reports_7011_naming_the_path() {
        let fault = u32::parse_param("Device.X.Count", "many").unwrap_err();
        assert_eq!(fault.code.code(), 7011);
        assert!(fault.message.contains("Device.X.Count"));
    }
}
