//! What survives a restart: committed changes (even after a kill), the factory-reset file on
//! first boot only, recovery from a corrupt database, and Device.FactoryReset()/Reboot().

use crate::support::{Agent, Setup};

const FACTORY: &str = "# e2e factory defaults\n\
    Device.LocalAgent.Controller.1.EndpointID \"self::factory-controller\"\n\
    Device.LocalAgent.Controller.1.Enable true\n\
    Device.LocalAgent.Controller.1.PeriodicNotifInterval 600\n\
    Device.LocalAgent.Controller.1.NoSuchParam \"ignored\"\n";

const INTERVAL: &str = "Device.LocalAgent.Controller.1.PeriodicNotifInterval";

#[test]
fn committed_changes_survive_a_kill() {
    let mut agent = Agent::start();
    let out = agent.ok(&[
        "add",
        "Device.LocalAgent.Controller.",
        "EndpointID=self::durable",
    ]);
    let instance = out.lines().next().unwrap().trim().to_string();
    agent.ok(&["set", &format!("{instance}PeriodicNotifInterval=42")]);
    agent.restart();
    assert_eq!(
        agent.value(&format!("{instance}EndpointID")),
        "self::durable"
    );
    assert_eq!(
        agent.value(&format!("{instance}PeriodicNotifInterval")),
        "42"
    );
}

#[test]
fn factory_reset_file_applies_on_first_boot_only() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        ..Setup::default()
    });
    assert_eq!(
        agent.value("Device.LocalAgent.Controller.1.EndpointID"),
        "self::factory-controller"
    );
    assert_eq!(agent.value(INTERVAL), "600");
    assert!(
        agent.log().contains("line 5"),
        "the bad line is reported:\n{}",
        agent.log()
    );
    agent.ok(&["set", &format!("{INTERVAL}=900")]);
    agent.restart();
    assert_eq!(agent.value(INTERVAL), "900");
}

#[test]
fn corrupt_database_is_moved_aside_and_rebuilt_from_factory_defaults() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        ..Setup::default()
    });
    agent.ok(&["set", &format!("{INTERVAL}=900")]);
    agent.kill();
    let db = agent.state_dir().join("agent.db");
    std::fs::write(&db, vec![0xA5u8; 8192]).unwrap();
    for side in ["agent.db-wal", "agent.db-shm"] {
        let _ = std::fs::remove_file(agent.state_dir().join(side));
    }
    agent.spawn();
    assert_eq!(agent.value(INTERVAL), "600");
    assert!(agent.log().contains("moved it aside"), "{}", agent.log());
    let moved = std::fs::read_dir(agent.state_dir())
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("agent.db.corrupt-")
        });
    assert!(moved, "no agent.db.corrupt-* file");
}

#[test]
fn factory_reset_command_restores_the_defaults() {
    let mut agent = Agent::start_with(Setup {
        factory_reset: Some(FACTORY),
        ..Setup::default()
    });
    agent.ok(&["set", &format!("{INTERVAL}=900")]);
    agent.ok(&[
        "add",
        "Device.LocalAgent.Controller.",
        "EndpointID=self::extra",
    ]);
    agent.ok(&["operate", "Device.FactoryReset()"]);
    agent.wait_for("the factory defaults to be back", |agent| {
        agent.uspctl(&["get", INTERVAL]).status.success() && agent.value(INTERVAL) == "600"
    });
    assert_eq!(
        agent.value("Device.LocalAgent.ControllerNumberOfEntries"),
        "1"
    );
    assert!(
        agent.log().contains("cause=RemoteFactoryReset"),
        "{}",
        agent.log()
    );
}

#[test]
fn reboot_without_a_command_restarts_the_agent_and_keeps_state() {
    let mut agent = Agent::start();
    agent.ok(&[
        "add",
        "Device.LocalAgent.Controller.",
        "EndpointID=self::kept",
    ]);
    agent.ok(&["operate", "Device.Reboot()", "--key", "e2e-key"]);
    agent.wait_for("the agent to come back with cause RemoteReboot", |agent| {
        agent.log().contains("cause=RemoteReboot")
            && agent
                .uspctl(&["get", "Device.LocalAgent.UpTime"])
                .status
                .success()
    });
    assert_eq!(
        agent.value("Device.LocalAgent.ControllerNumberOfEntries"),
        "1"
    );
}
