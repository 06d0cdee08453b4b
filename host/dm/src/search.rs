//! Path resolution: [`DataModel::resolve`] and its variants (one resolver for every message),
//! one resolution step per path segment, and search-expression evaluation: instance selection
//! by number, wildcard, expression or unique key, and reference following. Comparisons are
//! semantic, by the schema's value type (`0123` == `123`, `1` == `true`, dateTimes by instant,
//! `~=` as list membership), as TR-369 §"Search Paths" requires.
//!
//! Builds on [`crate::model`] (routing, schema, reads); following a reference resolves a path
//! again, so that recursion stays inside this module.

use std::collections::HashMap;

use usp_codec::path::{
    Expression, Leaf, Operand, Operator, Path, RefFollow, RefItem, RelPath, RelStep, Segment,
};

use crate::error::DmError;
use crate::model::{DataModel, Resolution, ResolvedObject};
use crate::schema::ParamDef;
use crate::value::{DateTime, Number, ValueType, parse_bool};

/// A position reached while resolving: a concrete object or table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) path: String,
    pub(crate) supported: String,
    pub(crate) table: bool,
}

impl Cursor {
    fn resolved(&self) -> ResolvedObject {
        ResolvedObject {
            path: self.path.clone(),
            supported: self.supported.clone(),
            table: self.table,
        }
    }
}

impl DataModel {
    /// Parses and resolves a path.
    pub async fn resolve_str(&self, text: &str) -> Result<Resolution, DmError> {
        let path = Path::parse(text)?;
        self.resolve(&path).await
    }

    /// Resolves a parsed path against the Instantiated Data Model: expands instances,
    /// wildcards, search expressions, unique keys and references, and checks the leaf
    /// against the schema.
    pub async fn resolve(&self, path: &Path) -> Result<Resolution, DmError> {
        self.resolve_with(path, false).await
    }

    /// Like [`DataModel::resolve_str`], but an expression naming a complete unique key is a
    /// search too: when it matches nothing the result is empty instead of
    /// [`DmError::NoSuchObject`]. GetInstances uses it: a path with `[...]` is a Search Path by
    /// the grammar, and a Search Path that matches nothing is an empty success (R-MSG.4a,
    /// digest §4.6).
    pub async fn resolve_search_str(&self, text: &str) -> Result<Resolution, DmError> {
        let path = Path::parse(text)?;
        self.resolve_with(&path, true).await
    }

    async fn resolve_with(&self, path: &Path, keys_as_search: bool) -> Result<Resolution, DmError> {
        let text = path.to_string();
        let mut segments = path.segments.iter();
        let Some(Segment::Name(root)) = segments.next() else {
            return Err(DmError::NotSupported { path: text });
        };
        let root = format!("{root}.");
        if !self.registry().knows_object(&root) {
            return Err(DmError::NotSupported { path: text });
        }
        let mut cursors = vec![Cursor {
            path: root.clone(),
            supported: root.clone(),
            table: false,
        }];
        // The supported path reached so far, kept even when nothing matched so that names
        // after an empty search are still checked (R-GET.0: unsupported → 7026).
        let mut template = Some((root, false));
        let mut search = false;
        for segment in segments {
            if let Some((supported, table)) = &template {
                template = match segment {
                    Segment::Follow(_) => None,
                    other => Some(self.step_supported(supported, *table, other, &text)?),
                };
            }
            let (next, was_search) =
                step(self, &cursors, segment, &text, search, keys_as_search).await?;
            search |= was_search;
            cursors = next;
        }
        let leaf = path.leaf.clone();
        if let Some((supported, table)) = &template {
            self.check_leaf(supported, *table, &leaf, &text)?;
        }
        let mut objects: Vec<ResolvedObject> = Vec::with_capacity(cursors.len());
        let mut seen = std::collections::HashSet::new();
        for cursor in cursors {
            self.check_leaf(&cursor.supported, cursor.table, &leaf, &text)?;
            if seen.insert(cursor.path.clone()) {
                objects.push(ResolvedObject {
                    path: cursor.path,
                    supported: cursor.supported,
                    table: cursor.table,
                });
            }
        }
        Ok(Resolution {
            objects,
            leaf,
            search,
        })
    }

