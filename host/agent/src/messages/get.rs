//! Get (TR-369 §"Get"): each requested path is resolved and answered on its own; one
//! `resolved_path_results` entry per object instance, parameter names relative to it
//! (R-GET.2/3), `max_depth` limiting the levels below an object path (R-GET.5). A search path
//! matching nothing, or an object with nothing below, is an empty success (R-GET.1a/1b).
//! Unreadable parameters are silently dropped (R-GET.1/4).

use std::collections::BTreeMap;

use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::get_resp::{RequestedPathResult, ResolvedPathResult};
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{DataModel, DmError, Leaf, ParamValues, ReadRequest, ResolvedObject};

use super::RequestContext;
use super::error::{self, Op};

/// Answers a Get.
pub async fn handle(dm: &DataModel, ctx: &RequestContext, msg_id: &str, get: usp::Get) -> usp::Msg {
    let mut req_path_results = Vec::with_capacity(get.param_paths.len());
    for path in get.param_paths {
        let result = match resolve_and_read(dm, ctx, &path, get.max_depth).await {
            Ok(resolved_path_results) => RequestedPathResult {
                requested_path: path,
                err_code: 0,
                err_msg: String::new(),
                resolved_path_results,
            },
            Err(failure) => {
                let (err_code, err_msg) = error::describe(&failure, Op::Get);
                RequestedPathResult {
                    requested_path: path,
                    err_code,
                    err_msg,
                    resolved_path_results: Vec::new(),
                }
            }
        };
        req_path_results.push(result);
    }
    msg::response(msg_id, RespType::GetResp(usp::GetResp { req_path_results }))
}

async fn resolve_and_read(
    dm: &DataModel,
    ctx: &RequestContext,
    path: &str,
    max_depth: u32,
) -> Result<Vec<ResolvedPathResult>, DmError> {
    let resolution = dm.resolve_str(path).await?;
    let objects: Vec<ResolvedObject> = match &resolution.leaf {
        Leaf::Param(_) => resolution.objects,
        Leaf::Object => {
            let mut all = Vec::new();
            for object in &resolution.objects {
                all.extend(dm.subtree(object, max_depth).await?);
            }
            all
        }
        Leaf::Command(_) | Leaf::Event(_) => {
            return Err(DmError::NotSupported {
                path: format!("{path} (Get takes object and parameter paths)"),
            });
        }
    };
    let only = match &resolution.leaf {
        Leaf::Param(name) => vec![name.clone()],
        _ => Vec::new(),
    };
    let objects: Vec<ResolvedObject> = objects
        .into_iter()
        .filter(|object| {
            let is_instance = dm
                .object_def(&object.supported)
                .is_some_and(|def| def.multi_instance);
            !is_instance || ctx.access.can_read_instance(&object.path)
        })
        .collect();
    let requests: Vec<ReadRequest> = objects
        .iter()
        .map(|object| ReadRequest {
            object: object.path.clone(),
            supported: object.supported.clone(),
            params: only.clone(),
        })
        .collect();
    let answers = dm.read(&requests).await;
    let mut results = Vec::with_capacity(objects.len());
    for (object, answer) in objects.iter().zip(answers) {
        let values = match answer {
            Ok(values) => values,
            // An instance that vanished between resolution and read is simply absent.
            Err(DmError::Provider { source, .. })
                if source.code == usp_codec::UspErrorCode::ObjectDoesNotExist =>
            {
                continue;
            }
            Err(failure) => return Err(failure),
        };
        let result_params = visible(dm, ctx, object, values);
        if !result_params.is_empty() {
            results.push(ResolvedPathResult {
                resolved_path: object.path.clone(),
                result_params,
            });
        }
    }
    Ok(results)
}

