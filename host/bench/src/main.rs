//! `usp-bench`: a USP controller load generator for measuring the agent over MQTT and
//! WebSocket. Each subcommand prints one line per measurement (or JSON with `--json`):
//!
//! - `load`: Get/Set/GetSupportedDM/GetInstances/Operate mixes, any window, N requests or a
//!   duration; requests/s, p50/p99/max latency, and with `--agent-pid` the agent's CPU time per
//!   request and its memory.
//! - `startup`: spawn the agent → its first Connect Record; idle memory afterwards.
//! - `notify`: Set → ValueChange Notify latency, and notifications per second.
//! - `rss`: a process's memory and threads now.
//!
//! A further measurement (InstallDU → first answer from the new subtree) is one more
//! subcommand with its own module, built on the same `target` options and `ControllerClient`.
//!
//! Layout:
//! - [`target`]: which agent, which MTP (shared options).
//! - [`ops`]: the `--op` request specs and what counts as a failed answer.
//! - [`load`], [`startup`], [`notify`]: one measurement each.
//! - [`procfs`]: the agent's CPU time and memory from `/proc`.
//! - [`stats`]: latency percentiles.

mod load;
mod notify;
mod ops;
mod procfs;
mod startup;
mod stats;
mod target;

use clap::{Parser, Subcommand};
use serde::Serialize;

/// Measure a USP agent as a controller sees it.
#[derive(Debug, Parser)]
#[command(name = "usp-bench", version)]
struct Cli {
    /// Print the result as one JSON object per measurement.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a request mix and report throughput, latency and agent cost.
    Load(load::LoadArgs),
    /// Start the agent repeatedly and time its first Connect Record.
    Startup(startup::StartupArgs),
    /// Measure Set → Notify latency and notifications per second.
    Notify(notify::NotifyArgs),
    /// Print a process's VmRSS, RssAnon, VmHWM and threads.
    Rss {
        /// The process to read.
        #[arg(long)]
        pid: u32,
    },
}

#[derive(Debug, Serialize)]
struct RssReport {
    rss_kib: u64,
    anon_kib: u64,
    peak_rss_kib: u64,
    threads: u64,
}

fn print<T: Serialize>(
    json: bool,
    report: &T,
    line: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{}", line(report));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Load(args) => {
            let report = load::run(args).await?;
            print(cli.json, &report, load::LoadReport::line)?;
            // An error answer is not a measurement of what was asked for: the run fails.
            if report.failures > 0 {
                anyhow::bail!(
                    "{} of the requests were answered with an error",
                    report.failures
                );
            }
            Ok(())
        }
        Command::Startup(args) => print(
            cli.json,
            &startup::run(args).await?,
            startup::StartupReport::line,
        ),
        Command::Notify(args) => print(
            cli.json,
            &notify::run(args).await?,
            notify::NotifyReport::line,
        ),
        Command::Rss { pid } => {
            let s = procfs::sample(*pid)?;
            let report = RssReport {
                rss_kib: s.rss_kib,
                anon_kib: s.anon_kib,
                peak_rss_kib: s.hwm_kib,
                threads: s.threads,
            };
            print(cli.json, &report, |r| {
                format!(
                    "VmRSS {:.1} MB, RssAnon {:.1} MB, VmHWM {:.1} MB, {} threads",
                    r.rss_kib as f64 / 1024.0,
                    r.anon_kib as f64 / 1024.0,
                    r.peak_rss_kib as f64 / 1024.0,
                    r.threads
                )
            })
        }
    }
}
