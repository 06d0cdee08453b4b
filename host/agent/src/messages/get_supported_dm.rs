//! GetSupportedDM (TR-369 §"GetSupportedDM"), answered from the merged schema of every
//! registered provider, without calling any of them.
//!
//! Paths may use `{i}` or instance numbers, and the final `{i}.` of a table is optional. An
//! object path returns the object and everything below it (`first_level_only`: the object with
//! its details plus its direct children without details); the `return_*` flags choose the
//! details. A parameter, command or event path returns just that element on its object
//! (USP 1.4.1, TP 1.105–1.107). Objects the Controller may not read are unsupported (R-GSP.0).

use usp_codec::msg;
use usp_codec::path::Segment;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::get_supported_dm_resp::{
    CmdType, ObjAccessType, ParamAccessType, ParamValueType, RequestedObjectResult,
    SupportedCommandResult, SupportedEventResult, SupportedObjectResult, SupportedParamResult,
    SupportedUniqueKeySet, ValueChangeType,
};
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{
    CommandDef, DataModel, DmError, EventDef, Leaf, ObjectAccess, ParamAccess, ParamDef, Path,
    ValueChange, ValueType,
};

use super::RequestContext;
use super::error::{self, Op};

/// Answers a GetSupportedDM.
pub fn handle(
    dm: &DataModel,
    ctx: &RequestContext,
    msg_id: &str,
    request: usp::GetSupportedDm,
) -> usp::Msg {
    let req_obj_results = request
        .obj_paths
        .iter()
        .map(|path| match supported(dm, ctx, path, &request) {
            Ok(supported_objs) => RequestedObjectResult {
                req_obj_path: path.clone(),
                err_code: 0,
                err_msg: String::new(),
                data_model_inst_uri: usp_dm::tr181::data_model_uri().to_string(),
                supported_objs,
            },
            Err(failure) => {
                let (err_code, err_msg) = error::describe(&failure, Op::GetSupportedDm);
                RequestedObjectResult {
                    req_obj_path: path.clone(),
                    err_code,
                    err_msg,
                    data_model_inst_uri: String::new(),
                    supported_objs: Vec::new(),
                }
            }
        })
        .collect();
    msg::response(
        msg_id,
        RespType::GetSupportedDmResp(usp::GetSupportedDmResp { req_obj_results }),
    )
}

/// The supported object path a GSDM path names (`Device.X.1.Y.` → `Device.X.{i}.Y.`).
fn object_path(dm: &DataModel, text: &str, path: &Path) -> Result<String, DmError> {
    let unsupported = || DmError::NotSupported {
        path: text.to_string(),
    };
    let registry = dm.registry();
    let mut current = String::new();
    let mut at_table = false;
    for segment in &path.segments {
        match segment {
            Segment::Name(name) => {
                let object = format!("{current}{name}.");
                let table = format!("{object}{{i}}.");
                if registry.knows_object(&object) && !at_table {
                    current = object;
                    at_table = false;
                } else if registry.object(&table).is_some() && !at_table {
                    current = table;
                    at_table = true;
                } else {
                    return Err(unsupported());
                }
            }
            Segment::Instance(_) | Segment::Placeholder if at_table => at_table = false,
            _ => return Err(unsupported()),
        }
    }
    if current.is_empty() {
        return Err(unsupported());
    }
    Ok(current)
}

