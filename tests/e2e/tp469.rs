//! TP-469 (BroadbandForum/usp-test 1.4.0, digest §12) cases against the real agent binary over
//! MQTT 5.0 through a stock mosquitto (`listener <port> 127.0.0.1`, `allow_anonymous true`,
//! `persistence false`). Each test is named after the TP-469 case it follows; the issue-11
//! item-5 behaviours are filed under the nearest case (1.81 generated ID, 1.3 invalid Alias,
//! 1.96 unique key after creation, 1.78 Controller deletion, 1.66 empty GetInstances search,
//! 2.25 non-writable parameter in Add, section 2 UntrustedRole). Also 1.48, 1.57, 1.64, 1.65,
//! 1.100, 1.104 and 11.12.
//!
//! Every test starts its own broker and agent (about a second) so that the cases stay
//! independent and can run in parallel; every wait is bounded (`bounded`, the client's request
//! timeout, `ANSWER`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use usp_codec::UspErrorCode;
use usp_codec::usp_proto::usp::{self, body::MsgBody, request::ReqType, response::RespType};
use usp_controller::{AgentEvent, ControllerClient, ControllerOptions, Endpoint, MqttEndpoint};

use crate::mtp::expect;
use crate::mtp::harness::{
    AGENT_ID, AGENT_TOPIC_V5, ANSWER, Agent, CONTROLLER, CONTROLLER_TOPIC, Mosquitto, MqttMtp,
    OTHER_CONTROLLER, STRANGER, Setup, bounded,
};
use crate::mtp::peer::{Link, MqttLink, get_record, recv_msg};

const SUBSCRIPTIONS: &str = "Device.LocalAgent.Subscription.";
const UNTRUSTED_ROLE: &str = "Device.LocalAgent.ControllerTrust.Role.2";

/// A broker, the agent with one MQTT 5.0 MTP on it, and [`CONTROLLER`] (full access) talking
/// to the agent through the broker.
struct Session {
    agent: Agent,
    ctl: ControllerClient,
    /// Notifys and Connect Records sent to [`CONTROLLER`].
    events: mpsc::Receiver<AgentEvent>,
    broker: Mosquitto,
}

impl Session {
    async fn start() -> anyhow::Result<Session> {
        let broker = Mosquitto::start().await?;
        let agent = Agent::start(Setup {
            mqtt: vec![MqttMtp {
                name: "mqtt5",
                ..MqttMtp::v5(broker.port)
            }],
            ..Setup::default()
        })
        .await?;
        let (ctl, events) = client(
            broker.port,
            CONTROLLER,
            CONTROLLER_TOPIC,
            Duration::from_secs(5),
        )
        .await
        .with_context(|| agent.log())?;
        Ok(Session {
            agent,
            ctl,
            events,
            broker,
        })
    }

    /// Another controller on the same broker (answers go to `own_topic`, its Response Topic).
    async fn other(&self, id: &str, own_topic: &str) -> anyhow::Result<ControllerClient> {
        let (other, _) = client(self.broker.port, id, own_topic, Duration::from_secs(5)).await?;
        Ok(other)
    }

    async fn ask(&self, req: ReqType) -> anyhow::Result<usp::Msg> {
        self.ctl
            .request(req)
            .await
            .with_context(|| format!("no answer; agent log:\n{}", self.agent.log()))
    }
}

/// A controller client over MQTT 5.0 whose first Get has been answered: the agent's broker
/// connection comes up independently of the test's, so the first Get is retried for 20 s.
async fn client(
    port: u16,
    id: &str,
    own_topic: &str,
    timeout: Duration,
) -> anyhow::Result<(ControllerClient, mpsc::Receiver<AgentEvent>)> {
    let mut options = ControllerOptions::new(
        id,
        AGENT_ID,
        Endpoint::Mqtt(MqttEndpoint::new(
            "127.0.0.1",
            port,
            AGENT_TOPIC_V5,
            own_topic,
        )),
    );
    options.timeout = Duration::from_secs(1);
    let (probe, _) = ControllerClient::connect(options.clone()).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match probe
            .request(get(&["Device.LocalAgent.EndpointID"], 0))
            .await
        {
            Ok(_) => break,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(anyhow::Error::new(err).context("the agent never answered"));
            }
            Err(_) => {}
        }
    }
    drop(probe);
    options.timeout = timeout;
    Ok(ControllerClient::connect(options).await?)
}

fn get(paths: &[&str], max_depth: u32) -> ReqType {
    ReqType::Get(usp::Get {
        param_paths: paths.iter().map(|p| p.to_string()).collect(),
        max_depth,
    })
}

fn create(obj_path: &str, params: &[(&str, &str, bool)]) -> usp::add::CreateObject {
    usp::add::CreateObject {
        obj_path: obj_path.to_string(),
        param_settings: params
            .iter()
            .map(|(param, value, required)| usp::add::CreateParamSetting {
                param: param.to_string(),
                value: value.to_string(),
                required: *required,
            })
            .collect(),
    }
}

