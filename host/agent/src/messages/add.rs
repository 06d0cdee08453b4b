//! Add (TR-369 §"Add"), with the outcome matrix of digest §3.3:
//! - `obj_path` names a table; a search in a parent segment may match several tables, each
//!   gets its own `CreatedObjectResult` with the same `requested_path` (1.3+);
//! - unique-key parameters are always treated as required; values the Controller may not give
//!   (read-only) fail with 7013 and go through the required logic (TP 2.25/2.26);
//! - a non-required failure is listed in `oper_success.param_errs` and left out (R-ADD.4);
//! - `allow_partial=false`: any failed `CreateObject` → Error with `param_errs`, nothing
//!   created (R-ADD.1); `allow_partial=true`: each `CreateObject` is its own transaction.
//! - the response carries the instance's readable unique keys, including generated ones
//!   (R-ADD.5/6).

use std::collections::BTreeMap;

use usp_codec::UspErrorCode;
use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::add::CreateObject;
use usp_codec::usp_proto::usp::add_resp::created_object_result::OperationStatus;
use usp_codec::usp_proto::usp::add_resp::created_object_result::operation_status::{
    OperStatus, OperationFailure, OperationSuccess,
};
use usp_codec::usp_proto::usp::add_resp::{CreatedObjectResult, ParameterError};
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{DataModel, DmError, DmTransaction, Leaf, ParamValues, ReadRequest, ResolvedObject};

use super::RequestContext;
use super::error::{self, Op};

/// One instance staged in the transaction.
struct Created {
    instance: ResolvedObject,
    param_errs: Vec<ParameterError>,
}

/// Why one `CreateObject` failed: the first error, and every failed parameter (full paths)
/// for the Error message of `allow_partial=false`.
struct Failure {
    code: u32,
    message: String,
    params: Vec<usp::error::ParamError>,
}

impl Failure {
    fn path(obj_path: &str, failure: &DmError) -> Self {
        let (code, message) = error::describe(failure, Op::Add);
        Failure {
            code,
            message: message.clone(),
            params: vec![error::param_error(obj_path, code, message)],
        }
    }
}

/// Answers an Add.
pub async fn handle(dm: &DataModel, ctx: &RequestContext, msg_id: &str, add: usp::Add) -> usp::Msg {
    let mut results = Vec::with_capacity(add.create_objs.len());
    if add.allow_partial {
        for create in &add.create_objs {
            let mut tx = dm.begin();
            let outcome = match stage(dm, ctx, &mut tx, create).await {
                Ok(created) => match tx.commit().await {
                    Ok(_) => Ok(created),
                    Err(failure) => Err(Failure::path(&create.obj_path, &failure)),
                },
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(created) => results.extend(success(dm, ctx, create, created).await),
                Err(failure) => results.push(CreatedObjectResult {
                    requested_path: create.obj_path.clone(),
                    oper_status: Some(OperationStatus {
                        oper_status: Some(OperStatus::OperFailure(OperationFailure {
                            err_code: failure.code,
                            err_msg: failure.message,
                        })),
                    }),
                }),
            }
        }
    } else {
        let mut tx = dm.begin();
        let mut staged = Vec::with_capacity(add.create_objs.len());
        let mut param_errs = Vec::new();
        let mut first = None;
        for create in &add.create_objs {
            match stage(dm, ctx, &mut tx, create).await {
                Ok(created) => staged.push(created),
                Err(failure) => {
                    first.get_or_insert(failure.message);
                    param_errs.extend(failure.params);
                }
            }
        }
        if !param_errs.is_empty() {
            drop(tx);
            let message = format!(
                "Add failed, nothing was created: {}",
                first.unwrap_or_default()
            );
            return error::with_params(
                msg_id,
                UspErrorCode::RequiredParamFailed,
                &message,
                param_errs,
            );
        }
        if let Err(failure) = tx.commit().await {
            let code = error::code(&failure, Op::Add);
            return msg::error(msg_id, code, &failure.to_string(), Vec::new());
        }
        for (create, created) in add.create_objs.iter().zip(staged) {
            results.extend(success(dm, ctx, create, created).await);
        }
    }
    msg::response(
        msg_id,
        RespType::AddResp(usp::AddResp {
            created_obj_results: results,
        }),
    )
}

