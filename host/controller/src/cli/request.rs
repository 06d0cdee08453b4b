//! Turns command-line arguments into USP request Msgs: `Path=value` pairs become Set/Add
//! parameter settings, `Name=value` pairs become command input arguments.

use std::collections::BTreeMap;

use usp_codec::msg;
use usp_proto::usp::{self, request::ReqType};

use super::CliError;

/// Splits `name=value` at the first `=`.
pub fn split_assignment(text: &str) -> Result<(&str, &str), CliError> {
    text.split_once('=')
        .ok_or_else(|| CliError::NotAssignment(text.to_string()))
}

/// A Get of `paths` (`max_depth` 0 = everything below).
pub fn get(msg_id: &str, paths: &[String], max_depth: u32) -> usp::Msg {
    msg::request(
        msg_id,
        ReqType::Get(usp::Get {
            param_paths: paths.to_vec(),
            max_depth,
        }),
    )
}

/// A Set from `Object.Param=value` assignments, grouped per object in first-seen order, or
/// from the two-word form `Object.Param value`.
pub fn set(msg_id: &str, args: &[String], allow_partial: bool) -> Result<usp::Msg, CliError> {
    let pairs: Vec<(String, String)> = match args {
        [path, value] if !path.contains('=') => vec![(path.clone(), value.clone())],
        _ => args
            .iter()
            .map(|arg| split_assignment(arg).map(|(p, v)| (p.to_string(), v.to_string())))
            .collect::<Result<_, CliError>>()?,
    };
    let mut update_objs: Vec<usp::set::UpdateObject> = Vec::new();
    for (path, value) in pairs {
        let Some(dot) = path.rfind('.').filter(|dot| dot + 1 < path.len()) else {
            return Err(CliError::NotParameterPath(path));
        };
        let (object, param) = (&path[..=dot], &path[dot + 1..]);
        let setting = usp::set::UpdateParamSetting {
            param: param.to_string(),
            value,
            required: true,
        };
        match update_objs.iter_mut().find(|obj| obj.obj_path == object) {
            Some(obj) => obj.param_settings.push(setting),
            None => update_objs.push(usp::set::UpdateObject {
                obj_path: object.to_string(),
                param_settings: vec![setting],
            }),
        }
    }
    Ok(msg::request(
        msg_id,
        ReqType::Set(usp::Set {
            allow_partial,
            update_objs,
        }),
    ))
}

/// An Add of one instance to `table` with `Param=value` settings.
pub fn add(
    msg_id: &str,
    table: &str,
    settings: &[String],
    allow_partial: bool,
) -> Result<usp::Msg, CliError> {
    let param_settings = settings
        .iter()
        .map(|arg| {
            let (param, value) = split_assignment(arg)?;
            Ok(usp::add::CreateParamSetting {
                param: param.to_string(),
                value: value.to_string(),
                required: true,
            })
        })
        .collect::<Result<_, CliError>>()?;
    Ok(msg::request(
        msg_id,
        ReqType::Add(usp::Add {
            allow_partial,
            create_objs: vec![usp::add::CreateObject {
                obj_path: table.to_string(),
                param_settings,
            }],
        }),
    ))
}

/// A Delete of `paths`.
pub fn delete(msg_id: &str, paths: &[String], allow_partial: bool) -> usp::Msg {
    msg::request(
        msg_id,
        ReqType::Delete(usp::Delete {
            allow_partial,
            obj_paths: paths.to_vec(),
        }),
    )
}

/// An Operate of `command` with `Name=value` inputs.
pub fn operate(
    msg_id: &str,
    command: &str,
    inputs: &[String],
    command_key: &str,
) -> Result<usp::Msg, CliError> {
    let input_args = inputs
        .iter()
        .map(|arg| split_assignment(arg).map(|(n, v)| (n.to_string(), v.to_string())))
        .collect::<Result<BTreeMap<_, _>, CliError>>()?;
    Ok(msg::request(
        msg_id,
        ReqType::Operate(usp::Operate {
            command: command.to_string(),
            command_key: command_key.to_string(),
            send_resp: true,
            input_args,
        }),
    ))
}

/// A GetInstances of `paths`.
pub fn instances(msg_id: &str, paths: &[String], first_level_only: bool) -> usp::Msg {
    msg::request(
        msg_id,
        ReqType::GetInstances(usp::GetInstances {
            obj_paths: paths.to_vec(),
            first_level_only,
        }),
    )
}

/// A GetSupportedDM of `paths` asking for everything (commands, events, params, unique keys).
pub fn supported_dm(msg_id: &str, paths: &[String], first_level_only: bool) -> usp::Msg {
    msg::request(
        msg_id,
        ReqType::GetSupportedDm(usp::GetSupportedDm {
            obj_paths: paths.to_vec(),
            first_level_only,
            return_commands: true,
            return_events: true,
            return_params: true,
            return_unique_key_sets: true,
        }),
    )
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    fn body(msg: usp::Msg) -> ReqType {
        match msg.body.and_then(|b| b.msg_body) {
            Some(usp::body::MsgBody::Request(req)) => req.req_type.unwrap(),
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn set_groups_assignments_by_object() {
        let args = ["Device.A.1.X=1", "Device.A.1.Y=a=b", "Device.B.Z="].map(String::from);
        let ReqType::Set(set) = body(set("1", &args, false).unwrap()) else {
            panic!("not a Set")
        };
        assert_eq!(set.update_objs.len(), 2);
        assert_eq!(set.update_objs[0].obj_path, "Device.A.1.");
        assert_eq!(set.update_objs[0].param_settings[1].value, "a=b");
        assert_eq!(set.update_objs[1].param_settings[0].param, "Z");
        assert_eq!(set.update_objs[1].param_settings[0].value, "");
    }

    #[test]
    fn set_accepts_path_value_form() {
        let args = ["Device.A.1.X", "hello world"].map(String::from);
        let ReqType::Set(set) = body(set("1", &args, false).unwrap()) else {
            panic!("not a Set")
        };
        assert_eq!(set.update_objs[0].param_settings[0].value, "hello world");
    }

    #[test]
    fn set_rejects_object_path_without_param() {
        let args = ["Device.A.=1".to_string()];
        assert!(set("1", &args, false).is_err());
    }

    #[test]
    fn add_rejects_setting_without_equals() {
        assert!(add("1", "Device.A.", &["Alias".to_string()], false).is_err());
    }
}