fn supported(
    dm: &DataModel,
    ctx: &RequestContext,
    text: &str,
    request: &usp::GetSupportedDm,
) -> Result<Vec<SupportedObjectResult>, DmError> {
    let path = Path::parse_supported(text)?;
    let object = object_path(dm, text, &path)?;
    if !ctx.access.can_read_obj(&object) {
        return Err(DmError::NotSupported {
            path: text.to_string(),
        });
    }
    let def = dm.object_def(&object);
    let element = |found: bool| {
        if found {
            Ok(())
        } else {
            Err(DmError::NotSupported {
                path: text.to_string(),
            })
        }
    };
    match &path.leaf {
        Leaf::Param(name) => {
            let param = def.and_then(|def| def.param(name));
            element(param.is_some() && ctx.access.can_read_param(&format!("{object}{name}")))?;
            let mut result = header(dm, &object);
            result.supported_params = param.map(param_result).into_iter().collect();
            Ok(vec![result])
        }
        Leaf::Command(name) => {
            let command = def.and_then(|def| def.command(name));
            element(
                command.is_some()
                    && ctx
                        .access
                        .can_read_command_event(&format!("{object}{name}")),
            )?;
            let mut result = header(dm, &object);
            result.supported_commands = command.map(command_result).into_iter().collect();
            Ok(vec![result])
        }
        Leaf::Event(name) => {
            let event = def.and_then(|def| def.event(name));
            element(
                event.is_some()
                    && ctx
                        .access
                        .can_read_command_event(&format!("{object}{name}")),
            )?;
            let mut result = header(dm, &object);
            result.supported_events = event.map(event_result).into_iter().collect();
            Ok(vec![result])
        }
        Leaf::Object => {
            let mut results = vec![detailed(dm, ctx, &object, request)];
            let mut stack: Vec<String> = dm
                .registry()
                .children(&object)
                .iter()
                .rev()
                .cloned()
                .collect();
            while let Some(child) = stack.pop() {
                if !ctx.access.can_read_obj(&child) {
                    continue;
                }
                if request.first_level_only {
                    results.push(header(dm, &child));
                    continue;
                }
                results.push(detailed(dm, ctx, &child, request));
                stack.extend(dm.registry().children(&child).iter().rev().cloned());
            }
            Ok(results)
        }
    }
}

/// Path, access and multi-instance flag only.
fn header(dm: &DataModel, object: &str) -> SupportedObjectResult {
    let def = dm.object_def(object);
    let access = match def.map(|def| (def.multi_instance, def.access)) {
        Some((true, ObjectAccess::AddDelete)) => ObjAccessType::ObjAddDelete,
        Some((true, ObjectAccess::AddOnly)) => ObjAccessType::ObjAddOnly,
        Some((true, ObjectAccess::DeleteOnly)) => ObjAccessType::ObjDeleteOnly,
        _ => ObjAccessType::ObjReadOnly,
    };
    SupportedObjectResult {
        supported_obj_path: object.to_string(),
        access: access as i32,
        is_multi_instance: def.is_some_and(|def| def.multi_instance),
        ..SupportedObjectResult::default()
    }
}

fn detailed(
    dm: &DataModel,
    ctx: &RequestContext,
    object: &str,
    request: &usp::GetSupportedDm,
) -> SupportedObjectResult {
    let mut result = header(dm, object);
    let Some(def) = dm.object_def(object) else {
        return result;
    };
    if request.return_params {
        result.supported_params = def
            .params
            .iter()
            .filter(|param| {
                ctx.access
                    .can_read_param(&format!("{object}{}", param.name))
            })
            .map(param_result)
            .collect();
    }
    if request.return_commands {
        result.supported_commands = def
            .commands
            .iter()
            .filter(|command| {
                ctx.access
                    .can_read_command_event(&format!("{object}{}", command.name))
            })
            .map(command_result)
            .collect();
    }
    if request.return_events {
        result.supported_events = def
            .events
            .iter()
            .filter(|event| {
                ctx.access
                    .can_read_command_event(&format!("{object}{}", event.name))
            })
            .map(event_result)
            .collect();
    }
    if request.return_unique_key_sets {
        result.unique_key_sets = def
            .unique_keys
            .iter()
            .map(|key| SupportedUniqueKeySet {
                key_names: key.clone(),
            })
            .collect();
    }
    result
}

