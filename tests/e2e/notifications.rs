//! Subscriptions and notifications end to end over the real WebSocket MTP (TP-469 1.54, 1.57):
//! Notify content, promptness (within 1 s of the change), and the NotifRetry schedule
//! (1st retry 5–10 s after the Notify, 2nd 10–20 s after the 1st) when the Controller does not
//! answer.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use usp_codec::Record;
use usp_codec::msg;
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::notify::Notification;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_codec::usp_proto::usp::response::RespType;
use usp_codec::usp_proto::usp::{self, add, set};
use usp_controller::{AgentEvent, ControllerClient, ControllerOptions, Endpoint, WsEndpoint};

use crate::access_control::{add as add_instance, set as set_params};
use crate::mtp::harness::{AGENT_ID, Agent, CONTROLLER, Setup, bounded};
use crate::mtp::peer::{Link, UdsLink, WsLink, recv_msg};

/// The longest a Notify may take after the change that triggers it.
const PROMPT: Duration = Duration::from_secs(1);

/// A controller session whose Notifys the test reads (the client answers NotifyResps itself).
pub async fn client_with_events(
    agent: &Agent,
) -> anyhow::Result<(ControllerClient, tokio::sync::mpsc::Receiver<AgentEvent>)> {
    let endpoint = Endpoint::WebSocket(WsEndpoint {
        url: agent.ws_url(),
    });
    Ok(ControllerClient::connect(ControllerOptions::new(CONTROLLER, AGENT_ID, endpoint)).await?)
}

/// The next Notify among the agent's events, within `limit`.
pub async fn next_notify(
    events: &mut tokio::sync::mpsc::Receiver<AgentEvent>,
    limit: Duration,
) -> anyhow::Result<usp::Notify> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(AgentEvent::Notify(notify))) => return Ok(notify),
            Ok(Some(_)) => continue,
            Ok(None) => bail!("the session closed"),
            Err(_) => bail!("no Notify within {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tp_1_57_object_creation_notify_names_the_new_subscription() -> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let (client, mut events) = client_with_events(&agent).await?;
        add_instance(
            &client,
            "Device.LocalAgent.Subscription.",
            &[
                ("Enable", "true"),
                ("ID", "tp-1-57"),
                ("NotifType", "ObjectCreation"),
                ("ReferenceList", "Device.LocalAgent.Subscription."),
            ],
        )
        .await?;
        let added = Instant::now();
        let created = add_instance(
            &client,
            "Device.LocalAgent.Subscription.",
            &[
                ("ID", "tp-1-57-other"),
                ("NotifType", "ValueChange"),
                ("ReferenceList", "Device.LocalAgent.SoftwareVersion"),
            ],
        )
        .await?;
        let notify = next_notify(&mut events, PROMPT + Duration::from_secs(2)).await?;
        let latency = added.elapsed();
        assert_eq!(notify.subscription_id, "tp-1-57");
        let Some(Notification::ObjCreation(creation)) = notify.notification else {
            bail!("expected ObjectCreation, got {notify:?}");
        };
        assert_eq!(creation.obj_path, created);
        assert_eq!(
            creation.unique_keys.get("ID").map(String::as_str),
            Some("tp-1-57-other")
        );
        assert!(
            creation
                .unique_keys
                .get("Recipient")
                .is_some_and(|recipient| recipient.starts_with("Device.LocalAgent.Controller.")),
            "{:?}",
            creation.unique_keys
        );
        assert!(latency < PROMPT, "Notify took {latency:?}");
        Ok(())
    })
    .await
}

/// Sends one request Msg over the raw link and returns the answer with its msg_id, skipping
/// Notifys (returned separately, with their arrival time).
pub async fn exchange(
    link: &mut WsLink,
    msg_id: &str,
    request: ReqType,
    notifys: &mut Vec<(Instant, String, usp::Notify)>,
) -> anyhow::Result<usp::Msg> {
    let request = msg::request(msg_id, request);
    link.send(Record::for_msg(CONTROLLER, AGENT_ID, &request).encode())
        .await?;
    loop {
        let (_, answer) = recv_msg(link).await?;
        let id = msg::msg_id(&answer).unwrap_or_default().to_string();
        match answer.body.clone().and_then(|body| body.msg_body) {
            Some(MsgBody::Request(usp::Request {
                req_type: Some(ReqType::Notify(notify)),
            })) => notifys.push((Instant::now(), id, notify)),
            _ if id == msg_id => return Ok(answer),
            _ => bail!("unexpected Msg {answer:?}"),
        }
    }
}

/// The next Notify on the raw link within `limit`, with its arrival time and msg_id. Other
/// Msgs are skipped.
pub async fn wait_notify(
    link: &mut impl Link,
    limit: Duration,
) -> anyhow::Result<(Instant, String, usp::Notify)> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let Ok(received) = tokio::time::timeout_at(deadline, recv_msg(link)).await else {
            bail!("no Notify within {limit:?}");
        };
        let msg = match received {
            Ok((_, msg)) => msg,
            // The link's own receive timeout is shorter than some waits: keep waiting.
            Err(error)
                if error
                    .downcast_ref::<tokio::time::error::Elapsed>()
                    .is_some() =>
            {
                continue;
            }
            Err(error) => return Err(error),
        };
        if let Some(MsgBody::Request(usp::Request {
            req_type: Some(ReqType::Notify(notify)),
        })) = msg.body.clone().and_then(|body| body.msg_body)
        {
            let id = msg::msg_id(&msg).unwrap_or_default().to_string();
            return Ok((Instant::now(), id, notify));
        }
    }
}

