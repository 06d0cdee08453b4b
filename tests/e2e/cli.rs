//! uspctl against a running agent: readable and JSON output, error codes, exit statuses.

use crate::support::{Agent, Setup, stderr, uspctl_at};

#[test]
fn get_local_agent_reports_the_configured_endpoint_id() {
    let agent = Agent::start();
    let out = agent.ok(&["get", "Device.LocalAgent."]);
    assert!(
        out.contains("Device.LocalAgent.EndpointID => os::e2e-agent\n"),
        "{out}"
    );
    assert!(
        out.contains("Device.LocalAgent.SupportedProtocols => "),
        "{out}"
    );
    assert!(out.contains("Device.LocalAgent.UpTime => "), "{out}");
}

#[test]
fn gsdm_of_device_lists_the_builtin_objects_and_commands() {
    let agent = Agent::start();
    let out = agent.ok(&["gsdm", "Device."]);
    for expected in [
        "Device.LocalAgent.\n",
        "Device.DeviceInfo.\n",
        "Device.LocalAgent.Controller.{i}.  (add/delete)",
        "Reboot() sync",
        "ScheduleTimer() async in(DelaySeconds)",
        "Boot! (",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&agent.ok(&["--json", "gsdm", "Device.DeviceInfo."])).unwrap();
    assert_eq!(json[0]["path"], "Device.DeviceInfo.");
}

#[test]
fn add_set_get_delete_round_trip() {
    let agent = Agent::start();
    let out = agent.ok(&[
        "add",
        "Device.LocalAgent.Controller.",
        "EndpointID=self::e2e-controller",
        "Enable=true",
    ]);
    let instance = out.lines().next().unwrap().trim().to_string();
    assert!(
        instance.starts_with("Device.LocalAgent.Controller."),
        "{out}"
    );
    let param = format!("{instance}PeriodicNotifInterval");
    agent.ok(&["set", &format!("{param}=120")]);
    assert_eq!(agent.value(&param), "120");
    agent.ok(&["set", &param, "300"]);
    assert_eq!(agent.value(&param), "300");
    let listed = agent.ok(&["instances", "Device.LocalAgent.Controller."]);
    assert!(listed.contains(&instance), "{listed}");
    let deleted = agent.ok(&["del", &instance]);
    assert!(
        deleted.contains(&format!("deleted {instance}")),
        "{deleted}"
    );
    let gone = agent.uspctl(&["get", &param]);
    assert_eq!(gone.status.code(), Some(1));
}

#[test]
fn errors_print_the_usp_code_and_exit_non_zero() {
    let agent = Agent::start();
    for (args, code) in [
        (vec!["get", "Device.NoSuchObject."], "7026"),
        (vec!["set", "Device.LocalAgent.EndpointID=x"], "7013"),
        (vec!["get", "Device..Broken"], "7008"),
        (vec!["add", "Device.DeviceInfo."], "70"),
        (vec!["operate", "Device.ScheduleTimer()"], "7027"),
    ] {
        let output = agent.uspctl(&args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&format!("error {code}")), "{args:?}: {err}");
    }
}

#[test]
fn json_errors_carry_the_code() {
    let agent = Agent::start();
    let output = agent.uspctl(&["--json", "get", "Device.NoSuchObject."]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["errors"][0]["code"], 7026, "{json}");
}

#[test]
fn schedule_timer_runs_as_a_request_and_completes() {
    let mut agent = Agent::start();
    let out = agent.ok(&["operate", "Device.ScheduleTimer()", "DelaySeconds=1"]);
    assert!(out.contains("started: Device.LocalAgent.Request."), "{out}");
    agent.wait_for("the Request row to go away", |agent| {
        agent.value("Device.LocalAgent.RequestNumberOfEntries") == "0"
    });
}

