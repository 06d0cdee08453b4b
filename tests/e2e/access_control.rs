//! Role-based access control end to end (TP-469 2.16, 2.18): a Controller with the factory
//! full-access role narrows its own role through `Device.LocalAgent.ControllerTrust.` over the
//! real WebSocket MTP, and the real agent enforces the new permission on the next message.

use std::collections::HashMap;

use anyhow::{Context, bail};
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::operate_resp::operation_result::OperationResp;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_codec::usp_proto::usp::response::RespType;
use usp_codec::usp_proto::usp::{self, add, set};
use usp_controller::{ControllerClient, ControllerOptions, Endpoint, WsEndpoint};

use crate::mtp::expect;
use crate::mtp::harness::{AGENT_ID, Agent, CONTROLLER, STRANGER, Setup, bounded};
use crate::mtp::peer::{Link, UdsLink, WsLink, get_record, recv_msg};

/// A WebSocket controller session with the test agent.
pub async fn ws_client(agent: &Agent) -> anyhow::Result<ControllerClient> {
    let endpoint = Endpoint::WebSocket(WsEndpoint {
        url: agent.ws_url(),
    });
    let (client, _events) =
        ControllerClient::connect(ControllerOptions::new(CONTROLLER, AGENT_ID, endpoint)).await?;
    Ok(client)
}

fn settings<T>(pairs: &[(&str, &str)], make: impl Fn(String, String) -> T) -> Vec<T> {
    pairs
        .iter()
        .map(|(name, value)| make(name.to_string(), value.to_string()))
        .collect()
}

