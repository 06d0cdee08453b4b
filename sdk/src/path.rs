//! Concrete paths as the agent passes them (`Device.IP.Interface.3.IPv4Address.1.`), matched
//! against supported-DM patterns with `{i}` to pull out the instance numbers.

use std::fmt;

/// A concrete object or table path handed to the plugin; always ends in `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath(String);

impl ObjectPath {
    /// Wraps a path received from the agent.
    pub fn new(path: impl Into<String>) -> Self {
        ObjectPath(path.into())
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// If the path matches `pattern` (a supported-DM path where `{i}` stands for an instance
    /// number), the instance numbers in order.
    ///
    /// ```
    /// # use usp_sdk::ObjectPath;
    /// let path = ObjectPath::new("Device.IP.Interface.3.IPv4Address.1.");
    /// assert_eq!(path.matches("Device.IP.Interface.{i}.IPv4Address.{i}."), Some([3, 1]));
    /// assert_eq!(path.matches::<1>("Device.IP.Interface.{i}."), None);
    /// ```
    pub fn matches<const N: usize>(&self, pattern: &str) -> Option<[u32; N]> {
        let mut numbers = [0u32; N];
        let mut found = 0;
        let mut segments = self.0.split('.');
        for expected in pattern.split('.') {
            let segment = segments.next()?;
            if expected == "{i}" {
                let number = segment.parse::<u32>().ok().filter(|n| *n > 0)?;
                *numbers.get_mut(found)? = number;
                found += 1;
            } else if segment != expected {
                return None;
            }
        }
        (segments.next().is_none() && found == N).then_some(numbers)
    }

    /// The path of a parameter of this object: `Device.Time.` + `Enable`.
    pub fn param(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a command path (`Device.IP.Interface.1.Reset()`) into its object and command name.
pub(crate) fn split_command(command: &str) -> (ObjectPath, String) {
    let at = command.rfind('.').map_or(0, |dot| dot + 1);
    (ObjectPath::new(&command[..at]), command[at..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literal_and_rejects_longer_or_shorter_paths() {
        let time = ObjectPath::new("Device.Time.");
        assert_eq!(time.matches::<0>("Device.Time."), Some([]));
        assert_eq!(time.matches::<0>("Device."), None);
        assert_eq!(
            ObjectPath::new("Device.").matches::<0>("Device.Time."),
            None
        );
    }

    #[test]
    fn matches_rejects_instance_zero_and_names_in_place_of_numbers() {
        assert_eq!(
            ObjectPath::new("Device.A.0.").matches::<1>("Device.A.{i}."),
            None
        );
        assert_eq!(
            ObjectPath::new("Device.A.x.").matches::<1>("Device.A.{i}."),
            None
        );
    }

    #[test]
    fn table_paths_match_without_instance_number() {
        let table = ObjectPath::new("Device.IP.Interface.2.IPv4Address.");
        assert_eq!(
            table.matches("Device.IP.Interface.{i}.IPv4Address."),
            Some([2])
        );
    }

    #[test]
    fn split_command_separates_object_and_name() {
        let (object, name) = split_command("Device.IP.Interface.1.Reset()");
        assert_eq!(object.as_str(), "Device.IP.Interface.1.");
        assert_eq!(name, "Reset()");
    }
}
