//! Delete (TR-369 §"Delete"):
//! - each `obj_paths` entry is an instance path or a search path; a search matching nothing
//!   is an empty success (R-DEL.2a);
//! - an instance number that does not exist is also answered with an empty `oper_success`,
//!   whatever `allow_partial` says. This follows TP-469 test 1.25 (the certification test)
//!   rather than USP 1.4.1 R-DEL.1, which would make it an Error; the two disagree and
//!   certification follows TP-469;
//! - `allow_partial=false`: anything else that fails (not an instance path 7018, not
//!   deletable 7024, no permission 7006, provider refusal) → Error with `param_errs`, nothing
//!   deleted (R-DEL.1); `allow_partial=true`: each entry is its own transaction, and
//!   instances of a search that cannot be deleted are listed in `unaffected_path_errs`;
//! - deleting an instance releases the strong references to it (R-ARC.12, in the engine):
//!   deleting a `Controller.{i}` deletes the Subscriptions whose `Recipient` it is (TP-469
//!   1.78); those deletions are not listed in `affected_paths` (they were not requested) but
//!   reach ObjectDeletion subscribers like any other.

use usp_codec::UspErrorCode;
use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::delete_resp::deleted_object_result::OperationStatus;
use usp_codec::usp_proto::usp::delete_resp::deleted_object_result::operation_status::{
    OperStatus, OperationFailure, OperationSuccess,
};
use usp_codec::usp_proto::usp::delete_resp::{DeletedObjectResult, UnaffectedPathError};
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{DataModel, DmError, DmTransaction, Leaf};

use super::RequestContext;
use super::error::{self, Op};

/// What one `obj_paths` entry did.
struct Outcome {
    affected: Vec<String>,
    unaffected: Vec<UnaffectedPathError>,
}

/// Answers a Delete.
pub async fn handle(
    dm: &DataModel,
    ctx: &RequestContext,
    msg_id: &str,
    delete: usp::Delete,
) -> usp::Msg {
    let mut results = Vec::with_capacity(delete.obj_paths.len());
    if delete.allow_partial {
        for path in &delete.obj_paths {
            let mut tx = dm.begin();
            let status = match stage(dm, ctx, &mut tx, path, true).await {
                Ok(outcome) => match tx.commit().await {
                    Ok(_) => success(outcome),
                    Err(failure) => failure_status(error::describe(&failure, Op::Delete)),
                },
                Err(failure) => failure_status(failure),
            };
            results.push(result(path, status));
        }
    } else {
        let mut tx = dm.begin();
        let mut staged = Vec::with_capacity(delete.obj_paths.len());
        let mut param_errs = Vec::new();
        for path in &delete.obj_paths {
            match stage(dm, ctx, &mut tx, path, false).await {
                Ok(outcome) => staged.push(outcome),
                Err((code, message)) => param_errs.push(error::param_error(path, code, message)),
            }
        }
        if !param_errs.is_empty() {
            drop(tx);
            let message = format!(
                "Delete failed, nothing was deleted: {}",
                param_errs[0].err_msg
            );
            return error::with_params(msg_id, UspErrorCode::DeleteFailure, &message, param_errs);
        }
        if let Err(failure) = tx.commit().await {
            let code = error::code(&failure, Op::Delete);
            return msg::error(msg_id, code, &failure.to_string(), Vec::new());
        }
        for (path, outcome) in delete.obj_paths.iter().zip(staged) {
            results.push(result(path, success(outcome)));
        }
    }
    msg::response(
        msg_id,
        RespType::DeleteResp(usp::DeleteResp {
            deleted_obj_results: results,
        }),
    )
}

fn success(outcome: Outcome) -> OperStatus {
    OperStatus::OperSuccess(OperationSuccess {
        affected_paths: outcome.affected,
        unaffected_path_errs: outcome.unaffected,
    })
}

fn failure_status((err_code, err_msg): (u32, String)) -> OperStatus {
    OperStatus::OperFailure(OperationFailure { err_code, err_msg })
}

fn result(path: &str, status: OperStatus) -> DeletedObjectResult {
    DeletedObjectResult {
        requested_path: path.to_string(),
        oper_status: Some(OperationStatus {
            oper_status: Some(status),
        }),
    }
}

