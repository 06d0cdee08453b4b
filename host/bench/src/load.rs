//! The load run: `window` closed-loop workers share one session and send the ops in turn until
//! N requests or a duration; latencies of every answer, the agent's CPU time over the measured
//! part (warm-up excluded) and its memory at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use prost::Message as _;
use serde::Serialize;
use usp_controller::ControllerClient;

use crate::ops::{self, Op};
use crate::procfs;
use crate::stats::{self, Latency};
use crate::target::Target;

/// Options of `usp-bench load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Target,
    /// A request to send (see the ops table in the README); repeat to build a mix.
    #[arg(long = "op", required = true)]
    pub ops: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Measured requests (default 2000 unless --duration is given).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Measure for this many seconds instead of a request count.
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<f64>,
    /// Unmeasured requests sent first (connection set-up, caches, allocator).
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// The agent's PID, to report its CPU time per request and its memory.
    #[arg(long)]
    pub agent_pid: Option<u32>,
}

/// The agent's resource use over a run.
#[derive(Debug, Clone, Serialize)]
pub struct AgentUse {
    /// Agent CPU time (user + system) per measured request.
    pub cpu_per_request_us: f64,
    /// VmRSS at the end of the run.
    pub rss_kib: u64,
    /// VmHWM (peak RSS) at the end of the run.
    pub peak_rss_kib: u64,
    /// Threads at the end of the run.
    pub threads: u64,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// `mqtt` or `ws`.
    pub mtp: String,
    /// The op specs.
    pub ops: Vec<String>,
    /// Requests in flight.
    pub window: usize,
    /// Measured requests answered.
    pub requests: u64,
    /// Of those, answers that were an Error or reported a failure.
    pub failures: u64,
    /// The first failure, verbatim.
    pub first_failure: Option<String>,
    /// Wall time of the measured part.
    pub elapsed_s: f64,
    /// Answers per second.
    pub requests_per_s: f64,
    /// Request → answer latency.
    pub latency: Option<Latency>,
    /// Size of the first answer's encoded Msg.
    pub answer_bytes: usize,
    /// The agent's share, when its PID was given.
    pub agent: Option<AgentUse>,
}

impl LoadReport {
    /// One human-readable line.
    pub fn line(&self) -> String {
        let mut out = format!(
            "{} {} window={} requests={} failures={} {:.2}s {:.0} req/s",
            self.mtp,
            self.ops.join(" "),
            self.window,
            self.requests,
            self.failures,
            self.elapsed_s,
            self.requests_per_s
        );
        if let Some(l) = &self.latency {
            out += &format!(
                " p50={} p99={} max={}",
                stats::fmt_us(f64::from(l.p50_us)),
                stats::fmt_us(f64::from(l.p99_us)),
                stats::fmt_us(f64::from(l.max_us))
            );
        }
        out += &format!(" answer={}B", self.answer_bytes);
        if let Some(a) = &self.agent {
            out += &format!(
                " agent_cpu/req={} agent_rss={:.1}MB peak={:.1}MB threads={}",
                stats::fmt_us(a.cpu_per_request_us),
                a.rss_kib as f64 / 1024.0,
                a.peak_rss_kib as f64 / 1024.0,
                a.threads
            );
        }
        if let Some(f) = &self.first_failure {
            out += &format!("\n  first failure: {f}");
        }
        out
    }
}

/// When a phase stops.
#[derive(Debug, Clone, Copy)]
enum Stop {
    After(u64),
    At(Instant),
}

/// What the workers of one phase collected.
#[derive(Default)]
struct Collected {
    samples: Vec<u32>,
    failures: u64,
    first_failure: Option<String>,
    answer_bytes: usize,
}

/// Runs the warm-up and the measured phase.
pub async fn run(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let ops: Vec<Op> = args
        .ops
        .iter()
        .map(|s| Op::parse(s))
        .collect::<anyhow::Result<_>>()?;
    let window = args.window.max(1);
    let (client, _events) = ControllerClient::connect(args.target.options(window)?)
        .await
        .context("cannot open the session to the agent")?;
    let client = Arc::new(client);
    let ops = Arc::new(ops);
    if args.warmup > 0 {
        let warm = phase(&client, &ops, window, Stop::After(args.warmup)).await?;
        if warm.samples.is_empty() {
            bail!("no answer during warm-up");
        }
    }
    let before = args.agent_pid.map(procfs::sample).transpose()?;
    let started = Instant::now();
    let stop = match (args.duration, args.requests) {
        (Some(secs), _) => Stop::At(started + Duration::from_secs_f64(secs)),
        (None, n) => Stop::After(n.unwrap_or(2000)),
    };
    let mut got = phase(&client, &ops, window, stop).await?;
    let elapsed = started.elapsed();
    let after = args.agent_pid.map(procfs::sample).transpose()?;
    let requests = got.samples.len() as u64;
    let agent = match (before, after) {
        (Some(b), Some(a)) if requests > 0 => Some(AgentUse {
            cpu_per_request_us: (a.cpu_ns - b.cpu_ns) as f64 / 1000.0 / requests as f64,
            rss_kib: a.rss_kib,
            peak_rss_kib: a.hwm_kib,
            threads: a.threads,
        }),
        _ => None,
    };
    Ok(LoadReport {
        mtp: args.target.mtp_name().to_string(),
        ops: args.ops.clone(),
        window,
        requests,
        failures: got.failures,
        first_failure: got.first_failure.take(),
        elapsed_s: elapsed.as_secs_f64(),
        requests_per_s: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: Latency::of(&mut got.samples),
        answer_bytes: got.answer_bytes,
        agent,
    })
}

/// `window` workers sending until `stop`; a transport failure ends the phase with an error.
async fn phase(
    client: &Arc<ControllerClient>,
    ops: &Arc<Vec<Op>>,
    window: usize,
    stop: Stop,
) -> anyhow::Result<Collected> {
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..window {
        let (client, ops, issued) = (client.clone(), ops.clone(), issued.clone());
        workers.spawn(async move {
            let mut got = Collected::default();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                let done = match stop {
                    Stop::After(total) => n >= total,
                    Stop::At(deadline) => Instant::now() >= deadline,
                };
                if done {
                    return Ok::<_, anyhow::Error>(got);
                }
                let op = &ops[(n % ops.len() as u64) as usize];
                let sent = Instant::now();
                let answer = client
                    .request(op.request())
                    .await
                    .with_context(|| format!("request {n} ({})", op.spec))?;
                got.samples.push(stats::micros(sent.elapsed()));
                if got.answer_bytes == 0 {
                    got.answer_bytes = answer.encoded_len();
                }
                if !ops::succeeded(&answer) {
                    got.failures += 1;
                    if got.first_failure.is_none() {
                        got.first_failure =
                            Some(format!("{}: {}", op.spec, ops::describe_failure(&answer)));
                    }
                }
            }
        });
    }
    let mut all = Collected::default();
    while let Some(joined) = workers.join_next().await {
        let got = joined.context("a worker panicked")??;
        all.samples.extend(got.samples);
        all.failures += got.failures;
        all.first_failure = all.first_failure.or(got.first_failure);
        if all.answer_bytes == 0 {
            all.answer_bytes = got.answer_bytes;
        }
    }
    Ok(all)
}