    /// The supported path after one segment; fails when the schema has no such object.
    fn step_supported(
        &self,
        supported: &str,
        table: bool,
        segment: &Segment,
        text: &str,
    ) -> Result<(String, bool), DmError> {
        let unsupported = || DmError::NotSupported {
            path: text.to_string(),
        };
        match segment {
            Segment::Name(name) => {
                if table {
                    return Err(unsupported());
                }
                let object = format!("{supported}{name}.");
                if self.registry().knows_object(&object) {
                    return Ok((object, false));
                }
                let table_path = format!("{object}{{i}}.");
                if self.registry().object(&table_path).is_some() {
                    return Ok((table_path, true));
                }
                Err(unsupported())
            }
            Segment::Instance(_)
            | Segment::Wildcard
            | Segment::Search(_)
            | Segment::Placeholder => {
                if table {
                    Ok((supported.to_string(), false))
                } else {
                    Err(unsupported())
                }
            }
            Segment::Follow(_) => Err(unsupported()),
        }
    }

    fn check_leaf(
        &self,
        supported: &str,
        table: bool,
        leaf: &Leaf,
        text: &str,
    ) -> Result<(), DmError> {
        if matches!(leaf, Leaf::Object) {
            return Ok(());
        }
        let object = if table {
            None
        } else {
            self.registry().object(supported)
        };
        let found = match leaf {
            Leaf::Object => true,
            Leaf::Param(name) => object.is_some_and(|o| o.param(name).is_some()),
            Leaf::Command(name) => object.is_some_and(|o| o.command(name).is_some()),
            Leaf::Event(name) => object.is_some_and(|o| o.event(name).is_some()),
        };
        if found {
            Ok(())
        } else if matches!(leaf, Leaf::Param(_)) {
            Err(DmError::UnknownParam {
                path: text.to_string(),
            })
        } else {
            Err(DmError::NotSupported {
                path: text.to_string(),
            })
        }
    }
}

/// Applies one segment to every cursor. Returns the new cursors and whether the segment made
/// the path a search path.
pub(crate) async fn step(
    dm: &DataModel,
    cursors: &[Cursor],
    segment: &Segment,
    text: &str,
    searching: bool,
    keys_as_search: bool,
) -> Result<(Vec<Cursor>, bool), DmError> {
    let mut next = Vec::new();
    let mut was_search = false;
    match segment {
        Segment::Name(name) => {
            for cursor in cursors {
                let (supported, table) =
                    dm.step_supported(&cursor.supported, cursor.table, segment, text)?;
                next.push(Cursor {
                    path: format!("{}{name}.", cursor.path),
                    supported,
                    table,
                });
            }
        }
        Segment::Instance(number) => {
            for cursor in cursors {
                dm.step_supported(&cursor.supported, cursor.table, segment, text)?;
                let path = format!("{}{number}.", cursor.path);
                if dm
                    .has_instance(&cursor.path, &cursor.supported, *number)
                    .await?
                {
                    next.push(instance(cursor, path));
                } else if !searching {
                    return Err(DmError::NoSuchObject { path });
                }
            }
        }
        Segment::Wildcard => {
            was_search = true;
            for cursor in cursors {
                dm.step_supported(&cursor.supported, cursor.table, segment, text)?;
                for number in dm.instances(&cursor.path, &cursor.supported).await? {
                    next.push(instance(cursor, format!("{}{number}.", cursor.path)));
                }
            }
        }
        Segment::Search(expression) => {
            let mut compiled: HashMap<String, Compiled> = HashMap::new();
            for cursor in cursors {
                dm.step_supported(&cursor.supported, cursor.table, segment, text)?;
                if !compiled.contains_key(&cursor.supported) {
                    let plan = compile(dm, &cursor.supported, expression, text)?;
                    compiled.insert(cursor.supported.clone(), plan);
                }
            }
            for cursor in cursors {
                let Some(plan) = compiled.get(&cursor.supported) else {
                    continue;
                };
                was_search |= !plan.unique_key;
                let numbers = dm.instances(&cursor.path, &cursor.supported).await?;
                let matched = filter(dm, plan, cursor, &numbers, text).await?;
                if matched.is_empty() && plan.unique_key && !searching && !keys_as_search {
                    return Err(DmError::NoSuchObject {
                        path: format!("{}[{expression}].", cursor.path),
                    });
                }
                next.extend(matched);
            }
        }
        Segment::Follow(follow) => {
            was_search |= follow.item == RefItem::All;
            for cursor in cursors {
                for target in follow_reference(dm, cursor, follow, text).await? {
                    next.push(target);
                }
            }
        }
        Segment::Placeholder => {
            return Err(DmError::NotSupported {
                path: text.to_string(),
            });
        }
    }
    Ok((next, was_search))
}