/// Stages the deletion of every instance `path` resolves to. With `partial`, instances that
/// cannot be deleted become `unaffected` entries instead of failing the whole entry.
async fn stage(
    dm: &DataModel,
    ctx: &RequestContext,
    tx: &mut DmTransaction<'_>,
    path: &str,
    partial: bool,
) -> Result<Outcome, (u32, String)> {
    let resolution = match dm.resolve_str(path).await {
        Ok(resolution) => resolution,
        Err(DmError::NoSuchObject { .. }) => {
            return Ok(Outcome {
                affected: Vec::new(),
                unaffected: Vec::new(),
            });
        }
        Err(failure) => return Err(error::describe(&failure, Op::Delete)),
    };
    let mut outcome = Outcome {
        affected: Vec::new(),
        unaffected: Vec::new(),
    };
    let is_instance = |supported: &str| {
        dm.object_def(supported)
            .is_some_and(|def| def.multi_instance)
    };
    for object in &resolution.objects {
        if resolution.leaf != Leaf::Object || object.table || !is_instance(&object.supported) {
            return Err(error::describe(
                &DmError::NotATable {
                    path: format!("{path} (Delete takes instance paths)"),
                },
                Op::Delete,
            ));
        }
        let attempt = if ctx.access.can_delete(&object.path) {
            tx.delete(object)
                .await
                .map_err(|failure| error::describe(&failure, Op::Delete))
        } else {
            Err(error::denied(&object.path, "delete"))
        };
        match attempt {
            Ok(()) => outcome.affected.push(object.path.clone()),
            Err((err_code, err_msg)) if partial && resolution.search => {
                outcome.unaffected.push(UnaffectedPathError {
                    unaffected_path: object.path.clone(),
                    err_code,
                    err_msg,
                });
            }
            Err(failure) => return Err(failure),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, delete_resp, error_of};
    use super::*;

    async fn delete(fx: &Fixture, allow_partial: bool, paths: &[&str]) -> usp::Msg {
        handle(
            &fx.dm,
            &fx.ctx,
            "d",
            usp::Delete {
                allow_partial,
                obj_paths: paths.iter().map(|p| p.to_string()).collect(),
            },
        )
        .await
    }

    fn success(result: &DeletedObjectResult) -> &OperationSuccess {
        match result
            .oper_status
            .as_ref()
            .and_then(|s| s.oper_status.as_ref())
        {
            Some(OperStatus::OperSuccess(success)) => success,
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn delete_removes_instance_and_its_subtree() {
        let fx = Fixture::new().await;
        let resp = delete_resp(delete(&fx, false, &["Device.IP.Interface.1."]).await);
        assert_eq!(
            success(&resp.deleted_obj_results[0]).affected_paths,
            ["Device.IP.Interface.1."]
        );
        assert_eq!(fx.core.value("Device.IP.Interface.1.Name"), None);
        assert_eq!(
            fx.core
                .value("Device.IP.Interface.1.IPv4Address.1.IPAddress"),
            None
        );
        assert_eq!(
            fx.core.value("Device.IP.Interface.1.Stats.ErrorsSent"),
            None
        );
        assert_eq!(fx.commit_count(), 1);
    }

    #[tokio::test]
    async fn deleting_a_missing_instance_is_an_empty_success() {
        let fx = Fixture::new().await;
        let resp = delete_resp(delete(&fx, false, &["Device.LocalAgent.Subscription.99."]).await);
        assert!(
            success(&resp.deleted_obj_results[0])
                .affected_paths
                .is_empty()
        );
    }

    #[tokio::test]
    async fn search_delete_matches_several_and_nothing_is_fine() {
        let fx = Fixture::new().await;
        let resp = delete_resp(
            delete(
                &fx,
                false,
                &[
                    "Device.IP.Interface.*.IPv4Address.[AddressingType==\"Static\"].",
                    "Device.WiFi.SSID.[SSID==\"none\"].",
                ],
            )
            .await,
        );
        assert_eq!(
            success(&resp.deleted_obj_results[0]).affected_paths,
            [
                "Device.IP.Interface.1.IPv4Address.1.",
                "Device.IP.Interface.2.IPv4Address.1."
            ]
        );
        assert!(
            success(&resp.deleted_obj_results[1])
                .affected_paths
                .is_empty()
        );
    }

    #[tokio::test]
    async fn failure_without_allow_partial_deletes_nothing() {
        let fx = Fixture::new().await;
        let error =
            error_of(delete(&fx, false, &["Device.WiFi.SSID.1.", "Device.PCP.Client.1."]).await);
        assert_eq!(error.err_code, 7024);
        assert_eq!(error.param_errs[0].param_path, "Device.PCP.Client.1.");
        assert_eq!(
            fx.wifi.value("Device.WiFi.SSID.1.SSID").as_deref(),
            Some("MyHome")
        );
    }

    #[tokio::test]
    async fn allow_partial_deletes_what_it_can() {
        let fx = Fixture::new().await;
        let resp = delete_resp(
            delete(
                &fx,
                true,
                &[
                    "Device.WiFi.SSID.1.",
                    "Device.PCP.Client.1.",
                    "Device.LocalAgent.",
                ],
            )
            .await,
        );
        assert_eq!(
            success(&resp.deleted_obj_results[0]).affected_paths,
            ["Device.WiFi.SSID.1."]
        );
        let codes: Vec<u32> = resp.deleted_obj_results[1..]
            .iter()
            .map(
                |r| match r.oper_status.as_ref().and_then(|s| s.oper_status.as_ref()) {
                    Some(OperStatus::OperFailure(failure)) => failure.err_code,
                    other => panic!("expected failure, got {other:?}"),
                },
            )
            .collect();
        assert_eq!(codes, [7024, 7018]);
        assert_eq!(fx.wifi.value("Device.WiFi.SSID.1.SSID"), None);
    }

    #[tokio::test]
    async fn invalid_path_is_7008_or_7026() {
        let fx = Fixture::new().await;
        let error = error_of(delete(&fx, false, &["Device.IP.Interface.[]."]).await);
        assert_eq!(error.err_code, 7008);
        let error = error_of(delete(&fx, false, &["Device.Nope.1."]).await);
        assert_eq!(error.err_code, 7026);
    }
}
