//! Operate (TR-369 §"Operate"): the command path may be a search path; each matched object
//! gets one `OperationResult` whose `executed_command` uses instance numbers. Failures of one
//! command are `cmd_failure`s, never an Error (R-OPR.1); only a bad message (syntax, not a
//! command path, unsupported, missing instance) is an Error. A missing mandatory input is a
//! `cmd_failure` 7027 and the command does not run (R-OPR.5); unknown inputs are dropped
//! (R-OPR.6). An async command gets a `Device.LocalAgent.Request.{i}` row from the agent
//! ([`AgentHooks::start_request`](super::AgentHooks::start_request)), reported in
//! `req_obj_path` (R-OPR.0/2). With `send_resp=false` nothing is answered (R-OPR.4).

use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::operate_resp::OperationResult;
use usp_codec::usp_proto::usp::operate_resp::operation_result::{
    CommandFailure, OperationResp, OutputArgs,
};
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{DataModel, DmError, Leaf, OperateOutcome};

use super::error::{self, Op};
use super::{RequestContext, StartedRequest};

/// Answers an Operate; `None` when `send_resp` is false.
pub async fn handle(
    dm: &DataModel,
    ctx: &RequestContext,
    msg_id: &str,
    operate: usp::Operate,
) -> Option<usp::Msg> {
    let resolution = match dm.resolve_str(&operate.command).await {
        Ok(resolution) => resolution,
        Err(failure) => {
            let code = error::code(&failure, Op::Operate);
            return Some(msg::error(msg_id, code, &failure.to_string(), Vec::new()));
        }
    };
    let Leaf::Command(name) = &resolution.leaf else {
        let failure = DmError::NotSupported {
            path: format!("{} (Operate takes a command path)", operate.command),
        };
        let code = error::code(&failure, Op::Operate);
        return Some(msg::error(msg_id, code, &failure.to_string(), Vec::new()));
    };
    let mut operation_results = Vec::with_capacity(resolution.objects.len());
    for object in &resolution.objects {
        let executed_command = format!("{}{name}", object.path);
        let outcome = if ctx.access.can_operate(&executed_command) {
            run(dm, ctx, &operate, object, name, &executed_command).await
        } else {
            let (err_code, err_msg) = error::denied(&executed_command, "operate");
            OperationResp::CmdFailure(CommandFailure { err_code, err_msg })
        };
        operation_results.push(OperationResult {
            executed_command,
            operation_resp: Some(outcome),
        });
    }
    if !operate.send_resp {
        return None;
    }
    Some(msg::response(
        msg_id,
        RespType::OperateResp(usp::OperateResp { operation_results }),
    ))
}

