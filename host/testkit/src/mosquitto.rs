//! A stock mosquitto broker on loopback ports, owned by one test: started, killed (SIGKILL)
//! and started again on the same port and configuration; killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::{free_port, system_binary, wait_tcp};

/// A mosquitto broker owned by the test, on a loopback port.
pub struct Mosquitto {
    /// The broker's port.
    pub port: u16,
    /// The port of its MQTT-over-WebSocket listener, if it has one.
    pub ws_port: Option<u16>,
    conf: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub async fn start() -> anyhow::Result<Mosquitto> {
        let mut broker = Mosquitto::configure(free_port()?)?;
        broker.launch().await?;
        Ok(broker)
    }

    /// Starts a broker on a free port with a second, MQTT-over-WebSocket listener on another
    /// (for controllers that reach the broker over WebSocket).
    pub async fn start_with_websockets() -> anyhow::Result<Mosquitto> {
        let mut broker = Mosquitto::configure_listeners(free_port()?, Some(free_port()?))?;
        broker.launch().await?;
        if let Some(ws_port) = broker.ws_port {
            wait_tcp(ws_port, Duration::from_secs(10)).await?;
        }
        Ok(broker)
    }

    /// Writes the configuration for `port` without starting the broker.
    pub fn configure(port: u16) -> anyhow::Result<Mosquitto> {
        Mosquitto::configure_listeners(port, None)
    }

    fn configure_listeners(port: u16, ws_port: Option<u16>) -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("mosquitto.conf");
        let websockets = ws_port
            .map(|ws| format!("listener {ws} 127.0.0.1\nprotocol websockets\n"))
            .unwrap_or_default();
        // `user root` keeps mosquitto from switching to a `mosquitto` user that may not exist.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{websockets}allow_anonymous true\npersistence false\n\
                 user root\nlog_dest none\n"
            ),
        )?;
        Ok(Mosquitto {
            port,
            ws_port,
            conf,
            child: None,
            _dir: dir,
        })
    }

    /// Starts (or restarts) the broker and waits until it accepts connections.
    pub async fn launch(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        let mut child = Command::new(system_binary("mosquitto")?)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start mosquitto")?;
        let ready = wait_tcp(self.port, Duration::from_secs(10)).await;
        if let Ok(Some(status)) = child.try_wait() {
            bail!("mosquitto exited at start ({status})");
        }
        self.child = Some(child);
        ready
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }
}
