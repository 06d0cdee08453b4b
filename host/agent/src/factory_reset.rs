//! The factory-reset text format shared with obuspa, so operators keep their files:
//!
//! ```text
//! # a comment
//! Device.LocalAgent.Controller.1.EndpointID "self::usp-controller"
//! Device.LocalAgent.Controller.1.Enable true
//! +Device.LocalAgent.MTP.1.Alias "cpe-1"
//! ```
//!
//! One parameter per line: a concrete parameter path, whitespace, then the value, optionally in
//! double quotes (the only way to write an empty string). As in obuspa, a quoted value runs from
//! the first quote to the last one on the line, so `"a"b"` is `a"b` (obuspa's own STOMP example
//! file has such a line); there are no escapes. A leading `+` means "add if absent": the line never overwrites a value that an
//! earlier line or the existing state already gave. Lines under `Internal.` are obuspa's private
//! settings, flagged by [`Entry::internal`]; the agent honours `Internal.Reboot.Cause` and
//! reports the others.
//!
//! obuspa's files predate TR-181 Device:2.19 in places (`Controller.{i}.MTP.{i}.MQTT.Reference`,
//! `X_ARRIS-COM_EnableEncryption`); [`legacy`] maps those names to the model this agent serves.
//!
//! [`parse`] is a pure function over text (fuzz-friendly): unlike obuspa, a bad line is reported
//! with its number and the remaining lines are still returned.

pub mod legacy;

/// One parameter line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number, for log messages.
    pub line: usize,
    /// The parameter path as written (`Device.LocalAgent.Controller.1.Alias`).
    pub path: String,
    /// The value with quotes removed.
    pub value: String,
    /// `+` line: only applied when the parameter has no value yet.
    pub if_absent: bool,
}

impl Entry {
    /// True for obuspa's private `Internal.` settings, which have no meaning here.
    pub fn internal(&self) -> bool {
        self.path.starts_with("Internal.")
    }
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: LineErrorKind,
}

/// What is wrong with a rejected line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineErrorKind {
    /// The path is not a parameter path (must start with a letter, must not end in `.`).
    #[error("{0:?} is not a parameter path")]
    BadPath(String),
    /// The path is followed by nothing.
    #[error("{0} has no value (write \"\" for an empty string)")]
    MissingValue(String),
    /// An opening quote has no closing quote.
    #[error("{0}: unterminated quoted value")]
    Unterminated(String),
    /// A closing quote has no opening quote.
    #[error("{0}: the value ends with a quote but does not start with one")]
    UnopenedQuote(String),
}

/// The lines of a factory-reset file: the entries in file order and the rejected lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Accepted parameter lines, in file order.
    pub entries: Vec<Entry>,
    /// Rejected lines, in file order.
    pub errors: Vec<LineError>,
}

/// Parses the text of a factory-reset file. Never fails as a whole: each bad line is reported.
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        match parse_line(raw) {
            Ok(Some((path, value, if_absent))) => parsed.entries.push(Entry {
                line,
                path,
                value,
                if_absent,
            }),
            Ok(None) => {}
            Err(kind) => parsed.errors.push(LineError { line, kind }),
        }
    }
    parsed
}

type Line = (String, String, bool);

