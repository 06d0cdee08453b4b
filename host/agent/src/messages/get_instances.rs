//! GetInstances (TR-369 §"GetInstances"): the instances at and below each requested path,
//! with their readable unique keys (R-GIN.1). `first_level_only` keeps the instances of the
//! addressed table (or, for an object or instance path, of the tables directly below it);
//! otherwise nested tables are included too. Unreadable instances are absent (R-GIN.0).

use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::get_instances_resp::{CurrInstance, RequestedPathResult};
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{DataModel, DmError, Leaf, ReadRequest, ResolvedObject};

use super::RequestContext;
use super::error::{self, Op};

/// Answers a GetInstances.
pub async fn handle(
    dm: &DataModel,
    ctx: &RequestContext,
    msg_id: &str,
    request: usp::GetInstances,
) -> usp::Msg {
    let mut req_path_results = Vec::with_capacity(request.obj_paths.len());
    for path in request.obj_paths {
        let result = match instances(dm, ctx, &path, request.first_level_only).await {
            Ok(curr_insts) => RequestedPathResult {
                requested_path: path,
                err_code: 0,
                err_msg: String::new(),
                curr_insts,
            },
            Err(failure) => {
                let (err_code, err_msg) = error::describe(&failure, Op::GetInstances);
                RequestedPathResult {
                    requested_path: path,
                    err_code,
                    err_msg,
                    curr_insts: Vec::new(),
                }
            }
        };
        req_path_results.push(result);
    }
    msg::response(
        msg_id,
        RespType::GetInstancesResp(usp::GetInstancesResp { req_path_results }),
    )
}

async fn instances(
    dm: &DataModel,
    ctx: &RequestContext,
    path: &str,
    first_level_only: bool,
) -> Result<Vec<CurrInstance>, DmError> {
    // R-MSG.4a / R-GIN: a search expression that matches nothing answers an empty success,
    // also when it names a complete unique key (`Controller.[EndpointID=="x"].`).
    let resolution = dm.resolve_search_str(path).await?;
    if resolution.leaf != Leaf::Object {
        return Err(DmError::NotSupported {
            path: format!("{path} (GetInstances takes object paths)"),
        });
    }
    let mut found: Vec<ResolvedObject> = Vec::new();
    for object in &resolution.objects {
        // A table's instances are its first level; below an instance or object, the
        // instances of the tables directly under it are.
        let depth = match (first_level_only, object.table) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        };
        for candidate in dm.subtree(object, depth).await? {
            let is_instance = dm
                .object_def(&candidate.supported)
                .is_some_and(|def| def.multi_instance);
            if is_instance && ctx.access.can_read_instance(&candidate.path) {
                found.push(candidate);
            }
        }
    }
    found.dedup();
    let requests: Vec<ReadRequest> = found
        .iter()
        .map(|instance| ReadRequest {
            object: instance.path.clone(),
            supported: instance.supported.clone(),
            params: dm
                .object_def(&instance.supported)
                .map(|def| def.unique_keys.iter().flatten().cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    let answers = dm.read(&requests).await;
    Ok(found
        .into_iter()
        .zip(answers)
        .map(|(instance, keys)| {
            let has_keys = dm
                .object_def(&instance.supported)
                .is_some_and(|def| !def.unique_keys.is_empty());
            let unique_keys = if has_keys {
                keys.unwrap_or_default()
                    .into_iter()
                    .filter(|(name, _)| {
                        ctx.access
                            .can_read_param(&format!("{}{name}", instance.path))
                    })
                    .collect()
            } else {
                Default::default()
            };
            CurrInstance {
                instantiated_obj_path: instance.path,
                unique_keys,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, get_instances_resp};
    use super::*;

    async fn get_instances(
        fx: &Fixture,
        paths: &[&str],
        first_level_only: bool,
    ) -> usp::GetInstancesResp {
        get_instances_resp(
            handle(
                &fx.dm,
                &fx.ctx,
                "i",
                usp::GetInstances {
                    obj_paths: paths.iter().map(|p| p.to_string()).collect(),
                    first_level_only,
                },
            )
            .await,
        )
    }

    fn paths(result: &RequestedPathResult) -> Vec<&str> {
        result
            .curr_insts
            .iter()
            .map(|i| i.instantiated_obj_path.as_str())
            .collect()
    }

    #[tokio::test]
    async fn first_level_only_lists_just_the_table() {
        let fx = Fixture::new().await;
        let resp = get_instances(&fx, &["Device.LocalAgent.Controller."], true).await;
        assert_eq!(
            paths(&resp.req_path_results[0]),
            ["Device.LocalAgent.Controller.1."]
        );
        let keys = &resp.req_path_results[0].curr_insts[0].unique_keys;
        assert_eq!(
            keys.get("EndpointID").map(String::as_str),
            Some("controller")
        );
        assert_eq!(keys.get("Alias").map(String::as_str), Some("cpe-1"));
    }

    #[tokio::test]
    async fn nested_instances_are_included_otherwise() {
        let fx = Fixture::new().await;
        let resp = get_instances(&fx, &["Device.LocalAgent.Controller."], false).await;
        assert_eq!(
            paths(&resp.req_path_results[0]),
            [
                "Device.LocalAgent.Controller.1.",
                "Device.LocalAgent.Controller.1.MTP.1."
            ]
        );
    }

    #[tokio::test]
    async fn object_path_lists_tables_below_it() {
        let fx = Fixture::new().await;
        let resp = get_instances(&fx, &["Device.IP."], true).await;
        assert_eq!(
            paths(&resp.req_path_results[0]),
            ["Device.IP.Interface.1.", "Device.IP.Interface.2."]
        );
    }

    #[tokio::test]
    async fn empty_table_and_empty_search_are_successes() {
        let fx = Fixture::new().await;
        let resp = get_instances(
            &fx,
            &[
                "Device.LocalAgent.Request.",
                "Device.IP.Interface.[Type==\"Tunnel\"].",
            ],
            true,
        )
        .await;
        for result in &resp.req_path_results {
            assert_eq!(result.err_code, 0);
            assert!(result.curr_insts.is_empty());
        }
    }

    #[tokio::test]
    async fn a_unique_key_expression_matching_nothing_is_an_empty_success() {
        // R-MSG.4a: `[...]` makes a Search Path, even over a complete unique key.
        let fx = Fixture::new().await;
        let resp = get_instances(
            &fx,
            &[
                r#"Device.LocalAgent.Controller.[EndpointID=="nobody"]."#,
                r#"Device.LocalAgent.Controller.[EndpointID=="nobody"].MTP."#,
            ],
            false,
        )
        .await;
        for result in &resp.req_path_results {
            assert_eq!(result.err_code, 0, "{result:?}");
            assert!(result.curr_insts.is_empty());
        }
    }

    #[tokio::test]
    async fn bad_paths_report_errors() {
        let fx = Fixture::new().await;
        let resp = get_instances(
            &fx,
            &[
                "Device.Bogus.",
                "Device.IP.Interface.9.",
                "Device.IP.Interface.[].",
            ],
            true,
        )
        .await;
        let codes: Vec<u32> = resp.req_path_results.iter().map(|r| r.err_code).collect();
        assert_eq!(codes, [7026, 7016, 7008]);
    }
}
