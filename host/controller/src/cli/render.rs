//! Renders the agent's answers: readable text for people, JSON (`--json`) for scripts. Any
//! USP error anywhere in an answer (an Error Msg, a failed path, a failed command) marks the
//! output as failed so uspctl exits non-zero; the error is printed with its code and message.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use usp_codec::UspErrorCode;
use usp_proto::usp::{
    self, add_resp, body::MsgBody, delete_resp, get_supported_dm_resp as gsdm, operate_resp,
    response::RespType, set_resp,
};

/// What to print and whether the answer reports a failure.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Lines for stdout (results).
    pub text: String,
    /// Lines for stderr (USP errors with codes).
    pub errors: String,
    /// The JSON form of the whole answer.
    pub json: Value,
    /// True when any USP error was reported.
    pub failed: bool,
}

impl Rendered {
    fn line(&mut self, line: impl AsRef<str>) {
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }

    fn error(&mut self, context: &str, code: u32, message: &str) {
        self.failed = true;
        let name = UspErrorCode::try_from(code)
            .map(|code| code.default_message())
            .unwrap_or("Unknown error code");
        let context = if context.is_empty() {
            String::new()
        } else {
            format!("{context}: ")
        };
        let _ = writeln!(self.errors, "error {code} ({name}): {context}{message}");
    }
}

fn error_json(code: u32, message: &str) -> Value {
    json!({ "code": code, "message": message })
}

/// Renders any answer Msg.
pub fn render(reply: &usp::Msg) -> Rendered {
    let mut out = Rendered::default();
    match reply.body.as_ref().and_then(|body| body.msg_body.as_ref()) {
        Some(MsgBody::Error(error)) => render_error(&mut out, error),
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(resp),
        })) => match resp {
            RespType::GetResp(resp) => render_get(&mut out, resp),
            RespType::SetResp(resp) => render_set(&mut out, resp),
            RespType::AddResp(resp) => render_add(&mut out, resp),
            RespType::DeleteResp(resp) => render_delete(&mut out, resp),
            RespType::OperateResp(resp) => render_operate(&mut out, resp),
            RespType::GetInstancesResp(resp) => render_instances(&mut out, resp),
            RespType::GetSupportedDmResp(resp) => render_gsdm(&mut out, resp),
            RespType::GetSupportedProtocolResp(resp) => {
                out.line(&resp.agent_supported_protocol_versions);
                out.json = json!({ "versions": resp.agent_supported_protocol_versions });
            }
            other => {
                out.line(format!("{other:?}"));
                out.json = json!({ "response": format!("{other:?}") });
            }
        },
        _ => {
            out.error(
                "",
                UspErrorCode::InternalError.code(),
                "the agent sent an empty answer",
            );
            out.json =
                json!({ "error": error_json(UspErrorCode::InternalError.code(), "empty answer") });
        }
    }
    out
}

fn render_error(out: &mut Rendered, error: &usp::Error) {
    out.error("", error.err_code, &error.err_msg);
    let mut param_errs = Vec::new();
    for param in &error.param_errs {
        out.error(&param.param_path, param.err_code, &param.err_msg);
        param_errs.push(json!({
            "path": param.param_path, "code": param.err_code, "message": param.err_msg
        }));
    }
    out.json = json!({ "error": {
        "code": error.err_code, "message": error.err_msg, "param_errs": param_errs
    }});
}

/// Get: `Path => value` lines (sorted); JSON maps each path to its value.
fn render_get(out: &mut Rendered, resp: &usp::GetResp) {
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    for requested in &resp.req_path_results {
        if requested.err_code != 0 {
            out.error(
                &requested.requested_path,
                requested.err_code,
                &requested.err_msg,
            );
            errors.push(json!({
                "path": requested.requested_path,
                "code": requested.err_code,
                "message": requested.err_msg,
            }));
            continue;
        }
        for resolved in &requested.resolved_path_results {
            for (name, value) in &resolved.result_params {
                values.insert(format!("{}{name}", resolved.resolved_path), value.clone());
            }
        }
    }
    for (path, value) in &values {
        out.line(format!("{path} => {value}"));
    }
    out.json = if errors.is_empty() {
        json!(values)
    } else {
        json!({ "values": values, "errors": errors })
    };
}

