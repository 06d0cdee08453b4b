//! `Device.LocalAgent.`: the agent's computed values (a native provider) and its stored
//! configuration tables (a [`MemoryProvider`] whose commits the agent persists):
//! `Controller.{i}` (with `MTP.{i}`, `BootParameter.{i}`, `TransferCompletePolicy`),
//! `MTP.{i}`, `Subscription.{i}`, `Certificate.{i}` (filled from the trust files, see
//! [`super::certificate`]) and the volatile `Request.{i}` (async operations do not survive a
//! restart, so its rows are never persisted). [`LocalAgentTables`] serves those tables and
//! their commands: `Controller.{i}.SendOnBoardRequest()`, `Certificate.{i}.Delete()` and
//! `Certificate.{i}.GetFingerprint()`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::mpsc;
use usp_codec::UspErrorCode;
use usp_dm::{
    Args, ChangeSink, CommitHook, GetRequest, GetResponse, MemoryProvider, OperateOutcome,
    Provider, ProviderError, Schema, Transaction,
};

use super::certificate::{self, CERTIFICATE_ROW, CERTIFICATE_TABLE, Certificates};
use super::device::DeviceAction;
use super::mtp::{self, MTP_TABLE};
use super::{BuiltinError, ReadOnlyObjects, standard_object, standard_subtree};

const OBJECT: &str = "Device.LocalAgent.";

/// The table of pending and running asynchronous operations.
pub const REQUEST_TABLE: &str = "Device.LocalAgent.Request.";

/// The table of Controllers this agent serves.
pub const CONTROLLER_TABLE: &str = "Device.LocalAgent.Controller.";

/// The table of subscriptions.
pub const SUBSCRIPTION_TABLE: &str = "Device.LocalAgent.Subscription.";

const CONTROLLER_ROW: &str = "Device.LocalAgent.Controller.{i}.";
const SEND_ON_BOARD_REQUEST: &str = "SendOnBoardRequest()";

/// The stored tables under `Device.LocalAgent.`; committed changes go to `hook`. Their schema
/// keeps the commands [`LocalAgentTables`] runs.
pub fn tables(hook: CommitHook) -> Result<MemoryProvider, BuiltinError> {
    let commands = [
        (
            CONTROLLER_ROW,
            standard_object(CONTROLLER_ROW, &[], &[SEND_ON_BOARD_REQUEST], &[])?.commands,
        ),
        (
            CERTIFICATE_ROW,
            standard_object(CERTIFICATE_ROW, &[], &certificate::COMMANDS, &[])?.commands,
        ),
    ];
    let mut schema = Schema::new();
    for (root, without) in [
        (
            "Device.LocalAgent.Controller.{i}.",
            &["Device.LocalAgent.Controller.{i}.E2ESession."][..],
        ),
        ("Device.LocalAgent.MTP.{i}.", &[][..]),
        ("Device.LocalAgent.Subscription.{i}.", &[][..]),
        ("Device.LocalAgent.Request.{i}.", &[][..]),
        (CERTIFICATE_ROW, &[][..]),
    ] {
        for def in standard_subtree(root, without)?.objects() {
            let mut def = def.clone();
            if let Some((_, kept)) = commands.iter().find(|(row, _)| def.path == *row) {
                def.commands = kept.clone();
            }
            schema.insert(def);
        }
    }
    for def in mtp::schema()?.objects() {
        schema.insert(def.clone());
    }
    let mut tables = MemoryProvider::new("builtin LocalAgent tables", schema)
        .with_commit_hook(hook)
        .with_volatile(REQUEST_TABLE);
    for live in mtp::LIVE_STATUS {
        tables = tables.with_volatile_param(*live);
    }
    Ok(tables)
}

/// Serves the stored tables (everything but commands is the [`MemoryProvider`]'s) and runs
/// their commands. `Controller.{i}.SendOnBoardRequest()` marks the Controller not on-boarded
/// and hands the OnBoardRequest to the agent, which sends and retries it once the OperateResp
/// is out; the `Certificate.{i}` commands are [`certificate::operate`]'s.
pub struct LocalAgentTables {
    tables: MemoryProvider,
    actions: mpsc::UnboundedSender<DeviceAction>,
    certificates: Certificates,
}