/// Adds one instance and returns its path (`Device.LocalAgent.Subscription.3.`).
pub async fn add(
    client: &ControllerClient,
    table: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<String> {
    let request = ReqType::Add(usp::Add {
        allow_partial: false,
        create_objs: vec![add::CreateObject {
            obj_path: table.to_string(),
            param_settings: settings(params, |param, value| add::CreateParamSetting {
                param,
                value,
                required: true,
            }),
        }],
    });
    let answer = client.request(request).await?;
    let Some(MsgBody::Response(usp::Response {
        resp_type: Some(RespType::AddResp(resp)),
    })) = answer.body.and_then(|body| body.msg_body)
    else {
        bail!("Add {table}: no AddResp");
    };
    let created = resp
        .created_obj_results
        .into_iter()
        .next()
        .and_then(|result| result.oper_status)
        .and_then(|status| status.oper_status)
        .context("AddResp without a result")?;
    match created {
        usp::add_resp::created_object_result::operation_status::OperStatus::OperSuccess(ok) => {
            Ok(ok.instantiated_path)
        }
        other => bail!("Add {table} failed: {other:?}"),
    }
}

/// Sets parameters of one object (allow_partial=false) and returns the raw answer.
pub async fn set(
    client: &ControllerClient,
    object: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<usp::Msg> {
    let request = ReqType::Set(usp::Set {
        allow_partial: false,
        update_objs: vec![set::UpdateObject {
            obj_path: object.to_string(),
            param_settings: settings(params, |param, value| set::UpdateParamSetting {
                param,
                value,
                required: true,
            }),
        }],
    });
    Ok(client.request(request).await?)
}

/// The Error message's code and the codes of its param_errs, by path.
fn error_codes(msg: usp::Msg) -> anyhow::Result<(u32, HashMap<String, u32>)> {
    match msg.body.and_then(|body| body.msg_body) {
        Some(MsgBody::Error(error)) => Ok((
            error.err_code,
            error
                .param_errs
                .into_iter()
                .map(|param| (param.param_path, param.err_code))
                .collect(),
        )),
        other => bail!("expected an Error message, got {other:?}"),
    }
}

/// A permission entry in the full-access role (`Role.1`) with `order`, `targets` and the four
/// fields, all `rwxn` unless given.
async fn narrow_full_access(
    client: &ControllerClient,
    order: &str,
    targets: &str,
    fields: &[(&str, &str)],
) -> anyhow::Result<String> {
    let mut params = vec![
        ("Enable", "true"),
        ("Order", order),
        ("Targets", targets),
        ("Param", "rwxn"),
        ("Obj", "rwxn"),
        ("InstantiatedObj", "rwxn"),
        ("CommandEvent", "rwxn"),
    ];
    for (name, value) in fields {
        params.retain(|(other, _)| other != name);
        params.push((name, value));
    }
    add(
        client,
        "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
        &params,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tp_2_16_set_on_a_read_only_instance_is_refused_with_7006() -> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let client = ws_client(&agent).await?;
        let subscription = add(
            &client,
            "Device.LocalAgent.Subscription.",
            &[
                ("ID", "tp-2-16"),
                ("NotifType", "ValueChange"),
                ("ReferenceList", "Device.LocalAgent.SoftwareVersion"),
            ],
        )
        .await?;
        narrow_full_access(&client, "2", &subscription, &[("Param", "r---")]).await?;

        let answer = set(&client, &subscription, &[("Enable", "true")]).await?;
        let (code, params) = error_codes(answer)?;
        let enable = format!("{subscription}Enable");
        assert_eq!(params.get(&enable), Some(&7006), "{code} {params:?}");

        // Other instances of the same table stay writable.
        let other = add(
            &client,
            "Device.LocalAgent.Subscription.",
            &[("ID", "tp-2-16-b"), ("NotifType", "ValueChange")],
        )
        .await?;
        let answer = set(&client, &other, &[("Enable", "true")]).await?;
        assert!(
            matches!(
                answer.body.and_then(|body| body.msg_body),
                Some(MsgBody::Response(usp::Response {
                    resp_type: Some(RespType::SetResp(_))
                }))
            ),
            "Set on {other} should succeed"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tp_2_18_operate_without_execute_permission_is_a_command_failure() -> anyhow::Result<()> {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let client = ws_client(&agent).await?;
        narrow_full_access(&client, "3", "Device.Reboot()", &[("CommandEvent", "r---")]).await?;

        let answer = client
            .request(ReqType::Operate(usp::Operate {
                command: "Device.Reboot()".to_string(),
                command_key: "tp-2-18".to_string(),
                send_resp: true,
                input_args: Default::default(),
            }))
            .await?;
        let Some(MsgBody::Response(usp::Response {
            resp_type: Some(RespType::OperateResp(resp)),
        })) = answer.body.and_then(|body| body.msg_body)
        else {
            bail!("expected an OperateResp (USP 1.4 behaviour)");
        };
        let result = resp
            .operation_results
            .into_iter()
            .next()
            .context("no OperationResult")?;
        assert_eq!(result.executed_command, "Device.Reboot()");
        let Some(OperationResp::CmdFailure(failure)) = result.operation_resp else {
            bail!("expected cmd_failure, got {:?}", result.operation_resp);
        };
        assert_eq!(failure.err_code, 7006, "{}", failure.err_msg);
        // The command did not run: the agent is still up and answering.
        agent.check_running()?;
        add(
            &client,
            "Device.LocalAgent.Subscription.",
            &[("ID", "still-up"), ("NotifType", "ValueChange")],
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtp_role_serves_an_endpoint_that_is_not_a_controller_over_that_mtp_only()
-> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup {
            uds_role: Some("Device.LocalAgent.ControllerTrust.Role.1"),
            ..Setup::default()
        })
        .await?;
        // Over the UDS MTP the stranger holds the role the MTP grants.
        let mut uds = UdsLink::connect(&agent.uds_path(), STRANGER).await?;
        uds.recv().await?;
        uds.send(get_record(
            STRANGER,
            AGENT_ID,
            "uds-role",
            "Device.LocalAgent.EndpointID",
        ))
        .await?;
        let (to, answer) = recv_msg(&mut uds).await?;
        assert_eq!(to, STRANGER);
        assert_eq!(expect::param(&answer, "uds-role", "EndpointID")?, AGENT_ID);
        // Over WebSocket it is still nobody: its Get is dropped, so the Controller's Get sent
        // after it on another session is the first answer anything receives.
        let mut stranger = WsLink::connect(agent.ws_port, STRANGER, None).await?;
        stranger
            .send(get_record(
                STRANGER,
                AGENT_ID,
                "ws-stranger",
                "Device.LocalAgent.EndpointID",
            ))
            .await?;
        let client = ws_client(&agent).await?;
        let answer = client
            .request(ReqType::Get(usp::Get {
                param_paths: vec!["Device.LocalAgent.EndpointID".to_string()],
                max_depth: 0,
            }))
            .await?;
        anyhow::ensure!(
            matches!(
                answer.body.and_then(|b| b.msg_body),
                Some(MsgBody::Response(_))
            ),
            "the Controller was not answered"
        );
        // Connect records may arrive; a USP Msg must not.
        let answered = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            recv_msg(&mut stranger),
        )
        .await;
        anyhow::ensure!(
            answered.is_err(),
            "the stranger was answered over WebSocket: {answered:?}"
        );
        Ok(())
    })
    .await
}
