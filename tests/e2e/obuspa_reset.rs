//! obuspa factory-reset files used as they are (issue 11): every line of an obuspa-style file
//! loads, pre-2.19 names land on their Device:2.19 parameters, and the file's
//! `Device.LocalAgent.EndpointID` names the agent unless `USP_ENDPOINT_ID` or
//! `[agent] endpoint_id` does (that precedence is documented in `examples/agent.toml`).

use crate::support::{Agent, Setup};

const MQTT_FILE: &str = include_str!("../../host/agent/testdata/obuspa/mqtt.txt");
const STOMP_FILE: &str = include_str!("../../host/agent/testdata/obuspa/stomp.txt");

/// Log text that would mean a line of the file was dropped.
fn dropped_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            line.contains("factory-reset")
                && (line.contains("not applied") || line.contains("skipped"))
        })
        .collect()
}

#[test]
fn obuspa_mqtt_reset_file_loads_every_line_and_names_the_agent() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(MQTT_FILE),
        no_endpoint_id: true,
        ..Setup::default()
    });
    assert_eq!(
        agent.value("Device.LocalAgent.EndpointID"),
        "os::00D09E-GW0042"
    );
    assert_eq!(
        agent.value("Device.LocalAgent.Controller.1.MTP.1.MQTT.AgentMTPReference"),
        "Device.LocalAgent.MTP.1"
    );
    assert_eq!(
        agent.value("Device.LocalAgent.Controller.1.MTP.1.MQTT.Topic"),
        "usp/controller/acs"
    );
    assert_eq!(agent.value("Device.MQTT.Client.1.KeepAliveTime"), "45");
    let log = agent.log();
    assert_eq!(dropped_lines(&log), Vec::<&str>::new(), "{log}");
    assert!(
        log.contains("Device.LocalAgent.Controller.1.MTP.1.MQTT.Reference is the pre-2.19 form"),
        "the renamed line is reported:\n{log}"
    );
    // The file is read on the first boot only; the Endpoint ID it gave is kept.
    agent.restart();
    assert_eq!(
        agent.value("Device.LocalAgent.EndpointID"),
        "os::00D09E-GW0042"
    );
}

#[test]
fn obuspa_stomp_reset_file_loads_every_line() {
    let agent = Agent::start_with(Setup {
        factory_reset: Some(STOMP_FILE),
        no_endpoint_id: true,
        ..Setup::default()
    });
    assert_eq!(
        agent.value("Device.LocalAgent.EndpointID"),
        "os::00D09E-GW0043"
    );
    assert_eq!(
        agent.value("Device.LocalAgent.Controller.1.MTP.1.STOMP.Destination"),
        "/queue/controller-acs"
    );
    assert_eq!(
        agent.value("Device.STOMP.Connection.1.EnableEncryption"),
        "false"
    );
    let log = agent.log();
    assert_eq!(dropped_lines(&log), Vec::<&str>::new(), "{log}");
}

#[test]
fn config_endpoint_id_overrides_the_reset_file_and_says_so() {
    let agent = Agent::start_with(Setup {
        factory_reset: Some(MQTT_FILE),
        ..Setup::default()
    });
    assert_eq!(agent.value("Device.LocalAgent.EndpointID"), "os::e2e-agent");
    let log = agent.log();
    assert!(
        log.contains(
            "Device.LocalAgent.EndpointID \"os::00D09E-GW0042\" is overridden by agent.endpoint_id"
        ),
        "{log}"
    );
}

#[test]
fn usp_endpoint_id_overrides_config_and_reset_file() {
    let agent = Agent::start_with(Setup {
        factory_reset: Some(MQTT_FILE),
        env: vec![("USP_ENDPOINT_ID", "os::from-environment")],
        ..Setup::default()
    });
    assert_eq!(
        agent.value("Device.LocalAgent.EndpointID"),
        "os::from-environment"
    );
    assert!(
        agent.log().contains("is overridden by USP_ENDPOINT_ID"),
        "{}",
        agent.log()
    );
}
