//! Test support shared by the workspace's test trees (a dev-dependency only, never shipped):
//! free loopback ports, bounded waits for a TCP port or Unix socket to accept connections,
//! finding a system binary, and the brokers tests run against: [`Mosquitto`] and [`Rabbit`]
//! (RabbitMQ with its STOMP plugin).
//!
//! The brokers run with stock configuration: listeners on loopback, anonymous (or `guest`)
//! access, no persistence. Nothing is tuned for the agent (no `set_tcp_nodelay` or the like), so
//! what the tests measure is what a deployment on a stock broker sees.

mod mosquitto;
mod rabbit;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use mosquitto::Mosquitto;
pub use rabbit::Rabbit;

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `ready` every 10 ms until it holds, for at most `limit`. Used only where no event
/// exists to await: a socket that starts listening tells a process that is not connected
/// nothing.
async fn poll_until<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !ready().await {
        if Instant::now() >= deadline {
            bail!("{what} not ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until something accepts TCP connections on loopback `port`.
pub async fn wait_tcp(port: u16, limit: Duration) -> anyhow::Result<()> {
    poll_until(&format!("TCP port {port}"), limit, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

/// Waits until something accepts connections on the Unix socket `path`.
pub async fn wait_unix(path: &Path, limit: Duration) -> anyhow::Result<()> {
    poll_until(
        &format!("socket {}", path.display()),
        limit,
        || async move { tokio::net::UnixStream::connect(path).await.is_ok() },
    )
    .await
}

/// A Debian system binary: on `PATH` or in `/usr/sbin`. A missing one fails the test (the test
/// command installs it: tests/services/install.sh).
pub fn system_binary(name: &str) -> anyhow::Result<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("{name} is not installed (run tests/services/install.sh)"))
}
