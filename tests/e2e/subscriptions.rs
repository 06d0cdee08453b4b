//! Subscriptions end to end over the real WebSocket MTP: `Periodic!` comes every
//! `PeriodicNotifInterval`, `Persistent` subscriptions survive an agent restart and the others
//! do not, an unanswered Notify of a persistent subscription is resent after a restart,
//! deleting an instance sends an ObjectDeletion for each nested instance, and `TriggerAction`
//! Config applies `TriggerConfigSettings` (TP-469 1.93/1.94).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::notify::Notification;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_codec::usp_proto::usp::response::RespType;
use usp_controller::ControllerClient;

use crate::access_control::{add, set};
use crate::mtp::harness::{Agent, CONTROLLER, Setup, bounded};
use crate::mtp::peer::WsLink;
use crate::notifications::{client_with_events, exchange, next_notify, notify_resp, wait_notify};

const CONTROLLER_ROW: &str = "Device.LocalAgent.Controller.1.";
const SUBSCRIPTIONS: &str = "Device.LocalAgent.Subscription.";

/// The longest a Notify may take after the change that triggers it (with slack for a loaded
/// machine; promptness itself is asserted in `notifications`).
const PROMPT: Duration = Duration::from_secs(3);

/// Checks a Set answer is a SetResp.
pub(crate) fn set_ok(answer: usp::Msg) -> anyhow::Result<()> {
    match answer.body.and_then(|body| body.msg_body) {
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(RespType::SetResp(_)),
        })) => Ok(()),
        other => bail!("the Set failed: {other:?}"),
    }
}