fn render_set(out: &mut Rendered, resp: &usp::SetResp) {
    use set_resp::updated_object_result::operation_status::OperStatus;
    let mut results = Vec::new();
    for updated in &resp.updated_obj_results {
        match updated
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperSuccess(success)) => {
                for inst in &success.updated_inst_results {
                    for (param, value) in &inst.updated_params {
                        out.line(format!("{}{param} = {value}", inst.affected_path));
                    }
                    for err in &inst.param_errs {
                        out.error(
                            &format!("{}{}", inst.affected_path, err.param),
                            err.err_code,
                            &err.err_msg,
                        );
                    }
                    results.push(json!({
                        "path": inst.affected_path,
                        "updated": inst.updated_params,
                        "errors": inst.param_errs.iter().map(|e| json!({
                            "param": e.param, "code": e.err_code, "message": e.err_msg
                        })).collect::<Vec<_>>(),
                    }));
                }
            }
            Some(OperStatus::OperFailure(failure)) => {
                out.error(&updated.requested_path, failure.err_code, &failure.err_msg);
                for inst in &failure.updated_inst_failures {
                    for err in &inst.param_errs {
                        out.error(
                            &format!("{}{}", inst.affected_path, err.param),
                            err.err_code,
                            &err.err_msg,
                        );
                    }
                }
                results.push(json!({
                    "path": updated.requested_path,
                    "error": error_json(failure.err_code, &failure.err_msg),
                }));
            }
            None => out.error(
                &updated.requested_path,
                UspErrorCode::InternalError.code(),
                "no status",
            ),
        }
    }
    out.json = json!(results);
}

fn render_add(out: &mut Rendered, resp: &usp::AddResp) {
    use add_resp::created_object_result::operation_status::OperStatus;
    let mut results = Vec::new();
    for created in &resp.created_obj_results {
        match created
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperSuccess(success)) => {
                out.line(&success.instantiated_path);
                for (key, value) in &success.unique_keys {
                    out.line(format!("  {key} = {value}"));
                }
                for err in &success.param_errs {
                    out.error(
                        &format!("{}{}", success.instantiated_path, err.param),
                        err.err_code,
                        &err.err_msg,
                    );
                }
                results.push(json!({
                    "path": success.instantiated_path,
                    "unique_keys": success.unique_keys,
                }));
            }
            Some(OperStatus::OperFailure(failure)) => {
                out.error(&created.requested_path, failure.err_code, &failure.err_msg);
                results.push(json!({
                    "path": created.requested_path,
                    "error": error_json(failure.err_code, &failure.err_msg),
                }));
            }
            None => out.error(
                &created.requested_path,
                UspErrorCode::InternalError.code(),
                "no status",
            ),
        }
    }
    out.json = json!(results);
}

fn render_delete(out: &mut Rendered, resp: &usp::DeleteResp) {
    use delete_resp::deleted_object_result::operation_status::OperStatus;
    let mut results = Vec::new();
    for deleted in &resp.deleted_obj_results {
        match deleted
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperSuccess(success)) => {
                for path in &success.affected_paths {
                    out.line(format!("deleted {path}"));
                }
                for err in &success.unaffected_path_errs {
                    out.error(&err.unaffected_path, err.err_code, &err.err_msg);
                }
                results.push(json!({
                    "path": deleted.requested_path,
                    "deleted": success.affected_paths,
                }));
            }
            Some(OperStatus::OperFailure(failure)) => {
                out.error(&deleted.requested_path, failure.err_code, &failure.err_msg);
                results.push(json!({
                    "path": deleted.requested_path,
                    "error": error_json(failure.err_code, &failure.err_msg),
                }));
            }
            None => out.error(
                &deleted.requested_path,
                UspErrorCode::InternalError.code(),
                "no status",
            ),
        }
    }
    out.json = json!(results);
}

