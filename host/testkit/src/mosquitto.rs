//! A stock mosquitto broker on loopback ports, owned by one test: started, killed (SIGKILL)
//! and started again on the same port and configuration; killed when dropped.

use std::path::{Path, PathBuf};
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

    /// Starts a broker on a free port whose listener speaks TLS with the server certificate
    /// `cert`/`key` (clients may present one chaining to `ca`, but need not).
    pub async fn start_tls(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Mosquitto> {
        let tls = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate false\n",
            ca.display(),
            cert.display(),
            key.display()
        );
        let mut broker = Mosquitto::configure_with(free_port()?, None, &tls, |_| {
            Ok("allow_anonymous true\n".into())
        })?;
        broker.launch().await?;
        Ok(broker)
    }

    /// Starts a broker on a free port that admits only `user` with `password`.
    pub async fn start_with_login(user: &str, password: &str) -> anyhow::Result<Mosquitto> {
        let mut broker = Mosquitto::configure_with(free_port()?, None, "", |dir| {
            let file = dir.join("passwords");
            let status = std::process::Command::new(system_binary("mosquitto_passwd")?)
                .args(["-b", "-c"])
                .arg(&file)
                .args([user, password])
                .status()
                .context("cannot run mosquitto_passwd")?;
            if !status.success() {
                bail!("mosquitto_passwd failed ({status})");
            }
            Ok(format!(
                "allow_anonymous false\npassword_file {}\n",
                file.display()
            ))
        })?;
        broker.launch().await?;
        Ok(broker)
    }

    /// Writes the configuration for `port` without starting the broker.
    pub fn configure(port: u16) -> anyhow::Result<Mosquitto> {
        Mosquitto::configure_listeners(port, None)
    }

    fn configure_listeners(port: u16, ws_port: Option<u16>) -> anyhow::Result<Mosquitto> {
        Mosquitto::configure_with(port, ws_port, "", |_| Ok("allow_anonymous true\n".into()))
    }

    /// Writes the configuration: the MQTT listener on `port` with `listener_extra` (its TLS
    /// settings), a WebSocket listener on `ws_port`, and the access lines `access` writes given
    /// the broker's directory.
    fn configure_with(
        port: u16,
        ws_port: Option<u16>,
        listener_extra: &str,
        access: impl FnOnce(&Path) -> anyhow::Result<String>,
    ) -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("mosquitto.conf");
        let websockets = ws_port
            .map(|ws| format!("listener {ws} 127.0.0.1\nprotocol websockets\n"))
            .unwrap_or_default();
        let access = access(dir.path())?;
        // `user root` keeps mosquitto from switching to a `mosquitto` user that may not exist.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{listener_extra}{websockets}{access}persistence false\n\
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