/// Stages one `CreateObject` in `tx`.
async fn stage(
    dm: &DataModel,
    ctx: &RequestContext,
    tx: &mut DmTransaction<'_>,
    create: &CreateObject,
) -> Result<Vec<Created>, Failure> {
    let resolution = dm
        .resolve_str(&create.obj_path)
        .await
        .map_err(|failure| Failure::path(&create.obj_path, &failure))?;
    if resolution.leaf != Leaf::Object {
        return Err(Failure::path(
            &create.obj_path,
            &DmError::NotATable {
                path: create.obj_path.clone(),
            },
        ));
    }
    if resolution.objects.is_empty() {
        // A search in a parent segment matched nothing: there is no table to create in.
        return Err(Failure::path(
            &create.obj_path,
            &DmError::NoSuchObject {
                path: create.obj_path.clone(),
            },
        ));
    }
    let mut created = Vec::with_capacity(resolution.objects.len());
    for table in &resolution.objects {
        if !table.table {
            return Err(Failure::path(
                &create.obj_path,
                &DmError::NotATable {
                    path: table.path.clone(),
                },
            ));
        }
        let Some(def) = dm.object_def(&table.supported) else {
            return Err(Failure::path(
                &create.obj_path,
                &DmError::NotSupported {
                    path: table.path.clone(),
                },
            ));
        };
        if !def.access.can_add() {
            return Err(Failure::path(
                &create.obj_path,
                &DmError::NotCreatable {
                    path: table.path.clone(),
                },
            ));
        }
        if !ctx.access.can_add(&table.path) {
            let (code, message) = error::denied(&table.path, "add");
            return Err(Failure {
                code,
                message: message.clone(),
                params: vec![error::param_error(&create.obj_path, code, message)],
            });
        }
        let keys: Vec<&String> = def.unique_keys.iter().flatten().collect();
        let instance_like = ResolvedObject::object(&table.path, &table.supported);
        let mut params = ParamValues::new();
        let mut param_errs = Vec::new();
        let mut required_failure = None;
        for setting in &create.param_settings {
            let path = format!("{}{}", table.path, setting.param);
            let checked = if ctx.access.can_write_param(&path) {
                dm.check_write(&instance_like, &setting.param, &setting.value)
                    .map_err(|failure| error::describe(&failure, Op::Add))
            } else {
                Err(error::denied(&path, "write"))
            };
            match checked {
                Ok(value) => {
                    params.insert(setting.param.clone(), value);
                }
                Err((err_code, err_msg)) => {
                    let required = setting.required || keys.contains(&&setting.param);
                    if required && required_failure.is_none() {
                        required_failure = Some((err_code, err_msg.clone()));
                    }
                    param_errs.push(ParameterError {
                        param: setting.param.clone(),
                        err_code,
                        err_msg,
                    });
                }
            }
        }
        if let Some((code, message)) = required_failure {
            return Err(Failure {
                code,
                message,
                params: param_errs
                    .into_iter()
                    .map(|failed| {
                        error::param_error(
                            format!("{}{}", table.path, failed.param),
                            failed.err_code,
                            failed.err_msg,
                        )
                    })
                    .collect(),
            });
        }
        ctx.hooks.fill_add(ctx, table, &mut params);
        let number = tx
            .add(table, &params)
            .await
            .map_err(|failure| Failure::path(&create.obj_path, &failure))?;
        created.push(Created {
            instance: ResolvedObject::object(format!("{}{number}.", table.path), &table.supported),
            param_errs,
        });
    }
    Ok(created)
}

