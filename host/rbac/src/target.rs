//! Permission targets: one item of `Permission.{i}.Targets`, parsed with the codec's path AST,
//! and how it matches the path a message handler is about to touch.
//!
//! What a target covers (TR-181 `Permission.{i}.Targets`, digest §8.2):
//! - an object, instance, partial or search path ending in `.` covers that object and
//!   everything below it;
//! - a parameter, command or event path covers exactly that element; a target ending in a bare
//!   name (`Device`, `Device.LocalAgent.ControllerTrust`, as the spec's examples write them) also covers
//!   the object of that name and everything below it, since an object and a parameter of the
//!   same parent never share a name;
//! - `*` and `{i}` match any instance number, a number matches that instance only, and a search
//!   expression matches the instances that satisfy it.
//!
//! Search expressions need instance data, which a pure crate does not have. The check asks a
//! [`SearchMatcher`] whether a concrete instance satisfies the expression at a *search site*
//! (the target's text up to and including the search segment). [`ResolvedSearches`] is the
//! ready-made matcher for callers that resolve every site to its instances before checking
//! (e.g. once per message, with the data-model engine's search-path resolution).

use std::collections::{HashMap, HashSet};
use std::fmt;

use usp_codec::UspErrorCode;
use usp_codec::path::{Expression, Leaf, Path, PathError, Segment};

/// A `Targets` item the agent cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a path (the parser's message names the position).
    #[error("invalid permission target: {0}")]
    Syntax(#[from] PathError),
    /// Reference following selects objects by another object's current values, which would
    /// make a permission's reach change behind the administrator's back.
    #[error("invalid permission target \"{target}\": reference following is not allowed")]
    ReferenceFollowing {
        /// The rejected target.
        target: String,
    },
}

impl TargetError {
    /// The USP error a Controller gets when it writes such a `Targets` value.
    pub fn code(&self) -> UspErrorCode {
        UspErrorCode::InvalidValue
    }
}

/// Answers, for a search-expression target, whether a concrete instance satisfies it.
pub trait SearchMatcher: Send + Sync {
    /// `site` is the target's canonical text up to and including the search segment
    /// (`Device.IP.Interface.[Name=="eth0"].`), `expression` that segment's expression and
    /// `instance` the concrete instance path being checked (`Device.IP.Interface.3.`).
    fn instance_matches(&self, site: &str, expression: &Expression, instance: &str) -> bool;
}

/// A [`SearchMatcher`] over pre-resolved sites: each search site mapped to the concrete
/// instance paths it currently selects. A site that was never inserted matches nothing.
#[derive(Debug, Clone, Default)]
pub struct ResolvedSearches {
    sites: HashMap<String, HashSet<String>>,
}

impl ResolvedSearches {
    /// No site resolved.
    pub fn new() -> Self {
        ResolvedSearches::default()
    }

    /// Records what `site` resolves to (instance paths ending in `.`).
    pub fn insert(&mut self, site: impl Into<String>, instances: impl IntoIterator<Item = String>) {
        self.sites.entry(site.into()).or_default().extend(instances);
    }
}

impl SearchMatcher for ResolvedSearches {
    fn instance_matches(&self, site: &str, _expression: &Expression, instance: &str) -> bool {
        self.sites
            .get(site)
            .is_some_and(|instances| instances.contains(instance))
    }
}

/// How a target relates to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Match {
    /// The target does not cover the path.
    No,
    /// The path stands for several instances (`{i}` or `*`) and the target covers some of them.
    Some,
    /// The target covers the path.
    Yes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Name(String),
    Instance(u32),
    AnyInstance,
    Search {
        site: String,
        expression: Expression,
    },
}

/// One parsed `Targets` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    text: String,
    steps: Vec<Step>,
    leaf: Leaf,
}

