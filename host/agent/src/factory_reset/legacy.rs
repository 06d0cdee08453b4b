//! Parameter names of older TR-181 versions (and obuspa's vendor names) that obuspa's
//! factory-reset files still write, mapped to Device:2.19, the model this agent serves.
//!
//! [`DELETED_IN_2_19`] is the `deleted` list of the TR-181 Device:2.19 USP model (items whose
//! status is `deleted`, or that sit under a deleted object), copied here so the build needs
//! nothing outside the repository. [`legacy`] says what becomes of such a path; [`migrate`]
//! rewrites a file's entries to their 2.19 form and says, per line, what it did.

use super::Entry;

/// Supported paths (`{i}` for instance numbers; a trailing `.` covers the whole object) that
/// TR-181 Device:2.19 deleted.
pub const DELETED_IN_2_19: &[&str] = &[
    "Device.BulkData.Profile.{i}.ControlFileFormat",
    "Device.BulkData.Profile.{i}.FileTransferPassword",
    "Device.BulkData.Profile.{i}.FileTransferURL",
    "Device.BulkData.Profile.{i}.FileTransferUsername",
    "Device.BulkData.Profile.{i}.StreamingHost",
    "Device.BulkData.Profile.{i}.StreamingPort",
    "Device.BulkData.Profile.{i}.StreamingSessionID",
    "Device.DSL.Line.{i}.StandardUsed",
    "Device.DSL.Line.{i}.StandardsSupported",
    "Device.Ghn.Interface.{i}.ConnectionType",
    "Device.Hosts.Host.{i}.AddressSource",
    "Device.Hosts.Host.{i}.Alias",
    "Device.Hosts.Host.{i}.ClientID",
    "Device.Hosts.Host.{i}.LeaseTimeRemaining",
    "Device.Hosts.Host.{i}.UserClassID",
    "Device.Hosts.Host.{i}.VendorClassID",
    "Device.LocalAgent.Controller.{i}.E2ESession.Enable",
    "Device.LocalAgent.Controller.{i}.E2ESession.SegmentedPayloadChunkSize",
    "Device.LocalAgent.Controller.{i}.MTP.{i}.CoAP.",
    "Device.LocalAgent.Controller.{i}.MTP.{i}.MQTT.Reference",
    "Device.LocalAgent.Controller.{i}.MTP.{i}.WebSocket.IsEncrypted",
    "Device.LocalAgent.Controller.{i}.ScheduleTimer()",
    "Device.LocalAgent.Controller.{i}.Timer!",
    "Device.LocalAgent.MTP.{i}.CoAP.",
    "Device.MAP.Domain.{i}.IncludeSystemPorts",
    "Device.MAP.Domain.{i}.PSID",
    "Device.MAP.Domain.{i}.PSIDLength",
    "Device.MAP.Domain.{i}.PSIDOffset",
    "Device.MQTT.Client.{i}.EnableEncryption",
    "Device.Optical.Interface.{i}.LowerOpticalThreshold",
    "Device.Optical.Interface.{i}.LowerTransmitPowerThreshold",
    "Device.Optical.Interface.{i}.UpperOpticalThreshold",
    "Device.Optical.Interface.{i}.UpperTransmitPowerThreshold",
    "Device.PPP.Interface.{i}.PPPoA.",
    "Device.PeriodicStatistics.SampleSet.{i}.Status",
    "Device.STOMP.Connection.{i}.IsEncrypted",
    "Device.Time.NTPServer1",
    "Device.Time.NTPServer2",
    "Device.Time.NTPServer3",
    "Device.Time.NTPServer4",
    "Device.Time.NTPServer5",
    "Device.UserInterface.RemoteAccess.",
    "Device.Users.User.{i}.RemoteAccessCapable",
    "Device.WiFi.AccessPoint.{i}.AC.{i}.AIFSN",
    "Device.WiFi.AccessPoint.{i}.AC.{i}.ECWMax",
    "Device.WiFi.AccessPoint.{i}.AC.{i}.ECWMin",
    "Device.WiFi.AccessPoint.{i}.AC.{i}.TxOpMax",
    "Device.WiFi.AccessPoint.{i}.MaxAssociatedDevices",
    "Device.WiFi.AccessPoint.{i}.RetryLimit",
    "Device.WiFi.DataElements.AssociationEvent.AssociationEventData.{i}.HECapabilities",
    "Device.WiFi.DataElements.Network.Device.{i}.APMetricsWiFi6",
    "Device.WiFi.DataElements.Network.Device.{i}.AssociatedSTAinAPMetricsWiFi6",
    "Device.WiFi.DataElements.Network.Device.{i}.Radio.{i}.BSS.{i}.STA.{i}.HECapabilities",
    "Device.WiFi.DataElements.Network.Device.{i}.Radio.{i}.Capabilities.HECapabilities",
    "Device.WiFi.EndPoint.{i}.AC.{i}.AIFSN",
    "Device.WiFi.EndPoint.{i}.AC.{i}.ECWMax",
    "Device.WiFi.EndPoint.{i}.AC.{i}.ECWMin",
    "Device.WiFi.EndPoint.{i}.AC.{i}.TxOpMax",
    "Device.WiFi.MultiAP.",
    "Device.WiFi.MultiAP.APDevice.{i}.",
    "Device.WiFi.MultiAP.APDevice.{i}.Radio.{i}.",
    "Device.WiFi.MultiAP.APDevice.{i}.Radio.{i}.AP.{i}.",
    "Device.WiFi.MultiAP.APDevice.{i}.Radio.{i}.AP.{i}.AssociatedDevice.{i}.",
    "Device.WiFi.MultiAP.APDevice.{i}.Radio.{i}.AP.{i}.AssociatedDevice.{i}.Stats.",
    "Device.WiFi.MultiAP.APDevice.{i}.Radio.{i}.AP.{i}.AssociatedDevice.{i}.SteeringHistory.{i}.",
    "Device.WiFi.MultiAP.APDevice.{i}.Radio.{i}.AP.{i}.AssociatedDevice.{i}.SteeringSummaryStats.",
    "Device.WiFi.MultiAP.SteeringSummaryStats.",
    "Device.WiFi.Radio.{i}.CenterFrequencySegement0",
    "Device.WiFi.Radio.{i}.CenterFrequencySegement1",
];