impl LocalAgentTables {
    /// Serves `tables` (from [`tables`]); OnBoardRequests are handed over on `actions`;
    /// `certificates` are those the `Certificate.{i}` rows list.
    pub fn new(
        tables: MemoryProvider,
        actions: mpsc::UnboundedSender<DeviceAction>,
        certificates: Certificates,
    ) -> Self {
        LocalAgentTables {
            tables,
            actions,
            certificates,
        }
    }

    /// `Controller.{i}.SendOnBoardRequest()` (digest §3.11, R-NOT.5): only towards an enabled
    /// Controller with an Endpoint ID, which is the only kind that can answer it.
    fn send_on_board_request(&self, command: &str) -> Result<OperateOutcome, ProviderError> {
        let failure = |why: &str| {
            ProviderError::new(UspErrorCode::CommandFailure, format!("{command}: {why}"))
        };
        let row = command
            .strip_suffix(SEND_ON_BOARD_REQUEST)
            .and_then(|object| object.strip_suffix('.'))
            .ok_or_else(|| failure("not a Controller command"))?;
        let value = |name: &str| self.tables.value(&format!("{row}.{name}"));
        if value("Enable").as_deref() != Some("true") {
            return Err(failure("the Controller is not enabled"));
        }
        if value("EndpointID").is_none_or(|id| id.is_empty()) {
            return Err(failure("the Controller has no EndpointID"));
        }
        if value("OnBoardingComplete").as_deref() != Some("false") {
            self.tables
                .set_value(&format!("{row}.OnBoardingComplete"), "false")?;
        }
        self.actions
            .send(DeviceAction::SendOnBoardRequest {
                controller: row.to_string(),
            })
            .map_err(|_| failure("the agent is shutting down"))?;
        Ok(OperateOutcome::Done(Args::new()))
    }
}

#[async_trait]
impl Provider for LocalAgentTables {
    fn name(&self) -> &str {
        Provider::name(&self.tables)
    }

    fn schema(&self) -> Arc<Schema> {
        Provider::schema(&self.tables)
    }

    fn attach(&self, sink: ChangeSink) {
        self.tables.attach(sink);
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        self.tables.instances(table).await
    }

    async fn has_instance(&self, table: &str, number: u32) -> Result<bool, ProviderError> {
        self.tables.has_instance(table, number).await
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        self.tables.get(requests).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        self.tables.begin().await
    }

    async fn operate(
        &self,
        command: &str,
        _command_key: &str,
        input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        if command.starts_with(CONTROLLER_TABLE) && command.ends_with(SEND_ON_BOARD_REQUEST) {
            return self.send_on_board_request(command);
        }
        if command.starts_with(CERTIFICATE_TABLE) {
            return certificate::operate(&self.tables, &self.certificates, command, &input);
        }
        Err(super::no_command(command))
    }
}

/// Serves the values of `Device.LocalAgent.` itself.
pub struct LocalAgentProvider {
    schema: Arc<Schema>,
    endpoint_id: String,
    software_version: String,
    supported_protocols: String,
    started: Instant,
    tables: MemoryProvider,
}

impl LocalAgentProvider {
    /// The provider. `supported_protocols` is the MTP list (`MQTT,WebSocket,UDS`); `tables` is
    /// the provider from [`tables`], counted for the `*NumberOfEntries` values.
    pub fn new(
        endpoint_id: String,
        software_version: String,
        supported_protocols: String,
        started: Instant,
        tables: MemoryProvider,
    ) -> Result<Self, BuiltinError> {
        let mut def = standard_object(
            OBJECT,
            &[
                "EndpointID",
                "SoftwareVersion",
                "UpTime",
                "SupportedProtocols",
                "SupportedFingerprintAlgorithms",
                "MTPNumberOfEntries",
                "ControllerNumberOfEntries",
                "CertificateNumberOfEntries",
                "SubscriptionNumberOfEntries",
                "RequestNumberOfEntries",
            ],
            &[],
            // The notifier sends `Periodic!` (notify::periodic); GetSupportedDM must list it
            // (TP-469 1.72: events with their arguments).
            &["Periodic!"],
        )?;
        for param in &mut def.params {
            if param.name == "UpTime" {
                param.value_change = usp_dm::ValueChange::WillIgnore;
            }
        }
        Ok(LocalAgentProvider {
            schema: Arc::new(std::iter::once(def).collect()),
            endpoint_id,
            software_version,
            supported_protocols,
            started,
            tables,
        })
    }

