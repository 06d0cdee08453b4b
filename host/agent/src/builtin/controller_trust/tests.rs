//! The ControllerTrust object over a data model: factory roles, edits that apply once
//! committed, refused values, and the challenge commands.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
use super::*;
use usp_dm::{DataModel, DmError, StoredChange};

type Rows = Arc<Mutex<Vec<StoredChange>>>;

struct Fixture {
    dm: DataModel,
    provider: ControllerTrustProvider,
    controllers: MemoryProvider,
    rows: Rows,
}

async fn fixture(snapshot: &Snapshot) -> Fixture {
    let rows: Rows = Arc::default();
    let sink = Arc::clone(&rows);
    let hook: CommitHook =
        Arc::new(move |changes: &[StoredChange]| sink.lock().unwrap().extend_from_slice(changes));
    let controllers = crate::builtin::local_agent::tables(hook.clone()).unwrap();
    let provider = ControllerTrustProvider::new(snapshot, controllers.clone(), hook)
        .await
        .unwrap();
    let mut dm = DataModel::new(ChangeSink::new(|_| {}));
    dm.register(Arc::new(controllers.clone())).unwrap();
    dm.register(Arc::new(provider.clone())).unwrap();
    Fixture {
        dm,
        provider,
        controllers,
        rows,
    }
}

async fn add(dm: &DataModel, table: &str, params: &[(&str, &str)]) -> Result<u32, DmError> {
    let resolution = dm.resolve_str(table).await.unwrap();
    let params: ParamValues = params
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let mut tx = dm.begin();
    let number = tx.add(&resolution.objects[0], &params).await?;
    tx.commit().await?;
    Ok(number)
}

async fn set(dm: &DataModel, object: &str, name: &str, value: &str) -> Result<(), DmError> {
    let resolution = dm.resolve_str(object).await.unwrap();
    let mut tx = dm.begin();
    tx.set(&resolution.objects[0], name, value).await?;
    tx.commit().await?;
    Ok(())
}

async fn get(dm: &DataModel, path: &str) -> String {
    let (object, name) = path.rsplit_once('.').unwrap();
    let resolution = dm.resolve_str(&format!("{object}.")).await.unwrap();
    dm.read_param(&resolution.objects[0], name).await.unwrap()
}

const FULL: &str = "Device.LocalAgent.ControllerTrust.Role.1";
const UNTRUSTED: &str = "Device.LocalAgent.ControllerTrust.Role.2";

#[tokio::test]
async fn first_boot_creates_and_persists_the_factory_roles() {
    let fx = fixture(&Snapshot::default()).await;
    let trust = fx.provider.trust().current();
    assert!(
        trust
            .access([FULL])
            .can_write_param("Device.LocalAgent.Controller.1.Enable")
    );
    // Unknown endpoints are not served until UntrustedRole names a role.
    assert!(trust.untrusted_roles().is_empty());
    assert!(
        !trust
            .access([UNTRUSTED])
            .can_read_param("Device.DeviceInfo.SerialNumber")
    );
    assert!(
        trust
            .access([UNTRUSTED])
            .can_read_param("Device.LocalAgent.ControllerTrust.Challenge.1.Alias")
    );
    assert_eq!(
        get(&fx.dm, "Device.LocalAgent.ControllerTrust.Role.1.Name").await,
        "Full Access"
    );
    assert_eq!(
        get(
            &fx.dm,
            "Device.LocalAgent.ControllerTrust.RoleNumberOfEntries"
        )
        .await,
        "2"
    );
    assert_eq!(
        get(
            &fx.dm,
            "Device.LocalAgent.ControllerTrust.Role.2.PermissionNumberOfEntries"
        )
        .await,
        "3"
    );
    let rows = fx.rows.lock().unwrap().clone();
    assert!(rows.contains(&StoredChange::ParamSet {
        path: "Device.LocalAgent.ControllerTrust.Role.2.Name".to_string(),
        value: "Untrusted".to_string(),
    }));
    assert_eq!(
        get(&fx.dm, "Device.LocalAgent.ControllerTrust.UntrustedRole").await,
        ""
    );
}

#[tokio::test]
async fn stored_roles_are_restored_without_factory_roles() {
    let snapshot = Snapshot {
        instances: vec![
            "Device.LocalAgent.ControllerTrust.Role.5.".to_string(),
            "Device.LocalAgent.ControllerTrust.Role.5.Permission.1.".to_string(),
        ],
        params: [
            ("Role.5.Enable", "true"),
            ("Role.5.Name", "Reader"),
            ("Role.5.Permission.1.Enable", "true"),
            ("Role.5.Permission.1.Targets", "Device.DeviceInfo."),
            ("Role.5.Permission.1.Param", "r---"),
        ]
        .iter()
        .map(|(path, value)| (format!("{CONTROLLER_TRUST}{path}"), value.to_string()))
        .collect(),
        next_instance: Vec::new(),
    };
    let fx = fixture(&snapshot).await;
    let trust = fx.provider.trust().current();
    assert!(trust.role(FULL).is_none());
    let reader = trust.access(["Device.LocalAgent.ControllerTrust.Role.5"]);
    assert!(reader.can_read_param("Device.DeviceInfo.SerialNumber"));
    assert!(!reader.can_write_param("Device.DeviceInfo.SerialNumber"));
    assert!(fx.rows.lock().unwrap().is_empty());
}