impl Target {
    /// Parses one target: an instantiated-DM path (wildcards, instance numbers, search
    /// expressions) or a supported-DM path with `{i}`.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let path = match Path::parse(text) {
            Ok(path) => path,
            // A lone root name (`Device`, as the spec's examples write it) means that object.
            Err(error) if !text.contains('.') => {
                Path::parse(&format!("{text}.")).map_err(|_| error)?
            }
            Err(error) => Path::parse_supported(text).map_err(|_| error)?,
        };
        let mut steps = Vec::with_capacity(path.segments.len());
        let mut site = String::new();
        for segment in &path.segments {
            site.push_str(&segment.to_string());
            site.push('.');
            steps.push(match segment {
                Segment::Name(name) => Step::Name(name.clone()),
                Segment::Instance(number) => Step::Instance(*number),
                Segment::Wildcard | Segment::Placeholder => Step::AnyInstance,
                Segment::Search(expression) => Step::Search {
                    site: site.clone(),
                    expression: expression.clone(),
                },
                Segment::Follow(_) => {
                    return Err(TargetError::ReferenceFollowing {
                        target: text.to_string(),
                    });
                }
            });
        }
        Ok(Target {
            text: path.to_string(),
            steps,
            leaf: path.leaf,
        })
    }

    /// Parses a whole `Targets` value: a comma-separated list, blanks around items ignored.
    pub fn parse_list(text: &str) -> Result<Vec<Target>, TargetError> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(Target::parse)
            .collect()
    }

    /// The search sites of this target, outermost first.
    pub fn search_sites(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|step| match step {
            Step::Search { site, .. } => Some(site.as_str()),
            _ => None,
        })
    }

    /// How this target relates to `path` (see [`crate::access`] for the path forms).
    pub(crate) fn matches(&self, path: &str, searches: &dyn SearchMatcher) -> Match {
        let mut pieces = Pieces::new(path);
        let mut result = Match::Yes;
        for step in &self.steps {
            let Some(piece) = pieces.next_object() else {
                return Match::No;
            };
            let step_match = step_matches(step, piece, path, pieces.offset, searches);
            result = result.min(step_match);
            if result == Match::No {
                return Match::No;
            }
        }
        let covered = match &self.leaf {
            Leaf::Object => true,
            Leaf::Param(name) => match pieces.next_object() {
                Some(Piece::Name(object)) => object == name,
                Some(_) => false,
                None => pieces.leaf() == name,
            },
            Leaf::Command(name) | Leaf::Event(name) => {
                pieces.next_object().is_none() && pieces.leaf() == name
            }
        };
        if covered { result } else { Match::No }
    }
}