fn add(allow_partial: bool, creates: Vec<usp::add::CreateObject>) -> ReqType {
    ReqType::Add(usp::Add {
        allow_partial,
        create_objs: creates,
    })
}

fn update(obj_path: &str, params: &[(&str, &str, bool)]) -> usp::set::UpdateObject {
    usp::set::UpdateObject {
        obj_path: obj_path.to_string(),
        param_settings: params
            .iter()
            .map(|(param, value, required)| usp::set::UpdateParamSetting {
                param: param.to_string(),
                value: value.to_string(),
                required: *required,
            })
            .collect(),
    }
}

fn set(allow_partial: bool, updates: Vec<usp::set::UpdateObject>) -> ReqType {
    ReqType::Set(usp::Set {
        allow_partial,
        update_objs: updates,
    })
}

/// The TP-469 1.1 subscription: ValueChange on `Device.LocalAgent.SoftwareVersion`.
fn subscription(id: Option<&str>, enable: &str) -> usp::add::CreateObject {
    let mut params = vec![
        ("Enable", enable, true),
        ("NotifType", "ValueChange", true),
        ("ReferenceList", "Device.LocalAgent.SoftwareVersion", true),
    ];
    if let Some(id) = id {
        params.push(("ID", id, true));
    }
    create(SUBSCRIPTIONS, &params)
}

fn response(msg: &usp::Msg) -> anyhow::Result<&RespType> {
    match msg.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(resp),
        })) => Ok(resp),
        _ => bail!("not a response: {msg:?}"),
    }
}

fn error(msg: &usp::Msg) -> anyhow::Result<&usp::Error> {
    match msg.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
        Some(MsgBody::Error(error)) => Ok(error),
        _ => bail!("not an Error: {msg:?}"),
    }
}

fn add_results(msg: &usp::Msg) -> anyhow::Result<&[usp::add_resp::CreatedObjectResult]> {
    match response(msg)? {
        RespType::AddResp(resp) => Ok(&resp.created_obj_results),
        other => bail!("not an AddResp: {other:?}"),
    }
}

type AddStatus = usp::add_resp::created_object_result::operation_status::OperStatus;
type SetStatus = usp::set_resp::updated_object_result::operation_status::OperStatus;
type DeleteStatus = usp::delete_resp::deleted_object_result::operation_status::OperStatus;

fn add_status(result: &usp::add_resp::CreatedObjectResult) -> Option<&AddStatus> {
    result.oper_status.as_ref()?.oper_status.as_ref()
}

fn added(
    result: &usp::add_resp::CreatedObjectResult,
) -> anyhow::Result<&usp::add_resp::created_object_result::operation_status::OperationSuccess> {
    match add_status(result) {
        Some(AddStatus::OperSuccess(success)) => Ok(success),
        other => bail!("Add failed: {other:?}"),
    }
}

fn set_results(msg: &usp::Msg) -> anyhow::Result<Vec<&SetStatus>> {
    match response(msg)? {
        RespType::SetResp(resp) => resp
            .updated_obj_results
            .iter()
            .map(|result| {
                result
                    .oper_status
                    .as_ref()
                    .and_then(|status| status.oper_status.as_ref())
                    .context("UpdatedObjectResult without a status")
            })
            .collect(),
        other => bail!("not a SetResp: {other:?}"),
    }
}

fn get_results(msg: &usp::Msg) -> anyhow::Result<&[usp::get_resp::RequestedPathResult]> {
    match response(msg)? {
        RespType::GetResp(resp) => Ok(&resp.req_path_results),
        other => bail!("not a GetResp: {other:?}"),
    }
}

/// The resolved paths of the first requested path of a GetResp, which must have succeeded.
fn resolved(msg: &usp::Msg) -> anyhow::Result<Vec<String>> {
    let result = get_results(msg)?
        .first()
        .context("no requested path result")?;
    if result.err_code != 0 {
        bail!("Get failed: {} {}", result.err_code, result.err_msg);
    }
    Ok(result
        .resolved_path_results
        .iter()
        .map(|r| r.resolved_path.clone())
        .collect())
}

fn instances(msg: &usp::Msg) -> anyhow::Result<&[usp::get_instances_resp::RequestedPathResult]> {
    match response(msg)? {
        RespType::GetInstancesResp(resp) => Ok(&resp.req_path_results),
        other => bail!("not a GetInstancesResp: {other:?}"),
    }
}

/// Adds one TP-469 1.1 subscription as `client` and returns its instance path.
async fn add_subscription(
    client: &ControllerClient,
    id: Option<&str>,
    enable: &str,
) -> anyhow::Result<String> {
    let answer = client
        .request(add(false, vec![subscription(id, enable)]))
        .await?;
    let results = add_results(&answer)?;
    Ok(added(results.first().context("no CreatedObjectResult")?)?
        .instantiated_path
        .clone())
}

