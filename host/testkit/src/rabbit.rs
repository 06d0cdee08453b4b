//! A RabbitMQ node with its STOMP plugin (and optionally a STOMP-over-TLS listener) on free
//! loopback ports, in a private directory owned by the `rabbitmq` user (the server script switches to it). Every process the node starts (su,
//! beam.smp, epmd, ...) carries a marker in its environment and is killed by PID on drop. The
//! node can be killed and started again on the same ports and state.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::{free_port, system_binary, wait_tcp};

/// How long the node may take to open its STOMP port (about 25 s on a loaded 2-core machine).
const BOOT_LIMIT: Duration = Duration::from_secs(120);
/// How long the STOMP-over-TLS port may take once the plain one is open.
const TLS_LIMIT: Duration = Duration::from_secs(30);

/// The environment variable whose value marks this node's processes.
const MARKER: &str = "USP_TESTKIT_BROKER";

/// A running RabbitMQ node; the default user `guest`/`guest` may log in over loopback.
pub struct Rabbit {
    /// The STOMP listener's port.
    pub stomp_port: u16,
    /// The STOMP-over-TLS listener's port, when prepared with certificates.
    pub stomp_tls_port: Option<u16>,
    dir: PathBuf,
    dist_port: u16,
    epmd_port: u16,
    /// The `rabbitmq-server` script, reaped after its node is killed.
    script: Option<Child>,
}

impl Rabbit {
    /// Writes the configuration, starts the node and waits until its STOMP port accepts
    /// connections.
    pub async fn start() -> anyhow::Result<Rabbit> {
        let mut rabbit = Rabbit::prepare(None).await?;
        rabbit.launch().await?;
        Ok(rabbit)
    }

    /// Chooses ports and writes the configuration; [`Rabbit::launch`] starts the node. With
    /// `tls` (CA, certificate and key files) a second STOMP listener speaks TLS with that
    /// certificate and does not ask clients for one.
    pub async fn prepare(tls: Option<[&Path; 3]>) -> anyhow::Result<Rabbit> {
        let dir = tempfile::Builder::new()
            .prefix("usp-rabbit")
            .tempdir()?
            .keep();
        let stomp_port = free_port()?;
        for sub in ["mnesia", "log", "expand"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_stomp].\n")?;
        let mut conf = format!(
            "listeners.tcp.default = 127.0.0.1:{}\nstomp.listeners.tcp.1 = 127.0.0.1:{stomp_port}\n\
             loopback_users = none\n",
            free_port()?
        );
        let stomp_tls_port = match tls {
            None => None,
            Some(files) => {
                let port = free_port()?;
                // Copied in so the broker's own user can read them.
                let [ca, cert, key] = ["ca.pem", "server.pem", "server.key"].map(|f| dir.join(f));
                for (from, to) in files.iter().zip([&ca, &cert, &key]) {
                    std::fs::copy(from, to)
                        .with_context(|| format!("cannot copy {}", from.display()))?;
                }
                conf.push_str(&format!(
                    "stomp.listeners.ssl.1 = 127.0.0.1:{port}\nssl_options.cacertfile = {}\n\
                     ssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                     ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                    ca.display(),
                    cert.display(),
                    key.display()
                ));
                Some(port)
            }
        };
        std::fs::write(dir.join("rabbitmq.conf"), conf)?;
        let rabbit = Rabbit {
            stomp_port,
            stomp_tls_port,
            dir,
            dist_port: free_port()?,
            epmd_port: free_port()?,
            script: None,
        };
        let status = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&rabbit.dir)
            .status()
            .await?;
        if !status.success() {
            bail!("chown of the RabbitMQ directory failed ({status})");
        }
        Ok(rabbit)
    }

    /// Starts the node and waits until its STOMP port (and STOMP-over-TLS port) accept
    /// connections.
    pub async fn launch(&mut self) -> anyhow::Result<()> {
        let d = |s: &str| self.dir.join(s);
        let script = Command::new(system_binary("rabbitmq-server")?)
            .current_dir(&self.dir)
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d("expand"))
            .env(
                "RABBITMQ_NODENAME",
                format!("usp{}@localhost", self.stomp_port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("HOME", &self.dir)
            .env(MARKER, &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start rabbitmq-server")?;
        self.script = Some(script);
        wait_tcp(self.stomp_port, BOOT_LIMIT)
            .await
            .context("RabbitMQ's STOMP port did not open")?;
        if let Some(port) = self.stomp_tls_port {
            wait_tcp(port, TLS_LIMIT)
                .await
                .context("RabbitMQ's STOMP-over-TLS port did not open")?;
        }
        Ok(())
    }

    /// Kills the node (SIGKILL) and starts it again on the same ports and state.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch().await
    }

    /// PIDs of every process started for this node.
    fn pids(&self) -> Vec<u32> {
        let marker = format!("{MARKER}={}", self.dir.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// SIGKILL to every process of the node; waits (bounded, blocking) until they are gone.
    pub fn kill(&mut self) {
        for pid in self.pids() {
            // Best effort: a process may have exited between the scan and the signal.
            drop(
                std::process::Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status(),
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.pids().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(mut script) = self.script.take() {
            drop(script.start_kill());
            drop(script.try_wait());
        }
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.kill();
        drop(std::fs::remove_dir_all(&self.dir));
    }
}
