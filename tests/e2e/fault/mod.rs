//! Fault injection against the real agent binary: a broker killed and restarted mid-run, the
//! agent killed with SIGKILL at random points of a Set/Add/Delete loop and restarted many times,
//! a controller that never reads its answers, and a flood of requests larger than the agent can
//! serve. Each test is bounded in time; together they stay well under two minutes.
//!
//! Layout:
//! - `harness`: mosquitto, the agent process and its configuration.
//! - `durability`: the kill -9 loop and its model of acknowledged changes.
//! - `raw_ws`: a WebSocket client written by hand that sends and never reads.

mod durability;
mod harness;
mod raw_ws;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use usp_codec::msg;
use usp_codec::usp_proto::usp::{self, body::MsgBody, request::ReqType, response::RespType};
use usp_controller::{AgentEvent, ControllerClient};

use harness::Agent;
use usp_testkit::Mosquitto;

/// Runs `body` with a time limit, so a hang fails the test instead of the CI job.
async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(
    limit: Duration,
    body: F,
) -> anyhow::Result<()> {
    tokio::time::timeout(limit, body)
        .await
        .with_context(|| format!("the test did not finish within {limit:?}"))?
}

fn get(path: &str) -> ReqType {
    ReqType::Get(usp::Get {
        param_paths: vec![path.to_string()],
        max_depth: 0,
    })
}

fn is_get_resp(answer: &usp::Msg) -> bool {
    matches!(
        answer.body.as_ref().and_then(|b| b.msg_body.as_ref()),
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(RespType::GetResp(_))
        }))
    )
}

/// Retries a Get until the agent answers (its MTP may still be subscribing), up to `limit`.
async fn get_until_answered(client: &ControllerClient, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match client.request(get("Device.LocalAgent.EndpointID")).await {
            Ok(answer) if is_get_resp(&answer) => return Ok(()),
            Ok(answer) => bail!("unexpected answer {answer:?}"),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(err).context("the agent never answered");
            }
            Err(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_run_agent_reconnects_and_serves_again()
-> anyhow::Result<()> {
    bounded(Duration::from_secs(40), async {
        let dir = tempfile::tempdir()?;
        let mut broker = Mosquitto::start().await?;
        let mut agent = Agent::configure(dir.path(), Some(broker.port))?;
        agent.start().await?;
        let (client, mut events) = ControllerClient::connect(harness::mqtt_options(
            broker.port,
            0,
            Duration::from_secs(1),
        ))
        .await?;
        get_until_answered(&client, Duration::from_secs(15)).await?;

        broker.kill().await?;
        assert!(
            client
                .request(get("Device.LocalAgent.EndpointID"))
                .await
                .is_err(),
            "a request answered with the broker down"
        );
        while events.try_recv().is_ok() {}
        broker.launch().await?;
        // R-MTP.6/8: the agent re-sends its MQTTConnect record after reconnecting.
        let connect = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(event) = events.recv().await {
                if matches!(event, AgentEvent::Connect(_)) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            connect,
            Ok(true),
            "no MQTTConnect record after the broker came back"
        );
        get_until_answered(&client, Duration::from_secs(10)).await?;
        assert!(!agent.exited(), "the agent died with the broker");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_at_random_points_keeps_every_acknowledged_change() -> anyhow::Result<()> {
    bounded(Duration::from_secs(60), durability::kill_loop(25)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_that_never_reads_does_not_stall_others_or_grow_memory() -> anyhow::Result<()> {
    bounded(Duration::from_secs(40), async {
        let dir = tempfile::tempdir()?;
        let mut agent = Agent::configure(dir.path(), None)?;
        agent.start().await?;
        let pid = agent.pid().context("agent has no pid")?;
        let (reader, _events) = agent.ws_client(1, 1, Duration::from_secs(5)).await?;
        get_until_answered(&reader, Duration::from_secs(5)).await?;
        let (baseline, _) = harness::rss_kib(pid)?;

        // Whole-tree Gets from a controller that never reads: its answers pile up until the
        // agent stops taking its requests or drops its answers.
        let mut slow = raw_ws::RawSession::open(agent.ws_port, harness::CONTROLLERS[0]).await?;
        let record = usp_codec::Record::for_msg(
            harness::CONTROLLERS[0],
            harness::AGENT_ID,
            &msg::request("slow", get("Device.")),
        );
        let sent = slow.send_for(&record.encode(), Duration::from_secs(5)).await;

        // Meanwhile the other controller is served promptly.
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let answer = reader.request(get("Device.DeviceInfo.")).await?;
            assert!(is_get_resp(&answer));
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "a Get took {:?} while another controller stalled",
                started.elapsed()
            );
        }
        let (rss, peak) = harness::rss_kib(pid)?;
        eprintln!(
            "slow controller: {sent} requests written; agent RSS {baseline} → {rss} KiB (peak {peak} KiB)"
        );
        assert!(
            peak < baseline + 64 * 1024,
            "agent peak RSS grew from {baseline} to {peak} KiB behind a controller that never reads"
        );
        assert!(!agent.exited());
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_beyond_capacity_keeps_memory_bounded_and_agent_serving() -> anyhow::Result<()> {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir()?;
        let mut agent = Agent::configure(dir.path(), None)?;
        agent.start().await?;
        let pid = agent.pid().context("agent has no pid")?;
        let (client, _events) = agent.ws_client(0, 4096, Duration::from_secs(20)).await?;
        get_until_answered(&client, Duration::from_secs(5)).await?;
        let (baseline, _) = harness::rss_kib(pid)?;
        let client = Arc::new(client);
        let mut flood = tokio::task::JoinSet::new();
        for _ in 0..20_000 {
            let client = client.clone();
            flood.spawn(async move { client.request(get("Device.")).await.is_ok() });
        }
        let mut answered = 0;
        while let Some(done) = flood.join_next().await {
            answered += usize::from(matches!(done, Ok(true)));
        }
        let (rss, peak) = harness::rss_kib(pid)?;
        eprintln!(
            "flood: {answered} of 20000 answered; agent RSS {baseline} → {rss} KiB (peak {peak} KiB)"
        );
        assert!(answered > 0, "the agent answered nothing");
        assert!(
            peak < baseline + 128 * 1024,
            "agent peak RSS grew from {baseline} to {peak} KiB under a flood"
        );
        let (fresh, _events) = agent.ws_client(1, 1, Duration::from_secs(5)).await?;
        get_until_answered(&fresh, Duration::from_secs(10)).await?;
        assert!(!agent.exited());
        Ok(())
    })
    .await
}