/// Drops unreadable parameters and blanks secured ones the Controller may not see.
fn visible(
    dm: &DataModel,
    ctx: &RequestContext,
    object: &ResolvedObject,
    values: ParamValues,
) -> BTreeMap<String, String> {
    let def = dm.object_def(&object.supported);
    values
        .into_iter()
        .filter_map(|(name, value)| {
            let path = format!("{}{name}", object.path);
            if !ctx.access.can_read_param(&path) {
                return None;
            }
            let secured = def
                .and_then(|def| def.param(&name))
                .is_some_and(|param| param.secured);
            if secured && !ctx.access.can_read_secured(&path) {
                return Some((name, String::new()));
            }
            Some((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, get_resp};
    use super::*;

    async fn get(fx: &mut Fixture, paths: &[&str], max_depth: u32) -> usp::GetResp {
        let request = usp::Get {
            param_paths: paths.iter().map(|p| p.to_string()).collect(),
            max_depth,
        };
        get_resp(handle(&fx.dm, &fx.ctx, "g", request).await)
    }

    #[tokio::test]
    async fn wildcard_parameter_get_gives_one_result_per_instance() {
        let mut fx = Fixture::new().await;
        let resp = get(&mut fx, &["Device.WiFi.SSID.*.Status"], 0).await;
        let result = &resp.req_path_results[0];
        assert_eq!(result.err_code, 0);
        let paths: Vec<&str> = result
            .resolved_path_results
            .iter()
            .map(|r| r.resolved_path.as_str())
            .collect();
        assert_eq!(paths, ["Device.WiFi.SSID.1.", "Device.WiFi.SSID.2."]);
        assert_eq!(
            result.resolved_path_results[0]
                .result_params
                .get("Status")
                .map(String::as_str),
            Some("Up")
        );
        assert_eq!(result.resolved_path_results[0].result_params.len(), 1);
    }

    #[tokio::test]
    async fn compound_search_with_sub_object_selects_matching_instances() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &[r#"Device.IP.Interface.[Type=="Normal"&&Stats.ErrorsSent>0].IPv4Address.[AddressingType=="Static"].IPAddress"#],
            0,
        )
        .await;
        let result = &resp.req_path_results[0];
        assert_eq!(result.err_code, 0, "{}", result.err_msg);
        let paths: Vec<&str> = result
            .resolved_path_results
            .iter()
            .map(|r| r.resolved_path.as_str())
            .collect();
        assert_eq!(paths, ["Device.IP.Interface.1.IPv4Address.1."]);
    }

    #[tokio::test]
    async fn datetime_search_compares_instants() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &["Device.IP.Interface.*.IPv6Address.[ValidLifetime<2021-06-06T08:00:00Z].IPAddress"],
            0,
        )
        .await;
        let result = &resp.req_path_results[0];
        assert_eq!(result.err_code, 0, "{}", result.err_msg);
        let values: Vec<&str> = result
            .resolved_path_results
            .iter()
            .filter_map(|r| r.result_params.get("IPAddress").map(String::as_str))
            .collect();
        assert_eq!(values, ["fe80::1"]);
    }

    #[tokio::test]
    async fn list_membership_search_matches_items() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &[r#"Device.PCP.Client.*.Server.[Capabilities~="IPv6Firewall"]."#],
            0,
        )
        .await;
        let result = &resp.req_path_results[0];
        assert_eq!(result.err_code, 0, "{}", result.err_msg);
        let paths: Vec<&str> = result
            .resolved_path_results
            .iter()
            .map(|r| r.resolved_path.as_str())
            .collect();
        assert_eq!(paths, ["Device.PCP.Client.1.Server.2."]);
    }

    #[tokio::test]
    async fn search_with_no_match_is_an_empty_success() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &["Device.LocalAgent.Subscription.[Enable==true]."],
            0,
        )
        .await;
        let result = &resp.req_path_results[0];
        assert_eq!(result.err_code, 0);
        assert!(result.resolved_path_results.is_empty());
    }

    #[tokio::test]
    async fn unknown_parameter_reports_7026() {
        let mut fx = Fixture::new().await;
        let resp = get(&mut fx, &["Device.LocalAgent.InvalidParameter"], 0).await;
        assert_eq!(resp.req_path_results[0].err_code, 7026);
        assert!(
            resp.req_path_results[0]
                .err_msg
                .contains("Device.LocalAgent.InvalidParameter")
        );
    }

    #[tokio::test]
    async fn missing_instance_reports_7026_and_other_paths_still_answer() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &["Device.WiFi.SSID.9.", "Device.LocalAgent.EndpointID"],
            0,
        )
        .await;
        assert_eq!(resp.req_path_results[0].err_code, 7026);
        assert_eq!(resp.req_path_results[1].err_code, 0);
    }

    #[tokio::test]
    async fn invalid_syntax_reports_7008() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &[
                "Device.IP.Interface.[].",
                r#"Device.IP.Interface.{Type=="Normal"}.Status"#,
                r#"Device.IP.Interface.[Enable=="true"]."#,
            ],
            0,
        )
        .await;
        for result in &resp.req_path_results {
            assert_eq!(result.err_code, 7008, "{}", result.requested_path);
        }
    }

    #[tokio::test]
    async fn max_depth_limits_levels_below_the_object() {
        let mut fx = Fixture::new().await;
        let count = |resp: &usp::GetResp| resp.req_path_results[0].resolved_path_results.len();
        let one = get(&mut fx, &["Device.LocalAgent."], 1).await;
        assert_eq!(count(&one), 1);
        assert_eq!(
            one.req_path_results[0].resolved_path_results[0].resolved_path,
            "Device.LocalAgent."
        );
        let two = get(&mut fx, &["Device.LocalAgent."], 2).await;
        let full = get(&mut fx, &["Device.LocalAgent."], 0).await;
        assert!(count(&two) > 1);
        assert!(
            count(&full) > count(&two),
            "{} vs {}",
            count(&full),
            count(&two)
        );
    }

    #[tokio::test]
    async fn unique_key_addressing_and_reference_following_resolve() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &[
                r#"Device.IP.Interface.[Name=="eth0"].Status"#,
                "Device.NAT.PortMapping.1.Interface+.Name",
                r#"Device.WiFi.AccessPoint.[SSIDReference+.SSID=="MyHome"].Enable"#,
            ],
            0,
        )
        .await;
        let first = &resp.req_path_results[0].resolved_path_results[0];
        assert_eq!(first.resolved_path, "Device.IP.Interface.1.");
        let second = &resp.req_path_results[1].resolved_path_results[0];
        assert_eq!(second.resolved_path, "Device.IP.Interface.2.");
        assert_eq!(
            second.result_params.get("Name").map(String::as_str),
            Some("eth1")
        );
        let third = &resp.req_path_results[2];
        assert_eq!(third.err_code, 0, "{}", third.err_msg);
        assert_eq!(
            third.resolved_path_results[0].resolved_path,
            "Device.WiFi.AccessPoint.1."
        );
    }

    #[tokio::test]
    async fn unique_key_that_matches_nothing_is_not_a_search() {
        let mut fx = Fixture::new().await;
        let resp = get(
            &mut fx,
            &[r#"Device.IP.Interface.[Name=="nope"].Status"#],
            0,
        )
        .await;
        assert_eq!(resp.req_path_results[0].err_code, 7026);
    }

    #[tokio::test]
    async fn write_only_values_read_empty() {
        let mut fx = Fixture::new().await;
        let resp = get(&mut fx, &["Device.LocalAgent.Controller.1.Secret"], 0).await;
        let result = &resp.req_path_results[0].resolved_path_results[0];
        assert_eq!(
            result.result_params.get("Secret").map(String::as_str),
            Some("")
        );
    }
}