fn param_result(param: &ParamDef) -> SupportedParamResult {
    let access = match param.access {
        ParamAccess::ReadOnly => ParamAccessType::ParamReadOnly,
        // GSDM has no write-once value; such parameters are writable (digest §3.8).
        ParamAccess::ReadWrite | ParamAccess::WriteOnceReadOnly => ParamAccessType::ParamReadWrite,
        ParamAccess::WriteOnly => ParamAccessType::ParamWriteOnly,
    };
    let value_type = match param.value_type {
        ValueType::Base64 => ParamValueType::ParamBase64,
        ValueType::Boolean => ParamValueType::ParamBoolean,
        ValueType::DateTime => ParamValueType::ParamDateTime,
        ValueType::Decimal => ParamValueType::ParamDecimal,
        ValueType::HexBinary => ParamValueType::ParamHexBinary,
        ValueType::Int => ParamValueType::ParamInt,
        ValueType::Long => ParamValueType::ParamLong,
        ValueType::String => ParamValueType::ParamString,
        ValueType::UnsignedInt => ParamValueType::ParamUnsignedInt,
        ValueType::UnsignedLong => ParamValueType::ParamUnsignedLong,
    };
    let value_change = match param.value_change {
        ValueChange::Allowed => ValueChangeType::ValueChangeAllowed,
        ValueChange::WillIgnore => ValueChangeType::ValueChangeWillIgnore,
    };
    SupportedParamResult {
        param_name: param.name.clone(),
        access: access as i32,
        value_type: value_type as i32,
        value_change: value_change as i32,
    }
}

fn command_result(command: &CommandDef) -> SupportedCommandResult {
    let command_type = if command.is_async {
        CmdType::CmdAsync
    } else {
        CmdType::CmdSync
    };
    SupportedCommandResult {
        command_name: command.name.clone(),
        input_arg_names: command.input.iter().map(|arg| arg.name.clone()).collect(),
        output_arg_names: command.output.iter().map(|arg| arg.name.clone()).collect(),
        command_type: command_type as i32,
    }
}