const CONTROLLER_MQTT_REFERENCE: &str = "Device.LocalAgent.Controller.{i}.MTP.{i}.MQTT.Reference";
const AGENT_MTP_TABLE: &str = "Device.LocalAgent.MTP.";
const AGENT_MTP_MQTT_REFERENCE: &str = "Device.LocalAgent.MTP.{i}.MQTT.Reference";

/// What Device:2.19 made of a parameter path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Legacy {
    /// The same value lives under this concrete path now.
    Renamed(String),
    /// `Controller.{i}.MTP.{i}.MQTT.Reference` named an MQTT client; its successor, this
    /// concrete `…MQTT.AgentMTPReference`, names the agent MTP (`Device.LocalAgent.MTP.{i}`)
    /// that uses that client.
    AgentMtpReference(String),
    /// `MQTT.Client.{i}.EnableEncryption`: in 2.19 this concrete `…TransportProtocol` says
    /// `TLS` or `TCP/IP`.
    TransportProtocol(String),
    /// Deleted with no successor: why nothing can take the value.
    Deleted(&'static str),
}

/// The supported path of a concrete one, and the instance numbers it holds, in order.
fn pattern(path: &str) -> (String, Vec<&str>) {
    let mut supported = String::with_capacity(path.len() + 8);
    let mut numbers = Vec::new();
    for (index, part) in path.split('.').enumerate() {
        if index > 0 {
            supported.push('.');
        }
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            supported.push_str("{i}");
            numbers.push(part);
        } else {
            supported.push_str(part);
        }
    }
    (supported, numbers)
}

/// Fills the `{i}` of `supported` with `numbers`, in order.
fn concrete(supported: &str, numbers: &[&str]) -> String {
    let mut out = String::with_capacity(supported.len());
    let mut numbers = numbers.iter();
    for (index, part) in supported.split('.').enumerate() {
        if index > 0 {
            out.push('.');
        }
        let number = if part == "{i}" { numbers.next() } else { None };
        out.push_str(number.copied().unwrap_or(part));
    }
    out
}

/// What Device:2.19 made of the concrete parameter `path`; `None` when it is a current name.
pub fn legacy(path: &str) -> Option<Legacy> {
    let (supported, numbers) = pattern(path);
    let renamed = |to: &str| concrete(to, &numbers);
    match supported.as_str() {
        CONTROLLER_MQTT_REFERENCE => {
            return Some(Legacy::AgentMtpReference(renamed(
                "Device.LocalAgent.Controller.{i}.MTP.{i}.MQTT.AgentMTPReference",
            )));
        }
        // obuspa's name from before TR-181 had one (obuspa itself migrates it in its database).
        "Device.STOMP.Connection.{i}.X_ARRIS-COM_EnableEncryption" => {
            return Some(Legacy::Renamed(renamed(
                "Device.STOMP.Connection.{i}.EnableEncryption",
            )));
        }
        "Device.MQTT.Client.{i}.EnableEncryption" => {
            return Some(Legacy::TransportProtocol(renamed(
                "Device.MQTT.Client.{i}.TransportProtocol",
            )));
        }
        "Device.LocalAgent.Controller.{i}.MTP.{i}.WebSocket.IsEncrypted"
        | "Device.STOMP.Connection.{i}.IsEncrypted" => {
            return Some(Legacy::Deleted(
                "a read-only status that TR-181 2.19 deleted; EnableEncryption configures encryption",
            ));
        }
        _ => {}
    }
    let deleted = DELETED_IN_2_19
        .iter()
        .any(|item| supported == *item || (item.ends_with('.') && supported.starts_with(item)));
    if !deleted {
        return None;
    }
    Some(Legacy::Deleted(if supported.contains(".CoAP.") {
        "the CoAP MTP left USP in 1.3 and TR-181 2.19 deleted it; this agent has no CoAP transport"
    } else if supported.contains(".E2ESession.") {
        "deleted by TR-181 2.19 (E2E session context parameters); this agent does not implement E2E sessions"
    } else {
        "deleted by TR-181 2.19 with no successor"
    }))
}

