//! Roles granted by certificate end to end (R-SEC.25): the real agent's TLS WebSocket server
//! trusts two CAs with the same name, `Device.LocalAgent.Certificate.` lists both (told apart
//! by `GetFingerprint()`), and a `ControllerTrust.Credential.{i}` binding the genuine one to a
//! read-only role gives that role to the controllers whose certificates it issued, and only
//! to them, once its `AllowedUses` says MTP-and-USP. The inherited role is forgotten across a
//! restart (R-SEC.21) while the certificate rows keep their numbers. A Controller whose only
//! role comes from its certificate receives the Notifys that role lets it see.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use usp_codec::Record;
use usp_codec::msg;
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::operate_resp::operation_result::OperationResp;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_codec::usp_proto::usp::response::RespType;
use usp_codec::usp_proto::usp::{self, add, set};

use crate::mtp::expect;
use crate::mtp::harness::{AGENT_ID, Agent, CONTROLLER, Certs, STRANGER, Setup, WsTls, bounded};
use crate::mtp::peer::{Link, WsLink, get_record, recv_msg};
use crate::notifications::wait_notify;

/// A Controller that the test adds with no role of its own.
const READER: &str = "proto::mtp-e2e-reader";
const ROLE: &str = "Device.LocalAgent.ControllerTrust.Role.3";

/// Sends `request` as `from` and returns the agent's answer.
async fn ask(
    link: &mut WsLink,
    from: &str,
    msg_id: &str,
    request: ReqType,
) -> anyhow::Result<usp::Msg> {
    link.send(Record::for_msg(from, AGENT_ID, &msg::request(msg_id, request)).encode())
        .await?;
    let (to, answer) = recv_msg(link).await?;
    anyhow::ensure!(to == from, "answer addressed to {to}");
    Ok(answer)
}

fn response(answer: usp::Msg) -> anyhow::Result<RespType> {
    match answer.body.and_then(|body| body.msg_body) {
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(resp),
        })) => Ok(resp),
        other => bail!("expected a response, got {other:?}"),
    }
}

async fn add(
    link: &mut WsLink,
    from: &str,
    table: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<String> {
    let request = ReqType::Add(usp::Add {
        allow_partial: false,
        create_objs: vec![add::CreateObject {
            obj_path: table.to_string(),
            param_settings: params
                .iter()
                .map(|(param, value)| add::CreateParamSetting {
                    param: param.to_string(),
                    value: value.to_string(),
                    required: true,
                })
                .collect(),
        }],
    });
    let RespType::AddResp(resp) = response(ask(link, from, "add", request).await?)? else {
        bail!("Add {table}: not an AddResp");
    };
    match resp
        .created_obj_results
        .into_iter()
        .next()
        .and_then(|result| result.oper_status)
        .and_then(|status| status.oper_status)
    {
        Some(usp::add_resp::created_object_result::operation_status::OperStatus::OperSuccess(
            ok,
        )) => Ok(ok.instantiated_path),
        other => bail!("Add {table} failed: {other:?}"),
    }
}

fn set_request(object: &str, param: &str, value: &str) -> ReqType {
    ReqType::Set(usp::Set {
        allow_partial: false,
        update_objs: vec![set::UpdateObject {
            obj_path: object.to_string(),
            param_settings: vec![set::UpdateParamSetting {
                param: param.to_string(),
                value: value.to_string(),
                required: true,
            }],
        }],
    })
}

/// The value of one parameter path as `from` reads it: `None` when the answer holds none (the
/// role cannot read it), an error when no answer comes at all.
async fn read(link: &mut WsLink, from: &str, path: &str) -> anyhow::Result<Option<String>> {
    link.send(get_record(from, AGENT_ID, "read", path)).await?;
    let (_, answer) = recv_msg(link).await?;
    let name = path.rsplit('.').next().unwrap_or_default();
    let resp = expect::get_resp(&answer, "read")?;
    Ok(resp
        .req_path_results
        .iter()
        .flat_map(|result| &result.resolved_path_results)
        .find_map(|resolved| resolved.result_params.get(name).cloned()))
}

/// `GetFingerprint(SHA-256)` of one `Certificate.{i}.` row.
async fn fingerprint(link: &mut WsLink, row: &str) -> anyhow::Result<String> {
    let request = ReqType::Operate(usp::Operate {
        command: format!("{row}GetFingerprint()"),
        command_key: String::new(),
        send_resp: true,
        input_args: std::collections::BTreeMap::from([(
            "FingerprintAlgorithm".to_string(),
            "SHA-256".to_string(),
        )]),
    });
    let RespType::OperateResp(resp) = response(ask(link, CONTROLLER, "fp", request).await?)? else {
        bail!("not an OperateResp");
    };
    match resp
        .operation_results
        .into_iter()
        .next()
        .and_then(|result| result.operation_resp)
    {
        Some(OperationResp::ReqOutputArgs(output)) => output
            .output_args
            .get("Fingerprint")
            .cloned()
            .context("no Fingerprint output"),
        other => bail!("GetFingerprint() on {row} failed: {other:?}"),
    }
}

/// SHA-256 of the (first) certificate in a PEM file, hex.
fn pem_sha256(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read(path)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).context("not PEM")?;
    Ok(hex::encode(Sha256::digest(&pem.contents)))
}