fn render_operate(out: &mut Rendered, resp: &usp::OperateResp) {
    use operate_resp::operation_result::OperationResp;
    let mut results = Vec::new();
    for result in &resp.operation_results {
        let command = &result.executed_command;
        match &result.operation_resp {
            Some(OperationResp::ReqOutputArgs(outputs)) => {
                out.line(format!("{command} done"));
                for (name, value) in &outputs.output_args {
                    out.line(format!("  {name} = {value}"));
                }
                results.push(json!({ "command": command, "output": outputs.output_args }));
            }
            Some(OperationResp::ReqObjPath(request)) => {
                out.line(format!("{command} started: {request}"));
                results.push(json!({ "command": command, "request": request }));
            }
            Some(OperationResp::CmdFailure(failure)) => {
                out.error(command, failure.err_code, &failure.err_msg);
                results.push(json!({
                    "command": command,
                    "error": error_json(failure.err_code, &failure.err_msg),
                }));
            }
            None => out.error(command, UspErrorCode::InternalError.code(), "no result"),
        }
    }
    out.json = json!(results);
}

fn render_instances(out: &mut Rendered, resp: &usp::GetInstancesResp) {
    let mut instances = BTreeMap::new();
    let mut errors = Vec::new();
    for requested in &resp.req_path_results {
        if requested.err_code != 0 {
            out.error(
                &requested.requested_path,
                requested.err_code,
                &requested.err_msg,
            );
            errors.push(json!({
                "path": requested.requested_path,
                "code": requested.err_code,
                "message": requested.err_msg,
            }));
            continue;
        }
        for inst in &requested.curr_insts {
            instances.insert(inst.instantiated_obj_path.clone(), inst.unique_keys.clone());
        }
    }
    for (path, keys) in &instances {
        let keys: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if keys.is_empty() {
            out.line(path);
        } else {
            out.line(format!("{path}  [{}]", keys.join(", ")));
        }
    }
    out.json = if errors.is_empty() {
        json!(instances)
    } else {
        json!({ "instances": instances, "errors": errors })
    };
}

fn param_access(access: i32) -> &'static str {
    match gsdm::ParamAccessType::try_from(access) {
        Ok(gsdm::ParamAccessType::ParamReadWrite) => "rw",
        Ok(gsdm::ParamAccessType::ParamWriteOnly) => "w",
        _ => "r",
    }
}

fn value_type(value_type: i32) -> &'static str {
    use gsdm::ParamValueType as T;
    match T::try_from(value_type) {
        Ok(T::ParamBase64) => "base64",
        Ok(T::ParamBoolean) => "boolean",
        Ok(T::ParamDateTime) => "dateTime",
        Ok(T::ParamDecimal) => "decimal",
        Ok(T::ParamHexBinary) => "hexBinary",
        Ok(T::ParamInt) => "int",
        Ok(T::ParamLong) => "long",
        Ok(T::ParamString) => "string",
        Ok(T::ParamUnsignedInt) => "unsignedInt",
        Ok(T::ParamUnsignedLong) => "unsignedLong",
        _ => "unknown",
    }
}

fn object_access(access: i32) -> &'static str {
    match gsdm::ObjAccessType::try_from(access) {
        Ok(gsdm::ObjAccessType::ObjAddDelete) => "add/delete",
        Ok(gsdm::ObjAccessType::ObjAddOnly) => "add",
        Ok(gsdm::ObjAccessType::ObjDeleteOnly) => "delete",
        _ => "read-only",
    }
}

