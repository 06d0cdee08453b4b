//! Set (TR-369 §"Set"), with the outcome matrix of digest §3.3/3.4:
//! - a failed non-required parameter is reported in the instance's `param_errs`, the rest is
//!   applied;
//! - a failed required parameter fails its whole `UpdateObject`, and a search path is handled
//!   holistically (R-SET.2a): every change made for that `obj_path` is undone;
//! - `allow_partial=false`: any failed `UpdateObject` turns the answer into an Error whose
//!   `param_errs` name each failed parameter, and nothing is applied (R-SET.1);
//!   `allow_partial=true`: each `UpdateObject` is its own transaction (R-SET.0).
//!
//! A search path matching nothing is an empty `oper_success` (TP 1.23). A write-once parameter
//! (`Alias`) and a non-functional unique key (`Subscription.{i}.ID`, R-KEY.1, TP 1.96) cannot
//! be changed once set: 7013 (the engine's check).

use std::collections::BTreeMap;

use usp_codec::UspErrorCode;
use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::response::RespType;
use usp_codec::usp_proto::usp::set::UpdateObject;
use usp_codec::usp_proto::usp::set_resp::updated_object_result::OperationStatus;
use usp_codec::usp_proto::usp::set_resp::updated_object_result::operation_status::{
    OperStatus, OperationFailure, OperationSuccess,
};
use usp_codec::usp_proto::usp::set_resp::{
    ParameterError, UpdatedInstanceFailure, UpdatedInstanceResult, UpdatedObjectResult,
};
use usp_dm::{DataModel, DmError, DmTransaction, Leaf};

use super::RequestContext;
use super::error::{self, Op};

/// Why one `UpdateObject` failed.
enum Failure {
    /// The path itself (syntax, unsupported, missing instance).
    Path { code: u32, message: String },
    /// A required parameter failed on at least one instance.
    Params(Vec<UpdatedInstanceFailure>),
}

impl Failure {
    fn code_and_message(&self) -> (u32, String) {
        match self {
            Failure::Path { code, message } => (*code, message.clone()),
            Failure::Params(failures) => failures
                .iter()
                .flat_map(|failure| failure.param_errs.iter())
                .next()
                .map_or_else(
                    || {
                        (
                            UspErrorCode::RequiredParamFailed.code(),
                            "a required parameter failed".to_string(),
                        )
                    },
                    |first| (first.err_code, first.err_msg.clone()),
                ),
        }
    }
}