fn instance(table: &Cursor, path: String) -> Cursor {
    Cursor {
        path,
        supported: table.supported.clone(),
        table: false,
    }
}

/// Reads a reference parameter and resolves the object(s) it points to. Unresolvable or empty
/// references lead nowhere (no error: the data simply has no such target).
async fn follow_reference(
    dm: &DataModel,
    cursor: &Cursor,
    follow: &RefFollow,
    text: &str,
) -> Result<Vec<Cursor>, DmError> {
    let object = cursor.resolved();
    if cursor.table || dm.param_def(&object, &follow.param).is_none() {
        return Err(DmError::UnknownParam {
            path: format!("{}{}", cursor.path, follow.param),
        });
    }
    let value = dm.read_param(&object, &follow.param).await?;
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect();
    let chosen: Vec<&str> = match follow.item {
        RefItem::First => items.first().copied().into_iter().collect(),
        RefItem::Index(index) => items.get(index as usize - 1).copied().into_iter().collect(),
        RefItem::All => items,
    };
    let mut targets = Vec::new();
    for item in chosen {
        let target = if item.ends_with('.') {
            item.to_string()
        } else {
            format!("{item}.")
        };
        let Ok(path) = Path::parse(&target) else {
            continue;
        };
        // A reference may itself use unique-key addressing (R-ARC.11), hence a full resolve.
        match Box::pin(dm.resolve(&path)).await {
            Ok(resolution) => targets.extend(resolution.objects.into_iter().map(|object| Cursor {
                path: object.path,
                supported: object.supported,
                table: object.table,
            })),
            Err(
                DmError::Syntax(_) | DmError::NotSupported { .. } | DmError::NoSuchObject { .. },
            ) => {}
            Err(other) => {
                return Err(DmError::BadExpression {
                    path: text.to_string(),
                    reason: format!("following {}: {other}", follow.param),
                });
            }
        }
    }
    Ok(targets)
}

/// A search expression checked against one table's schema.
struct Compiled {
    terms: Vec<Term>,
    /// `==` over exactly one complete unique key: addressing, not searching.
    unique_key: bool,
}

struct Term {
    lhs: RelPath,
    op: Operator,
    operand: Operand,
    /// For terms without reference following: the sub-object prefix (`Stats.`), the parameter
    /// definition and the parsed constant.
    direct: Option<(String, ParamDef, Constant)>,
}

fn compile(
    dm: &DataModel,
    supported: &str,
    expression: &Expression,
    text: &str,
) -> Result<Compiled, DmError> {
    let mut terms = Vec::new();
    for term in &expression.terms {
        let mut direct = None;
        if term
            .lhs
            .steps
            .iter()
            .all(|step| matches!(step, RelStep::Object(_)))
        {
            let mut prefix = String::new();
            for step in &term.lhs.steps {
                if let RelStep::Object(name) = step {
                    let sub = format!("{supported}{prefix}{name}.");
                    if dm.object_def(&format!("{sub}{{i}}.")).is_some() {
                        return Err(DmError::BadExpression {
                            path: text.to_string(),
                            reason: format!("{name} is a table; expressions cannot enter it"),
                        });
                    }
                    if dm.object_def(&sub).is_none() {
                        return Err(DmError::NotSupported {
                            path: text.to_string(),
                        });
                    }
                    prefix.push_str(name);
                    prefix.push('.');
                }
            }
            let def = dm
                .object_def(&format!("{supported}{prefix}"))
                .and_then(|object| object.param(&term.lhs.param))
                .ok_or_else(|| DmError::NotSupported {
                    path: text.to_string(),
                })?
                .clone();
            let constant = constant(&def, term.op, &term.value, text)?;
            direct = Some((prefix, def, constant));
        } else if let Some(RelStep::Follow(follow)) = term.lhs.steps.first() {
            let has_param = dm
                .object_def(supported)
                .is_some_and(|object| object.param(&follow.param).is_some());
            if !has_param {
                return Err(DmError::NotSupported {
                    path: text.to_string(),
                });
            }
        }
        terms.push(Term {
            lhs: term.lhs.clone(),
            op: term.op,
            operand: term.value.clone(),
            direct,
        });
    }
    let unique_key = terms
        .iter()
        .all(|term| term.op == Operator::Eq && term.lhs.steps.is_empty())
        && dm.object_def(supported).is_some_and(|object| {
            object.unique_keys.iter().any(|key| {
                key.len() == terms.len()
                    && key
                        .iter()
                        .all(|name| terms.iter().any(|term| term.lhs.param == *name))
            })
        });
    Ok(Compiled { terms, unique_key })
}