fn step_matches(
    step: &Step,
    piece: Piece<'_>,
    path: &str,
    end: usize,
    searches: &dyn SearchMatcher,
) -> Match {
    match (step, piece) {
        (Step::Name(name), Piece::Name(piece)) if name == piece => Match::Yes,
        (Step::Instance(number), Piece::Instance(piece)) if *number == piece => Match::Yes,
        (Step::Instance(_) | Step::Search { .. }, Piece::AnyInstance) => Match::Some,
        (Step::AnyInstance, Piece::Instance(_) | Piece::AnyInstance) => Match::Yes,
        (Step::Search { site, expression }, Piece::Instance(_)) => {
            if searches.instance_matches(site, expression, &path[..end]) {
                Match::Yes
            } else {
                Match::No
            }
        }
        _ => Match::No,
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One object segment of a checked path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Name(&'a str),
    Instance(u32),
    AnyInstance,
}

/// Walks a checked path without allocating: the object segments, then the leaf (the text after
/// the last `.`, empty for an object path).
struct Pieces<'a> {
    path: &'a str,
    /// Byte offset just past the `.` that ends the last segment returned.
    offset: usize,
}

impl<'a> Pieces<'a> {
    fn new(path: &'a str) -> Self {
        Pieces { path, offset: 0 }
    }

    fn next_object(&mut self) -> Option<Piece<'a>> {
        let rest = &self.path[self.offset..];
        let dot = rest.find('.')?;
        let text = &rest[..dot];
        self.offset += dot + 1;
        Some(if text == "*" || text == "{i}" {
            Piece::AnyInstance
        } else if let Some(number) = text
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| text.parse::<u32>().ok())
            .flatten()
        {
            Piece::Instance(number)
        } else {
            Piece::Name(text)
        })
    }

    fn leaf(&self) -> &'a str {
        &self.path[self.offset..]
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    fn check(target: &str, path: &str) -> Match {
        let target = Target::parse(target).unwrap();
        target.matches(path, &ResolvedSearches::new())
    }

    #[test]
    fn target_coverage_table() {
        use Match::{No, Some, Yes};
        let cases = [
            // partial path: the object and everything below
            ("Device.", "Device.", Yes),
            ("Device.", "Device.DeviceInfo.SerialNumber", Yes),
            (
                "Device.LocalAgent.",
                "Device.LocalAgent.Controller.3.Alias",
                Yes,
            ),
            ("Device.LocalAgent.", "Device.DeviceInfo.", No),
            ("Device.LocalAgent.", "Device.", No),
            (
                "Device.LocalAgent.Controller.",
                "Device.LocalAgent.Controller.",
                Yes,
            ),
            // a bare final name covers a parameter or an object of that name
            (
                "Device.LocalAgent.ControllerTrust",
                "Device.LocalAgent.ControllerTrust.Role.1.Name",
                Yes,
            ),
            (
                "Device.LocalAgent.EndpointID",
                "Device.LocalAgent.EndpointID",
                Yes,
            ),
            (
                "Device.LocalAgent.EndpointID",
                "Device.LocalAgent.EndpointIDs",
                No,
            ),
            ("Device.LocalAgent.EndpointID", "Device.LocalAgent.", No),
            ("Device", "Device.LocalAgent.EndpointID", Yes),
            // commands and events: exactly that element
            ("Device.Reboot()", "Device.Reboot()", Yes),
            ("Device.Reboot()", "Device.FactoryReset()", No),
            ("Device.Boot!", "Device.Boot!", Yes),
            ("Device.Boot!", "Device.Reboot()", No),
            // instance numbers, wildcards, {i}
            (
                "Device.LocalAgent.Subscription.2.",
                "Device.LocalAgent.Subscription.2.Enable",
                Yes,
            ),
            (
                "Device.LocalAgent.Subscription.2.",
                "Device.LocalAgent.Subscription.12.Enable",
                No,
            ),
            (
                "Device.LocalAgent.Subscription.2.",
                "Device.LocalAgent.Subscription.",
                No,
            ),
            (
                "Device.LocalAgent.Subscription.*.Enable",
                "Device.LocalAgent.Subscription.7.Enable",
                Yes,
            ),
            (
                "Device.LocalAgent.Subscription.*.Enable",
                "Device.LocalAgent.Subscription.7.ID",
                No,
            ),
            (
                "Device.LocalAgent.Subscription.{i}.",
                "Device.LocalAgent.Subscription.7.",
                Yes,
            ),
            (
                "Device.LocalAgent.Subscription.*.",
                "Device.LocalAgent.Subscription.",
                No,
            ),
            // supported-DM paths: `{i}` in the checked path
            (
                "Device.LocalAgent.Subscription.*.",
                "Device.LocalAgent.Subscription.{i}.ID",
                Yes,
            ),
            (
                "Device.LocalAgent.Subscription.2.",
                "Device.LocalAgent.Subscription.{i}.ID",
                Some,
            ),
            (
                "Device.IP.Interface.[Name==\"lan\"].",
                "Device.IP.Interface.{i}.Name",
                Some,
            ),
            // unresolved search sites match no concrete instance
            (
                "Device.IP.Interface.[Name==\"lan\"].",
                "Device.IP.Interface.1.Name",
                No,
            ),
            // names never match instance numbers
            ("Device.IP.Interface.1.", "Device.IP.Interface.Stats.", No),
        ];
        for (target, path, expected) in cases {
            assert_eq!(check(target, path), expected, "target {target} vs {path}");
        }
    }

    #[test]
    fn search_targets_ask_the_matcher_with_site_and_instance() {
        let target = Target::parse(r#"Device.IP.Interface.[Name == "lan"].Stats."#).unwrap();
        assert_eq!(
            target.search_sites().collect::<Vec<_>>(),
            [r#"Device.IP.Interface.[Name=="lan"]."#]
        );
        let mut searches = ResolvedSearches::new();
        searches.insert(
            r#"Device.IP.Interface.[Name=="lan"]."#,
            ["Device.IP.Interface.2.".to_string()],
        );
        let matches = |path| target.matches(path, &searches);
        assert_eq!(matches("Device.IP.Interface.2.Stats.BytesSent"), Match::Yes);
        assert_eq!(matches("Device.IP.Interface.3.Stats.BytesSent"), Match::No);
        assert_eq!(matches("Device.IP.Interface.2.Name"), Match::No);
    }

    #[test]
    fn nested_search_sites_are_listed_outermost_first() {
        let target = Target::parse(
            r#"Device.WiFi.AccessPoint.[Enable==true].AssociatedDevice.[Active==true]."#,
        )
        .unwrap();
        assert_eq!(
            target.search_sites().collect::<Vec<_>>(),
            [
                "Device.WiFi.AccessPoint.[Enable==true].",
                "Device.WiFi.AccessPoint.[Enable==true].AssociatedDevice.[Active==true].",
            ]
        );
    }

    #[test]
    fn target_lists_split_on_commas_and_ignore_blanks() {
        let targets = Target::parse_list(" Device.Reboot() , Device.LocalAgent.,").unwrap();
        let texts: Vec<String> = targets.iter().map(Target::to_string).collect();
        assert_eq!(texts, ["Device.Reboot()", "Device.LocalAgent."]);
        assert!(Target::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn malformed_targets_are_invalid_values() {
        for text in [
            "Device..",
            "Device.IP.Interface.[Name==].",
            "Device.IP.Interface.0.",
        ] {
            let error = Target::parse(text).unwrap_err();
            assert!(matches!(error, TargetError::Syntax(_)), "{text}: {error}");
            assert_eq!(error.code(), UspErrorCode::InvalidValue);
        }
    }

    #[test]
    fn reference_following_targets_are_refused() {
        let error = Target::parse("Device.NAT.PortMapping.1.Interface+.").unwrap_err();
        assert_eq!(
            error,
            TargetError::ReferenceFollowing {
                target: "Device.NAT.PortMapping.1.Interface+.".to_string()
            }
        );
        assert!(error.to_string().contains("Interface+"));
    }
}