async fn run(
    dm: &DataModel,
    ctx: &RequestContext,
    operate: &usp::Operate,
    object: &usp_dm::ResolvedObject,
    name: &str,
    executed_command: &str,
) -> OperationResp {
    let failed = |(err_code, err_msg): (u32, String)| {
        OperationResp::CmdFailure(CommandFailure { err_code, err_msg })
    };
    let outcome = dm
        .operate(object, name, &operate.command_key, &operate.input_args)
        .await;
    match outcome {
        Ok(OperateOutcome::Done(output_args)) => {
            OperationResp::ReqOutputArgs(OutputArgs { output_args })
        }
        Ok(OperateOutcome::Started(token)) => {
            let provider = match dm.owner_id(&object.supported) {
                Ok(provider) => provider,
                Err(failure) => return failed(error::describe(&failure, Op::Operate)),
            };
            let request = StartedRequest {
                provider,
                token,
                command: executed_command.to_string(),
                command_key: operate.command_key.clone(),
                originator: ctx.controller.clone(),
            };
            match ctx.hooks.start_request(request).await {
                Ok(path) => OperationResp::ReqObjPath(path),
                Err(failure) => failed((failure.code.code(), failure.message)),
            }
        }
        Err(failure) => failed(error::describe(&failure, Op::Operate)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, error_of, operate_resp};
    use super::*;

    async fn operate(
        fx: &Fixture,
        command: &str,
        input: &[(&str, &str)],
        send_resp: bool,
    ) -> Option<usp::Msg> {
        handle(
            &fx.dm,
            &fx.ctx,
            "o",
            usp::Operate {
                command: command.to_string(),
                command_key: "key-1".into(),
                send_resp,
                input_args: input
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        )
        .await
    }

    fn results(msg: Option<usp::Msg>) -> Vec<OperationResult> {
        operate_resp(msg.unwrap_or_else(|| panic!("expected an answer"))).operation_results
    }

    #[tokio::test]
    async fn sync_command_without_outputs_returns_empty_output_args() {
        let fx = Fixture::new().await;
        let results = results(operate(&fx, "Device.Reboot()", &[], true).await);
        assert_eq!(results[0].executed_command, "Device.Reboot()");
        assert_eq!(
            results[0].operation_resp,
            Some(OperationResp::ReqOutputArgs(OutputArgs::default()))
        );
    }

    #[tokio::test]
    async fn search_command_runs_per_match_with_instance_numbers() {
        let fx = Fixture::new().await;
        let one = results(
            operate(
                &fx,
                r#"Device.IP.Interface.[Name=="eth1"].Reset()"#,
                &[],
                true,
            )
            .await,
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].executed_command, "Device.IP.Interface.2.Reset()");
        let Some(OperationResp::ReqOutputArgs(output)) = &one[0].operation_resp else {
            panic!("expected outputs");
        };
        assert_eq!(
            output.output_args.get("Result").map(String::as_str),
            Some("ok")
        );
        let all = results(operate(&fx, "Device.IP.Interface.*.Reset()", &[], true).await);
        assert_eq!(all.len(), 2);
    }

    #[tokio::test]
    async fn async_command_creates_request_row() {
        let fx = Fixture::new().await;
        let results = results(
            operate(
                &fx,
                "Device.ScheduleTimer()",
                &[("DelaySeconds", "5"), ("Unknown", "x")],
                true,
            )
            .await,
        );
        assert_eq!(
            results[0].operation_resp,
            Some(OperationResp::ReqObjPath(
                "Device.LocalAgent.Request.1.".into()
            ))
        );
        let started = fx.hooks.started();
        assert_eq!(started[0].command, "Device.ScheduleTimer()");
        assert_eq!(started[0].command_key, "key-1");
        assert_eq!(started[0].originator, "controller");
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Request.1.Status")
                .as_deref(),
            Some("Active")
        );
        assert_eq!(fx.commit_count(), 0, "Request rows are volatile");
    }

    #[tokio::test]
    async fn missing_mandatory_input_is_cmd_failure_7027() {
        let fx = Fixture::new().await;
        let results = results(operate(&fx, "Device.ScheduleTimer()", &[], true).await);
        let Some(OperationResp::CmdFailure(failure)) = &results[0].operation_resp else {
            panic!("expected a failure");
        };
        assert_eq!(failure.err_code, 7027);
        assert!(fx.hooks.started().is_empty());
    }

    #[tokio::test]
    async fn wrongly_typed_input_is_cmd_failure_7027() {
        let fx = Fixture::new().await;
        let results = results(
            operate(
                &fx,
                "Device.ScheduleTimer()",
                &[("DelaySeconds", "soon")],
                true,
            )
            .await,
        );
        let Some(OperationResp::CmdFailure(failure)) = &results[0].operation_resp else {
            panic!("expected a failure");
        };
        assert_eq!(failure.err_code, 7027);
    }

    #[tokio::test]
    async fn send_resp_false_gets_no_answer_but_runs() {
        let fx = Fixture::new().await;
        assert!(
            operate(
                &fx,
                "Device.ScheduleTimer()",
                &[("DelaySeconds", "5")],
                false
            )
            .await
            .is_none()
        );
        assert_eq!(fx.hooks.started().len(), 1);
    }

    #[tokio::test]
    async fn bad_command_paths_are_errors() {
        let fx = Fixture::new().await;
        let missing = operate(&fx, "Device.Bogus()", &[], true).await;
        assert_eq!(
            error_of(missing.unwrap_or_else(|| panic!("answer"))).err_code,
            7026
        );
        let not_command = operate(&fx, "Device.LocalAgent.", &[], true).await;
        assert_eq!(
            error_of(not_command.unwrap_or_else(|| panic!("answer"))).err_code,
            7026
        );
        let no_instance = operate(&fx, "Device.IP.Interface.9.Reset()", &[], true).await;
        assert_eq!(
            error_of(no_instance.unwrap_or_else(|| panic!("answer"))).err_code,
            7016
        );
    }

    #[tokio::test]
    async fn search_matching_nothing_is_empty_response() {
        let fx = Fixture::new().await;
        let results = results(
            operate(
                &fx,
                r#"Device.IP.Interface.[Type=="Tunnel"].Reset()"#,
                &[],
                true,
            )
            .await,
        );
        assert!(results.is_empty());
    }
}
