//! The harness: a real `usp-agent` process on a temporary state directory, driven through
//! `uspctl`. Every wait has a deadline; nothing sleeps for a fixed time.
//!
//! uspctl is built by another package (usp-controller), whose binary a test of usp-agent
//! cannot name (`CARGO_BIN_EXE_*` covers only the test's own package, and `cargo test -p
//! usp-agent` does not build it). So [`uspctl`] runs `usp_controller::cli::run`, the program
//! the `uspctl` binary's `main` runs, in this process on a thread of its own, and returns its
//! exit status and output as a [`std::process::Output`], the same as running the binary.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long an agent may take to come up, or a condition to become true.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polling interval while waiting for a condition.
const POLL: Duration = Duration::from_millis(20);

/// A running agent with its own directory (config, state, log).
pub struct Agent {
    dir: tempfile::TempDir,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

/// Options of a test agent.
#[derive(Default)]
pub struct Setup {
    /// Lines of a factory-reset file (none when empty).
    pub factory_reset: Option<&'static str>,
    /// Extra TOML appended to the config.
    pub extra: &'static str,
    /// Environment variables for the agent.
    pub env: Vec<(&'static str, &'static str)>,
    /// Leave `[agent] endpoint_id` out of the config (it is `os::e2e-agent` otherwise).
    pub no_endpoint_id: bool,
}

impl Agent {
    /// Starts an agent with the default test setup.
    pub fn start() -> Agent {
        Agent::start_with(Setup::default())
    }

    /// Writes the config and starts the agent, waiting until its control socket answers.
    pub fn start_with(setup: Setup) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = String::from("[agent]\nstate_dir = \"state\"\nlog = \"info\"\n");
        if !setup.no_endpoint_id {
            config.push_str("endpoint_id = \"os::e2e-agent\"\n");
        }
        if let Some(text) = setup.factory_reset {
            std::fs::write(dir.path().join("factory-reset.txt"), text).expect("factory file");
            config.push_str("factory_reset_file = \"factory-reset.txt\"\n");
        }
        config.push_str(setup.extra);
        std::fs::write(dir.path().join("agent.toml"), config).expect("config");
        let mut agent = Agent {
            dir,
            child: None,
            env: setup
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        agent.spawn();
        agent
    }

    /// The config file the agent runs with.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Starts the agent process (again) and waits until a Get answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_usp-agent"))
            .arg("--config")
            .arg(self.config())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start usp-agent");
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// Waits until the agent answers a Get on its control socket.
    pub fn wait_until_ready(&mut self) {
        self.wait_for("the agent to answer", |agent| {
            agent
                .uspctl(&["get", "Device.LocalAgent.EndpointID"])
                .status
                .success()
        });
    }

    /// Polls `condition` until it holds; panics with the agent log after [`DEADLINE`].
    pub fn wait_for(&mut self, what: &str, mut condition: impl FnMut(&mut Agent) -> bool) {
        let start = Instant::now();
        loop {
            if condition(self) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "usp-agent exited ({status}) while waiting for {what}\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Runs `uspctl --config <agent.toml> args...`.
    pub fn uspctl(&self, args: &[&str]) -> Output {
        uspctl_at(&self.config(), args)
    }

    /// Runs uspctl and returns stdout, panicking (with stderr) if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.uspctl(args);
        assert!(
            output.status.success(),
            "uspctl {args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The value of one parameter.
    pub fn value(&self, path: &str) -> String {
        let out = self.ok(&["--json", "get", path]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("uspctl --json output");
        json[path]
            .as_str()
            .unwrap_or_else(|| panic!("{path} missing from {out}"))
            .to_string()
    }

    /// Kills the agent without warning (no clean shutdown) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited with status 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Restarts the agent on the same state directory (after a kill).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs uspctl with `--config config`.
pub fn uspctl_at(config: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<OsString> = vec!["--config".into(), config.into(), "--timeout".into()];
    argv.push("10".into());
    argv.extend(args.iter().map(OsString::from));
    uspctl(argv)
}

/// Runs uspctl with `args` (without the program name) in this process, on a thread of its own
/// (uspctl starts its own runtime, which a thread inside a test's runtime may not), and returns
/// what the binary would: its exit status, stdout and stderr.
pub fn uspctl(args: Vec<OsString>) -> Output {
    let run = std::thread::spawn(move || {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let argv = std::iter::once(OsString::from("uspctl")).chain(args);
        let status = usp_controller::cli::run(argv, &mut stdout, &mut stderr);
        (status, stdout, stderr)
    });
    let (status, stdout, stderr) = run.join().expect("uspctl panicked");
    Output {
        // A wait status: the exit code in the second byte.
        status: ExitStatus::from_raw(i32::from(status) << 8),
        stdout,
        stderr,
    }
}

/// stderr of an output, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