#[tokio::test]
async fn permission_edits_apply_once_committed() {
    let fx = fixture(&Snapshot::default()).await;
    add(
        &fx.dm,
        "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
        &[
            ("Enable", "true"),
            ("Order", "2"),
            ("Targets", "Device.LocalAgent.ControllerTrust."),
        ],
    )
    .await
    .unwrap();
    let access = fx.provider.trust().current().access([FULL]);
    assert!(!access.can_read_param("Device.LocalAgent.ControllerTrust.UntrustedRole"));
    assert!(access.can_read_param("Device.LocalAgent.EndpointID"));

    set(
        &fx.dm,
        "Device.LocalAgent.ControllerTrust.Role.1.Permission.2.",
        "Param",
        "r---",
    )
    .await
    .unwrap();
    let access = fx.provider.trust().current().access([FULL]);
    assert!(access.can_read_param("Device.LocalAgent.ControllerTrust.UntrustedRole"));
    assert!(!access.can_write_param("Device.LocalAgent.ControllerTrust.UntrustedRole"));
}

#[tokio::test]
async fn malformed_permission_values_are_refused_with_7012() {
    let fx = fixture(&Snapshot::default()).await;
    let entry = "Device.LocalAgent.ControllerTrust.Role.1.Permission.1.";
    for (name, value) in [("Targets", "Device..X"), ("Param", "rw-x"), ("Obj", "xwrn")] {
        let error = set(&fx.dm, entry, name, value).await.unwrap_err();
        let DmError::Provider { source, .. } = &error else {
            panic!("{name}={value}: unexpected {error:?}");
        };
        assert_eq!(source.code, UspErrorCode::InvalidValue, "{name}={value}");
        assert!(
            source.message.contains(&format!("{entry}{name}")),
            "{source}"
        );
    }
    let error = add(
        &fx.dm,
        "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
        &[("Targets", "Device.X.Y+.")],
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("reference following"), "{error}");
    // Nothing changed.
    assert_eq!(get(&fx.dm, &format!("{entry}Targets")).await, "Device.");
}

#[tokio::test]
async fn secured_roles_follow_the_table() {
    let fx = fixture(&Snapshot::default()).await;
    set(&fx.dm, CONTROLLER_TRUST, "SecuredRoles", FULL)
        .await
        .unwrap();
    let trust = fx.provider.trust().current();
    assert!(trust.access([FULL]).is_secured());
    assert!(!trust.access([UNTRUSTED]).is_secured());
}

#[tokio::test]
async fn a_right_challenge_response_replaces_the_untrusted_role() {
    let fx = fixture(&Snapshot::default()).await;
    set(&fx.dm, CONTROLLER_TRUST, "UntrustedRole", UNTRUSTED)
        .await
        .unwrap();
    let controller = add(
        &fx.dm,
        "Device.LocalAgent.Controller.",
        &[("EndpointID", "proto::ctrl"), ("AssignedRole", UNTRUSTED)],
    )
    .await
    .unwrap();
    add(
        &fx.dm,
        "Device.LocalAgent.ControllerTrust.Challenge.",
        &[
            ("Enable", "true"),
            ("Role", FULL),
            ("Value", "c2VjcmV0"),
            ("Instruction", "bGFiZWw="),
            ("Retries", "2"),
        ],
    )
    .await
    .unwrap();
    let object = usp_dm::ResolvedObject::object(CONTROLLER_TRUST, CONTROLLER_TRUST);
    let request = Args::from([(
        "ChallengeRef".to_string(),
        "Device.LocalAgent.ControllerTrust.Challenge.1".to_string(),
    )]);
    let outcome = ORIGINATOR
        .scope(
            "proto::ctrl".to_string(),
            fx.dm.operate(&object, "RequestChallenge()", "", &request),
        )
        .await
        .unwrap();
    let OperateOutcome::Done(output) = outcome else {
        panic!("RequestChallenge() is synchronous");
    };
    assert_eq!(output["Instruction"], "bGFiZWw=");
    let id = output["ChallengeID"].clone();

    let answer = |value: &str| {
        Args::from([
            ("ChallengeID".to_string(), id.clone()),
            ("Value".to_string(), value.to_string()),
        ])
    };
    let wrong = ORIGINATOR
        .scope(
            "proto::ctrl".to_string(),
            fx.dm
                .operate(&object, "ChallengeResponse()", "", &answer("d3Jvbmc=")),
        )
        .await;
    assert!(wrong.is_err());
    ORIGINATOR
        .scope(
            "proto::ctrl".to_string(),
            fx.dm
                .operate(&object, "ChallengeResponse()", "", &answer("c2VjcmV0")),
        )
        .await
        .unwrap();
    let assigned = fx
        .controllers
        .value(&format!(
            "Device.LocalAgent.Controller.{controller}.AssignedRole"
        ))
        .unwrap();
    assert_eq!(assigned, FULL);
}

#[tokio::test]
async fn challenge_commands_need_the_calling_controller() {
    let fx = fixture(&Snapshot::default()).await;
    let object = usp_dm::ResolvedObject::object(CONTROLLER_TRUST, CONTROLLER_TRUST);
    let request = Args::from([("ChallengeRef".to_string(), "x".to_string())]);
    let error = fx
        .dm
        .operate(&object, "RequestChallenge()", "", &request)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("calling Controller"), "{error}");
}
