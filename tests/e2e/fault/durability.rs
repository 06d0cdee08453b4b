//! The kill -9 loop: each round starts the agent on the same state directory, checks that the
//! store holds exactly the acknowledged changes (subscriptions added, edited and deleted through
//! USP), then runs Add/Set/Delete requests until SIGKILL lands at a random moment. The one
//! request in flight at the kill may or may not have been applied, but never in part.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use usp_codec::usp_proto::usp::{
    self, add, add_resp, body::MsgBody, delete_resp, request::ReqType, response::RespType, set,
    set_resp,
};
use usp_controller::ControllerClient;

use super::harness::{self, Agent};

/// Subscriptions this test creates carry IDs with this prefix; others are not its business.
const PREFIX: &str = "fault-";
/// The two values the loop toggles `ReferenceList` between.
const REFERENCES: [&str; 2] = [
    "Device.DeviceInfo.SoftwareVersion",
    "Device.DeviceInfo.HardwareVersion",
];

/// One acknowledged subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sub {
    path: String,
    reference: String,
}

/// A request sent but not (yet) acknowledged.
#[derive(Debug, Clone)]
enum InFlight {
    Add { id: String, reference: String },
    Set { id: String, reference: String },
    Delete { id: String },
}

/// What the agent acknowledged, plus the request in flight.
#[derive(Debug, Default)]
struct Model {
    subs: BTreeMap<String, Sub>,
    in_flight: Option<InFlight>,
}

/// What the store holds, read back through Get: ID → (instance path, ReferenceList, NotifType).
type Actual = BTreeMap<String, (String, String, String)>;

/// Runs `rounds` kill/restart rounds and a final check.
pub async fn kill_loop(rounds: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut agent = Agent::configure(dir.path(), None)?;
    let model = Arc::new(Mutex::new(Model::default()));
    let mut acknowledged = 0usize;
    for round in 0..=rounds {
        agent.start().await?;
        let (client, _events) = agent.ws_client(0, 1, Duration::from_secs(5)).await?;
        let actual = read_back(&client).await?;
        check_and_adopt(&model, actual).with_context(|| format!("after restart {round}"))?;
        if round == rounds {
            break;
        }
        let kill_after = Duration::from_millis(30 + harness::random_below(400));
        let work = mutate(&client, &model, round);
        tokio::select! {
            result = work => result?,
            () = tokio::time::sleep(kill_after) => {}
        }
        agent.kill().await?;
        acknowledged = model.lock().map_or(0, |m| m.subs.len()).max(acknowledged);
    }
    eprintln!("kill loop: {rounds} kills, up to {acknowledged} subscriptions held");
    Ok(())
}

/// Add/Set/Delete until cancelled by the kill.
async fn mutate(
    client: &ControllerClient,
    model: &Arc<Mutex<Model>>,
    round: u32,
) -> anyhow::Result<()> {
    for step in 0u64.. {
        let (choice, existing) = {
            let m = model
                .lock()
                .map_err(|_| anyhow::anyhow!("model poisoned"))?;
            let keys: Vec<(String, Sub)> =
                m.subs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (harness::random_below(4), keys)
        };
        let op = match (choice, existing.as_slice()) {
            (0 | 1, _) | (_, []) => InFlight::Add {
                id: format!("{PREFIX}{round}-{step}"),
                reference: REFERENCES[(step % 2) as usize].to_string(),
            },
            (2, subs) => {
                let (id, sub) = &subs[harness::random_below(subs.len() as u64) as usize];
                let reference = if sub.reference == REFERENCES[0] {
                    REFERENCES[1]
                } else {
                    REFERENCES[0]
                };
                InFlight::Set {
                    id: id.clone(),
                    reference: reference.to_string(),
                }
            }
            (_, subs) => {
                let (id, _) = &subs[harness::random_below(subs.len() as u64) as usize];
                InFlight::Delete { id: id.clone() }
            }
        };
        let path_of = |id: &str| {
            model
                .lock()
                .ok()
                .and_then(|m| m.subs.get(id).map(|s| s.path.clone()))
                .unwrap_or_default()
        };
        let request = match &op {
            InFlight::Add { id, reference } => add_request(id, reference),
            InFlight::Set { id, reference } => ReqType::Set(usp::Set {
                allow_partial: false,
                update_objs: vec![set::UpdateObject {
                    obj_path: path_of(id),
                    param_settings: vec![set::UpdateParamSetting {
                        param: "ReferenceList".to_string(),
                        value: reference.clone(),
                        required: true,
                    }],
                }],
            }),
            InFlight::Delete { id } => ReqType::Delete(usp::Delete {
                allow_partial: false,
                obj_paths: vec![path_of(id)],
            }),
        };
        set_in_flight(model, Some(op.clone()))?;
        let answer = client.request(request).await?;
        let mut m = model
            .lock()
            .map_err(|_| anyhow::anyhow!("model poisoned"))?;
        m.in_flight = None;
        apply(&mut m, op, &answer)?;
    }
    Ok(())
}