/// The Subscription instances and their `ID` and `Recipient`, read as [`CONTROLLER`].
async fn subscriptions(s: &Session) -> anyhow::Result<BTreeMap<String, (String, String)>> {
    let answer = s.ask(get(&[SUBSCRIPTIONS], 0)).await?;
    let result = get_results(&answer)?.first().context("no result")?;
    Ok(result
        .resolved_path_results
        .iter()
        .map(|r| {
            let value = |name: &str| r.result_params.get(name).cloned().unwrap_or_default();
            (r.resolved_path.clone(), (value("ID"), value("Recipient")))
        })
        .collect())
}

fn run(body: impl Future<Output = anyhow::Result<()>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(bounded(body)).unwrap(),
        Err(err) => panic!("no runtime: {err}"),
    }
}

#[test]
fn tp469_1_1_add_subscription_returns_and_stores_its_unique_keys() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(add(false, vec![subscription(Some("tp-1-1"), "true")]))
            .await?;
        let done = added(&add_results(&answer)?[0])?;
        assert!(done.param_errs.is_empty(), "{done:?}");
        let path = &done.instantiated_path;
        assert!(path.starts_with(SUBSCRIPTIONS), "{path}");
        let keys = &done.unique_keys;
        assert_eq!(keys.get("ID").map(String::as_str), Some("tp-1-1"));
        assert_eq!(
            keys.get("Recipient").map(String::as_str),
            Some("Device.LocalAgent.Controller.1")
        );
        assert!(
            keys.get("Alias")
                .is_some_and(|alias| alias.starts_with("cpe-")),
            "{keys:?}"
        );
        let stored = subscriptions(&s).await?;
        assert_eq!(
            stored.get(path),
            Some(&(
                "tp-1-1".to_string(),
                "Device.LocalAgent.Controller.1".to_string()
            ))
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_81_add_subscription_without_id_gets_a_generated_unique_id() {
    // Item 5.1, R-ADD.5: a unique key the Controller omits is assigned by the Agent.
    run(async {
        let mut s = Session::start().await?;
        let first = add_subscription(&s.ctl, None, "false").await?;
        let second = add_subscription(&s.ctl, None, "false").await?;
        let stored = subscriptions(&s).await?;
        let first_id = &stored.get(&first).context("first missing")?.0;
        let second_id = &stored.get(&second).context("second missing")?.0;
        assert!(!first_id.is_empty() && !second_id.is_empty(), "{stored:?}");
        assert_ne!(first_id, second_id);
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_3_add_with_an_invalid_required_value_is_an_error_and_creates_nothing() {
    run(async {
        let mut s = Session::start().await?;
        let mut bad = subscription(Some("tp-1-3"), "true");
        bad.param_settings[0].value = "InvalidValue".to_string();
        let answer = s.ask(add(false, vec![bad])).await?;
        let error = error(&answer)?;
        assert_eq!(error.param_errs.len(), 1, "{error:?}");
        assert_eq!(
            error.param_errs[0].param_path,
            "Device.LocalAgent.Subscription.Enable"
        );
        assert!(subscriptions(&s).await?.is_empty());
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_3_add_with_an_invalid_alias_is_an_error_and_creates_nothing() {
    // Item 5.2: the Alias data type (non-empty, starts with a letter) → 7012.
    run(async {
        let mut s = Session::start().await?;
        for alias in ["1st", "", "-a"] {
            let mut bad = subscription(Some("tp-alias"), "false");
            bad.param_settings.push(usp::add::CreateParamSetting {
                param: "Alias".to_string(),
                value: alias.to_string(),
                required: false,
            });
            let answer = s.ask(add(false, vec![bad])).await?;
            let error = error(&answer)?;
            assert_eq!(
                error.err_code,
                UspErrorCode::InvalidValue.code(),
                "{alias:?}: {error:?}"
            );
            assert_eq!(
                error.param_errs[0].param_path,
                "Device.LocalAgent.Subscription.Alias"
            );
        }
        assert!(subscriptions(&s).await?.is_empty());
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_9_allow_partial_add_creates_only_the_valid_object() {
    run(async {
        let mut s = Session::start().await?;
        let mut bad = subscription(Some("tp-1-9-b"), "false");
        bad.param_settings.push(usp::add::CreateParamSetting {
            param: "InvalidParameter".to_string(),
            value: "x".to_string(),
            required: true,
        });
        let answer = s
            .ask(add(
                true,
                vec![subscription(Some("tp-1-9-a"), "false"), bad],
            ))
            .await?;
        let results = add_results(&answer)?;
        assert_eq!(results.len(), 2);
        let created = added(&results[0])?.instantiated_path.clone();
        assert!(
            matches!(add_status(&results[1]), Some(AddStatus::OperFailure(_))),
            "{results:?}"
        );
        let stored = subscriptions(&s).await?;
        assert_eq!(stored.keys().collect::<Vec<_>>(), [&created]);
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_16_allow_partial_set_reports_the_failed_instance() {
    run(async {
        let mut s = Session::start().await?;
        let one = add_subscription(&s.ctl, Some("tp-1-16-a"), "false").await?;
        let two = add_subscription(&s.ctl, Some("tp-1-16-b"), "false").await?;
        let answer = s
            .ask(set(
                true,
                vec![
                    update(&one, &[("NotifRetry", "true", true)]),
                    update(&two, &[("InvalidParameter", "x", true)]),
                ],
            ))
            .await?;
        let results = set_results(&answer)?;
        let Some(SetStatus::OperSuccess(success)) = results.first() else {
            bail!("first update failed: {answer:?}");
        };
        assert_eq!(
            success.updated_inst_results[0]
                .updated_params
                .get("NotifRetry")
                .map(String::as_str),
            Some("true")
        );
        let Some(SetStatus::OperFailure(failure)) = results.get(1) else {
            bail!("second update did not fail: {answer:?}");
        };
        assert_eq!(failure.updated_inst_failures.len(), 1);
        assert_eq!(
            failure.updated_inst_failures[0].param_errs[0].param,
            "InvalidParameter"
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_20_set_over_a_search_path_with_an_invalid_required_param_is_an_error() {
    run(async {
        let mut s = Session::start().await?;
        let one = add_subscription(&s.ctl, Some("tp-1-20"), "false").await?;
        let answer = s
            .ask(set(
                false,
                vec![update(
                    "Device.LocalAgent.Subscription.*.",
                    &[("Enable", "true", false), ("InvalidParameter", "x", true)],
                )],
            ))
            .await?;
        let error = error(&answer)?;
        assert_eq!(
            error.param_errs[0].param_path,
            format!("{one}InvalidParameter")
        );
        let answer = s.ask(get(&[&format!("{one}Enable")], 0)).await?;
        assert_eq!(
            expect::param(&answer, &crate::mtp::peer::msg_id(&answer), "Enable")?,
            "false"
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_23_set_over_a_search_matching_nothing_is_an_empty_success() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(set(
                false,
                vec![update(
                    r#"Device.LocalAgent.Subscription.[Recipient=="InvalidValue"]."#,
                    &[("Enable", "true", true)],
                )],
            ))
            .await?;
        let results = set_results(&answer)?;
        assert_eq!(results.len(), 1);
        let Some(SetStatus::OperSuccess(success)) = results.first() else {
            bail!("not a success: {answer:?}");
        };
        assert!(success.updated_inst_results.is_empty());
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_25_delete_of_a_missing_instance_is_an_empty_success() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(ReqType::Delete(usp::Delete {
                allow_partial: false,
                obj_paths: vec!["Device.LocalAgent.Subscription.4242.".to_string()],
            }))
            .await?;
        let RespType::DeleteResp(resp) = response(&answer)? else {
            bail!("not a DeleteResp: {answer:?}");
        };
        let status = resp.deleted_obj_results[0]
            .oper_status
            .as_ref()
            .and_then(|status| status.oper_status.as_ref());
        let Some(DeleteStatus::OperSuccess(success)) = status else {
            bail!("not a success: {answer:?}");
        };
        assert!(success.affected_paths.is_empty());
        assert!(success.unaffected_path_errs.is_empty());
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_46_get_with_a_search_expression_returns_only_matching_instances() {
    run(async {
        let mut s = Session::start().await?;
        let on = add_subscription(&s.ctl, Some("tp-1-46-on"), "true").await?;
        add_subscription(&s.ctl, Some("tp-1-46-off"), "false").await?;
        let answer = s
            .ask(get(&["Device.LocalAgent.Subscription.[Enable==true]."], 0))
            .await?;
        assert_eq!(resolved(&answer)?, [on]);
        let params = &get_results(&answer)?[0].resolved_path_results[0].result_params;
        // Keys are relative to the resolved path.
        assert_eq!(params.get("ID").map(String::as_str), Some("tp-1-46-on"));
        assert!(params.keys().all(|key| !key.starts_with("Device.")));
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_48_get_with_a_numeric_search_expression_compares_numbers() {
    run(async {
        let mut s = Session::start().await?;
        let short = add_subscription(&s.ctl, Some("tp-1-48-short"), "false").await?;
        let long = add_subscription(&s.ctl, Some("tp-1-48-long"), "false").await?;
        for (path, seconds) in [(&short, "5"), (&long, "20")] {
            let answer = s
                .ask(set(
                    false,
                    vec![update(path, &[("NotifExpiration", seconds, true)])],
                ))
                .await?;
            set_results(&answer)?;
        }
        let answer = s
            .ask(get(
                &["Device.LocalAgent.Subscription.[NotifExpiration>10]."],
                0,
            ))
            .await?;
        assert_eq!(resolved(&answer)?, [long]);
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_57_object_creation_notify_names_the_instance_and_its_keys() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(add(
                false,
                vec![create(
                    SUBSCRIPTIONS,
                    &[
                        ("Enable", "true", true),
                        ("ID", "tp-1-57", true),
                        ("NotifType", "ObjectCreation", true),
                        ("ReferenceList", SUBSCRIPTIONS, true),
                    ],
                )],
            ))
            .await?;
        added(&add_results(&answer)?[0])?;
        let created = add_subscription(&s.ctl, Some("tp-1-57-new"), "false").await?;
        let deadline = tokio::time::Instant::now() + ANSWER;
        let creation = loop {
            let event = tokio::time::timeout_at(deadline, s.events.recv())
                .await
                .context("no ObjectCreation Notify")?
                .context("the client ended")?;
            if let AgentEvent::Notify(usp::Notify {
                subscription_id,
                notification: Some(usp::notify::Notification::ObjCreation(creation)),
                ..
            }) = event
                && subscription_id == "tp-1-57"
            {
                break creation;
            }
        };
        assert_eq!(creation.obj_path, created);
        assert_eq!(
            creation.unique_keys.get("ID").map(String::as_str),
            Some("tp-1-57-new")
        );
        assert_eq!(
            creation.unique_keys.get("Recipient").map(String::as_str),
            Some("Device.LocalAgent.Controller.1")
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_100_schedule_timer_without_delay_seconds_fails_with_7027() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(ReqType::Operate(usp::Operate {
                command: "Device.ScheduleTimer()".to_string(),
                command_key: "tp-1-100".to_string(),
                send_resp: true,
                input_args: Default::default(),
            }))
            .await?;
        let RespType::OperateResp(resp) = response(&answer)? else {
            bail!("not an OperateResp: {answer:?}");
        };
        let result = resp.operation_results.first().context("no result")?;
        let Some(usp::operate_resp::operation_result::OperationResp::CmdFailure(failure)) =
            &result.operation_resp
        else {
            bail!("not a cmd_failure: {result:?}");
        };
        assert_eq!(
            failure.err_code,
            UspErrorCode::InvalidCommandArguments.code()
        );
        s.agent.check_running()
    });
}

/// Subscribes [`CONTROLLER`] to the OperationComplete of `Device.ScheduleTimer()` and returns
/// the Operate that starts the timer (one second) with `command_key`, answered or not as
/// `send_resp` says.
async fn schedule_timer(
    s: &Session,
    command_key: &str,
    send_resp: bool,
) -> anyhow::Result<ReqType> {
    let answer = s
        .ask(add(
            false,
            vec![create(
                SUBSCRIPTIONS,
                &[
                    ("Enable", "true", true),
                    ("ID", command_key, true),
                    ("NotifType", "OperationComplete", true),
                    ("ReferenceList", "Device.ScheduleTimer()", true),
                ],
            )],
        ))
        .await?;
    added(&add_results(&answer)?[0])?;
    Ok(ReqType::Operate(usp::Operate {
        command: "Device.ScheduleTimer()".to_string(),
        command_key: command_key.to_string(),
        send_resp,
        input_args: [("DelaySeconds".to_string(), "1".to_string())].into(),
    }))
}

/// The OperationComplete Notify of subscription `id`, within [`ANSWER`].
async fn operation_complete(
    events: &mut mpsc::Receiver<AgentEvent>,
    agent: &Agent,
    id: &str,
) -> anyhow::Result<usp::notify::OperationComplete> {
    let deadline = tokio::time::Instant::now() + ANSWER;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("no OperationComplete; agent log:\n{}", agent.log()))?
            .context("the client ended")?;
        if let AgentEvent::Notify(usp::Notify {
            subscription_id,
            notification: Some(usp::notify::Notification::OperComplete(complete)),
            ..
        }) = event
            && subscription_id == id
        {
            return Ok(complete);
        }
    }
}

#[test]
fn tp469_1_64_async_operate_answers_with_its_request_row_then_notifies_completion() {
    run(async {
        let mut s = Session::start().await?;
        let operate = schedule_timer(&s, "test64", true).await?;
        let answer = s.ask(operate).await?;
        let RespType::OperateResp(resp) = response(&answer)? else {
            bail!("not an OperateResp: {answer:?}");
        };
        let result = resp.operation_results.first().context("no result")?;
        assert_eq!(result.executed_command, "Device.ScheduleTimer()");
        let Some(usp::operate_resp::operation_result::OperationResp::ReqObjPath(request)) =
            &result.operation_resp
        else {
            bail!("not a req_obj_path: {result:?}");
        };
        assert!(
            request.starts_with("Device.LocalAgent.Request."),
            "req_obj_path {request}"
        );
        let complete = operation_complete(&mut s.events, &s.agent, "test64").await?;
        assert_eq!(complete.command_key, "test64");
        assert_eq!(complete.obj_path, "Device.");
        assert_eq!(complete.command_name, "ScheduleTimer()");
        assert!(
            matches!(
                complete.operation_resp,
                Some(usp::notify::operation_complete::OperationResp::ReqOutputArgs(_))
            ),
            "not a success: {complete:?}"
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_65_async_operate_without_send_resp_is_not_answered_but_still_notifies() {
    run(async {
        let mut s = Session::start().await?;
        let operate = schedule_timer(&s, "test65", false).await?;
        // The client waits its 5 s request timeout: an OperateResp would end the wait first.
        let (answered, complete) = tokio::join!(
            s.ctl.request(operate),
            operation_complete(&mut s.events, &s.agent, "test65")
        );
        assert_eq!(complete?.command_key, "test65");
        match answered {
            Err(usp_controller::ControllerError::Timeout { .. }) => {}
            other => bail!("expected no OperateResp, got {other:?}"),
        }
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_66_get_instances_first_level_only_lists_only_the_controllers() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(ReqType::GetInstances(usp::GetInstances {
                obj_paths: vec!["Device.LocalAgent.Controller.".to_string()],
                first_level_only: true,
            }))
            .await?;
        let result = &instances(&answer)?[0];
        assert_eq!(result.err_code, 0);
        let paths: Vec<&str> = result
            .curr_insts
            .iter()
            .map(|i| i.instantiated_obj_path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "Device.LocalAgent.Controller.1.",
                "Device.LocalAgent.Controller.2."
            ]
        );
        assert_eq!(
            result.curr_insts[0]
                .unique_keys
                .get("EndpointID")
                .map(String::as_str),
            Some(CONTROLLER)
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_66_get_instances_of_a_search_matching_nothing_is_an_empty_success() {
    // Item 5.5, R-MSG.4a: also when the expression names a complete unique key.
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(ReqType::GetInstances(usp::GetInstances {
                obj_paths: vec![
                    r#"Device.LocalAgent.Controller.[EndpointID=="nobody"]."#.to_string(),
                    r#"Device.LocalAgent.Subscription.[Enable==true]."#.to_string(),
                    r#"Device.LocalAgent.Controller.[Alias=="none"].MTP."#.to_string(),
                ],
                first_level_only: false,
            }))
            .await?;
        for result in instances(&answer)? {
            assert_eq!(result.err_code, 0, "{result:?}");
            assert!(result.curr_insts.is_empty(), "{result:?}");
        }
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_72_get_supported_dm_of_local_agent_describes_everything() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(ReqType::GetSupportedDm(usp::GetSupportedDm {
                obj_paths: vec!["Device.LocalAgent.".to_string()],
                first_level_only: false,
                return_commands: true,
                return_events: true,
                return_params: true,
                return_unique_key_sets: true,
            }))
            .await?;
        let RespType::GetSupportedDmResp(resp) = response(&answer)? else {
            bail!("not a GetSupportedDMResp: {answer:?}");
        };
        let result = &resp.req_obj_results[0];
        assert_eq!(result.err_code, 0);
        let object = |path: &str| {
            result
                .supported_objs
                .iter()
                .find(|o| o.supported_obj_path == path)
                .with_context(|| format!("{path} not listed"))
        };
        let subscription = object("Device.LocalAgent.Subscription.{i}.")?;
        assert!(
            subscription
                .supported_params
                .iter()
                .any(|p| p.param_name == "ID")
        );
        let keys: Vec<&Vec<String>> = subscription
            .unique_key_sets
            .iter()
            .map(|k| &k.key_names)
            .collect();
        assert!(keys.contains(&&vec!["Recipient".to_string(), "ID".to_string()]));
        let local_agent = object("Device.LocalAgent.")?;
        assert!(
            local_agent
                .supported_events
                .iter()
                .any(|e| e.event_name == "Periodic!")
        );
        let trust = object("Device.LocalAgent.ControllerTrust.")?;
        assert!(
            trust
                .supported_commands
                .iter()
                .any(|c| c.command_name == "RequestChallenge()")
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_78_deleting_a_controller_deletes_its_subscriptions() {
    // Item 5.4: Subscription.Recipient is a strong reference that is the row's key.
    run(async {
        let mut s = Session::start().await?;
        let other = s
            .other(OTHER_CONTROLLER, "usp/controller/tp469-other")
            .await?;
        let theirs = add_subscription(&other, Some("theirs"), "true").await?;
        let ours = add_subscription(&s.ctl, Some("ours"), "true").await?;
        let before = subscriptions(&s).await?;
        assert_eq!(
            before.get(&theirs).map(|(_, recipient)| recipient.as_str()),
            Some("Device.LocalAgent.Controller.2")
        );
        let answer = s
            .ask(ReqType::Delete(usp::Delete {
                allow_partial: false,
                obj_paths: vec!["Device.LocalAgent.Controller.2.".to_string()],
            }))
            .await?;
        response(&answer)?;
        let after = subscriptions(&s).await?;
        assert_eq!(after.keys().collect::<Vec<_>>(), [&ours], "{after:?}");
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_80_get_supported_protocol_lists_versions() {
    run(async {
        let mut s = Session::start().await?;
        let answer = s
            .ask(ReqType::GetSupportedProtocol(usp::GetSupportedProtocol {
                controller_supported_protocol_versions: "1.3,1.4".to_string(),
            }))
            .await?;
        let RespType::GetSupportedProtocolResp(resp) = response(&answer)? else {
            bail!("not a GetSupportedProtocolResp: {answer:?}");
        };
        let versions: Vec<&str> = resp.agent_supported_protocol_versions.split(',').collect();
        assert!(versions.contains(&"1.4"), "{versions:?}");
        for version in versions {
            let (major, minor) = version.split_once('.').context("not major.minor")?;
            assert!(major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok());
        }
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_89_get_max_depth_limits_the_levels_returned() {
    run(async {
        let mut s = Session::start().await?;
        let depth = |n: u32| {
            let ctl = &s;
            async move { resolved(&ctl.ask(get(&["Device.LocalAgent."], n)).await?) }
        };
        let one = depth(1).await?;
        assert_eq!(one, ["Device.LocalAgent."]);
        let two = depth(2).await?;
        assert!(two.contains(&"Device.LocalAgent.ControllerTrust.".to_string()));
        let deep = "Device.LocalAgent.ControllerTrust.Role.1.Permission.1.".to_string();
        assert!(!two.contains(&deep), "{two:?}");
        let all = depth(0).await?;
        assert!(all.contains(&deep));
        assert!(two.iter().all(|path| all.contains(path)));
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_96_subscription_id_cannot_change_after_creation() {
    // Item 5.3, R-KEY.1: a non-functional unique key is fixed once the instance exists.
    run(async {
        let mut s = Session::start().await?;
        let path = add_subscription(&s.ctl, Some("tp-1-96"), "false").await?;
        let answer = s
            .ask(set(false, vec![update(&path, &[("ID", "changed", true)])]))
            .await?;
        let error = error(&answer)?;
        assert_eq!(
            error.err_code,
            UspErrorCode::ParamReadOnly.code(),
            "{error:?}"
        );
        assert_eq!(error.param_errs[0].param_path, format!("{path}ID"));
        let stored = subscriptions(&s).await?;
        assert_eq!(
            stored.get(&path).map(|(id, _)| id.as_str()),
            Some("tp-1-96")
        );
        s.agent.check_running()
    });
}

#[test]
fn tp469_1_104_alias_cannot_be_set_after_creation() {
    run(async {
        let mut s = Session::start().await?;
        let path = add_subscription(&s.ctl, Some("tp-1-104"), "false").await?;
        let answer = s
            .ask(set(
                false,
                vec![update(&path, &[("Alias", "renamed", true)])],
            ))
            .await?;
        assert_eq!(error(&answer)?.err_code, UspErrorCode::ParamReadOnly.code());
        s.agent.check_running()
    });
}

#[test]
fn tp469_2_25_add_including_a_non_writable_param_fails_it_when_required() {
    // Item 5.6 (digest §3.3): an included non-writable parameter goes through the
    // required logic with 7013: required → Error, nothing created; not required →
    // created, the parameter listed in param_errs and left out.
    run(async {
        let mut s = Session::start().await?;
        let mut required = subscription(Some("tp-2-25-a"), "false");
        required.param_settings.push(usp::add::CreateParamSetting {
            param: "CreationDate".to_string(),
            value: "2020-01-01T00:00:00Z".to_string(),
            required: true,
        });
        let answer = s.ask(add(false, vec![required])).await?;
        let error = error(&answer)?;
        assert_eq!(
            error.err_code,
            UspErrorCode::ParamReadOnly.code(),
            "{error:?}"
        );
        assert_eq!(
            error.param_errs[0].param_path,
            "Device.LocalAgent.Subscription.CreationDate"
        );
        assert!(subscriptions(&s).await?.is_empty());

        let mut optional = subscription(Some("tp-2-25-b"), "false");
        optional.param_settings.push(usp::add::CreateParamSetting {
            param: "CreationDate".to_string(),
            value: "2020-01-01T00:00:00Z".to_string(),
            required: false,
        });
        let answer = s.ask(add(false, vec![optional])).await?;
        let done = added(&add_results(&answer)?[0])?;
        assert_eq!(done.param_errs.len(), 1);
        assert_eq!(done.param_errs[0].param, "CreationDate");
        assert_eq!(
            done.param_errs[0].err_code,
            UspErrorCode::ParamReadOnly.code()
        );
        let answer = s
            .ask(get(
                &[&format!("{}CreationDate", done.instantiated_path)],
                0,
            ))
            .await?;
        let date = expect::param(&answer, &crate::mtp::peer::msg_id(&answer), "CreationDate")?;
        assert_ne!(date, "2020-01-01T00:00:00Z");
        s.agent.check_running()
    });
}

/// Sends `first` (which must be dropped) and then a good Get on a raw MQTT link; the first
/// answer must be the good Get's.
async fn only_the_good_record_is_answered(first: Vec<u8>) -> anyhow::Result<()> {
    let mut s = Session::start().await?;
    let mut link = MqttLink::connect(s.broker.port, AGENT_TOPIC_V5, CONTROLLER_TOPIC).await?;
    link.send(first).await?;
    link.send(get_record(
        CONTROLLER,
        AGENT_ID,
        "good",
        "Device.LocalAgent.EndpointID",
    ))
    .await?;
    let (to, answer) = recv_msg(&mut link).await?;
    assert_eq!(to, CONTROLLER);
    assert_eq!(expect::param(&answer, "good", "EndpointID")?, AGENT_ID);
    s.agent.check_running()
}

#[test]
fn tp469_11_12_mqtt5_answer_goes_to_the_response_topic_with_content_type_and_own_topic() {
    run(async {
        let mut s = Session::start().await?;
        // Not the Controller's configured topic: the request's Response Topic must win.
        let own_topic = "usp/controller/tp-11-12";
        let mut link = MqttLink::connect(s.broker.port, AGENT_TOPIC_V5, own_topic).await?;
        link.send(get_record(
            CONTROLLER,
            AGENT_ID,
            "tp-11-12",
            "Device.LocalAgent.EndpointID",
        ))
        .await?;
        let publish = link.recv_publish().await?;
        assert_eq!(publish.topic, own_topic);
        assert_eq!(publish.content_type.as_deref(), Some("usp.msg"));
        assert_eq!(publish.response_topic.as_deref(), Some(AGENT_TOPIC_V5));
        let record = usp_codec::Record::decode(&publish.payload)?;
        assert_eq!(record.to_id, CONTROLLER);
        s.agent.check_running()
    });
}

#[test]
fn tp469_2_1_a_record_from_the_agents_own_endpoint_id_is_not_answered() {
    run(only_the_good_record_is_answered(get_record(
        AGENT_ID,
        AGENT_ID,
        "self",
        "Device.LocalAgent.EndpointID",
    )));
}

#[test]
fn tp469_2_2_a_record_for_another_to_id_is_not_answered() {
    run(only_the_good_record_is_answered(get_record(
        CONTROLLER,
        "proto::not-this-agent",
        "wrong-to",
        "Device.LocalAgent.EndpointID",
    )));
}

#[test]
fn tp469_2_untrusted_role_decides_whether_an_unknown_controller_is_served() {
    // Item 7 (digest §8.2): an endpoint outside the Controller table is served with the
    // permissions of ControllerTrust.UntrustedRole when it names a role, and not at all while it
    // is empty (the factory value).
    run(async {
        let mut s = Session::start().await?;
        let mut options = ControllerOptions::new(
            STRANGER,
            AGENT_ID,
            Endpoint::Mqtt(MqttEndpoint::new(
                "127.0.0.1",
                s.broker.port,
                AGENT_TOPIC_V5,
                "usp/controller/tp469-stranger",
            )),
        );
        options.timeout = Duration::from_secs(2);
        let (stranger, _) = ControllerClient::connect(options).await?;
        let challenges = || get(&["Device.LocalAgent.ControllerTrust.Challenge."], 0);
        assert!(
            stranger.request(challenges()).await.is_err(),
            "an unknown controller was answered with UntrustedRole empty"
        );
        assert!(
            s.agent
                .log()
                .contains("not an enabled Device.LocalAgent.Controller."),
            "{}",
            s.agent.log()
        );

        let trust = "Device.LocalAgent.ControllerTrust.";
        let answer = s
            .ask(set(
                false,
                vec![update(trust, &[("UntrustedRole", UNTRUSTED_ROLE, true)])],
            ))
            .await?;
        set_results(&answer)?;
        // The Untrusted role lets it see the Challenge table (empty: a success)...
        let answer = stranger.request(challenges()).await?;
        let result = &get_results(&answer)?[0];
        assert_eq!(result.err_code, 0, "{result:?}");
        // ...and nothing else.
        let answer = stranger
            .request(get(
                &["Device.DeviceInfo.", "Device.LocalAgent.Controller."],
                0,
            ))
            .await?;
        for result in get_results(&answer)? {
            assert!(
                result
                    .resolved_path_results
                    .iter()
                    .all(|r| r.result_params.is_empty()),
                "{result:?}"
            );
        }

        let answer = s
            .ask(set(
                false,
                vec![update(trust, &[("UntrustedRole", "", true)])],
            ))
            .await?;
        set_results(&answer)?;
        assert!(stranger.request(challenges()).await.is_err());
        s.agent.check_running()
    });
}