/// Answers a Set.
pub async fn handle(dm: &DataModel, ctx: &RequestContext, msg_id: &str, set: usp::Set) -> usp::Msg {
    if set.allow_partial {
        let mut results = Vec::with_capacity(set.update_objs.len());
        for update in &set.update_objs {
            let mut tx = dm.begin();
            let outcome = match apply(dm, ctx, &mut tx, update).await {
                Ok(done) => tx.commit().await.map(|_| done).map_err(|failure| {
                    let (code, message) = error::describe(&failure, Op::Set);
                    Failure::Path { code, message }
                }),
                Err(failure) => Err(failure),
            };
            results.push(result(update, outcome));
        }
        return msg::response(
            msg_id,
            RespType::SetResp(usp::SetResp {
                updated_obj_results: results,
            }),
        );
    }
    let mut tx = dm.begin();
    let mut done = Vec::with_capacity(set.update_objs.len());
    let mut param_errs = Vec::new();
    let mut first_message = None;
    for update in &set.update_objs {
        match apply(dm, ctx, &mut tx, update).await {
            Ok(instances) => done.push(instances),
            Err(failure) => {
                let (code, message) = failure.code_and_message();
                first_message.get_or_insert(message.clone());
                match failure {
                    Failure::Path { .. } => {
                        param_errs.push(error::param_error(&update.obj_path, code, message));
                    }
                    Failure::Params(failures) => {
                        for instance in failures {
                            for param in instance.param_errs {
                                param_errs.push(error::param_error(
                                    format!("{}{}", instance.affected_path, param.param),
                                    param.err_code,
                                    param.err_msg,
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    if !param_errs.is_empty() {
        drop(tx);
        let message = format!(
            "Set failed, nothing was changed: {}",
            first_message.unwrap_or_default()
        );
        return error::with_params(
            msg_id,
            UspErrorCode::RequiredParamFailed,
            &message,
            param_errs,
        );
    }
    if let Err(failure) = tx.commit().await {
        let (code, message) = error::describe(&failure, Op::Set);
        let code = UspErrorCode::try_from(code).unwrap_or(UspErrorCode::InternalError);
        return msg::error(msg_id, code, &message, Vec::new());
    }
    let results = set
        .update_objs
        .iter()
        .zip(done)
        .map(|(update, instances)| result(update, Ok(instances)))
        .collect();
    msg::response(
        msg_id,
        RespType::SetResp(usp::SetResp {
            updated_obj_results: results,
        }),
    )
}

fn result(
    update: &UpdateObject,
    outcome: Result<Vec<UpdatedInstanceResult>, Failure>,
) -> UpdatedObjectResult {
    let status = match outcome {
        Ok(updated_inst_results) => OperStatus::OperSuccess(OperationSuccess {
            updated_inst_results,
        }),
        Err(failure) => {
            let (err_code, err_msg) = failure.code_and_message();
            let updated_inst_failures = match failure {
                Failure::Params(failures) => failures,
                Failure::Path { .. } => Vec::new(),
            };
            OperStatus::OperFailure(OperationFailure {
                err_code,
                err_msg,
                updated_inst_failures,
            })
        }
    };
    UpdatedObjectResult {
        requested_path: update.obj_path.clone(),
        oper_status: Some(OperationStatus {
            oper_status: Some(status),
        }),
    }
}

/// Applies one `UpdateObject` inside `tx`. On `Err` the caller must drop the transaction
/// (or, for allow_partial, this object's own transaction): changes already staged for the
/// object's other instances are part of the failure (R-SET.2a).
async fn apply(
    dm: &DataModel,
    ctx: &RequestContext,
    tx: &mut DmTransaction<'_>,
    update: &UpdateObject,
) -> Result<Vec<UpdatedInstanceResult>, Failure> {
    let path_failure = |failure: DmError| {
        let (code, message) = error::describe(&failure, Op::Set);
        Failure::Path { code, message }
    };
    let resolution = dm
        .resolve_str(&update.obj_path)
        .await
        .map_err(path_failure)?;
    if resolution.leaf != Leaf::Object || resolution.objects.iter().any(|object| object.table) {
        return Err(path_failure(DmError::NotSupported {
            path: format!("{} (Set takes object or instance paths)", update.obj_path),
        }));
    }
    let mut results = Vec::with_capacity(resolution.objects.len());
    let mut failures = Vec::new();
    for object in &resolution.objects {
        let mut param_errs = Vec::new();
        let mut required_failed = false;
        let mut updated_params = BTreeMap::new();
        for setting in &update.param_settings {
            let path = format!("{}{}", object.path, setting.param);
            let outcome = if ctx.access.can_write_param(&path) {
                tx.set(object, &setting.param, &setting.value)
                    .await
                    .map_err(|failure| error::describe(&failure, Op::Set))
            } else {
                Err(error::denied(&path, "write"))
            };
            match outcome {
                Ok(value) => {
                    // R-SET.3: values the Controller may not read are not echoed.
                    if ctx.access.can_read_param(&path) {
                        updated_params.insert(setting.param.clone(), value);
                    }
                }
                Err((err_code, err_msg)) => {
                    required_failed |= setting.required;
                    param_errs.push(ParameterError {
                        param: setting.param.clone(),
                        err_code,
                        err_msg,
                    });
                }
            }
        }
        if required_failed {
            failures.push(UpdatedInstanceFailure {
                affected_path: object.path.clone(),
                param_errs,
            });
        } else {
            results.push(UpdatedInstanceResult {
                affected_path: object.path.clone(),
                param_errs,
                updated_params,
            });
        }
    }
    if failures.is_empty() {
        Ok(results)
    } else {
        Err(Failure::Params(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, error_of, set_resp};
    use super::*;
    use usp_codec::usp_proto::usp::set::UpdateParamSetting;
    use usp_dm::ParamValues;

    fn update(path: &str, params: &[(&str, &str, bool)]) -> UpdateObject {
        UpdateObject {
            obj_path: path.to_string(),
            param_settings: params
                .iter()
                .map(|(param, value, required)| UpdateParamSetting {
                    param: param.to_string(),
                    value: value.to_string(),
                    required: *required,
                })
                .collect(),
        }
    }

    async fn set(fx: &Fixture, allow_partial: bool, updates: Vec<UpdateObject>) -> usp::Msg {
        handle(
            &fx.dm,
            &fx.ctx,
            "s",
            usp::Set {
                allow_partial,
                update_objs: updates,
            },
        )
        .await
    }

    fn success(result: &UpdatedObjectResult) -> &OperationSuccess {
        match result
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperSuccess(success)) => success,
            other => panic!("expected success, got {other:?}"),
        }
    }

    fn failure(result: &UpdatedObjectResult) -> &OperationFailure {
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
    async fn set_updates_value_and_echoes_canonical_form() {
        let fx = Fixture::new().await;
        let resp = set_resp(
            set(
                &fx,
                false,
                vec![update(
                    "Device.LocalAgent.Controller.1.",
                    &[("Enable", "1", true)],
                )],
            )
            .await,
        );
        let done = success(&resp.updated_obj_results[0]);
        assert_eq!(
            done.updated_inst_results[0].affected_path,
            "Device.LocalAgent.Controller.1."
        );
        assert_eq!(
            done.updated_inst_results[0]
                .updated_params
                .get("Enable")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Controller.1.Enable")
                .as_deref(),
            Some("true")
        );
        assert_eq!(fx.commit_count(), 1, "one persisted change set per message");
        assert_eq!(
            fx.changes(),
            [usp_dm::Change::ValueChanged {
                path: "Device.LocalAgent.Controller.1.Enable".into(),
                value: "true".into()
            }]
        );
    }

    #[tokio::test]
    async fn set_with_unknown_param_reports_7010() {
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.LocalAgent.Subscription.*.",
                    &[("InvalidParameter", "1", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7010);
        assert_eq!(
            error.param_errs[0].param_path,
            "Device.LocalAgent.Subscription.1.InvalidParameter"
        );
        assert_eq!(error.param_errs[0].err_code, 7010);
    }

    #[tokio::test]
    async fn set_on_read_only_param_reports_7013() {
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update("Device.IP.Interface.1.", &[("Status", "Up", true)])],
            )
            .await,
        );
        assert_eq!(error.param_errs[0].err_code, 7013);
    }

    #[tokio::test]
    async fn set_with_wrong_type_reports_7011_and_out_of_range_7012() {
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.IP.Interface.1.",
                    &[("Enable", "maybe", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7011);
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.IP.Interface.1.",
                    &[("MaxMTUSize", "10", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7012);
        let error = error_of(
            set(
                &fx,
                false,
                vec![update("Device.IP.Interface.1.", &[("Type", "Bogus", true)])],
            )
            .await,
        );
        assert_eq!(error.err_code, 7012);
    }

    #[tokio::test]
    async fn failed_required_param_without_allow_partial_changes_nothing() {
        let fx = Fixture::new().await;
        let answer = set(
            &fx,
            false,
            vec![
                update(
                    "Device.LocalAgent.Controller.1.",
                    &[("ProvisioningCode", "abc", true)],
                ),
                update(
                    "Device.IP.Interface.1.",
                    &[("Enable", "true", true), ("Bogus", "1", true)],
                ),
            ],
        )
        .await;
        let error = error_of(answer);
        assert_eq!(error.param_errs.len(), 1);
        assert_eq!(
            error.param_errs[0].param_path,
            "Device.IP.Interface.1.Bogus"
        );
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Controller.1.ProvisioningCode")
                .as_deref(),
            Some("")
        );
        assert_eq!(
            fx.core.value("Device.IP.Interface.1.Enable").as_deref(),
            Some("false")
        );
        assert_eq!(fx.commit_count(), 0);
        assert!(fx.changes().is_empty());
    }

    #[tokio::test]
    async fn allow_partial_keeps_good_objects_and_reports_failed_ones() {
        let fx = Fixture::new().await;
        let resp = set_resp(
            set(
                &fx,
                true,
                vec![
                    update(
                        "Device.LocalAgent.Subscription.1.",
                        &[("NotifRetry", "true", false)],
                    ),
                    update(
                        "Device.IP.Interface.1.",
                        &[("Enable", "true", true), ("InvalidParameter", "1", true)],
                    ),
                ],
            )
            .await,
        );
        let first = success(&resp.updated_obj_results[0]);
        assert_eq!(
            first.updated_inst_results[0]
                .updated_params
                .get("NotifRetry")
                .map(String::as_str),
            Some("true")
        );
        let second = failure(&resp.updated_obj_results[1]);
        assert_eq!(second.updated_inst_failures.len(), 1);
        assert_eq!(
            second.updated_inst_failures[0].param_errs[0].param,
            "InvalidParameter"
        );
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Subscription.1.NotifRetry")
                .as_deref(),
            Some("true")
        );
        assert_eq!(
            fx.core.value("Device.IP.Interface.1.Enable").as_deref(),
            Some("false"),
            "rolled back"
        );
    }

    #[tokio::test]
    async fn non_required_failure_is_listed_and_the_rest_applied() {
        let fx = Fixture::new().await;
        let resp = set_resp(
            set(
                &fx,
                false,
                vec![update(
                    "Device.IP.Interface.1.",
                    &[("Enable", "true", true), ("MaxMTUSize", "1", false)],
                )],
            )
            .await,
        );
        let done = success(&resp.updated_obj_results[0]);
        assert_eq!(done.updated_inst_results[0].param_errs[0].err_code, 7012);
        assert_eq!(
            fx.core.value("Device.IP.Interface.1.Enable").as_deref(),
            Some("true")
        );
    }

    #[tokio::test]
    async fn search_path_is_holistic_across_instances() {
        let fx = Fixture::new().await;
        let second = ParamValues::from([("ExternalPort".to_string(), "9000".to_string())]);
        fx.core
            .add_instance("Device.NAT.PortMapping.", &second)
            .unwrap_or_else(|e| panic!("{e}"));
        // Instance 1 takes port 9090; instance 2 then collides with it on the unique key
        // (RemoteHost, ExternalPort, Protocol), so instance 1 must be undone too (R-SET.2a).
        let resp = set_resp(
            set(
                &fx,
                true,
                vec![update(
                    "Device.NAT.PortMapping.*.",
                    &[("ExternalPort", "9090", true)],
                )],
            )
            .await,
        );
        let failed = failure(&resp.updated_obj_results[0]);
        assert_eq!(failed.err_code, 7025);
        assert_eq!(
            failed.updated_inst_failures[0].affected_path,
            "Device.NAT.PortMapping.2."
        );
        assert_eq!(
            fx.core
                .value("Device.NAT.PortMapping.1.ExternalPort")
                .as_deref(),
            Some("8080")
        );
        assert_eq!(
            fx.core
                .value("Device.NAT.PortMapping.2.ExternalPort")
                .as_deref(),
            Some("9000")
        );
    }

    #[tokio::test]
    async fn search_matching_nothing_is_empty_success() {
        let fx = Fixture::new().await;
        let resp = set_resp(
            set(
                &fx,
                false,
                vec![update(
                    r#"Device.LocalAgent.Subscription.[Recipient=="InvalidValue"]."#,
                    &[("Enable", "true", true)],
                )],
            )
            .await,
        );
        assert!(
            success(&resp.updated_obj_results[0])
                .updated_inst_results
                .is_empty()
        );
    }

    #[tokio::test]
    async fn missing_instance_reports_7016_and_unknown_path_7026() {
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.IP.Interface.9.",
                    &[("Enable", "true", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7016);
        let error = error_of(
            set(
                &fx,
                false,
                vec![update("Device.Bogus.", &[("Enable", "true", true)])],
            )
            .await,
        );
        assert_eq!(error.err_code, 7026);
    }

    #[tokio::test]
    async fn write_once_parameter_cannot_be_set_again() {
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.LocalAgent.Subscription.1.",
                    &[("Alias", "other", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7013);
    }

    #[tokio::test]
    async fn r_key_1_subscription_id_cannot_change_after_creation() {
        // TP-469 1.96: changing a non-functional unique key is an Error; nothing changes.
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.LocalAgent.Subscription.1.",
                    &[("ID", "other", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7013);
        assert_eq!(error.param_errs.len(), 1);
        assert_eq!(
            error.param_errs[0].param_path,
            "Device.LocalAgent.Subscription.1.ID"
        );
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Subscription.1.ID")
                .as_deref(),
            Some("sub-1")
        );
    }

    #[tokio::test]
    async fn duplicate_unique_key_reports_7025() {
        let fx = Fixture::new().await;
        let other = ParamValues::from([("EndpointID".to_string(), "other".to_string())]);
        fx.core
            .add_instance("Device.LocalAgent.Controller.", &other)
            .unwrap_or_else(|e| panic!("{e}"));
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.LocalAgent.Controller.2.",
                    &[("EndpointID", "controller", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7025);
        assert_eq!(
            fx.core
                .value("Device.LocalAgent.Controller.2.EndpointID")
                .as_deref(),
            Some("other")
        );
    }

    #[tokio::test]
    async fn strong_reference_must_exist_and_is_stored_with_instance_numbers() {
        let fx = Fixture::new().await;
        let error = error_of(
            set(
                &fx,
                false,
                vec![update(
                    "Device.NAT.PortMapping.1.",
                    &[("Interface", "Device.IP.Interface.9", true)],
                )],
            )
            .await,
        );
        assert_eq!(error.err_code, 7012);
        let resp = set_resp(
            set(
                &fx,
                false,
                vec![update(
                    "Device.NAT.PortMapping.1.",
                    &[("Interface", r#"Device.IP.Interface.[Name=="eth0"]."#, true)],
                )],
            )
            .await,
        );
        let done = success(&resp.updated_obj_results[0]);
        assert_eq!(
            done.updated_inst_results[0]
                .updated_params
                .get("Interface")
                .map(String::as_str),
            Some("Device.IP.Interface.1")
        );
        assert_eq!(
            fx.core
                .value("Device.NAT.PortMapping.1.Interface")
                .as_deref(),
            Some("Device.IP.Interface.1")
        );
    }
}
