//! Matching changed paths against subscription `ReferenceList` entries (digest §9.1). An entry
//! may be a parameter, object, command or event path, possibly with wildcards and search
//! expressions. An object path acts as a filter over everything below it.
//!
//! Two levels: [`structural_match`] compares the text only (a search expression matches any
//! instance), which is all that can be done for an object that was just deleted;
//! [`DataModel::reference_matches`] additionally evaluates search expressions and references
//! against the current data.

use usp_codec::path::{Leaf, Path, Segment};

use crate::error::DmError;
use crate::model::DataModel;

/// Splits a concrete path into its `.`-terminated segments and its leaf name.
fn split(concrete: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = concrete.split('.').collect();
    let leaf = parts.pop().unwrap_or("");
    (parts, leaf)
}

/// True when the changed concrete path `changed` (an instance path ending in `.`, or a
/// parameter/command/event path) is addressed by `reference`, looking at the text only:
/// names and instance numbers must agree, `*` and `[...]` match any instance. An object
/// reference also matches everything below it; a leaf reference must match exactly.
pub fn structural_match(reference: &Path, changed: &str) -> bool {
    if reference.has_follow() {
        return false;
    }
    let (parts, leaf) = split(changed);
    if parts.len() < reference.segments.len() {
        return false;
    }
    for (segment, part) in reference.segments.iter().zip(&parts) {
        let ok = match segment {
            Segment::Name(name) => name == part,
            Segment::Instance(number) => part.parse::<u32>().ok() == Some(*number),
            Segment::Wildcard | Segment::Search(_) | Segment::Placeholder => {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
            }
            Segment::Follow(_) => false,
        };
        if !ok {
            return false;
        }
    }
    match &reference.leaf {
        Leaf::Object => true,
        Leaf::Param(name) | Leaf::Command(name) | Leaf::Event(name) => {
            parts.len() == reference.segments.len() && leaf == name
        }
    }
}

impl DataModel {
    /// True when `changed` is addressed by `reference` in the current data: the structural
    /// match holds and, for references with search expressions or reference following, the
    /// changed path lies at or under one of the objects the reference resolves to now.
    pub async fn reference_matches(
        &self,
        reference: &Path,
        changed: &str,
    ) -> Result<bool, DmError> {
        let has_expression = reference
            .segments
            .iter()
            .any(|segment| matches!(segment, Segment::Search(_)));
        if !reference.has_follow() {
            if !structural_match(reference, changed) {
                return Ok(false);
            }
            if !has_expression {
                return Ok(true);
            }
        }
        let object_part = Path {
            segments: reference.segments.clone(),
            leaf: Leaf::Object,
        };
        let resolution = match self.resolve(&object_part).await {
            Ok(resolution) => resolution,
            Err(DmError::NoSuchObject { .. }) => return Ok(false),
            Err(error) => return Err(error),
        };
        Ok(resolution
            .objects
            .iter()
            .any(|object| match &reference.leaf {
                Leaf::Object => changed.starts_with(object.path.as_str()),
                Leaf::Param(name) | Leaf::Command(name) | Leaf::Event(name) => {
                    changed.strip_prefix(object.path.as_str()) == Some(name.as_str())
                }
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Path {
        Path::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn object_reference_covers_parameters_below() {
        let reference = path("Device.LocalAgent.");
        assert!(structural_match(
            &reference,
            "Device.LocalAgent.Controller.1.Enable"
        ));
        assert!(!structural_match(&reference, "Device.DeviceInfo.UpTime"));
    }

    #[test]
    fn wildcard_and_search_match_any_instance() {
        assert!(structural_match(
            &path("Device.WiFi.SSID.*.Status"),
            "Device.WiFi.SSID.7.Status"
        ));
        assert!(structural_match(
            &path(r#"Device.WiFi.SSID.[Name=="x"].Status"#),
            "Device.WiFi.SSID.7.Status"
        ));
        assert!(!structural_match(
            &path("Device.WiFi.SSID.*.Status"),
            "Device.WiFi.SSID.7.Name"
        ));
        assert!(!structural_match(
            &path("Device.WiFi.SSID.2.Status"),
            "Device.WiFi.SSID.7.Status"
        ));
    }

    #[test]
    fn event_reference_matches_its_event_only() {
        assert!(structural_match(&path("Device.Boot!"), "Device.Boot!"));
        assert!(!structural_match(
            &path("Device.Boot!"),
            "Device.LocalAgent.Periodic!"
        ));
    }

    #[test]
    fn deleted_instance_matches_table_reference() {
        assert!(structural_match(
            &path("Device.LocalAgent.Subscription.*."),
            "Device.LocalAgent.Subscription.3."
        ));
        assert!(structural_match(
            &path("Device.LocalAgent.Subscription."),
            "Device.LocalAgent.Subscription.3."
        ));
    }
}
