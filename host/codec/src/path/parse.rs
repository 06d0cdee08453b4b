//! The path parser: one pass over the bytes, no backtracking, no allocation beyond the AST.
//! Grammar: digest §4.2 (TR-369 path BNF), with whitespace tolerated around operators and `&&`
//! inside search expressions (R-ARC.9a).

use super::ast::{
    Comparison, Expression, Leaf, Operand, Operator, Path, RefFollow, RefItem, RelPath, RelStep,
    Segment,
};

/// A path that does not follow the grammar. Reported to Controllers as 7008.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path syntax in \"{path}\" at position {position}: {reason}")]
pub struct PathError {
    /// The path as received.
    pub path: String,
    /// Byte offset of the fault.
    pub position: usize,
    /// What was wrong there.
    pub reason: String,
}

/// Longest path accepted; longer ones are rejected before parsing (a guard, not a spec limit).
pub const MAX_PATH_LEN: usize = 4096;

impl Path {
    /// Parses an instantiated-DM path (request paths, reference values, subscription lists).
    pub fn parse(text: &str) -> Result<Path, PathError> {
        Parser::new(text, false).path()
    }

    /// Parses a supported-DM path: like [`Path::parse`], but `{i}` is accepted wherever an
    /// instance may stand (`Device.IP.Interface.{i}.Status`). Wildcards, search expressions and
    /// reference following are refused.
    pub fn parse_supported(text: &str) -> Result<Path, PathError> {
        let path = Parser::new(text, true).path()?;
        let position = text.find(['*', '[', '+', '#']);
        match position {
            Some(position) => Err(PathError {
                path: text.to_string(),
                position,
                reason: "supported-DM paths use {i}, not instance selectors".to_string(),
            }),
            None => Ok(path),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    supported: bool,
}

fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_name_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, supported: bool) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            supported,
        }
    }

    fn error(&self, position: usize, reason: impl Into<String>) -> PathError {
        PathError {
            path: self.text.to_string(),
            position,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), PathError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(self.pos, format!("expected {what}")))
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn name(&mut self) -> Result<String, PathError> {
        let start = self.pos;
        match self.peek() {
            Some(byte) if is_name_start(byte) => self.pos += 1,
            Some(_) => return Err(self.error(start, "expected a name")),
            None => return Err(self.error(start, "unexpected end, expected a name")),
        }
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn posnum(&mut self) -> Result<u32, PathError> {
        let start = self.pos;
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = &self.text[start..self.pos];
        if digits.starts_with('0') {
            return Err(self.error(start, "instance numbers start at 1 and have no leading 0"));
        }
        digits
            .parse::<u32>()
            .map_err(|_| self.error(start, "instance number out of range"))
    }

    /// After a name that is followed by `+` or `#`: the reference-following suffix.
    fn follow(&mut self, param: String) -> Result<RefFollow, PathError> {
        let item = if self.peek() == Some(b'#') {
            self.pos += 1;
            if self.peek() == Some(b'*') {
                self.pos += 1;
                RefItem::All
            } else if self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                RefItem::Index(self.posnum()?)
            } else {
                return Err(self.error(self.pos, "expected an item number or * after #"));
            }
        } else {
            RefItem::First
        };
        self.expect(b'+', "+ to follow a reference")?;
        Ok(RefFollow { param, item })
    }

    fn path(mut self) -> Result<Path, PathError> {
        if self.text.len() > MAX_PATH_LEN {
            return Err(self.error(MAX_PATH_LEN, "path too long"));
        }
        if self.text.is_empty() {
            return Err(self.error(0, "empty path"));
        }
        let mut segments: Vec<Segment> = Vec::new();
        loop {
            // At the start of a segment (after a '.'), or at the very start.
            let Some(byte) = self.peek() else {
                if segments.is_empty() {
                    return Err(self.error(self.pos, "empty path"));
                }
                return Ok(Path {
                    segments,
                    leaf: Leaf::Object,
                });
            };
            // The root object is never a table, so an instance needs a name after the root.
            let after_name =
                segments.len() >= 2 && matches!(segments.last(), Some(Segment::Name(_)));
            let start = self.pos;
            let segment = match byte {
                b'0'..=b'9' => {
                    let number = self.posnum()?;
                    Segment::Instance(number)
                }
                b'*' => {
                    self.pos += 1;
                    Segment::Wildcard
                }
                b'[' => Segment::Search(self.expression()?),
                b'{' => {
                    if !self.supported {
                        return Err(
                            self.error(start, "{ is not allowed here; search expressions use [ ]")
                        );
                    }
                    if self.text[self.pos..].starts_with("{i}") {
                        self.pos += 3;
                        Segment::Placeholder
                    } else {
                        return Err(self.error(start, "expected {i}"));
                    }
                }
                byte if is_name_start(byte) => {
                    let name = self.name()?;
                    match self.peek() {
                        None => {
                            if segments.is_empty() {
                                return Err(self.error(self.pos, "a path starts with an object"));
                            }
                            return Ok(Path {
                                segments,
                                leaf: Leaf::Param(name),
                            });
                        }
                        Some(b'(') => {
                            if self.text[self.pos..] != *"()" {
                                return Err(self.error(self.pos, "a command path ends in ()"));
                            }
                            if segments.is_empty() {
                                return Err(self.error(start, "a path starts with an object"));
                            }
                            return Ok(Path {
                                segments,
                                leaf: Leaf::Command(format!("{name}()")),
                            });
                        }
                        Some(b'!') => {
                            if self.pos + 1 != self.bytes.len() {
                                return Err(self.error(self.pos, "an event path ends in !"));
                            }
                            if segments.is_empty() {
                                return Err(self.error(start, "a path starts with an object"));
                            }
                            return Ok(Path {
                                segments,
                                leaf: Leaf::Event(format!("{name}!")),
                            });
                        }
                        Some(b'+' | b'#') => {
                            if segments.is_empty() {
                                return Err(self.error(start, "a path starts with an object"));
                            }
                            Segment::Follow(self.follow(name)?)
                        }
                        Some(b'.') => Segment::Name(name),
                        Some(_) => {
                            return Err(self.error(self.pos, "unexpected character in a name"));
                        }
                    }
                }
                b'.' => return Err(self.error(start, "empty path segment")),
                _ => return Err(self.error(start, "unexpected character")),
            };
            let is_instance = matches!(
                segment,
                Segment::Instance(_)
                    | Segment::Wildcard
                    | Segment::Search(_)
                    | Segment::Placeholder
            );
            if is_instance && !after_name {
                return Err(self.error(
                    start,
                    "an instance selector must follow the name of a table",
                ));
            }
            if segments.is_empty() && !matches!(segment, Segment::Name(_)) {
                return Err(self.error(start, "a path starts with an object name"));
            }
            segments.push(segment);
            self.expect(b'.', "'.' after a path segment")?;
        }
    }

    fn expression(&mut self) -> Result<Expression, PathError> {
        let open = self.pos;
        self.expect(b'[', "[")?;
        self.skip_spaces();
        if self.peek() == Some(b']') {
            return Err(self.error(open, "empty search expression"));
        }
        let mut terms = Vec::new();
        loop {
            self.skip_spaces();
            terms.push(self.comparison()?);
            self.skip_spaces();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Expression { terms });
                }
                Some(b'&') if self.peek_at(1) == Some(b'&') => self.pos += 2,
                Some(b'|') => {
                    return Err(self.error(self.pos, "search expressions have no OR, only &&"));
                }
                Some(_) => return Err(self.error(self.pos, "expected && or ]")),
                None => return Err(self.error(open, "unterminated search expression")),
            }
        }
    }

    fn comparison(&mut self) -> Result<Comparison, PathError> {
        let lhs = self.rel_path()?;
        self.skip_spaces();
        let op_start = self.pos;
        let op = match (self.peek(), self.peek_at(1)) {
            (Some(b'='), Some(b'=')) => Operator::Eq,
            (Some(b'!'), Some(b'=')) => Operator::Ne,
            (Some(b'~'), Some(b'=')) => Operator::Contains,
            (Some(b'<'), Some(b'=')) => Operator::Le,
            (Some(b'>'), Some(b'=')) => Operator::Ge,
            (Some(b'<'), _) => Operator::Lt,
            (Some(b'>'), _) => Operator::Gt,
            _ => {
                return Err(self.error(
                    op_start,
                    "expected a comparison operator (== != ~= < > <= >=)",
                ));
            }
        };
        self.pos += op.as_str().len();
        self.skip_spaces();
        let value = self.operand()?;
        Ok(Comparison { lhs, op, value })
    }

    fn rel_path(&mut self) -> Result<RelPath, PathError> {
        let mut steps = Vec::new();
        loop {
            let name = self.name()?;
            match self.peek() {
                Some(b'+' | b'#') => {
                    let follow = self.follow(name)?;
                    self.expect(b'.', "'.' after a followed reference")?;
                    steps.push(RelStep::Follow(follow));
                }
                Some(b'.') => {
                    self.pos += 1;
                    if !self.peek().is_some_and(is_name_start) {
                        return Err(self.error(
                            self.pos,
                            "a search expression names a parameter; it cannot select instances \
                             of a child table",
                        ));
                    }
                    steps.push(RelStep::Object(name));
                }
                _ => return Ok(RelPath { steps, param: name }),
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, PathError> {
        let start = self.pos;
        if self.peek() == Some(b'"') {
            self.pos += 1;
            let body_start = self.pos;
            while let Some(byte) = self.peek() {
                if byte == b'"' {
                    let decoded = decode_quoted(&self.text[body_start..self.pos]);
                    self.pos += 1;
                    return Ok(Operand::Quoted(decoded));
                }
                self.pos += 1;
            }
            return Err(self.error(start, "unterminated string"));
        }
        // A bare value (number, boolean, date) never starts with an operator character; taking
        // one would make `A < =1` print as `A<=1`, which reads back as another comparison.
        if matches!(self.peek(), Some(b'=' | b'!' | b'<' | b'>' | b'~')) {
            return Err(self.error(start, "expected a value, found an operator character"));
        }
        while let Some(byte) = self.peek() {
            if matches!(byte, b' ' | b'\t' | b'&' | b']' | b'"' | b'[') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error(start, "expected a value"));
        }
        Ok(Operand::Bare(self.text[start..self.pos].to_string()))
    }
}

/// Decodes `%22` and `%25` (the two escapes a quoted search value may hold); any other `%` is
/// kept as it is.
fn decode_quoted(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(index) = rest.find('%') {
        out.push_str(&rest[..index]);
        let escape = rest.get(index..index + 3);
        match escape {
            Some("%22") => {
                out.push('"');
                rest = &rest[index + 3..];
            }
            Some("%25") => {
                out.push('%');
                rest = &rest[index + 3..];
            }
            _ => {
                out.push('%');
                rest = &rest[index + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Path {
        match Path::parse(text) {
            Ok(path) => path,
            Err(error) => panic!("{text} should parse: {error}"),
        }
    }

    fn names(list: &[&str]) -> Vec<Segment> {
        list.iter()
            .map(|name| Segment::Name((*name).to_string()))
            .collect()
    }

    #[test]
    fn object_path_has_object_leaf() {
        let path = parse("Device.LocalAgent.");
        assert_eq!(path.segments, names(&["Device", "LocalAgent"]));
        assert_eq!(path.leaf, Leaf::Object);
    }

    #[test]
    fn parameter_path_has_param_leaf() {
        let path = parse("Device.IP.Interface.3.Status");
        assert_eq!(path.segments[3], Segment::Instance(3));
        assert_eq!(path.leaf, Leaf::Param("Status".into()));
    }

    #[test]
    fn command_and_event_leaves_keep_their_suffix() {
        assert_eq!(
            parse("Device.Reboot()").leaf,
            Leaf::Command("Reboot()".into())
        );
        assert_eq!(parse("Device.Boot!").leaf, Leaf::Event("Boot!".into()));
    }

    #[test]
    fn wildcard_example_parses() {
        let path = parse("Device.WiFi.SSID.*.Status");
        assert_eq!(path.segments[3], Segment::Wildcard);
        assert!(path.has_search());
    }

    #[test]
    fn compound_search_with_sub_object_param_parses() {
        let text = r#"Device.IP.Interface.[Type=="Normal"&&Stats.ErrorsSent>0].IPv4Address.[AddressingType=="Static"].IPAddress"#;
        let path = parse(text);
        let Segment::Search(expression) = &path.segments[3] else {
            panic!("expected a search segment");
        };
        assert_eq!(expression.terms.len(), 2);
        assert_eq!(expression.terms[0].op, Operator::Eq);
        assert_eq!(expression.terms[0].value, Operand::Quoted("Normal".into()));
        assert_eq!(
            expression.terms[1].lhs,
            RelPath {
                steps: vec![RelStep::Object("Stats".into())],
                param: "ErrorsSent".into()
            }
        );
        assert_eq!(expression.terms[1].op, Operator::Gt);
        assert_eq!(expression.terms[1].value, Operand::Bare("0".into()));
        assert_eq!(path.to_string(), text);
    }

    #[test]
    fn datetime_comparison_parses_as_bare_value() {
        let path = parse(
            "Device.IP.Interface.*.IPv6Address.[ValidLifetime<2021-06-06T08:00:00Z].IPAddress",
        );
        let Segment::Search(expression) = &path.segments[5] else {
            panic!("expected a search segment");
        };
        assert_eq!(expression.terms[0].op, Operator::Lt);
        assert_eq!(
            expression.terms[0].value,
            Operand::Bare("2021-06-06T08:00:00Z".into())
        );
    }

    #[test]
    fn list_membership_operator_parses() {
        let path = parse(r#"Device.PCP.Client.*.Server.[Capabilities~="IPv6Firewall"]."#);
        let Segment::Search(expression) = &path.segments[5] else {
            panic!("expected a search segment");
        };
        assert_eq!(expression.terms[0].op, Operator::Contains);
        assert_eq!(path.leaf, Leaf::Object);
    }

    #[test]
    fn boolean_search_and_unique_key_operate_parse() {
        parse("Device.LocalAgent.Subscription.[Enable==true].");
        let path = parse(
            r#"Device.LocalAgent.Controller.[EndpointID=="controller"].SendOnBoardRequest()"#,
        );
        assert_eq!(path.leaf, Leaf::Command("SendOnBoardRequest()".into()));
    }

    #[test]
    fn compound_unique_key_with_empty_string_parses() {
        let path =
            parse(r#"Device.NAT.PortMapping.[RemoteHost==""&&ExternalPort==0&&Protocol=="TCP"]."#);
        let Segment::Search(expression) = &path.segments[3] else {
            panic!("expected a search segment");
        };
        assert_eq!(expression.terms[0].value, Operand::Quoted(String::new()));
        assert_eq!(expression.terms.len(), 3);
    }

    #[test]
    fn mixed_identifier_styles_parse() {
        parse(r#"Device.IP.Interface.[Name=="eth0"].IPv4Address.[Status=="Enabled"].IPAddress"#);
        parse("Device.IP.Interface.2.IPv4Address.*.");
    }

    #[test]
    fn reference_following_in_path_parses() {
        let path = parse("Device.NAT.PortMapping.1.Interface+.Name");
        assert_eq!(
            path.segments[4],
            Segment::Follow(RefFollow {
                param: "Interface".into(),
                item: RefItem::First
            })
        );
        assert_eq!(path.leaf, Leaf::Param("Name".into()));
        let path = parse("Device.WiFi.SSID.1.LowerLayers#1+.Name");
        assert!(matches!(
            &path.segments[4],
            Segment::Follow(RefFollow {
                item: RefItem::Index(1),
                ..
            })
        ));
        let path = parse("Device.WiFi.SSID.1.LowerLayers#*+.Name");
        assert!(matches!(
            &path.segments[4],
            Segment::Follow(RefFollow {
                item: RefItem::All,
                ..
            })
        ));
        assert_eq!(path.to_string(), "Device.WiFi.SSID.1.LowerLayers#*+.Name");
    }

    #[test]
    fn reference_following_inside_expression_parses() {
        let text = r#"Device.WiFi.AccessPoint.[SSIDReference+.SSID=="MyHome"].AssociatedDevice.[OperatingStandard=="ac"].SignalStrength"#;
        let path = parse(text);
        let Segment::Search(expression) = &path.segments[3] else {
            panic!("expected a search segment");
        };
        assert_eq!(
            expression.terms[0].lhs.steps,
            vec![RelStep::Follow(RefFollow {
                param: "SSIDReference".into(),
                item: RefItem::First
            })]
        );
        assert_eq!(path.to_string(), text);
    }

    #[test]
    fn whitespace_around_operators_is_tolerated() {
        let path = parse(r#"Device.IP.Interface.[ Type == "Normal" && Enable == true ]."#);
        assert_eq!(
            path.to_string(),
            r#"Device.IP.Interface.[Type=="Normal"&&Enable==true]."#
        );
    }

    #[test]
    fn quoted_escapes_are_decoded_and_reencoded() {
        let path = parse(r#"Device.X.[Name=="a%22b%25c"]."#);
        let Segment::Search(expression) = &path.segments[2] else {
            panic!("expected a search segment");
        };
        assert_eq!(expression.terms[0].value, Operand::Quoted("a\"b%c".into()));
        assert_eq!(path.to_string(), r#"Device.X.[Name=="a%22b%25c"]."#);
    }

    #[test]
    fn supported_path_accepts_placeholder() {
        let path = match Path::parse_supported("Device.IP.Interface.{i}.Status") {
            Ok(path) => path,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(path.segments[3], Segment::Placeholder);
        assert!(Path::parse_supported("Device.IP.Interface.*.").is_err());
    }

    fn reject(text: &str) -> PathError {
        match Path::parse(text) {
            Ok(path) => panic!("{text} should be rejected, parsed as {path:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn empty_expression_is_rejected() {
        let error = reject("Device.IP.Interface.[].");
        assert_eq!(error.position, 20);
        assert!(error.to_string().contains("Device.IP.Interface.[]."));
    }

    #[test]
    fn expression_into_child_table_is_rejected() {
        let error = reject(
            r#"Device.IP.Interface.[Type=="Normal"&&IPv4Address.*.AddressingType=="Static"].IPAddress"#,
        );
        assert!(error.reason.contains("child table"), "{error}");
    }

    #[test]
    fn braces_in_instantiated_path_are_rejected() {
        reject(r#"Device.IP.Interface.{Type=="Normal"}.Status"#);
        reject("Device.IP.Interface.{i}.Status");
    }

    #[test]
    fn malformed_paths_are_rejected_with_position() {
        for text in [
            "",
            ".",
            "Device..IP.",
            "Device.IP.Interface.0.",
            "Device.IP.Interface.01.",
            "Device.1.",
            "Device.IP.Interface.1.2.",
            "Device.IP.Interface.[Name==\"eth0\"",
            "Device.IP.Interface.[Name=\"eth0\"].",
            "Device.IP.Interface.[Name==\"eth0\"||Name==\"eth1\"].",
            "Device.IP.Interface.[Name==].",
            "Device.IP.Interface.[==1].",
            "Device.Reboot(",
            "Device.Reboot()x",
            "Device.Boot!x",
            "Device.IP.Interface.1.Name+",
            "Device.IP.Interface.1.Name#+.X",
            "Device.IP.Interface.1",
            "Device",
            "Device.IP Interface.",
            "Device.IP.Interface.99999999999.",
        ] {
            let error = reject(text);
            assert!(error.position <= text.len(), "{text}: {error}");
        }
    }

    #[test]
    fn over_long_path_is_rejected() {
        let text = "Device.".repeat(MAX_PATH_LEN);
        assert!(reject(&text).reason.contains("too long"));
    }

    #[test]
    fn bare_value_starting_with_an_operator_is_rejected() {
        // Found by the search_expr fuzz target: `A < =1` printed as `A<=1`, another comparison.
        let error = reject("Device.IP.Interface.[A\t<\t=1A<=].Status");
        assert!(error.reason.contains("operator"), "{error}");
        assert!(
            reject("Device.IP.Interface.[A==<1].Status")
                .reason
                .contains("operator")
        );
    }
}