#[test]
fn dump_prints_every_value() {
    let agent = Agent::start();
    let out = agent.ok(&["dump"]);
    assert!(out.contains("Device.DeviceInfo.Manufacturer => "), "{out}");
    assert!(
        out.contains("Device.LocalAgent.EndpointID => os::e2e-agent"),
        "{out}"
    );
}

#[test]
fn device_info_follows_config_and_environment() {
    let agent = Agent::start_with(Setup {
        extra: "[device_info]\nmanufacturer = \"Acme\"\n",
        env: vec![
            ("USP_BOARD_SERIAL", "SN-E2E"),
            ("USP_ENDPOINT_ID", "os::from-env"),
        ],
        ..Setup::default()
    });
    assert_eq!(agent.value("Device.DeviceInfo.Manufacturer"), "Acme");
    assert_eq!(agent.value("Device.DeviceInfo.SerialNumber"), "SN-E2E");
    assert_eq!(agent.value("Device.LocalAgent.EndpointID"), "os::from-env");
}

#[test]
fn uspctl_without_a_running_agent_fails_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[agent]\nstate_dir = \"state\"\n").unwrap();
    let output = uspctl_at(&config, &["get", "Device."]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("control socket"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sigterm_stops_the_agent_cleanly_and_removes_the_socket() {
    let mut agent = Agent::start();
    let socket = agent.state_dir().join("control.sock");
    assert!(socket.exists());
    assert!(
        agent.terminate(),
        "usp-agent did not exit cleanly:\n{}",
        agent.log()
    );
    assert!(!socket.exists());
}

#[test]
fn bundled_plugins_serve_their_subtrees() {
    let agent = Agent::start_with(Setup {
        extra: "[plugins]\nbundled = true\nreadable_dirs = [\"/proc\", \"/sys\"]\n",
        ..Setup::default()
    });
    let out = agent.ok(&["gsdm", "Device."]);
    for expected in [
        "Device.Time.",
        "Device.IP.",
        "Device.DeviceInfo.MemoryStatus.",
    ] {
        assert!(out.contains(expected), "missing {expected} in:\n{out}");
    }
    let total = agent.value("Device.DeviceInfo.MemoryStatus.Total");
    assert!(total.parse::<u64>().is_ok_and(|kib| kib > 0), "{total}");
    // This machine's interfaces, as `ip link` lists them, read by the sandboxed network plugin.
    let interfaces = agent.ok(&["get", "Device.IP.Interface."]);
    let names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            interfaces.contains(&format!(".Name => {name}\n")),
            "interface {name} missing in:\n{interfaces}"
        );
    }
    assert!(
        interfaces.contains(".IPv4Address.1.IPAddress => 127.0.0.1"),
        "{interfaces}"
    );
}

#[test]
fn a_plugin_whose_grant_is_not_approved_is_left_out() {
    let agent = Agent::start_with(Setup {
        extra: "[plugins]\nbundled = true\nreadable_dirs = []\n",
        ..Setup::default()
    });
    let output = agent.uspctl(&["get", "Device.DeviceInfo.MemoryStatus."]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(agent.value("Device.DeviceInfo.Manufacturer"), "Example");
    let log = agent.log();
    assert!(log.contains("plugin failed to load"), "{log}");
    assert!(
        log.contains("[plugins] readable_dirs"),
        "the message names the setting that grants it:\n{log}"
    );
}

#[test]
fn bundled_plugins_load_with_the_default_readable_dirs() {
    let agent = Agent::start_with(Setup {
        extra: "[plugins]\nbundled = true\n",
        ..Setup::default()
    });
    let total = agent.value("Device.DeviceInfo.MemoryStatus.Total");
    assert!(total.parse::<u64>().is_ok_and(|kib| kib > 0), "{total}");
    assert!(
        agent
            .ok(&["get", "Device.IP.Interface."])
            .contains(".Name => lo\n"),
        "the network plugin (it reads /sys and /proc) is loaded"
    );
    assert!(
        !agent.log().contains("plugin failed to load"),
        "{}",
        agent.log()
    );
}
