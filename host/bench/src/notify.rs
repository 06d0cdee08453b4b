//! Notification latency and rate: a ValueChange subscription on one writable parameter, then
//! Sets of that parameter. Latency is Set sent → Notify received, one Set at a time; the rate
//! is Notifies received per second while `window` Sets are in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;
use usp_codec::usp_proto::usp::{
    self, add, body::MsgBody, notify::Notification, request::ReqType, response::RespType,
};
use usp_controller::{AgentEvent, ControllerClient};

use crate::ops::{self, Op};
use crate::stats::{self, Latency};
use crate::target::Target;

/// Options of `usp-bench notify`.
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub target: Target,
    /// The writable parameter to watch and set.
    #[arg(long)]
    pub param: String,
    /// Sets measured for latency (one at a time).
    #[arg(long, default_value_t = 200)]
    pub count: u32,
    /// Sets in flight during the rate phase.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Sets sent during the rate phase.
    #[arg(long, default_value_t = 2000)]
    pub rate_count: u32,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyReport {
    /// Set sent → ValueChange Notify received.
    pub latency: Option<Latency>,
    /// ValueChange Notifies per second with `window` Sets in flight.
    pub notifications_per_s: f64,
    /// Notifies received in the rate phase (the agent may coalesce quick changes).
    pub received: u64,
}

impl NotifyReport {
    /// One human-readable line.
    pub fn line(&self) -> String {
        let latency = self.latency.map_or("-".to_string(), |l| {
            format!(
                "p50={} p99={} max={}",
                stats::fmt_us(f64::from(l.p50_us)),
                stats::fmt_us(f64::from(l.p99_us)),
                stats::fmt_us(f64::from(l.max_us))
            )
        });
        format!(
            "Set → Notify latency {latency}; {:.0} notifications/s ({} received)",
            self.notifications_per_s, self.received
        )
    }
}

/// Subscribes, measures, and deletes the subscription.
pub async fn run(args: &NotifyArgs) -> anyhow::Result<NotifyReport> {
    let window = args.window.max(1);
    let (client, mut events) = ControllerClient::connect(args.target.options(window)?).await?;
    let client = Arc::new(client);
    let subscription = subscribe(&client, &args.param).await?;
    let outcome = measure(&client, &mut events, args, window).await;
    let deleted = client
        .request(ReqType::Delete(usp::Delete {
            allow_partial: true,
            obj_paths: vec![subscription.clone()],
        }))
        .await;
    let report = outcome?;
    deleted.with_context(|| format!("cannot delete {subscription}"))?;
    Ok(report)
}

async fn measure(
    client: &Arc<ControllerClient>,
    events: &mut mpsc::Receiver<AgentEvent>,
    args: &NotifyArgs,
    window: usize,
) -> anyhow::Result<NotifyReport> {
    let limit = Duration::from_secs(10);
    let mut samples = Vec::new();
    for i in 0..args.count {
        let value = format!("usp-bench-l{i}");
        let sent = Instant::now();
        set(client, &args.param, &value).await?;
        tokio::time::timeout(limit, wait_for(events, &args.param, &value))
            .await
            .with_context(|| {
                format!(
                    "no ValueChange for {} = {value} within {limit:?}",
                    args.param
                )
            })??;
        samples.push(stats::micros(sent.elapsed()));
    }
    let started = Instant::now();
    let mut sets = tokio::task::JoinSet::new();
    let per_worker = args.rate_count.div_ceil(window as u32);
    for w in 0..window {
        let (client, param) = (client.clone(), args.param.clone());
        sets.spawn(async move {
            for i in 0..per_worker {
                set(&client, &param, &format!("usp-bench-r{w}-{i}")).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    // Notifys are read while the Sets go out: the client's event queue is bounded, and what
    // it cannot hold is lost to the count.
    let mut received = 0u64;
    let mut last = started;
    let quiet = Duration::from_millis(500);
    loop {
        tokio::select! {
            Some(done) = sets.join_next() => done.context("a Set worker panicked")??,
            event = tokio::time::timeout(quiet, events.recv()) => match event {
                Ok(Some(event)) => {
                    if is_change_of(&event, &args.param).is_some() {
                        received += 1;
                        last = Instant::now();
                    }
                }
                Ok(None) => break,
                Err(_) if sets.is_empty() => break,
                Err(_) => {}
            },
        }
    }
    Ok(NotifyReport {
        latency: Latency::of(&mut samples),
        notifications_per_s: received as f64 / (last - started).as_secs_f64().max(1e-9),
        received,
    })
}

/// Adds an enabled ValueChange subscription on `param` and returns its instance path.
async fn subscribe(client: &ControllerClient, param: &str) -> anyhow::Result<String> {
    let setting = |param: &str, value: &str| add::CreateParamSetting {
        param: param.to_string(),
        value: value.to_string(),
        required: true,
    };
    let answer = client
        .request(ReqType::Add(usp::Add {
            allow_partial: false,
            create_objs: vec![add::CreateObject {
                obj_path: "Device.LocalAgent.Subscription.".to_string(),
                param_settings: vec![
                    setting("ID", &format!("usp-bench-{}", std::process::id())),
                    setting("NotifType", "ValueChange"),
                    setting("ReferenceList", param),
                    setting("Enable", "true"),
                ],
            }],
        }))
        .await?;
    use usp::add_resp::created_object_result::operation_status::OperStatus;
    if let Some(MsgBody::Response(usp::Response {
        resp_type: Some(RespType::AddResp(resp)),
    })) = answer.body.as_ref().and_then(|b| b.msg_body.as_ref())
        && let Some(OperStatus::OperSuccess(ok)) = resp
            .created_obj_results
            .first()
            .and_then(|r| r.oper_status.as_ref())
            .and_then(|s| s.oper_status.as_ref())
    {
        return Ok(ok.instantiated_path.clone());
    }
    bail!(
        "cannot create the subscription: {}",
        ops::describe_failure(&answer)
    )
}

async fn set(client: &ControllerClient, param: &str, value: &str) -> anyhow::Result<()> {
    let op = Op::parse(&format!("set:{param}={value}"))?;
    let answer = client.request(op.request()).await?;
    if !ops::succeeded(&answer) {
        bail!("Set {param} failed: {}", ops::describe_failure(&answer));
    }
    Ok(())
}

async fn wait_for(
    events: &mut mpsc::Receiver<AgentEvent>,
    param: &str,
    value: &str,
) -> anyhow::Result<()> {
    while let Some(event) = events.recv().await {
        if is_change_of(&event, param) == Some(value) {
            return Ok(());
        }
    }
    bail!("the session closed")
}

/// The new value when `event` is a ValueChange of `param`.
fn is_change_of<'a>(event: &'a AgentEvent, param: &str) -> Option<&'a str> {
    match event {
        AgentEvent::Notify(usp::Notify {
            notification: Some(Notification::ValueChange(change)),
            ..
        }) if change.param_path == param => Some(change.param_value.as_str()),
        _ => None,
    }
}