/// The success results of one committed `CreateObject`, with the new instances' unique keys.
async fn success(
    dm: &DataModel,
    ctx: &RequestContext,
    create: &CreateObject,
    created: Vec<Created>,
) -> Vec<CreatedObjectResult> {
    let requests: Vec<ReadRequest> = created
        .iter()
        .map(|entry| ReadRequest {
            object: entry.instance.path.clone(),
            supported: entry.instance.supported.clone(),
            params: dm
                .object_def(&entry.instance.supported)
                .map(|def| def.unique_keys.iter().flatten().cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    let answers = dm.read(&requests).await;
    created
        .into_iter()
        .zip(answers)
        .map(|(entry, keys)| {
            let unique_keys: BTreeMap<String, String> = keys
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| {
                    ctx.access
                        .can_read_param(&format!("{}{name}", entry.instance.path))
                })
                .collect();
            CreatedObjectResult {
                requested_path: create.obj_path.clone(),
                oper_status: Some(OperationStatus {
                    oper_status: Some(OperStatus::OperSuccess(OperationSuccess {
                        instantiated_path: entry.instance.path,
                        param_errs: entry.param_errs,
                        unique_keys,
                    })),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, add_resp, error_of};
    use super::*;
    use usp_codec::usp_proto::usp::add::CreateParamSetting;

    fn create(path: &str, params: &[(&str, &str, bool)]) -> CreateObject {
        CreateObject {
            obj_path: path.to_string(),
            param_settings: params
                .iter()
                .map(|(param, value, required)| CreateParamSetting {
                    param: param.to_string(),
                    value: value.to_string(),
                    required: *required,
                })
                .collect(),
        }
    }

    async fn add(fx: &Fixture, allow_partial: bool, creates: Vec<CreateObject>) -> usp::Msg {
        handle(
            &fx.dm,
            &fx.ctx,
            "a",
            usp::Add {
                allow_partial,
                create_objs: creates,
            },
        )
        .await
    }

    fn success(result: &CreatedObjectResult) -> &OperationSuccess {
        match result
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperSuccess(success)) => success,
            other => panic!("expected success, got {other:?}"),
        }
    }

    fn failure(result: &CreatedObjectResult) -> &OperationFailure {
        match result
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperFailure(failure)) => failure,
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn add_subscription_returns_generated_and_filled_keys() {
        let fx = Fixture::new().await;
        let resp = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Subscription.",
                    &[
                        ("Enable", "true", true),
                        ("ID", "sub-2", true),
                        ("NotifType", "ValueChange", true),
                        ("ReferenceList", "Device.LocalAgent.SoftwareVersion", true),
                    ],
                )],
            )
            .await,
        );
        let done = success(&resp.created_obj_results[0]);
        assert_eq!(done.instantiated_path, "Device.LocalAgent.Subscription.2.");
        assert!(done.param_errs.is_empty());
        assert_eq!(
            done.unique_keys.get("Alias").map(String::as_str),
            Some("cpe-2")
        );
        assert_eq!(
            done.unique_keys.get("ID").map(String::as_str),
            Some("sub-2")
        );
        assert_eq!(
            done.unique_keys.get("Recipient").map(String::as_str),
            Some("controller")
        );
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Subscription.2.Enable")
                .as_deref(),
            Some("true")
        );
        assert_eq!(fx.commit_count(), 1);
    }

    #[tokio::test]
    async fn r_add_5_add_subscription_without_id_gets_a_generated_id() {
        let fx = Fixture::new().await;
        let resp = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Subscription.",
                    &[
                        ("NotifType", "ValueChange", true),
                        ("ReferenceList", "Device.LocalAgent.SoftwareVersion", true),
                    ],
                )],
            )
            .await,
        );
        let done = success(&resp.created_obj_results[0]);
        let id = done.unique_keys.get("ID").cloned().unwrap_or_default();
        assert!(!id.is_empty(), "{done:?}");
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Subscription.2.ID")
                .as_deref(),
            Some(id.as_str())
        );
        assert_eq!(
            done.unique_keys.get("Alias").map(String::as_str),
            Some("cpe-2")
        );
    }

    #[tokio::test]
    async fn add_with_an_invalid_alias_is_7012_and_creates_nothing() {
        let fx = Fixture::new().await;
        for alias in ["", "9lives", "-x"] {
            let error = error_of(
                add(
                    &fx,
                    false,
                    vec![create(
                        "Device.LocalAgent.Controller.",
                        &[("EndpointID", "c2", true), ("Alias", alias, false)],
                    )],
                )
                .await,
            );
            // Alias is a unique key, so it is required whatever the Controller says.
            assert_eq!(error.err_code, 7012, "{alias:?}");
            assert_eq!(
                error.param_errs[0].param_path,
                "Device.LocalAgent.Controller.Alias"
            );
        }
        assert_eq!(fx.commit_count(), 0);
        let resp = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Controller.",
                    &[("EndpointID", "c2", true), ("Alias", "wan", true)],
                )],
            )
            .await,
        );
        assert_eq!(
            success(&resp.created_obj_results[0])
                .unique_keys
                .get("Alias")
                .map(String::as_str),
            Some("wan")
        );
    }

    #[tokio::test]
    async fn add_with_a_read_only_param_reports_7013_required_or_not() {
        // Digest §3.3 (TP-469 2.25/2.26 for permissions): an included non-writable parameter
        // goes through the required logic: required → Error; not required → listed in
        // param_errs and left out, the instance is created.
        let fx = Fixture::new().await;
        let error = error_of(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Subscription.",
                    &[("ID", "s2", true), ("Recipient", "someone", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7013);
        let resp = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.IP.Interface.",
                    &[("Name", "eth9", true), ("Status", "Up", false)],
                )],
            )
            .await,
        );
        let done = success(&resp.created_obj_results[0]);
        assert_eq!(done.param_errs.len(), 1);
        assert_eq!(done.param_errs[0].param, "Status");
        assert_eq!(done.param_errs[0].err_code, 7013);
        assert_eq!(
            fx.core.value("Device.IP.Interface.3.Status").as_deref(),
            Some("Down")
        );
    }

    #[tokio::test]
    async fn add_with_invalid_required_value_is_an_error_and_creates_nothing() {
        let fx = Fixture::new().await;
        let error = error_of(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Subscription.",
                    &[("Enable", "InvalidValue", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7011);
        assert_eq!(error.param_errs.len(), 1);
        assert_eq!(
            error.param_errs[0].param_path,
            "Device.LocalAgent.Subscription.Enable"
        );
        assert_eq!(
            fx.core.value("Device.LocalAgent.Subscription.2.Enable"),
            None
        );
        assert_eq!(fx.commit_count(), 0);
    }

    #[tokio::test]
    async fn allow_partial_creates_the_good_object_only() {
        let fx = Fixture::new().await;
        let resp = add_resp(
            add(
                &fx,
                true,
                vec![
                    create(
                        "Device.LocalAgent.Controller.",
                        &[("EndpointID", "c2", true)],
                    ),
                    create(
                        "Device.LocalAgent.Controller.",
                        &[("EndpointID", "c3", true), ("InvalidParameter", "x", true)],
                    ),
                ],
            )
            .await,
        );
        assert_eq!(
            success(&resp.created_obj_results[0]).instantiated_path,
            "Device.LocalAgent.Controller.2."
        );
        assert_eq!(failure(&resp.created_obj_results[1]).err_code, 7010);
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Controller.2.EndpointID")
                .as_deref(),
            Some("c2")
        );
        assert_eq!(
            fx.core.value("Device.LocalAgent.Controller.3.EndpointID"),
            None
        );
    }

    #[tokio::test]
    async fn non_required_failure_is_listed_and_instance_created() {
        let fx = Fixture::new().await;
        let resp = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Controller.",
                    &[("EndpointID", "c2", true), ("Enable", "nope", false)],
                )],
            )
            .await,
        );
        let done = success(&resp.created_obj_results[0]);
        assert_eq!(done.param_errs[0].param, "Enable");
        assert_eq!(done.param_errs[0].err_code, 7011);
    }

    #[tokio::test]
    async fn read_only_param_in_add_is_7013() {
        let fx = Fixture::new().await;
        let error = error_of(
            add(
                &fx,
                false,
                vec![create("Device.IP.Interface.", &[("Status", "Up", true)])],
            )
            .await,
        );
        assert_eq!(error.err_code, 7013);
    }

    #[tokio::test]
    async fn add_on_non_table_is_7018_and_on_fixed_table_7019() {
        let fx = Fixture::new().await;
        let error = error_of(add(&fx, false, vec![create("Device.LocalAgent.", &[])]).await);
        assert_eq!(error.err_code, 7018);
        let error = error_of(
            add(
                &fx,
                false,
                vec![create("Device.LocalAgent.Controller.1.", &[])],
            )
            .await,
        );
        assert_eq!(error.err_code, 7018);
        let error = error_of(
            add(
                &fx,
                false,
                vec![create("Device.DeviceInfo.ProcessStatus.Process.", &[])],
            )
            .await,
        );
        assert_eq!(error.err_code, 7019);
    }

    #[tokio::test]
    async fn add_under_missing_parent_is_7016_and_unknown_table_7026() {
        let fx = Fixture::new().await;
        let error = error_of(
            add(
                &fx,
                false,
                vec![create("Device.LocalAgent.Controller.7.MTP.", &[])],
            )
            .await,
        );
        assert_eq!(error.err_code, 7016);
        let error = error_of(add(&fx, false, vec![create("Device.LocalAgent.Bogus.", &[])]).await);
        assert_eq!(error.err_code, 7026);
    }

    #[tokio::test]
    async fn duplicate_unique_key_is_7025() {
        let fx = Fixture::new().await;
        let error = error_of(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Controller.",
                    &[("EndpointID", "controller", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7025);
    }

    #[tokio::test]
    async fn instance_numbers_are_never_reused() {
        let fx = Fixture::new().await;
        let first = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Controller.",
                    &[("EndpointID", "c2", true)],
                )],
            )
            .await,
        );
        assert_eq!(
            success(&first.created_obj_results[0]).instantiated_path,
            "Device.LocalAgent.Controller.2."
        );
        fx.core
            .delete_instance("Device.LocalAgent.Controller.2.")
            .unwrap_or_else(|e| panic!("{e}"));
        let again = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    "Device.LocalAgent.Controller.",
                    &[("EndpointID", "c3", true)],
                )],
            )
            .await,
        );
        assert_eq!(
            success(&again.created_obj_results[0]).instantiated_path,
            "Device.LocalAgent.Controller.3."
        );
    }

    #[tokio::test]
    async fn add_with_search_in_parent_creates_under_each_match() {
        let fx = Fixture::new().await;
        let resp = add_resp(
            add(
                &fx,
                false,
                vec![create(
                    r#"Device.IP.Interface.[Type=="Normal"].IPv4Address."#,
                    &[("AddressingType", "Static", true)],
                )],
            )
            .await,
        );
        let paths: Vec<&str> = resp
            .created_obj_results
            .iter()
            .map(|r| success(r).instantiated_path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "Device.IP.Interface.1.IPv4Address.3.",
                "Device.IP.Interface.2.IPv4Address.2."
            ]
        );
    }

    #[tokio::test]
    async fn add_under_a_parent_search_matching_nothing_is_7016() {
        let fx = Fixture::new().await;
        let resp = add_resp(
            add(
                &fx,
                true,
                vec![create(
                    r#"Device.IP.Interface.[Type=="Tunnel"].IPv4Address."#,
                    &[],
                )],
            )
            .await,
        );
        assert_eq!(failure(&resp.created_obj_results[0]).err_code, 7016);
    }
}