    async fn value(&self, name: &str) -> Option<String> {
        let count = |table: &'static str| async move {
            self.tables
                .instances(table)
                .await
                .map(|numbers| numbers.len().to_string())
                .unwrap_or_else(|_| "0".to_string())
        };
        Some(match name {
            "EndpointID" => self.endpoint_id.clone(),
            "SoftwareVersion" => self.software_version.clone(),
            "UpTime" => self.started.elapsed().as_secs().to_string(),
            "SupportedProtocols" => self.supported_protocols.clone(),
            "SupportedFingerprintAlgorithms" => certificate::FINGERPRINT_ALGORITHMS.to_string(),
            "MTPNumberOfEntries" => count(MTP_TABLE).await,
            "ControllerNumberOfEntries" => count(CONTROLLER_TABLE).await,
            "CertificateNumberOfEntries" => count(CERTIFICATE_TABLE).await,
            "SubscriptionNumberOfEntries" => count(SUBSCRIPTION_TABLE).await,
            "RequestNumberOfEntries" => count(REQUEST_TABLE).await,
            _ => return None,
        })
    }
}

#[async_trait]
impl ReadOnlyObjects for LocalAgentProvider {
    fn name(&self) -> &str {
        "builtin LocalAgent"
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let Some(def) = self.schema.object(&request.object) else {
                answers.push(Err(ProviderError::new(
                    usp_codec::UspErrorCode::InvalidPath,
                    format!("{} is not served here", request.object),
                )));
                continue;
            };
            let names: Vec<String> = if request.params.is_empty() {
                def.params.iter().map(|param| param.name.clone()).collect()
            } else {
                request.params.clone()
            };
            let mut values = usp_dm::ParamValues::new();
            let mut failure = None;
            for name in names {
                match self.value(&name).await {
                    Some(value) => {
                        values.insert(name, value);
                    }
                    None => {
                        failure = Some(ProviderError::new(
                            UspErrorCode::UnsupportedParameter,
                            format!("{}{name} is not a supported parameter", request.object),
                        ));
                        break;
                    }
                }
            }
            answers.push(match failure {
                Some(error) => Err(error),
                None => Ok(values),
            });
        }
        answers
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use usp_dm::ParamValues;

    #[tokio::test]
    async fn counts_follow_the_stored_tables() {
        let tables = tables(Arc::new(|_| {})).unwrap();
        let mut params = ParamValues::new();
        params.insert("EndpointID".to_string(), "self::ctl".to_string());
        tables.add_instance(CONTROLLER_TABLE, &params).unwrap();
        let provider = LocalAgentProvider::new(
            "os::agent".into(),
            "1.0".into(),
            "UDS".into(),
            Instant::now(),
            tables,
        )
        .unwrap();
        let answers = provider
            .get(&[GetRequest {
                object: OBJECT.to_string(),
                params: vec![],
            }])
            .await;
        let values = answers[0].as_ref().unwrap();
        assert_eq!(values["EndpointID"], "os::agent");
        assert_eq!(values["ControllerNumberOfEntries"], "1");
        assert_eq!(values["SubscriptionNumberOfEntries"], "0");
        assert_eq!(values["SupportedProtocols"], "UDS");
        assert_eq!(
            values["SupportedFingerprintAlgorithms"],
            "SHA-1,SHA-224,SHA-256,SHA-384,SHA-512"
        );
        assert_eq!(values["CertificateNumberOfEntries"], "0");
    }

