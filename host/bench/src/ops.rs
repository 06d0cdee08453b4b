//! The requests a load run sends, parsed from `--op` specs:
//!
//! | spec | request |
//! |---|---|
//! | `get:PATH[,PATH…]` | Get of the paths |
//! | `set:OBJ.PARAM=VALUE[;OBJ.PARAM=VALUE…]` | one Set; parameters of one object share an UpdateObject |
//! | `gsdm:PATH[,PATH…]` | GetSupportedDM with params, commands and events |
//! | `instances:PATH[,PATH…]` | GetInstances |
//! | `operate:COMMAND()[;ARG=VALUE…]` | a synchronous Operate (`send_resp` true) |
//!
//! A run cycles through its ops in order, so repeating an op weights the mix.

use anyhow::{Context, bail};
use usp_codec::usp_proto::usp::{self, body::MsgBody, request::ReqType, response::RespType, set};

/// One request template.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// The spec it was parsed from, for reports.
    pub spec: String,
    req: ReqType,
}

impl Op {
    /// Parses one `--op` spec.
    pub fn parse(spec: &str) -> anyhow::Result<Op> {
        let (kind, rest) = spec
            .split_once(':')
            .with_context(|| format!("op {spec:?} has no KIND: prefix"))?;
        let list = |sep: char| -> Vec<String> {
            rest.split(sep)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let req = match kind {
            "get" => ReqType::Get(usp::Get {
                param_paths: list(','),
                max_depth: 0,
            }),
            "gsdm" => ReqType::GetSupportedDm(usp::GetSupportedDm {
                obj_paths: list(','),
                first_level_only: false,
                return_commands: true,
                return_events: true,
                return_params: true,
                return_unique_key_sets: true,
            }),
            "instances" => ReqType::GetInstances(usp::GetInstances {
                obj_paths: list(','),
                first_level_only: false,
            }),
            "set" => ReqType::Set(parse_set(&list(';'))?),
            "operate" => {
                let items = list(';');
                let Some((command, args)) = items.split_first() else {
                    bail!("op {spec:?} names no command");
                };
                let input_args = args
                    .iter()
                    .map(|arg| {
                        arg.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .with_context(|| format!("argument {arg:?} is not NAME=VALUE"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                ReqType::Operate(usp::Operate {
                    command: command.clone(),
                    command_key: "usp-bench".to_string(),
                    send_resp: true,
                    input_args,
                })
            }
            other => bail!("unknown op kind {other:?} (get, set, gsdm, instances, operate)"),
        };
        if empty(&req) {
            bail!("op {spec:?} names no path");
        }
        Ok(Op {
            spec: spec.to_string(),
            req,
        })
    }

    /// The request body.
    pub fn request(&self) -> ReqType {
        self.req.clone()
    }
}

fn empty(req: &ReqType) -> bool {
    match req {
        ReqType::Get(get) => get.param_paths.is_empty(),
        ReqType::GetSupportedDm(gsdm) => gsdm.obj_paths.is_empty(),
        ReqType::GetInstances(gi) => gi.obj_paths.is_empty(),
        ReqType::Set(s) => s.update_objs.is_empty(),
        ReqType::Operate(op) => op.command.is_empty(),
        _ => false,
    }
}

/// `OBJ.PARAM=VALUE` items into one Set; items sharing `OBJ.` share an UpdateObject.
fn parse_set(items: &[String]) -> anyhow::Result<usp::Set> {
    let mut update_objs: Vec<set::UpdateObject> = Vec::new();
    for item in items {
        let (path, value) = item
            .split_once('=')
            .with_context(|| format!("set item {item:?} is not PATH=VALUE"))?;
        let (obj, param) = path
            .rsplit_once('.')
            .filter(|(obj, param)| !obj.is_empty() && !param.is_empty())
            .with_context(|| format!("set item {item:?} does not name OBJECT.PARAM"))?;
        let obj_path = format!("{obj}.");
        let setting = set::UpdateParamSetting {
            param: param.to_string(),
            value: value.to_string(),
            required: true,
        };
        match update_objs.iter_mut().find(|u| u.obj_path == obj_path) {
            Some(update) => update.param_settings.push(setting),
            None => update_objs.push(set::UpdateObject {
                obj_path,
                param_settings: vec![setting],
            }),
        }
    }
    Ok(usp::Set {
        allow_partial: false,
        update_objs,
    })
}

/// Whether an answer reports success: a response, with no per-path error inside.
pub fn succeeded(answer: &usp::Msg) -> bool {
    let Some(body) = answer.body.as_ref().and_then(|b| b.msg_body.as_ref()) else {
        return false;
    };
    let MsgBody::Response(usp::Response {
        resp_type: Some(resp),
    }) = body
    else {
        return false;
    };
    match resp {
        RespType::GetResp(r) => r.req_path_results.iter().all(|p| p.err_code == 0),
        RespType::GetSupportedDmResp(r) => r.req_obj_results.iter().all(|p| p.err_code == 0),
        RespType::GetInstancesResp(r) => r.req_path_results.iter().all(|p| p.err_code == 0),
        RespType::SetResp(r) => r.updated_obj_results.iter().all(|o| {
            matches!(
                o.oper_status.as_ref().and_then(|s| s.oper_status.as_ref()),
                Some(
                    usp::set_resp::updated_object_result::operation_status::OperStatus::OperSuccess(
                        _
                    )
                )
            )
        }),
        RespType::OperateResp(r) => r.operation_results.iter().all(|o| {
            !matches!(
                o.operation_resp,
                Some(usp::operate_resp::operation_result::OperationResp::CmdFailure(_)) | None
            )
        }),
        _ => true,
    }
}

/// A one-line description of a failed answer, for the first-error report.
pub fn describe_failure(answer: &usp::Msg) -> String {
    match answer.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
        Some(MsgBody::Error(err)) => format!("Error {}: {}", err.err_code, err.err_msg),
        _ => format!("{answer:?}").chars().take(400).collect(),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn set_groups_params_by_object() {
        let op = Op::parse("set:Device.A.1.X=1;Device.A.1.Y=2;Device.B.Z=3").unwrap();
        let ReqType::Set(set) = op.request() else {
            panic!("not a Set");
        };
        assert_eq!(set.update_objs.len(), 2);
        assert_eq!(set.update_objs[0].obj_path, "Device.A.1.");
        assert_eq!(set.update_objs[0].param_settings.len(), 2);
        assert_eq!(set.update_objs[1].param_settings[0].param, "Z");
    }

    #[test]
    fn get_takes_a_comma_separated_list() {
        let op = Op::parse("get:Device.DeviceInfo.,Device.LocalAgent.EndpointID").unwrap();
        let ReqType::Get(get) = op.request() else {
            panic!("not a Get");
        };
        assert_eq!(get.param_paths.len(), 2);
    }

    #[test]
    fn operate_takes_input_arguments() {
        let op = Op::parse("operate:Device.X.Do();A=1;B=two").unwrap();
        let ReqType::Operate(operate) = op.request() else {
            panic!("not an Operate");
        };
        assert_eq!(operate.command, "Device.X.Do()");
        assert_eq!(operate.input_args.get("B").map(String::as_str), Some("two"));
    }

    #[test]
    fn malformed_specs_are_refused() {
        assert!(Op::parse("get").is_err());
        assert!(Op::parse("get:").is_err());
        assert!(Op::parse("set:NoDot=1").is_err());
        assert!(Op::parse("set:Device.X").is_err());
        assert!(Op::parse("frobnicate:Device.").is_err());
    }

    #[test]
    fn error_answer_is_a_failure() {
        let msg = usp_codec::msg::error("1", usp_codec::UspErrorCode::InternalError, "x", vec![]);
        assert!(!succeeded(&msg));
        assert!(describe_failure(&msg).starts_with("Error 7003"));
    }
}
