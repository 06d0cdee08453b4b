//! The typed form of a USP path. Every node prints back to its canonical text with
//! `Display` (quoted strings re-encoded, whitespace in expressions dropped), so error messages and
//! resolved paths are built from the AST, never by string surgery on the request.

use std::fmt;

/// A parsed path: object segments followed by what the path addresses.
///
/// `Device.IP.Interface.*.Status` is
/// `[Name("Device"), Name("IP"), Name("Interface"), Wildcard]` + `Leaf::Param("Status")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The object part, each segment followed by `.` in the text.
    pub segments: Vec<Segment>,
    /// What the path ends in.
    pub leaf: Leaf,
}

/// One `.`-terminated step of the object part of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object name (`Interface`).
    Name(String),
    /// An instance number (`3`); only after the name of a table.
    Instance(u32),
    /// `*`: every current instance of the table (R-ARC.10).
    Wildcard,
    /// `[expr]`: the instances matching a search expression, or unique-key addressing when the
    /// expression is `==` over a complete unique key (the engine decides which).
    Search(Expression),
    /// `{i}`: the placeholder of supported-DM paths (only from [`Path::parse_supported`]).
    Placeholder,
    /// `Param+`, `Param#N+`, `Param#*+`: follow the reference(s) held by parameter `Param` of
    /// the current object(s) and continue from the referenced object(s).
    Follow(RefFollow),
}

/// Reference following: a parameter whose value is a path (or list of paths) to objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefFollow {
    /// The reference parameter, relative to the current object.
    pub param: String,
    /// Which item of a list-valued reference to follow.
    pub item: RefItem,
}

/// Which item(s) of a reference list to follow (TR-369 §"Reference following").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefItem {
    /// `Param+`: the value itself, or the first item of a list.
    First,
    /// `Param#N+`: item N (1-based).
    Index(u32),
    /// `Param#*+`: every item.
    All,
}

/// What a path addresses after its object part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// The path ends in `.`: an object, instance or partial path.
    Object,
    /// A parameter name (`Status`).
    Param(String),
    /// A command name including `()` (`Reboot()`).
    Command(String),
    /// An event name including `!` (`Boot!`).
    Event(String),
}

/// A search expression: comparisons joined by `&&` (there is no OR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    /// At least one comparison.
    pub terms: Vec<Comparison>,
}

/// `relpath oper value`, e.g. `Stats.ErrorsSent>0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The parameter compared, relative to the instance being tested.
    pub lhs: RelPath,
    /// The operator.
    pub op: Operator,
    /// The constant it is compared with.
    pub value: Operand,
}

/// A parameter path relative to a table instance, possibly through single-instance sub-objects
/// and references (`Stats.ErrorsSent`, `SSIDReference+.SSID`). It never enters a child table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath {
    /// Steps before the parameter.
    pub steps: Vec<RelStep>,
    /// The parameter name.
    pub param: String,
}

/// One step of a [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelStep {
    /// Into a single-instance sub-object.
    Object(String),
    /// Through a reference parameter.
    Follow(RefFollow),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `~=`: the list-valued parameter contains the constant as one of its items.
    Contains,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

/// The constant on the right of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A double-quoted string, already decoded (`%22` → `"`, `%25` → `%`).
    Quoted(String),
    /// An unquoted token: number, boolean or dateTime (`0`, `-5`, `true`, `2021-06-06T08:00:00Z`).
    Bare(String),
}

impl Operand {
    /// The constant's text (decoded for quoted strings).
    pub fn text(&self) -> &str {
        match self {
            Operand::Quoted(text) | Operand::Bare(text) => text,
        }
    }
}

impl Operator {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::Ne => "!=",
            Operator::Contains => "~=",
            Operator::Lt => "<",
            Operator::Gt => ">",
            Operator::Le => "<=",
            Operator::Ge => ">=",
        }
    }
}

impl Path {
    /// True when the path contains a wildcard or a search expression, i.e. may match any number
    /// of objects. (Whether an expression is really unique-key addressing needs the schema; the
    /// engine refines this.)
    pub fn has_search(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Wildcard | Segment::Search(_)))
    }

    /// True when the path follows references.
    pub fn has_follow(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Follow(_)))
    }

    /// The names of the path when every segment is a plain name (`Device.LocalAgent.`), as
    /// used for supported-DM lookups; `None` otherwise.
    pub fn plain_names(&self) -> Option<Vec<&str>> {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Name(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            write!(f, "{segment}.")?;
        }
        match &self.leaf {
            Leaf::Object => Ok(()),
            Leaf::Param(name) | Leaf::Command(name) | Leaf::Event(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Name(name) => f.write_str(name),
            Segment::Instance(number) => write!(f, "{number}"),
            Segment::Wildcard => f.write_str("*"),
            Segment::Search(expression) => write!(f, "[{expression}]"),
            Segment::Placeholder => f.write_str("{i}"),
            Segment::Follow(follow) => write!(f, "{follow}"),
        }
    }
}

impl fmt::Display for RefFollow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            RefItem::First => write!(f, "{}+", self.param),
            RefItem::Index(index) => write!(f, "{}#{index}+", self.param),
            RefItem::All => write!(f, "{}#*+", self.param),
        }
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, term) in self.terms.iter().enumerate() {
            if index > 0 {
                f.write_str("&&")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.lhs, self.op.as_str(), self.value)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match step {
                RelStep::Object(name) => write!(f, "{name}.")?,
                RelStep::Follow(follow) => write!(f, "{follow}.")?,
            }
        }
        f.write_str(&self.param)
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Bare(text) => f.write_str(text),
            Operand::Quoted(text) => {
                f.write_str("\"")?;
                for ch in text.chars() {
                    match ch {
                        '"' => f.write_str("%22")?,
                        '%' => f.write_str("%25")?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}