/// The instances of `table` (by number) whose values satisfy every term.
async fn filter(
    dm: &DataModel,
    plan: &Compiled,
    table: &Cursor,
    numbers: &[u32],
    text: &str,
) -> Result<Vec<Cursor>, DmError> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    // One batched read per sub-object prefix for every term that needs no reference
    // following (usually one read: the instance's own parameters).
    let mut prefixes: Vec<&str> = Vec::new();
    for term in &plan.terms {
        if let Some((prefix, _, _)) = &term.direct
            && !prefixes.contains(&prefix.as_str())
        {
            prefixes.push(prefix);
        }
    }
    let mut answers = Vec::with_capacity(prefixes.len());
    for prefix in &prefixes {
        let params: Vec<String> = plan
            .terms
            .iter()
            .filter_map(|term| match &term.direct {
                Some((p, _, _)) if p == prefix => Some(term.lhs.param.clone()),
                _ => None,
            })
            .collect();
        let objects = numbers
            .iter()
            .map(|number| format!("{}{number}.{prefix}", table.path))
            .collect();
        let supported = format!("{}{prefix}", table.supported);
        answers.push(dm.read_objects(&supported, objects, &params).await);
    }
    let mut kept = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        let mut matches = true;
        for term in &plan.terms {
            let Some((prefix, def, constant)) = &term.direct else {
                continue;
            };
            let slot = prefixes.iter().position(|p| p == prefix).unwrap_or(0);
            let value = match answers.get(slot).and_then(|column| column.get(index)) {
                Some(Ok(values)) => values.get(&term.lhs.param).map(String::as_str),
                _ => None,
            };
            if !value.is_some_and(|value| compare(def, value, term.op, constant)) {
                matches = false;
                break;
            }
        }
        if !matches {
            continue;
        }
        let candidate = instance(table, format!("{}{number}.", table.path));
        for term in plan.terms.iter().filter(|term| term.direct.is_none()) {
            if !eval_followed(dm, &candidate, term, text).await? {
                matches = false;
                break;
            }
        }
        if matches {
            kept.push(candidate);
        }
    }
    Ok(kept)
}