fn set_in_flight(model: &Arc<Mutex<Model>>, op: Option<InFlight>) -> anyhow::Result<()> {
    model
        .lock()
        .map_err(|_| anyhow::anyhow!("model poisoned"))?
        .in_flight = op;
    Ok(())
}

fn add_request(id: &str, reference: &str) -> ReqType {
    let setting = |param: &str, value: &str| add::CreateParamSetting {
        param: param.to_string(),
        value: value.to_string(),
        required: true,
    };
    ReqType::Add(usp::Add {
        allow_partial: false,
        create_objs: vec![add::CreateObject {
            obj_path: "Device.LocalAgent.Subscription.".to_string(),
            param_settings: vec![
                setting("ID", id),
                setting("NotifType", "ValueChange"),
                setting("ReferenceList", reference),
                setting("Enable", "false"),
                // Only persistent subscriptions survive a restart (TR-181).
                setting("Persistent", "true"),
            ],
        }],
    })
}

/// Records an acknowledged change in the model; an answer that is not a success is an error
/// (every request this loop sends is valid).
fn apply(model: &mut Model, op: InFlight, answer: &usp::Msg) -> anyhow::Result<()> {
    let resp = match answer.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(resp),
        })) => resp,
        _ => bail!("{op:?} was refused: {answer:?}"),
    };
    match (op, resp) {
        (InFlight::Add { id, reference }, RespType::AddResp(r)) => {
            use add_resp::created_object_result::operation_status::OperStatus;
            match r
                .created_obj_results
                .first()
                .and_then(|c| c.oper_status.as_ref())
                .and_then(|s| s.oper_status.as_ref())
            {
                Some(OperStatus::OperSuccess(ok)) => {
                    model.subs.insert(
                        id,
                        Sub {
                            path: ok.instantiated_path.clone(),
                            reference,
                        },
                    );
                }
                other => bail!("Add {id} failed: {other:?}"),
            }
        }
        (InFlight::Set { id, reference }, RespType::SetResp(r)) => {
            use set_resp::updated_object_result::operation_status::OperStatus;
            match r
                .updated_obj_results
                .first()
                .and_then(|c| c.oper_status.as_ref())
                .and_then(|s| s.oper_status.as_ref())
            {
                Some(OperStatus::OperSuccess(_)) => {
                    if let Some(sub) = model.subs.get_mut(&id) {
                        sub.reference = reference;
                    }
                }
                other => bail!("Set {id} failed: {other:?}"),
            }
        }
        (InFlight::Delete { id }, RespType::DeleteResp(r)) => {
            use delete_resp::deleted_object_result::operation_status::OperStatus;
            match r
                .deleted_obj_results
                .first()
                .and_then(|c| c.oper_status.as_ref())
                .and_then(|s| s.oper_status.as_ref())
            {
                Some(OperStatus::OperSuccess(_)) => {
                    model.subs.remove(&id);
                }
                other => bail!("Delete {id} failed: {other:?}"),
            }
        }
        (op, resp) => bail!("{op:?} answered with {resp:?}"),
    }
    Ok(())
}

