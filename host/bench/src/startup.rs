//! Start-up time: from spawning the agent to its first Connect Record at the controller
//! (MQTTConnect through the broker, or WebSocketConnect once the agent's server accepts us).
//! Each run starts a fresh agent process and stops it with SIGTERM afterwards.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use usp_controller::{AgentEvent, ControllerClient, Endpoint};

use crate::procfs;
use crate::stats;
use crate::target::Target;

/// Pause between attempts to reach a WebSocket server that is not listening yet.
const WS_RETRY: Duration = Duration::from_millis(1);

/// Options of `usp-bench startup`.
#[derive(Debug, Clone, Args)]
pub struct StartupArgs {
    #[command(flatten)]
    pub target: Target,
    /// How many times to start the agent.
    #[arg(long, default_value_t = 7)]
    pub runs: u32,
    /// Seconds to wait for the Connect Record.
    #[arg(long, default_value_t = 10.0)]
    pub limit: f64,
    /// Seconds the last agent stays up after its Connect Record before its idle memory is read.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// The agent command line (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// What the runs measured.
#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    /// Spawn → Connect Record, per run, in microseconds.
    pub runs_us: Vec<u32>,
    /// The median of the runs.
    pub median_us: u32,
    /// Idle VmRSS of the last agent after settling.
    pub idle_rss_kib: u64,
    /// Idle RssAnon of the last agent after settling.
    pub idle_anon_kib: u64,
    /// Threads of the last agent after settling.
    pub threads: u64,
}

impl StartupReport {
    /// One human-readable line.
    pub fn line(&self) -> String {
        let runs: Vec<String> = self
            .runs_us
            .iter()
            .map(|us| stats::fmt_us(f64::from(*us)))
            .collect();
        format!(
            "start-up to Connect record: median {} (runs: {}); idle RSS {:.1} MB (anon {:.1} MB), {} threads",
            stats::fmt_us(f64::from(self.median_us)),
            runs.join(", "),
            self.idle_rss_kib as f64 / 1024.0,
            self.idle_anon_kib as f64 / 1024.0,
            self.threads
        )
    }
}

/// Runs the agent `runs` times.
pub async fn run(args: &StartupArgs) -> anyhow::Result<StartupReport> {
    let limit = Duration::from_secs_f64(args.limit);
    let mut runs_us = Vec::new();
    let mut idle = None;
    for run in 0..args.runs.max(1) {
        let options = args.target.options(1)?;
        let is_ws = matches!(options.endpoint, Endpoint::WebSocket(_));
        // Over MQTT the controller must be subscribed before the agent publishes.
        let early = if is_ws {
            None
        } else {
            Some(ControllerClient::connect(options.clone()).await?)
        };
        let started = Instant::now();
        let mut agent = spawn(&args.command)?;
        let waited = async {
            let (_client, mut events) = match early {
                Some(session) => session,
                None => connect_when_listening(&options, &mut agent, started + limit).await?,
            };
            first_connect(&mut events).await
        };
        let outcome = tokio::time::timeout(limit, waited).await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(Ok(())) => runs_us.push(stats::micros(elapsed)),
            Ok(Err(err)) => {
                stop(&mut agent).await;
                return Err(err.context(format!("run {run}")));
            }
            Err(_) => {
                stop(&mut agent).await;
                bail!("run {run}: no Connect record within {limit:?}");
            }
        }
        if run + 1 == args.runs.max(1) {
            tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
            idle = agent.id().map(procfs::sample).transpose()?;
        }
        stop(&mut agent).await;
    }
    let idle = idle.context("the agent exited before its memory could be read")?;
    let mut sorted = runs_us.clone();
    sorted.sort_unstable();
    Ok(StartupReport {
        median_us: sorted[sorted.len() / 2],
        runs_us,
        idle_rss_kib: idle.rss_kib,
        idle_anon_kib: idle.anon_kib,
        threads: idle.threads,
    })
}

fn spawn(command: &[String]) -> anyhow::Result<Child> {
    let (program, args) = command.split_first().context("no agent command")?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {program}"))
}

/// Retries the WebSocket connection until the agent listens (or exits).
async fn connect_when_listening(
    options: &usp_controller::ControllerOptions,
    agent: &mut Child,
    deadline: Instant,
) -> anyhow::Result<(ControllerClient, mpsc::Receiver<AgentEvent>)> {
    loop {
        match ControllerClient::connect(options.clone()).await {
            Ok(session) => return Ok(session),
            Err(err) if Instant::now() >= deadline => return Err(err.into()),
            Err(_) => {
                if let Some(status) = agent.try_wait()? {
                    bail!("the agent exited with {status} before listening");
                }
                tokio::time::sleep(WS_RETRY).await;
            }
        }
    }
}

async fn first_connect(events: &mut mpsc::Receiver<AgentEvent>) -> anyhow::Result<()> {
    while let Some(event) = events.recv().await {
        if matches!(event, AgentEvent::Connect(_)) {
            return Ok(());
        }
    }
    bail!("the session closed before a Connect record arrived")
}

/// SIGTERM, then SIGKILL if the agent is still there after 5 s.
async fn stop(agent: &mut Child) {
    if let Some(pid) = agent
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    {
        // An agent that already exited is what we wanted anyway.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), agent.wait())
        .await
        .is_err()
    {
        drop(agent.kill().await);
    }
}
