//! uspctl as a Controller over the agent's WebSocket MTP: a provisioned Controller is served
//! with its role; an unknown endpoint's records are dropped with a log line.

use std::ffi::OsString;
use std::process::Output;

use crate::support::{Agent, Setup, stderr, uspctl};

const FACTORY: &str = "Device.LocalAgent.Controller.1.EndpointID \"self::remote-ctl\"\n\
    Device.LocalAgent.Controller.1.Enable true\n\
    Device.LocalAgent.Controller.1.AssignedRole \"Device.LocalAgent.ControllerTrust.Role.1\"\n";

const WS_SERVER: &str = "[[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\n\
    bind = \"127.0.0.1\"\nport = 0\npath = \"/usp\"\n";

/// The `ws://` URL of the agent's WebSocket server, from its log.
fn ws_url(agent: &mut Agent) -> String {
    let mut address = String::new();
    agent.wait_for("the WebSocket MTP to listen", |agent| {
        let log = agent.log();
        let Some(at) = log.find("listening: Some(\"") else {
            return false;
        };
        let rest = &log[at + "listening: Some(\"".len()..];
        address = rest.split('"').next().unwrap_or_default().to_string();
        !address.is_empty()
    });
    format!("ws://{address}/usp")
}

fn remote(url: &str, controller: &str, args: &[&str]) -> Output {
    let mut argv = vec![
        "--ws",
        url,
        "--agent-id",
        "os::e2e-agent",
        "--controller-id",
        controller,
        "--timeout",
        "3",
    ];
    argv.extend_from_slice(args);
    uspctl(argv.into_iter().map(OsString::from).collect())
}

#[test]
fn a_provisioned_controller_is_served_over_websocket() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        extra: WS_SERVER,
        ..Setup::default()
    });
    let url = ws_url(&mut agent);
    let output = remote(
        &url,
        "self::remote-ctl",
        &["get", "Device.LocalAgent.EndpointID"],
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        agent.log()
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("Device.LocalAgent.EndpointID => os::e2e-agent"),
        "{out}"
    );
}

#[test]
fn an_unknown_endpoint_is_dropped_with_a_log_line() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        extra: WS_SERVER,
        ..Setup::default()
    });
    let url = ws_url(&mut agent);
    let output = remote(
        &url,
        "self::stranger",
        &["get", "Device.LocalAgent.EndpointID"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        agent
            .log()
            .contains("not an enabled Device.LocalAgent.Controller."),
        "{}",
        agent.log()
    );
}

#[test]
fn an_unknown_endpoint_is_served_as_untrusted_when_configured() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        // Appended to the [agent] table, then the MTP.
        extra: "serve_untrusted = true\n[[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\n\
            bind = \"127.0.0.1\"\nport = 0\npath = \"/usp\"\n",
        ..Setup::default()
    });
    let url = ws_url(&mut agent);
    let output = remote(&url, "self::stranger", &["operate", "Device.Reboot()"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("error 7006"),
        "{}",
        stderr(&output)
    );
}