/// Reads every subscription of this test back from the agent.
async fn read_back(client: &ControllerClient) -> anyhow::Result<Actual> {
    let answer = client
        .request(ReqType::Get(usp::Get {
            param_paths: vec!["Device.LocalAgent.Subscription.".to_string()],
            max_depth: 0,
        }))
        .await?;
    let Some(MsgBody::Response(usp::Response {
        resp_type: Some(RespType::GetResp(resp)),
    })) = answer.body.and_then(|b| b.msg_body)
    else {
        bail!("Get of the subscriptions failed");
    };
    let mut actual = Actual::new();
    for requested in resp.req_path_results {
        if requested.err_code != 0 {
            bail!(
                "Get {} failed: {} {}",
                requested.requested_path,
                requested.err_code,
                requested.err_msg
            );
        }
        for resolved in requested.resolved_path_results {
            let params = &resolved.result_params;
            let Some(id) = params.get("ID").filter(|id| id.starts_with(PREFIX)) else {
                continue;
            };
            let field = |name: &str| params.get(name).cloned().unwrap_or_default();
            actual.insert(
                id.clone(),
                (
                    resolved.resolved_path.clone(),
                    field("ReferenceList"),
                    field("NotifType"),
                ),
            );
        }
    }
    Ok(actual)
}

/// Compares the store with the model: acknowledged changes all present, the in-flight one
/// either fully applied or not at all, nothing else. Then the model follows the store.
fn check_and_adopt(model: &Arc<Mutex<Model>>, actual: Actual) -> anyhow::Result<()> {
    let mut m = model
        .lock()
        .map_err(|_| anyhow::anyhow!("model poisoned"))?;
    for (id, (path, _, notif_type)) in &actual {
        if notif_type != "ValueChange" {
            bail!("{path} ({id}) is half-applied: NotifType {notif_type:?}");
        }
    }
    let in_flight_id = match &m.in_flight {
        Some(InFlight::Add { id, .. } | InFlight::Set { id, .. } | InFlight::Delete { id }) => {
            Some(id.clone())
        }
        None => None,
    };
    for (id, sub) in &m.subs {
        if Some(id) == in_flight_id.as_ref() {
            continue;
        }
        match actual.get(id) {
            Some((_, reference, _)) if *reference == sub.reference => {}
            Some((path, reference, _)) => bail!(
                "acknowledged ReferenceList {:?} of {id} is lost: {path} holds {reference:?}",
                sub.reference
            ),
            None => bail!("acknowledged subscription {id} ({}) is missing", sub.path),
        }
    }
    for id in actual.keys() {
        if !m.subs.contains_key(id) && Some(id) != in_flight_id.as_ref() {
            bail!("subscription {id} exists but was deleted or never acknowledged");
        }
    }
    match m.in_flight.take() {
        Some(InFlight::Add { id, reference }) => {
            if let Some((_, actual_ref, _)) = actual.get(&id)
                && *actual_ref != reference
            {
                bail!("in-flight Add of {id} applied with ReferenceList {actual_ref:?}");
            }
        }
        Some(InFlight::Set { id, reference }) => {
            let before = m.subs.get(&id).map(|s| s.reference.clone());
            match actual.get(&id) {
                Some((_, now, _)) if *now == reference || Some(now) == before.as_ref() => {}
                other => bail!("in-flight Set of {id} left {other:?}"),
            }
        }
        Some(InFlight::Delete { id }) => {
            let before = m.subs.get(&id).map(|s| s.reference.clone());
            if let Some((_, now, _)) = actual.get(&id)
                && Some(now) != before.as_ref()
            {
                bail!("in-flight Delete of {id} changed it to {now:?}");
            }
        }
        None => {}
    }
    m.subs = actual
        .into_iter()
        .map(|(id, (path, reference, _))| (id, Sub { path, reference }))
        .collect();
    Ok(())
}