/// Answers the Notify `msg_id` with a NotifyResp.
pub async fn notify_resp(
    link: &mut WsLink,
    msg_id: &str,
    subscription_id: &str,
) -> anyhow::Result<()> {
    let resp = msg::response(
        msg_id,
        RespType::NotifyResp(usp::NotifyResp {
            subscription_id: subscription_id.to_string(),
        }),
    );
    link.send(Record::for_msg(CONTROLLER, AGENT_ID, &resp).encode())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tp_1_54_unanswered_notify_is_retried_in_the_spec_windows() -> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        let mut notifys = Vec::new();
        let param = |name: &str, value: &str| add::CreateParamSetting {
            param: name.to_string(),
            value: value.to_string(),
            required: true,
        };
        exchange(
            &mut link,
            "add-1",
            ReqType::Add(usp::Add {
                allow_partial: false,
                create_objs: vec![add::CreateObject {
                    obj_path: "Device.LocalAgent.Subscription.".to_string(),
                    param_settings: vec![
                        param("Enable", "true"),
                        param("ID", "tp-1-54"),
                        param("NotifType", "ValueChange"),
                        param("NotifRetry", "true"),
                        param(
                            "ReferenceList",
                            "Device.LocalAgent.Controller.*.ProvisioningCode",
                        ),
                    ],
                }],
            }),
            &mut notifys,
        )
        .await?;
        let changed = Instant::now();
        exchange(
            &mut link,
            "set-1",
            ReqType::Set(usp::Set {
                allow_partial: false,
                update_objs: vec![set::UpdateObject {
                    obj_path: "Device.LocalAgent.Controller.1.".to_string(),
                    param_settings: vec![set::UpdateParamSetting {
                        param: "ProvisioningCode".to_string(),
                        value: "tp-1-54".to_string(),
                        required: true,
                    }],
                }],
            }),
            &mut notifys,
        )
        .await?;
        let (first_at, first_id, notify) = match notifys.pop() {
            Some(first) => first,
            None => wait_notify(&mut link, PROMPT + Duration::from_secs(2)).await?,
        };
        assert!(notify.send_resp, "NotifRetry means send_resp");
        assert!(
            first_at - changed < PROMPT,
            "Notify took {:?}",
            first_at - changed
        );

        let (retry_1, id_1, _) = wait_notify(&mut link, Duration::from_secs(11)).await?;
        let (retry_2, id_2, _) = wait_notify(&mut link, Duration::from_secs(21)).await?;
        assert_eq!(
            (id_1.as_str(), id_2.as_str()),
            (first_id.as_str(), first_id.as_str())
        );
        let tolerance = Duration::from_millis(500);
        let gap_1 = retry_1 - first_at;
        let gap_2 = retry_2 - retry_1;
        assert!(
            gap_1 + tolerance >= Duration::from_secs(5)
                && gap_1 <= Duration::from_secs(10) + tolerance,
            "1st retry after {gap_1:?}"
        );
        assert!(
            gap_2 + tolerance >= Duration::from_secs(10)
                && gap_2 <= Duration::from_secs(20) + tolerance,
            "2nd retry after {gap_2:?}"
        );

        // A NotifyResp ends the retries; the link stays usable.
        notify_resp(&mut link, &first_id, "tp-1-54").await?;
        let mut later = Vec::new();
        let answer = exchange(
            &mut link,
            "get-1",
            ReqType::Get(usp::Get {
                param_paths: vec!["Device.LocalAgent.EndpointID".to_string()],
                max_depth: 0,
            }),
            &mut later,
        )
        .await
        .context("the agent stopped answering")?;
        assert!(matches!(
            answer.body.and_then(|body| body.msg_body),
            Some(MsgBody::Response(_))
        ));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifys_take_the_controllers_mtp_rows_in_order_before_its_last_session()
-> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let (client, mut events) = client_with_events(&agent).await?;
        let mut uds = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        uds.recv().await?;
        let row = add_instance(
            &client,
            "Device.LocalAgent.Controller.1.MTP.",
            &[("Enable", "true"), ("Protocol", "UDS"), ("Order", "1")],
        )
        .await?;
        add_instance(
            &client,
            "Device.LocalAgent.Subscription.",
            &[
                ("Enable", "true"),
                ("ID", "routed"),
                ("NotifType", "ValueChange"),
                (
                    "ReferenceList",
                    "Device.LocalAgent.Controller.1.ProvisioningCode",
                ),
            ],
        )
        .await?;
        // The Controller's requests come over WebSocket, but its MTP.1 row says UDS.
        set_params(
            &client,
            "Device.LocalAgent.Controller.1.",
            &[("ProvisioningCode", "over-uds")],
        )
        .await?;
        let (_, _, notify) = wait_notify(&mut uds, PROMPT + Duration::from_secs(2)).await?;
        assert_eq!(notify.subscription_id, "routed");
        let Some(Notification::ValueChange(change)) = notify.notification else {
            bail!("not a ValueChange: {notify:?}");
        };
        assert_eq!(change.param_value, "over-uds");

        // With the UDS row disabled, the session the requests came on is the way.
        set_params(&client, &row, &[("Enable", "false")]).await?;
        set_params(
            &client,
            "Device.LocalAgent.Controller.1.",
            &[("ProvisioningCode", "over-ws")],
        )
        .await?;
        let notify = next_notify(&mut events, PROMPT + Duration::from_secs(2)).await?;
        let Some(Notification::ValueChange(change)) = notify.notification else {
            bail!("not a ValueChange: {notify:?}");
        };
        assert_eq!(
            change.param_value, "over-ws",
            "the first Notify went over UDS only"
        );
        Ok(())
    })
    .await
}