/// Evaluates a term whose parameter is reached through references: true when any reached
/// value satisfies it.
async fn eval_followed(
    dm: &DataModel,
    candidate: &Cursor,
    term: &Term,
    text: &str,
) -> Result<bool, DmError> {
    let mut objects = vec![candidate.clone()];
    for step in &term.lhs.steps {
        let mut next = Vec::new();
        for object in &objects {
            match step {
                RelStep::Object(name) => {
                    let (supported, table) = dm.step_supported(
                        &object.supported,
                        object.table,
                        &Segment::Name(name.clone()),
                        text,
                    )?;
                    if table {
                        return Err(DmError::BadExpression {
                            path: text.to_string(),
                            reason: format!("{name} is a table; expressions cannot enter it"),
                        });
                    }
                    next.push(Cursor {
                        path: format!("{}{name}.", object.path),
                        supported,
                        table,
                    });
                }
                RelStep::Follow(follow) => {
                    next.extend(follow_reference(dm, object, follow, text).await?);
                }
            }
        }
        objects = next;
    }
    for object in objects {
        let resolved = object.resolved();
        let Some((_, def)) = dm.param_def(&resolved, &term.lhs.param) else {
            continue;
        };
        let def = def.clone();
        let constant = constant(&def, term.op, &term.operand, text)?;
        let value = dm.read_param(&resolved, &term.lhs.param).await?;
        if compare(&def, &value, term.op, &constant) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The right-hand side of a comparison, parsed for the parameter's type.
#[derive(Debug, Clone, PartialEq)]
enum Constant {
    Text(String),
    Bool(bool),
    Number(Number),
    Time(DateTime),
}

fn constant(
    def: &ParamDef,
    op: Operator,
    operand: &Operand,
    text: &str,
) -> Result<Constant, DmError> {
    let bad = |reason: String| DmError::BadExpression {
        path: text.to_string(),
        reason,
    };
    let name = &def.name;
    if op == Operator::Contains && def.constraints.list.is_none() {
        return Err(bad(format!(
            "~= needs a list-valued parameter; {name} is not one"
        )));
    }
    let ordered = matches!(
        op,
        Operator::Lt | Operator::Gt | Operator::Le | Operator::Ge
    );
    match def.value_type {
        ValueType::String | ValueType::Base64 | ValueType::HexBinary => match operand {
            Operand::Quoted(value) if !ordered => Ok(Constant::Text(value.clone())),
            Operand::Quoted(_) => Err(bad(format!("{name} is a string: only == != ~= apply"))),
            Operand::Bare(value) => Err(bad(format!(
                "{name} is a string: the value {value} must be quoted"
            ))),
        },
        ValueType::Boolean => match (operand, parse_bool(operand.text())) {
            (Operand::Bare(_), Some(value)) if !ordered => Ok(Constant::Bool(value)),
            (Operand::Bare(_), Some(_)) => {
                Err(bad(format!("{name} is a boolean: only == != apply")))
            }
            _ => Err(bad(format!(
                "{name} is a boolean: compare with unquoted true or false"
            ))),
        },
        ValueType::DateTime => match DateTime::parse(operand.text()) {
            Some(DateTime::Unknown) if ordered => Err(bad(format!(
                "{name}: the Unknown Time only allows == and !="
            ))),
            Some(time) => Ok(Constant::Time(time)),
            None => Err(bad(format!("{} is not a dateTime", operand.text()))),
        },
        numeric => match operand {
            Operand::Bare(value) => Number::parse(numeric, value)
                .map(Constant::Number)
                .ok_or_else(|| bad(format!("{value} is not a valid {}", numeric.name()))),
            Operand::Quoted(value) => Err(bad(format!(
                "{name} is numeric: the value \"{value}\" must not be quoted"
            ))),
        },
    }
}

/// Compares an actual value with a constant; values that do not parse never match.
fn compare(def: &ParamDef, actual: &str, op: Operator, constant: &Constant) -> bool {
    if op == Operator::Contains {
        return actual
            .split(',')
            .map(str::trim)
            .any(|item| compare(def, item, Operator::Eq, constant));
    }
    let ordering = match constant {
        Constant::Text(text) => {
            let equal = if def.value_type == ValueType::HexBinary {
                actual.eq_ignore_ascii_case(text)
            } else {
                actual == text
            };
            return match op {
                Operator::Eq => equal,
                Operator::Ne => !equal,
                _ => false,
            };
        }
        Constant::Bool(expected) => {
            let Some(value) = parse_bool(actual) else {
                return false;
            };
            return match op {
                Operator::Eq => value == *expected,
                Operator::Ne => value != *expected,
                _ => false,
            };
        }
        Constant::Number(expected) => {
            let Some(value) = Number::parse(def.value_type, actual) else {
                return false;
            };
            value.partial_cmp(expected)
        }
        Constant::Time(expected) => {
            let Some(value) = DateTime::parse(actual) else {
                return false;
            };
            if matches!(value, DateTime::Unknown) || matches!(expected, DateTime::Unknown) {
                return match op {
                    Operator::Eq => value == *expected,
                    Operator::Ne => value != *expected,
                    _ => false,
                };
            }
            Some(value.cmp(expected))
        }
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Operator::Eq => ordering.is_eq(),
        Operator::Ne => ordering.is_ne(),
        Operator::Lt => ordering.is_lt(),
        Operator::Gt => ordering.is_gt(),
        Operator::Le => ordering.is_le(),
        Operator::Ge => ordering.is_ge(),
        Operator::Contains => false,
    }
}