fn parse_line(raw: &str) -> Result<Option<Line>, LineErrorKind> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (if_absent, line) = match line.strip_prefix('+') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, line),
    };
    let (path, rest) = match line.find(char::is_whitespace) {
        Some(at) => (&line[..at], line[at..].trim()),
        None => (line, ""),
    };
    let starts_with_letter = path.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || path.ends_with('.') || path.contains("..") {
        return Err(LineErrorKind::BadPath(path.to_string()));
    }
    if rest.is_empty() {
        return Err(LineErrorKind::MissingValue(path.to_string()));
    }
    let value = match rest.strip_prefix('"') {
        Some(quoted) => match quoted.strip_suffix('"') {
            Some(inner) => inner.to_string(),
            None => return Err(LineErrorKind::Unterminated(path.to_string())),
        },
        None if rest.ends_with('"') => {
            return Err(LineErrorKind::UnopenedQuote(path.to_string()));
        }
        None => rest.to_string(),
    };
    Ok(Some((path.to_string(), value, if_absent)))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    fn entry(line: usize, path: &str, value: &str, if_absent: bool) -> Entry {
        Entry {
            line,
            path: path.to_string(),
            value: value.to_string(),
            if_absent,
        }
    }

    #[test]
    fn quoted_unquoted_and_empty_values_are_read() {
        let parsed = parse(
            "Device.A.1.B \"x y\"\nDevice.A.1.C true\nDevice.A.1.D \"\"\nDevice.A.1.E   spaced value  \n",
        );
        assert_eq!(parsed.errors, vec![]);
        assert_eq!(
            parsed.entries,
            vec![
                entry(1, "Device.A.1.B", "x y", false),
                entry(2, "Device.A.1.C", "true", false),
                entry(3, "Device.A.1.D", "", false),
                entry(4, "Device.A.1.E", "spaced value", false),
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let parsed = parse("# header\n\n   \n  # indented comment\nDevice.X \"1\"\n");
        assert_eq!(parsed.entries, vec![entry(5, "Device.X", "1", false)]);
        assert!(parsed.errors.is_empty());
    }

    #[test]
    fn plus_marks_add_if_absent() {
        let parsed = parse("+Device.A.1.B \"v\"\n+ Device.A.2.B \"w\"\n");
        assert_eq!(
            parsed.entries,
            vec![
                entry(1, "Device.A.1.B", "v", true),
                entry(2, "Device.A.2.B", "w", true)
            ]
        );
    }

    #[test]
    fn trailing_whitespace_after_quote_is_accepted() {
        let parsed = parse("Device.A.1.Alias \"cpe-1\" \t\r\n");
        assert_eq!(
            parsed.entries,
            vec![entry(1, "Device.A.1.Alias", "cpe-1", false)]
        );
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_is_kept() {
        let parsed = parse(
            "Device.A.1.B\nDevice.A.1.C \"open\nDevice.A.1.D x\"\n1Device.E \"v\"\nDevice.A. \"v\"\nDevice.OK \"fine\"\nDevice.A.1.F \"x\" y\n",
        );
        assert_eq!(parsed.entries, vec![entry(6, "Device.OK", "fine", false)]);
        let kinds: Vec<(usize, &LineErrorKind)> = parsed
            .errors
            .iter()
            .map(|err| (err.line, &err.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, &LineErrorKind::MissingValue("Device.A.1.B".into())),
                (2, &LineErrorKind::Unterminated("Device.A.1.C".into())),
                (3, &LineErrorKind::UnopenedQuote("Device.A.1.D".into())),
                (4, &LineErrorKind::BadPath("1Device.E".into())),
                (5, &LineErrorKind::BadPath("Device.A.".into())),
                (7, &LineErrorKind::Unterminated("Device.A.1.F".into())),
            ]
        );
        assert_eq!(
            parsed.errors[0].to_string(),
            "line 1: Device.A.1.B has no value (write \"\" for an empty string)"
        );
    }

    #[test]
    fn a_quoted_value_runs_from_the_first_quote_to_the_last_as_in_obuspa() {
        let parsed = parse("Device.A.1.Destination \"notify-dest\"\"\nDevice.A.1.B \"\"\"\n");
        assert_eq!(parsed.errors, vec![]);
        assert_eq!(
            parsed.entries,
            vec![
                entry(1, "Device.A.1.Destination", "notify-dest\"", false),
                entry(2, "Device.A.1.B", "\"", false),
            ]
        );
    }

    #[test]
    fn internal_settings_are_flagged() {
        let parsed = parse("Internal.Reboot.Cause \"LocalFactoryReset\"\n");
        assert!(parsed.entries[0].internal());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for text in [
            "\"",
            "+",
            "+ ",
            "+\"",
            "\u{0}\u{1}",
            "a \"",
            "a\t\"\"\"",
            "é \"ü\"",
        ] {
            let _ = parse(text);
        }
    }
}