/// The values of parameter `name` of every object a Get of `path` returns.
pub(crate) async fn get_values(
    client: &ControllerClient,
    path: &str,
    name: &str,
) -> anyhow::Result<Vec<String>> {
    let answer = client
        .request(ReqType::Get(usp::Get {
            param_paths: vec![path.to_string()],
            max_depth: 0,
        }))
        .await?;
    let Some(MsgBody::Response(usp::Response {
        resp_type: Some(RespType::GetResp(resp)),
    })) = answer.body.and_then(|body| body.msg_body)
    else {
        bail!("Get {path}: no GetResp");
    };
    let result = resp
        .req_path_results
        .into_iter()
        .next()
        .context("GetResp without a result")?;
    if result.err_code != 0 {
        bail!("Get {path} failed: {} {}", result.err_code, result.err_msg);
    }
    Ok(result
        .resolved_path_results
        .into_iter()
        .filter_map(|resolved| resolved.result_params.get(name).cloned())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_event_comes_every_periodic_notif_interval() -> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let (client, mut events) = client_with_events(&agent).await?;
        set_ok(set(&client, CONTROLLER_ROW, &[("PeriodicNotifInterval", "2")]).await?)?;
        add(
            &client,
            SUBSCRIPTIONS,
            &[
                ("Enable", "true"),
                ("ID", "periodic"),
                ("NotifType", "Event"),
                ("ReferenceList", "Device.LocalAgent.Periodic!"),
            ],
        )
        .await?;
        let mut arrivals = Vec::new();
        for _ in 0..2 {
            let notify = next_notify(&mut events, Duration::from_secs(4)).await?;
            arrivals.push(Instant::now());
            assert_eq!(notify.subscription_id, "periodic");
            let Some(Notification::Event(event)) = notify.notification else {
                bail!("expected an Event, got {notify:?}");
            };
            assert_eq!(
                (event.obj_path.as_str(), event.event_name.as_str()),
                ("Device.LocalAgent.", "Periodic!")
            );
        }
        let gap = arrivals[1] - arrivals[0];
        assert!(
            gap >= Duration::from_millis(1500) && gap <= Duration::from_secs(3),
            "Periodic! events {gap:?} apart"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_subscriptions_survive_a_restart_and_the_others_do_not() -> anyhow::Result<()> {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let (client, _events) = client_with_events(&agent).await?;
        for (id, persistent) in [("kept", "true"), ("dropped", "false")] {
            add(
                &client,
                SUBSCRIPTIONS,
                &[
                    ("Enable", "true"),
                    ("ID", id),
                    ("Persistent", persistent),
                    ("NotifType", "ValueChange"),
                    (
                        "ReferenceList",
                        "Device.LocalAgent.Controller.1.ProvisioningCode",
                    ),
                ],
            )
            .await?;
        }
        drop(client);
        agent.restart().await?;

        let (client, mut events) = client_with_events(&agent).await?;
        let ids = get_values(&client, SUBSCRIPTIONS, "ID").await?;
        assert_eq!(ids, ["kept"], "subscriptions after the restart");
        set_ok(
            set(
                &client,
                CONTROLLER_ROW,
                &[("ProvisioningCode", "after-restart")],
            )
            .await?,
        )?;
        let notify = next_notify(&mut events, PROMPT).await?;
        assert_eq!(notify.subscription_id, "kept");
        let Some(Notification::ValueChange(change)) = notify.notification else {
            bail!("expected a ValueChange, got {notify:?}");
        };
        assert_eq!(change.param_value, "after-restart");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_parent_sends_object_deletion_for_each_nested_instance() -> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let (client, mut events) = client_with_events(&agent).await?;
        let role = add(
            &client,
            "Device.LocalAgent.ControllerTrust.Role.",
            &[("Enable", "true"), ("Name", "e2e-nested")],
        )
        .await?;
        let mut nested = BTreeSet::new();
        for order in ["1", "2"] {
            let permission = add(
                &client,
                &format!("{role}Permission."),
                &[("Order", order), ("Targets", "Device.DeviceInfo.")],
            )
            .await?;
            nested.insert(permission);
        }
        add(
            &client,
            SUBSCRIPTIONS,
            &[
                ("Enable", "true"),
                ("ID", "nested-deletion"),
                ("NotifType", "ObjectDeletion"),
                (
                    "ReferenceList",
                    "Device.LocalAgent.ControllerTrust.Role.*.Permission.",
                ),
            ],
        )
        .await?;
        let answer = client
            .request(ReqType::Delete(usp::Delete {
                allow_partial: false,
                obj_paths: vec![role.clone()],
            }))
            .await?;
        if !matches!(
            answer.body.and_then(|body| body.msg_body),
            Some(MsgBody::Response(usp::Response {
                resp_type: Some(RespType::DeleteResp(_))
            }))
        ) {
            bail!("Delete {role} failed");
        }
        let mut deleted = BTreeSet::new();
        for _ in 0..nested.len() {
            let notify = next_notify(&mut events, PROMPT).await?;
            assert_eq!(notify.subscription_id, "nested-deletion");
            let Some(Notification::ObjDeletion(deletion)) = notify.notification else {
                bail!("expected an ObjectDeletion, got {notify:?}");
            };
            deleted.insert(deletion.obj_path);
        }
        assert_eq!(deleted, nested);
        Ok(())
    })
    .await
}

/// A Set of one parameter (allow_partial=false), as a request.
fn set_request(object: &str, param: &str, value: &str) -> ReqType {
    ReqType::Set(usp::Set {
        allow_partial: false,
        update_objs: vec![usp::set::UpdateObject {
            obj_path: object.to_string(),
            param_settings: vec![usp::set::UpdateParamSetting {
                param: param.to_string(),
                value: value.to_string(),
                required: true,
            }],
        }],
    })
}

/// An Add of one subscription, as a request.
fn subscribe_request(params: &[(&str, &str)]) -> ReqType {
    ReqType::Add(usp::Add {
        allow_partial: false,
        create_objs: vec![usp::add::CreateObject {
            obj_path: SUBSCRIPTIONS.to_string(),
            param_settings: params
                .iter()
                .map(|(param, value)| usp::add::CreateParamSetting {
                    param: param.to_string(),
                    value: value.to_string(),
                    required: true,
                })
                .collect(),
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_notify_of_a_persistent_subscription_is_resent_after_a_restart()
-> anyhow::Result<()> {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        let mut notifys = Vec::new();
        let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
        for (id, persistent) in [("durable", "true"), ("volatile", "false")] {
            exchange(
                &mut link,
                &format!("add-{id}"),
                subscribe_request(&[
                    ("Enable", "true"),
                    ("ID", id),
                    ("Persistent", persistent),
                    ("NotifRetry", "true"),
                    ("NotifType", "ValueChange"),
                    ("ReferenceList", reference),
                ]),
                &mut notifys,
            )
            .await?;
        }
        exchange(
            &mut link,
            "set-1",
            set_request(CONTROLLER_ROW, "ProvisioningCode", "unanswered"),
            &mut notifys,
        )
        .await?;
        while notifys.len() < 2 {
            notifys.push(wait_notify(&mut link, PROMPT).await?);
        }
        let (_, durable_id, first) = notifys
            .iter()
            .find(|(_, _, notify)| notify.subscription_id == "durable")
            .cloned()
            .context("no Notify for the persistent subscription")?;
        assert!(first.send_resp);

        // Neither is answered; the agent dies and comes back.
        drop(link);
        agent.restart().await?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        let reconnected = Instant::now();
        let mut after = Vec::new();
        exchange(
            &mut link,
            "get-1",
            ReqType::Get(usp::Get {
                param_paths: vec!["Device.LocalAgent.EndpointID".to_string()],
                max_depth: 0,
            }),
            &mut after,
        )
        .await?;
        assert!(after.len() <= 1, "more than one Notify: {after:?}");
        let (at, id, notify) = match after.pop() {
            Some(resent) => resent,
            None => wait_notify(&mut link, PROMPT).await?,
        };
        assert_eq!(
            (id.as_str(), notify.subscription_id.as_str()),
            (durable_id.as_str(), "durable"),
            "the persistent subscription's Notify, with its msg_id, and nothing else"
        );
        assert_eq!(notify, first);
        assert!(
            at - reconnected < PROMPT,
            "resent {:?} after the Controller reconnected",
            at - reconnected
        );
        // Anything else restored would have been sent in the same batch, before the answer
        // to a later request on this session.
        let mut later = Vec::new();
        exchange(
            &mut link,
            "get-2",
            ReqType::Get(usp::Get {
                param_paths: vec!["Device.LocalAgent.EndpointID".to_string()],
                max_depth: 0,
            }),
            &mut later,
        )
        .await?;
        assert!(later.is_empty(), "unexpected Notifys: {later:?}");
        notify_resp(&mut link, &id, "durable").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tp_1_93_trigger_action_config_applies_its_settings_and_sends_no_notify()
-> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let (client, mut events) = client_with_events(&agent).await?;
        let watched = "Device.LocalAgent.Controller.1.ProvisioningCode";
        add(
            &client,
            SUBSCRIPTIONS,
            &[
                ("Enable", "true"),
                ("ID", "configures"),
                ("NotifType", "ValueChange"),
                ("ReferenceList", watched),
                ("TriggerAction", "Config"),
                (
                    "TriggerConfigSettings",
                    "Device.LocalAgent.Controller.1.ControllerCode=\"set by trigger\"",
                ),
            ],
        )
        .await?;
        add(
            &client,
            SUBSCRIPTIONS,
            &[
                ("Enable", "true"),
                ("ID", "watches-the-result"),
                ("NotifType", "ValueChange"),
                (
                    "ReferenceList",
                    "Device.LocalAgent.Controller.1.ControllerCode",
                ),
            ],
        )
        .await?;
        set_ok(set(&client, CONTROLLER_ROW, &[("ProvisioningCode", "go")]).await?)?;
        // The only Notify is for the parameter the trigger wrote.
        let notify = next_notify(&mut events, PROMPT).await?;
        assert_eq!(notify.subscription_id, "watches-the-result");
        let Some(Notification::ValueChange(change)) = notify.notification else {
            bail!("expected a ValueChange, got {notify:?}");
        };
        assert_eq!(change.param_value, "set by trigger");
        let codes = get_values(&client, CONTROLLER_ROW, "ControllerCode").await?;
        assert_eq!(codes, ["set by trigger"]);
        Ok(())
    })
    .await
}
