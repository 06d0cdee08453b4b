//! Every value a Get of `Device.` returns is a value of the type GetSupportedDM gives its
//! parameter (issue 11): typed Controllers parse what they read, so an empty string for an
//! `unsignedInt` or a missing count breaks them.

use std::collections::BTreeMap;

use crate::support::{Agent, Setup};

/// The MQTT fixture plus a Controller MTP and a BootParameter that the file leaves mostly
/// unset, so that values nobody wrote are read too.
const FACTORY: &str = concat!(
    include_str!("../../host/agent/testdata/obuspa/mqtt.txt"),
    "Device.LocalAgent.Controller.1.MTP.2.Protocol \"WebSocket\"\n",
    "Device.LocalAgent.Controller.1.BootParameter.1.ParameterName \"Device.DeviceInfo.SoftwareVersion\"\n",
);

/// The supported path of a concrete one (instance numbers become `{i}`).
fn supported(path: &str) -> String {
    path.split('.')
        .map(|part| {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                "{i}"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn is_datetime(value: &str) -> bool {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        value
            .get(range)
            .is_some_and(|text| text.bytes().all(|b| b.is_ascii_digit()))
    };
    bytes.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && (value.ends_with('Z') || value[19..].contains(['+', '-']))
}

/// Whether `value` is a value of the TR-106 type `name` (a list item when it is a list).
fn is_a(name: &str, value: &str) -> bool {
    match name {
        "string" => true,
        "boolean" => matches!(value, "true" | "false" | "1" | "0"),
        "int" => value.parse::<i32>().is_ok(),
        "unsignedInt" => value.parse::<u32>().is_ok(),
        "long" => value.parse::<i64>().is_ok(),
        "unsignedLong" => value.parse::<u64>().is_ok(),
        "decimal" => !value.is_empty() && value.parse::<f64>().is_ok(),
        "dateTime" => is_datetime(value),
        "hexBinary" => {
            value.len().is_multiple_of(2) && value.bytes().all(|b| b.is_ascii_hexdigit())
        }
        "base64" => {
            value.len().is_multiple_of(4)
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        }
        _ => false,
    }
}

/// Whether the standard model declares the parameter a list (an empty list is then valid).
fn is_list(supported_param: &str) -> bool {
    let Some(cut) = supported_param.rfind('.') else {
        return false;
    };
    let (object, name) = (&supported_param[..=cut], &supported_param[cut + 1..]);
    let top: String = object.split('.').take(2).collect::<Vec<_>>().join(".") + ".";
    usp_dm::tr181::schema(&top)
        .ok()
        .and_then(|schema| schema.object(object).cloned())
        .and_then(|def| def.param(name).cloned())
        .is_some_and(|param| param.constraints.list.is_some())
}

fn valid(type_name: &str, list: bool, value: &str) -> bool {
    if is_a(type_name, value) {
        return true;
    }
    list && (value.is_empty() || value.split(',').all(|item| is_a(type_name, item.trim())))
}

#[test]
fn every_value_of_device_matches_its_supported_type() {
    let agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        // The documented default: the bundled plugins with their default readable dirs.
        extra: "[plugins]\nbundled = true\n",
        ..Setup::default()
    });
    let gsdm: serde_json::Value =
        serde_json::from_str(&agent.ok(&["--json", "gsdm", "Device."])).unwrap();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for object in gsdm.as_array().unwrap() {
        let path = object["path"].as_str().unwrap_or_default();
        for param in object["params"].as_array().into_iter().flatten() {
            types.insert(
                format!("{path}{}", param["name"].as_str().unwrap_or_default()),
                param["type"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    let got: serde_json::Value =
        serde_json::from_str(&agent.ok(&["--json", "get", "Device."])).unwrap();
    let values = got
        .get("values")
        .unwrap_or(&got)
        .as_object()
        .unwrap()
        .clone();
    assert!(
        values.contains_key("Device.DeviceInfo.MemoryStatus.Total"),
        "the bundled plugins answer too"
    );
    for (count, rows) in [
        ("Device.LocalAgent.Controller.1.MTPNumberOfEntries", "2"),
        (
            "Device.LocalAgent.Controller.1.BootParameterNumberOfEntries",
            "1",
        ),
        ("Device.LocalAgent.Controller.1.MTP.2.WebSocket.Port", "0"),
    ] {
        assert_eq!(values[count], rows, "{count}");
    }
    let mut offending = Vec::new();
    for (path, value) in &values {
        let value = value.as_str().unwrap_or_default();
        let supported = supported(path);
        let Some(type_name) = types.get(&supported) else {
            offending.push(format!("{path} = {value:?}: not in GetSupportedDM"));
            continue;
        };
        if !valid(type_name, is_list(&supported), value) {
            offending.push(format!("{path} = {value:?}: not a {type_name}"));
        }
    }
    assert!(
        offending.is_empty(),
        "{} values do not match their type:\n{}",
        offending.len(),
        offending.join("\n")
    );
}