/// GetSupportedDM: one block per object (access, keys, params with type/access, commands,
/// events).
fn render_gsdm(out: &mut Rendered, resp: &usp::GetSupportedDmResp) {
    let mut objects = Vec::new();
    for requested in &resp.req_obj_results {
        if requested.err_code != 0 {
            out.error(
                &requested.req_obj_path,
                requested.err_code,
                &requested.err_msg,
            );
            objects.push(json!({
                "path": requested.req_obj_path,
                "error": error_json(requested.err_code, &requested.err_msg),
            }));
            continue;
        }
        for object in &requested.supported_objs {
            let mut header = object.supported_obj_path.clone();
            if object.is_multi_instance {
                let _ = write!(header, "  ({})", object_access(object.access));
            }
            for keys in &object.unique_key_sets {
                let _ = write!(header, "  key {{{}}}", keys.key_names.join(", "));
            }
            out.line(header);
            for param in &object.supported_params {
                out.line(format!(
                    "  {:<40} {:<12} {}",
                    param.param_name,
                    value_type(param.value_type),
                    param_access(param.access)
                ));
            }
            for command in &object.supported_commands {
                let kind = match gsdm::CmdType::try_from(command.command_type) {
                    Ok(gsdm::CmdType::CmdAsync) => "async",
                    _ => "sync",
                };
                out.line(format!(
                    "  {} {kind} in({}) out({})",
                    command.command_name,
                    command.input_arg_names.join(", "),
                    command.output_arg_names.join(", ")
                ));
            }
            for event in &object.supported_events {
                out.line(format!(
                    "  {} ({})",
                    event.event_name,
                    event.arg_names.join(", ")
                ));
            }
            objects.push(json!({
                "path": object.supported_obj_path,
                "multi_instance": object.is_multi_instance,
                "access": object_access(object.access),
                "unique_keys": object.unique_key_sets.iter().map(|k| &k.key_names).collect::<Vec<_>>(),
                "params": object.supported_params.iter().map(|p| json!({
                    "name": p.param_name,
                    "type": value_type(p.value_type),
                    "access": param_access(p.access),
                })).collect::<Vec<_>>(),
                "commands": object.supported_commands.iter().map(|c| json!({
                    "name": c.command_name,
                    "async": c.command_type == gsdm::CmdType::CmdAsync as i32,
                    "input": c.input_arg_names,
                    "output": c.output_arg_names,
                })).collect::<Vec<_>>(),
                "events": object.supported_events.iter().map(|e| json!({
                    "name": e.event_name, "args": e.arg_names,
                })).collect::<Vec<_>>(),
            }));
        }
    }
    out.json = json!(objects);
}

#[cfg(test)]
mod tests {
    use super::*;
    use usp_codec::msg;

    #[test]
    fn error_msg_is_a_failure_with_code_and_name() {
        let reply = msg::error(
            "1",
            UspErrorCode::InvalidPath,
            "Device.Nope. is not supported",
            vec![],
        );
        let rendered = render(&reply);
        assert!(rendered.failed);
        assert_eq!(
            rendered.errors,
            "error 7026 (Invalid path): Device.Nope. is not supported\n"
        );
        assert_eq!(rendered.json["error"]["code"], 7026);
    }

    #[test]
    fn get_lists_sorted_path_values() {
        let resp = usp::GetResp {
            req_path_results: vec![usp::get_resp::RequestedPathResult {
                requested_path: "Device.A.".into(),
                resolved_path_results: vec![usp::get_resp::ResolvedPathResult {
                    resolved_path: "Device.A.".into(),
                    result_params: [
                        ("Z".to_string(), "2".to_string()),
                        ("B".to_string(), "1".to_string()),
                    ]
                    .into_iter()
                    .collect(),
                }],
                ..Default::default()
            }],
        };
        let rendered = render(&msg::response("1", RespType::GetResp(resp)));
        assert!(!rendered.failed);
        assert_eq!(rendered.text, "Device.A.B => 1\nDevice.A.Z => 2\n");
        assert_eq!(rendered.json["Device.A.Z"], "2");
    }
}