fn event_result(event: &EventDef) -> SupportedEventResult {
    SupportedEventResult {
        event_name: event.name.clone(),
        arg_names: event.args.iter().map(|arg| arg.name.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, gsdm_resp};
    use super::*;

    fn gsdm(fx: &Fixture, paths: &[&str], first_level_only: bool) -> usp::GetSupportedDmResp {
        gsdm_resp(handle(
            &fx.dm,
            &fx.ctx,
            "m",
            usp::GetSupportedDm {
                obj_paths: paths.iter().map(|p| p.to_string()).collect(),
                first_level_only,
                return_commands: true,
                return_events: true,
                return_params: true,
                return_unique_key_sets: true,
            },
        ))
    }

    fn find<'a>(result: &'a RequestedObjectResult, path: &str) -> &'a SupportedObjectResult {
        result
            .supported_objs
            .iter()
            .find(|object| object.supported_obj_path == path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }

    #[tokio::test]
    async fn full_tree_has_params_commands_events_and_keys() {
        let fx = Fixture::new().await;
        let resp = gsdm(&fx, &["Device."], false);
        let result = &resp.req_obj_results[0];
        assert_eq!(result.err_code, 0);
        assert_eq!(result.data_model_inst_uri, usp_dm::tr181::data_model_uri());
        let device = find(result, "Device.");
        let timer = device
            .supported_commands
            .iter()
            .find(|c| c.command_name == "ScheduleTimer()")
            .unwrap_or_else(|| panic!("ScheduleTimer() missing"));
        assert_eq!(timer.command_type, CmdType::CmdAsync as i32);
        assert_eq!(timer.input_arg_names, ["DelaySeconds"]);
        assert_eq!(device.supported_events[0].event_name, "Boot!");
        let subscription = find(result, "Device.LocalAgent.Subscription.{i}.");
        assert!(subscription.is_multi_instance);
        assert_eq!(subscription.access, ObjAccessType::ObjAddDelete as i32);
        let keys: Vec<Vec<String>> = subscription
            .unique_key_sets
            .iter()
            .map(|k| k.key_names.clone())
            .collect();
        assert_eq!(
            keys,
            [
                vec!["Alias".to_string()],
                vec!["Recipient".to_string(), "ID".to_string()]
            ]
        );
        let alias = subscription
            .supported_params
            .iter()
            .find(|p| p.param_name == "Alias")
            .unwrap_or_else(|| panic!("Alias"));
        assert_eq!(alias.access, ParamAccessType::ParamReadWrite as i32);
        let enable = subscription
            .supported_params
            .iter()
            .find(|p| p.param_name == "Enable")
            .unwrap_or_else(|| panic!("Enable"));
        assert_eq!(enable.value_type, ParamValueType::ParamBoolean as i32);
        assert_eq!(
            enable.value_change,
            ValueChangeType::ValueChangeAllowed as i32
        );
        assert!(
            result
                .supported_objs
                .iter()
                .any(|o| o.supported_obj_path == "Device.WiFi.SSID.{i}."),
            "plugin subtree"
        );
    }

    #[tokio::test]
    async fn first_level_only_lists_children_without_details() {
        let fx = Fixture::new().await;
        let resp = gsdm(&fx, &["Device.LocalAgent."], true);
        let paths: Vec<&str> = resp.req_obj_results[0]
            .supported_objs
            .iter()
            .map(|o| o.supported_obj_path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "Device.LocalAgent.",
                "Device.LocalAgent.Controller.{i}.",
                "Device.LocalAgent.Request.{i}.",
                "Device.LocalAgent.Subscription.{i}."
            ]
        );
        assert!(
            !resp.req_obj_results[0].supported_objs[0]
                .supported_params
                .is_empty()
        );
        assert!(
            resp.req_obj_results[0].supported_objs[1]
                .supported_params
                .is_empty()
        );
    }

    #[tokio::test]
    async fn table_path_forms_are_equivalent() {
        let fx = Fixture::new().await;
        let resp = gsdm(
            &fx,
            &[
                "Device.LocalAgent.Controller.",
                "Device.LocalAgent.Controller.{i}.",
                "Device.LocalAgent.Controller.1.MTP.",
            ],
            true,
        );
        assert_eq!(
            resp.req_obj_results[0].supported_objs[0].supported_obj_path,
            "Device.LocalAgent.Controller.{i}."
        );
        assert_eq!(
            resp.req_obj_results[1].supported_objs[0].supported_obj_path,
            "Device.LocalAgent.Controller.{i}."
        );
        assert_eq!(
            resp.req_obj_results[2].supported_objs[0].supported_obj_path,
            "Device.LocalAgent.Controller.{i}.MTP.{i}."
        );
    }

    #[tokio::test]
    async fn element_paths_return_only_that_element() {
        let fx = Fixture::new().await;
        let resp = gsdm(
            &fx,
            &[
                "Device.Reboot()",
                "Device.Boot!",
                "Device.LocalAgent.EndpointID",
            ],
            false,
        );
        let reboot = &resp.req_obj_results[0].supported_objs[0];
        assert_eq!(reboot.supported_commands.len(), 1);
        assert!(reboot.supported_params.is_empty() && reboot.supported_events.is_empty());
        let boot = &resp.req_obj_results[1].supported_objs[0];
        assert_eq!(boot.supported_events[0].arg_names, ["CommandKey", "Cause"]);
        assert!(boot.supported_commands.is_empty());
        let param = &resp.req_obj_results[2].supported_objs[0];
        assert_eq!(param.supported_obj_path, "Device.LocalAgent.");
        assert_eq!(param.supported_params.len(), 1);
    }

    #[tokio::test]
    async fn unknown_paths_report_7026_and_bad_syntax_7008() {
        let fx = Fixture::new().await;
        let resp = gsdm(
            &fx,
            &[
                "Device.Nope.",
                "Device.LocalAgent.Nope",
                "Device.LocalAgent.[x==1].",
            ],
            false,
        );
        let codes: Vec<u32> = resp.req_obj_results.iter().map(|r| r.err_code).collect();
        assert_eq!(codes, [7026, 7026, 7008]);
    }
}