/// What [`migrate`] did with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line number.
    pub line: usize,
    /// The path as the file writes it.
    pub path: String,
    /// What happened: `applied as …` when the value went to a 2.19 parameter, else why it
    /// could not apply.
    pub message: String,
    /// True when the value was applied (under its 2.19 name).
    pub applied: bool,
}

/// A file's entries in their Device:2.19 form, with a note for every line that was rewritten
/// or cannot apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The entries to apply, in file order.
    pub entries: Vec<Entry>,
    /// One note per legacy line, in file order.
    pub notes: Vec<Note>,
}

/// The agent MTP row (`Device.LocalAgent.MTP.2`) of `entries` whose `MQTT.Reference` is
/// `client` (`Device.MQTT.Client.1`, with or without the trailing dot).
fn agent_mtp_using(entries: &[Entry], client: &str) -> Option<String> {
    let client = client.trim_end_matches('.');
    entries
        .iter()
        .filter(|entry| entry.value.trim_end_matches('.') == client)
        .find_map(|entry| {
            let (supported, numbers) = pattern(&entry.path);
            (supported == AGENT_MTP_MQTT_REFERENCE)
                .then(|| concrete("Device.LocalAgent.MTP.{i}", &numbers))
        })
}

/// Rewrites legacy paths (see [`legacy`]) to their Device:2.19 form; lines that cannot apply
/// are left out and noted with the reason.
pub fn migrate(entries: Vec<Entry>) -> Migrated {
    let mut migrated = Migrated::default();
    for entry in &entries {
        let Some(fit) = legacy(&entry.path) else {
            migrated.entries.push(entry.clone());
            continue;
        };
        let note = |message: String, applied: bool| Note {
            line: entry.line,
            path: entry.path.clone(),
            message,
            applied,
        };
        let moved = |path: &str, value: String, if_absent: bool| Entry {
            line: entry.line,
            path: path.to_string(),
            value,
            if_absent,
        };
        match fit {
            Legacy::Renamed(to) => {
                migrated.notes.push(note(
                    format!("the pre-2.19 name of {to}; applied as {to}"),
                    true,
                ));
                migrated
                    .entries
                    .push(moved(&to, entry.value.clone(), entry.if_absent));
            }
            Legacy::AgentMtpReference(to) => {
                let value = entry.value.trim_end_matches('.');
                let target = if value.is_empty() || value.starts_with(AGENT_MTP_TABLE) {
                    Some(value.to_string())
                } else {
                    agent_mtp_using(&entries, value)
                };
                match target {
                    Some(target) => {
                        migrated.notes.push(note(
                            format!(
                                "the pre-2.19 form of {to} (it named the MQTT client {value:?}); applied as {to} {target:?}"
                            ),
                            true,
                        ));
                        migrated.entries.push(moved(&to, target, entry.if_absent));
                    }
                    None => migrated.notes.push(note(
                        format!(
                            "the pre-2.19 form of {to}, but no Device.LocalAgent.MTP.{{i}}.MQTT.Reference of this file is {value:?}, so no agent MTP can be named; {to} stays empty (any MQTT MTP that is up reaches the Controller)"
                        ),
                        false,
                    )),
                }
            }
            Legacy::TransportProtocol(to) => {
                let transport = match usp_dm::value::parse_bool(&entry.value) {
                    Some(true) => "TLS",
                    Some(false) => "TCP/IP",
                    None => {
                        migrated.notes.push(note(
                            format!(
                                "{:?} is not a boolean; {to} (its 2.19 successor) is not set from it",
                                entry.value
                            ),
                            false,
                        ));
                        continue;
                    }
                };
                migrated.notes.push(note(
                    format!(
                        "deleted by TR-181 2.19; applied as {to} {transport:?} unless the file sets {to} itself"
                    ),
                    true,
                ));
                // An explicit TransportProtocol line wins wherever it stands.
                migrated
                    .entries
                    .push(moved(&to, transport.to_string(), true));
            }
            Legacy::Deleted(why) => {
                migrated
                    .notes
                    .push(note(format!("{why}; not applied"), false));
            }
        }
    }
    migrated
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::factory_reset::parse;

    #[test]
    fn concrete_paths_keep_their_instance_numbers() {
        assert_eq!(
            legacy("Device.LocalAgent.Controller.3.MTP.2.MQTT.Reference"),
            Some(Legacy::AgentMtpReference(
                "Device.LocalAgent.Controller.3.MTP.2.MQTT.AgentMTPReference".into()
            ))
        );
        assert_eq!(
            legacy("Device.STOMP.Connection.12.X_ARRIS-COM_EnableEncryption"),
            Some(Legacy::Renamed(
                "Device.STOMP.Connection.12.EnableEncryption".into()
            ))
        );
        assert_eq!(
            legacy("Device.LocalAgent.Controller.1.MTP.1.STOMP.Reference"),
            None
        );
        assert_eq!(legacy("Device.LocalAgent.MTP.1.MQTT.Reference"), None);
    }

    #[test]
    fn deleted_objects_cover_their_parameters() {
        assert!(matches!(
            legacy("Device.LocalAgent.MTP.1.CoAP.Port"),
            Some(Legacy::Deleted(why)) if why.contains("CoAP")
        ));
        assert!(matches!(
            legacy("Device.LocalAgent.Controller.1.E2ESession.Enable"),
            Some(Legacy::Deleted(_))
        ));
        assert!(matches!(
            legacy("Device.Time.NTPServer1"),
            Some(Legacy::Deleted(_))
        ));
        assert_eq!(legacy("Device.Time.NTPServer"), None);
    }

    #[test]
    fn obuspa_reset_file_mqtt_reference_maps_to_agent_mtp_reference() {
        let parsed = parse(
            "Device.LocalAgent.MTP.4.MQTT.Reference \"Device.MQTT.Client.2\"\n\
             Device.LocalAgent.Controller.1.MTP.1.MQTT.Reference \"Device.MQTT.Client.2.\"\n",
        );
        let migrated = migrate(parsed.entries);
        assert_eq!(migrated.entries.len(), 2);
        assert_eq!(
            migrated.entries[1].path,
            "Device.LocalAgent.Controller.1.MTP.1.MQTT.AgentMTPReference"
        );
        assert_eq!(migrated.entries[1].value, "Device.LocalAgent.MTP.4");
        assert_eq!(migrated.notes.len(), 1);
        assert!(migrated.notes[0].applied);
        assert_eq!(migrated.notes[0].line, 2);
    }

    #[test]
    fn mqtt_reference_to_a_client_no_agent_mtp_uses_is_noted_with_its_line() {
        let parsed = parse(
            "# header\nDevice.LocalAgent.Controller.1.MTP.1.MQTT.Reference \"Device.MQTT.Client.9\"\n",
        );
        let migrated = migrate(parsed.entries);
        assert!(migrated.entries.is_empty());
        let note = &migrated.notes[0];
        assert_eq!(note.line, 2);
        assert!(!note.applied);
        assert!(note.message.contains("Device.MQTT.Client.9"), "{note:?}");
    }

    #[test]
    fn mqtt_enable_encryption_becomes_a_transport_protocol_an_explicit_line_overrides() {
        let parsed = parse(
            "Device.MQTT.Client.1.TransportProtocol \"TCP/IP\"\n\
             Device.MQTT.Client.1.EnableEncryption true\n\
             Device.MQTT.Client.2.EnableEncryption false\n",
        );
        let migrated = migrate(parsed.entries);
        let last = |path: &str| {
            migrated
                .entries
                .iter()
                .filter(|entry| entry.path == path)
                .map(|entry| (entry.value.as_str(), entry.if_absent))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            last("Device.MQTT.Client.1.TransportProtocol"),
            [("TCP/IP", false), ("TLS", true)]
        );
        assert_eq!(
            last("Device.MQTT.Client.2.TransportProtocol"),
            [("TCP/IP", true)]
        );
    }

    #[test]
    fn deleted_read_only_status_lines_are_noted_not_applied() {
        let parsed = parse("Device.STOMP.Connection.1.IsEncrypted \"true\"\n");
        let migrated = migrate(parsed.entries);
        assert!(migrated.entries.is_empty());
        assert!(
            migrated.notes[0].message.contains("read-only"),
            "{:?}",
            migrated.notes
        );
    }
}