    #[tokio::test]
    async fn request_rows_are_not_reported_for_persistence() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let tables = tables(Arc::new(move |changes: &[usp_dm::StoredChange]| {
            sink.lock().unwrap().extend_from_slice(changes);
        }))
        .unwrap();
        tables
            .add_instance(REQUEST_TABLE, &ParamValues::new())
            .unwrap();
        assert!(seen.lock().unwrap().is_empty());
        tables
            .add_instance(CONTROLLER_TABLE, &ParamValues::new())
            .unwrap();
        assert!(!seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn every_value_of_new_rows_is_a_value_of_its_type_and_counts_count() {
        let tables = tables(Arc::new(|_| {})).unwrap();
        let number = tables
            .add_instance(CONTROLLER_TABLE, &ParamValues::new())
            .unwrap();
        let row = format!("{CONTROLLER_TABLE}{number}.");
        tables
            .add_instance(&format!("{row}MTP."), &ParamValues::new())
            .unwrap();
        tables
            .add_instance(&format!("{row}BootParameter."), &ParamValues::new())
            .unwrap();
        tables.add_instance(MTP_TABLE, &ParamValues::new()).unwrap();
        let schema = Provider::schema(&tables);
        let mut objects: Vec<String> = tables
            .snapshot()
            .params
            .iter()
            .filter_map(|(path, _)| path.rfind('.').map(|cut| path[..=cut].to_string()))
            .collect();
        objects.dedup();
        let mut checked = 0;
        for object in objects {
            let answers = tables
                .get(&[GetRequest {
                    object: object.clone(),
                    params: vec![],
                }])
                .await;
            let values = answers.into_iter().next().unwrap().unwrap();
            let def = schema
                .object(&usp_dm::memory::supported_path(&object))
                .unwrap();
            assert_eq!(values.len(), def.params.len(), "{object}: {values:?}");
            for param in &def.params {
                let value = &values[&param.name];
                let typed = param.constraints.list.is_some()
                    || usp_dm::value::canonical(param.value_type, value).is_some();
                assert!(
                    typed,
                    "{object}{} = {value:?} is not a {}",
                    param.name,
                    param.value_type.name()
                );
                checked += 1;
            }
        }
        assert!(checked > 40, "only {checked} values checked");
        let value = |path: &str| tables.value(&format!("{row}{path}")).unwrap();
        assert_eq!(value("MTPNumberOfEntries"), "1");
        assert_eq!(value("BootParameterNumberOfEntries"), "1");
        assert_eq!(value("MTP.1.WebSocket.Port"), "0");
        assert_eq!(
            tables
                .value("Device.LocalAgent.MTP.1.MQTT.PublishQoS")
                .as_deref(),
            Some("0"),
            "TR-181 gives none: the zero of the type, which is also the [[mtp]] default"
        );
    }

    fn controller(tables: &MemoryProvider, enable: &str) -> String {
        let params: ParamValues = [("EndpointID", "self::ctl"), ("Enable", enable)]
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let number = tables.add_instance(CONTROLLER_TABLE, &params).unwrap();
        format!("{CONTROLLER_TABLE}{number}")
    }

    #[tokio::test]
    async fn send_on_board_request_resets_onboarding_and_hands_the_controller_over() {
        let tables = tables(Arc::new(|_| {})).unwrap();
        let row = controller(&tables, "true");
        tables
            .set_value(&format!("{row}.OnBoardingComplete"), "true")
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let provider = LocalAgentTables::new(tables.clone(), tx, Certificates::default());
        let def = provider.schema();
        let command = def
            .object(CONTROLLER_ROW)
            .and_then(|def| def.command(SEND_ON_BOARD_REQUEST))
            .unwrap();
        assert!(!command.is_async, "SendOnBoardRequest() is synchronous");
        let outcome = provider
            .operate(&format!("{row}.SendOnBoardRequest()"), "", Args::new())
            .await
            .unwrap();
        assert_eq!(outcome, OperateOutcome::Done(Args::new()));
        assert_eq!(
            rx.try_recv().unwrap(),
            DeviceAction::SendOnBoardRequest {
                controller: row.clone()
            }
        );
        assert_eq!(
            tables
                .value(&format!("{row}.OnBoardingComplete"))
                .as_deref(),
            Some("false")
        );
    }

    #[tokio::test]
    async fn send_on_board_request_to_a_disabled_controller_fails_with_7022() {
        let tables = tables(Arc::new(|_| {})).unwrap();
        let row = controller(&tables, "false");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let provider = LocalAgentTables::new(tables, tx, Certificates::default());
        let error = provider
            .operate(&format!("{row}.SendOnBoardRequest()"), "", Args::new())
            .await
            .unwrap_err();
        assert_eq!(error.code, UspErrorCode::CommandFailure);
        assert!(error.message.contains(&row), "{error}");
        assert!(rx.try_recv().is_err());
    }

    /// The served tables in a data model, with Controller 1 and 2 (`c1`, `c2`).
    async fn model_with_two_controllers() -> (usp_dm::DataModel, MemoryProvider) {
        let tables = tables(Arc::new(|_| {})).unwrap();
        for id in ["c1", "c2"] {
            let params = ParamValues::from([("EndpointID".to_string(), id.to_string())]);
            tables.add_instance(CONTROLLER_TABLE, &params).unwrap();
        }
        let mut dm = usp_dm::DataModel::new(usp_dm::ChangeSink::new(|_| {}));
        dm.register(Arc::new(tables.clone())).unwrap();
        (dm, tables)
    }

    async fn add_subscription(
        dm: &usp_dm::DataModel,
        recipient: &str,
        id: Option<&str>,
    ) -> Result<u32, usp_dm::DmError> {
        let table = dm.resolve_str(SUBSCRIPTION_TABLE).await.unwrap();
        let mut params = ParamValues::from([("Recipient".to_string(), recipient.to_string())]);
        if let Some(id) = id {
            params.insert("ID".to_string(), id.to_string());
        }
        let mut tx = dm.begin();
        let number = tx.add(&table.objects[0], &params).await?;
        tx.commit().await?;
        Ok(number)
    }

    #[tokio::test]
    async fn r_add_5_a_subscription_without_id_gets_one_under_the_tr181_schema() {
        let (dm, tables) = model_with_two_controllers().await;
        let number = add_subscription(&dm, "Device.LocalAgent.Controller.1", None)
            .await
            .unwrap();
        let id = tables
            .value(&format!("{SUBSCRIPTION_TABLE}{number}.ID"))
            .unwrap_or_default();
        assert!(!id.is_empty());
    }

    #[tokio::test]
    async fn r_key_1_subscription_id_is_fixed_under_the_tr181_schema() {
        let (dm, _) = model_with_two_controllers().await;
        let number = add_subscription(&dm, "Device.LocalAgent.Controller.1", Some("s"))
            .await
            .unwrap();
        let row = dm
            .resolve_str(&format!("{SUBSCRIPTION_TABLE}{number}."))
            .await
            .unwrap();
        let mut tx = dm.begin();
        let refused = tx.set(&row.objects[0], "ID", "t").await;
        assert!(
            matches!(refused, Err(usp_dm::DmError::FixedKey { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn tp469_1_78_deleting_a_controller_deletes_its_subscriptions_only() {
        let (dm, tables) = model_with_two_controllers().await;
        let first = add_subscription(&dm, "Device.LocalAgent.Controller.1", Some("a"))
            .await
            .unwrap();
        let second = add_subscription(&dm, "Device.LocalAgent.Controller.2", Some("b"))
            .await
            .unwrap();
        let controller = dm
            .resolve_str("Device.LocalAgent.Controller.2.")
            .await
            .unwrap();
        let mut tx = dm.begin();
        tx.delete(&controller.objects[0]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            tables.instances(SUBSCRIPTION_TABLE).await.unwrap(),
            [first],
            "Subscription.{second} should have gone with Controller.2"
        );
    }
}