/// TLS settings of a client presenting `name` from `issuer`, trusting the agent's server
/// certificate from `server_ca`.
fn client(server_ca: &Certs, issuer: &Certs, name: &str) -> usp_mtp::TlsConfig {
    usp_mtp::TlsConfig {
        cert_file: Some(issuer.path(&format!("{name}.pem"))),
        key_file: Some(issuer.path(&format!("{name}.key"))),
        ..server_ca.client(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_grants_its_role_to_certificates_its_ca_issued() -> anyhow::Result<()> {
    bounded(async {
        // Two CAs named alike ("usp e2e CA"), both trusted by the agent's TLS server.
        let genuine = Certs::new()?;
        let impostor = Certs::new()?;
        genuine.issue("admin", &["localhost"], Some(CONTROLLER))?;
        genuine.issue("reader", &["localhost"], Some(READER))?;
        genuine.issue("stranger", &["localhost"], Some(STRANGER))?;
        impostor.issue("reader", &["localhost"], Some(READER))?;
        let trust = genuine.path("trust.pem");
        std::fs::write(
            &trust,
            [genuine.path("ca.pem"), impostor.path("ca.pem")]
                .iter()
                .map(std::fs::read_to_string)
                .collect::<Result<String, _>>()?,
        )?;
        let mut agent = Agent::start(Setup {
            ws_tls: Some(WsTls {
                ca: trust,
                ..genuine.ws_server()
            }),
            ..Setup::default()
        })
        .await?;
        let port = agent.ws_port;
        let mut admin = WsLink::connect(port, CONTROLLER, Some(&genuine.client("admin"))).await?;

        // Both CAs are listed; GetFingerprint() tells them apart.
        let mut rows = HashMap::new();
        for row in [
            "Device.LocalAgent.Certificate.1.",
            "Device.LocalAgent.Certificate.2.",
        ] {
            rows.insert(fingerprint(&mut admin, row).await?, row.to_string());
        }
        let genuine_row = rows
            .get(&pem_sha256(&genuine.path("ca.pem"))?)
            .context("no row has the genuine CA's SHA-256 fingerprint")?
            .trim_end_matches('.')
            .to_string();
        anyhow::ensure!(
            rows.contains_key(&pem_sha256(&impostor.path("ca.pem"))?),
            "no row has the second CA's SHA-256 fingerprint: {rows:?}"
        );

        // A read-only role, and a Controller row for READER with no role of its own.
        let role = add(
            &mut admin,
            CONTROLLER,
            "Device.LocalAgent.ControllerTrust.Role.",
            &[("Enable", "true"), ("Name", "Reader")],
        )
        .await?;
        assert_eq!(role, format!("{ROLE}."));
        add(
            &mut admin,
            CONTROLLER,
            &format!("{role}Permission."),
            &[
                ("Enable", "true"),
                ("Order", "1"),
                ("Targets", "Device."),
                ("Param", "r---"),
                ("Obj", "r---"),
                ("InstantiatedObj", "r---"),
                ("CommandEvent", "r---"),
            ],
        )
        .await?;
        let reader_row = add(
            &mut admin,
            CONTROLLER,
            "Device.LocalAgent.Controller.",
            &[("EndpointID", READER), ("Enable", "true")],
        )
        .await?;
        let inherited = format!("{reader_row}InheritedRole");
        let endpoint_id = "Device.LocalAgent.EndpointID";

        // No Credential yet: the genuine reader holds no role.
        let mut reader = WsLink::connect(port, READER, Some(&genuine.client("reader"))).await?;
        assert_eq!(read(&mut reader, READER, endpoint_id).await?, None);

        // An MTP-only Credential grants no role to USP Messages.
        let credential = add(
            &mut admin,
            CONTROLLER,
            "Device.LocalAgent.ControllerTrust.Credential.",
            &[
                ("Enable", "true"),
                ("Role", ROLE),
                ("Credential", &genuine_row),
                ("AllowedUses", "MTP-only"),
            ],
        )
        .await?;
        assert_eq!(read(&mut reader, READER, endpoint_id).await?, None);

        // MTP-and-USP: the reader reads, cannot write, and its row shows the inherited role.
        let answer = ask(
            &mut admin,
            CONTROLLER,
            "uses",
            set_request(&credential, "AllowedUses", "MTP-and-USP"),
        )
        .await?;
        response(answer)?;
        assert_eq!(
            read(&mut reader, READER, endpoint_id).await?.as_deref(),
            Some(AGENT_ID)
        );
        let answer = ask(
            &mut reader,
            READER,
            "write",
            set_request(&reader_row, "ProvisioningCode", "mine"),
        )
        .await?;
        let Some(MsgBody::Error(error)) = answer.body.and_then(|body| body.msg_body) else {
            bail!("the read-only reader's Set was not refused");
        };
        let codes: Vec<u32> = error
            .param_errs
            .iter()
            .map(|param| param.err_code)
            .collect();
        assert_eq!(codes, [7006], "{error:?}");
        assert_eq!(
            read(&mut admin, CONTROLLER, &inherited).await?.as_deref(),
            Some(ROLE)
        );

        // An endpoint that is not a Controller is served with the certificate's role alone.
        let mut stranger =
            WsLink::connect(port, STRANGER, Some(&genuine.client("stranger"))).await?;
        assert_eq!(
            read(&mut stranger, STRANGER, endpoint_id).await?.as_deref(),
            Some(AGENT_ID)
        );

        // R-SEC.21: no role decision survives a restart; the rows keep their numbers.
        agent.restart().await?;
        let mut admin = WsLink::connect(port, CONTROLLER, Some(&genuine.client("admin"))).await?;
        assert_eq!(
            read(&mut admin, CONTROLLER, &inherited).await?.as_deref(),
            Some("")
        );
        assert_eq!(
            fingerprint(&mut admin, &format!("{genuine_row}.")).await?,
            pem_sha256(&genuine.path("ca.pem"))?
        );
        let mut reader = WsLink::connect(port, READER, Some(&genuine.client("reader"))).await?;
        assert_eq!(
            read(&mut reader, READER, endpoint_id).await?.as_deref(),
            Some(AGENT_ID)
        );

        // The same Endpoint ID with a certificate from the same-named CA gets nothing, and its
        // row no longer shows the role.
        let mut forged =
            WsLink::connect(port, READER, Some(&client(&genuine, &impostor, "reader"))).await?;
        assert_eq!(read(&mut forged, READER, endpoint_id).await?, None);
        assert_eq!(
            read(&mut admin, CONTROLLER, &inherited).await?.as_deref(),
            Some("")
        );
        agent.check_running()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_whose_role_comes_from_its_certificate_receives_its_notifys()
-> anyhow::Result<()> {
    bounded(async {
        let ca = Certs::new()?;
        ca.issue("admin", &["localhost"], Some(CONTROLLER))?;
        ca.issue("watcher", &["localhost"], Some(READER))?;
        let mut agent = Agent::start(Setup {
            ws_tls: Some(ca.ws_server()),
            ..Setup::default()
        })
        .await?;
        let port = agent.ws_port;
        let mut admin = WsLink::connect(port, CONTROLLER, Some(&ca.client("admin"))).await?;
        // Read and be notified of everything; manage its own subscriptions.
        let role = add(
            &mut admin,
            CONTROLLER,
            "Device.LocalAgent.ControllerTrust.Role.",
            &[("Enable", "true"), ("Name", "Watcher")],
        )
        .await?;
        for (order, targets, param, obj) in [
            ("1", "Device.", "r--n", "r---"),
            ("2", "Device.LocalAgent.Subscription.", "rw-n", "rw--"),
        ] {
            add(
                &mut admin,
                CONTROLLER,
                &format!("{role}Permission."),
                &[
                    ("Enable", "true"),
                    ("Order", order),
                    ("Targets", targets),
                    ("Param", param),
                    ("Obj", obj),
                    ("InstantiatedObj", obj),
                    ("CommandEvent", "r---"),
                ],
            )
            .await?;
        }
        let watcher_row = add(
            &mut admin,
            CONTROLLER,
            "Device.LocalAgent.Controller.",
            &[("EndpointID", READER), ("Enable", "true")],
        )
        .await?;
        add(
            &mut admin,
            CONTROLLER,
            "Device.LocalAgent.ControllerTrust.Credential.",
            &[
                ("Enable", "true"),
                ("Role", role.trim_end_matches('.')),
                ("Credential", "Device.LocalAgent.Certificate.1"),
                ("AllowedUses", "MTP-and-USP"),
            ],
        )
        .await?;

        // No AssignedRole: the subscription and its Notify rest on the inherited role alone.
        let mut watcher = WsLink::connect(port, READER, Some(&ca.client("watcher"))).await?;
        add(
            &mut watcher,
            READER,
            "Device.LocalAgent.Subscription.",
            &[
                ("Enable", "true"),
                ("ID", "watch"),
                ("NotifType", "ValueChange"),
                ("ReferenceList", &format!("{watcher_row}ProvisioningCode")),
            ],
        )
        .await?;
        response(
            ask(
                &mut admin,
                CONTROLLER,
                "change",
                set_request(&watcher_row, "ProvisioningCode", "seen"),
            )
            .await?,
        )?;
        let (_, _, notify) = wait_notify(&mut watcher, Duration::from_secs(5)).await?;
        assert_eq!(notify.subscription_id, "watch");
        agent.check_running()
    })
    .await
}
