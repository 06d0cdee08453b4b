//! Test fixture for the message handlers: the real engine with two providers built on
//! `MemoryProvider`. "core" serves a slice of TR-181 (LocalAgent, IP, NAT, PCP, DeviceInfo and
//! `Device.` commands) and runs commands through a small test provider wrapped around it
//! (labelled: a stand-in for a plugin's command code, not a mock of the engine); "wifi"
//! serves `Device.WiFi.` so that searches and references cross providers.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use usp_codec::UspErrorCode;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{
    ArgDef, Args, Change, ChangeSink, CommandDef, Constraints, DataModel, EventDef, GetRequest,
    GetResponse, ListFacet, MemoryProvider, ObjectAccess, ObjectDef, OperateOutcome, ParamAccess,
    ParamDef, ParamValues, Provider, ProviderError, Range, Reference, Schema, StoredChange,
    Transaction, ValueType,
};

use super::{AgentHooks, RequestContext, StartedRequest};

fn rw(name: &str, value_type: ValueType) -> ParamDef {
    ParamDef::new(name, value_type).access(ParamAccess::ReadWrite)
}

fn alias() -> ParamDef {
    ParamDef::new("Alias", ValueType::String)
        .access(ParamAccess::WriteOnceReadOnly)
        .constraints(Constraints {
            max_length: Some(64),
            ..Constraints::default()
        })
}

fn enumerated(name: &str, values: &[&str]) -> ParamDef {
    rw(name, ValueType::String).constraints(Constraints {
        enumeration: values.iter().map(|v| v.to_string()).collect(),
        ..Constraints::default()
    })
}

fn table(path: &str, access: ObjectAccess, keys: &[&[&str]], params: Vec<ParamDef>) -> ObjectDef {
    let mut object = ObjectDef::new(path);
    object.access = access;
    object.unique_keys = keys
        .iter()
        .map(|key| key.iter().map(|k| k.to_string()).collect())
        .collect();
    object.params = params;
    object
}

/// A table whose `keys` are members of non-functional unique keys (R-KEY.1).
fn fixed(
    keys: &[&str],
    path: &str,
    access: ObjectAccess,
    unique: &[&[&str]],
    params: Vec<ParamDef>,
) -> ObjectDef {
    let mut object = table(path, access, unique, params);
    object.fixed_keys = keys.iter().map(|key| key.to_string()).collect();
    object
}

fn object(path: &str, params: Vec<ParamDef>) -> ObjectDef {
    let mut object = ObjectDef::new(path);
    object.params = params;
    object
}

fn core_schema() -> Schema {
    let mut device = object(
        "Device.",
        vec![ParamDef::new("RootDataModelVersion", ValueType::String)],
    );
    device.commands = vec![
        CommandDef {
            name: "Reboot()".into(),
            is_async: false,
            input: vec![],
            output: vec![],
        },
        CommandDef {
            name: "ScheduleTimer()".into(),
            is_async: true,
            input: vec![ArgDef::new("DelaySeconds", ValueType::UnsignedInt).mandatory()],
            output: vec![],
        },
    ];
    device.events = vec![EventDef {
        name: "Boot!".into(),
        args: vec![
            ArgDef::new("CommandKey", ValueType::String),
            ArgDef::new("Cause", ValueType::String),
        ],
    }];
    let mut interface = table(
        "Device.IP.Interface.{i}.",
        ObjectAccess::AddDelete,
        &[&["Alias"], &["Name"]],
        vec![
            alias(),
            ParamDef::new("Name", ValueType::String).access(ParamAccess::WriteOnceReadOnly),
            enumerated("Type", &["Normal", "Loopback", "Tunnel"]),
            rw("Enable", ValueType::Boolean).default_value("false"),
            ParamDef::new("Status", ValueType::String).default_value("Down"),
            rw("MaxMTUSize", ValueType::UnsignedInt)
                .constraints(Constraints {
                    ranges: vec![Range {
                        min: Some("64".into()),
                        max: Some("65535".into()),
                    }],
                    ..Constraints::default()
                })
                .default_value("1500"),
        ],
    );
    interface.commands = vec![CommandDef {
        name: "Reset()".into(),
        is_async: false,
        input: vec![],
        output: vec![ArgDef::new("Result", ValueType::String)],
    }];
    let mut port_interface = rw("Interface", ValueType::String);
    port_interface.reference = Some(Reference {
        strong: true,
        target_parents: vec!["Device.IP.Interface.".into()],
    });
    let list = |name: &str| {
        rw(name, ValueType::String).constraints(Constraints {
            list: Some(ListFacet::default()),
            ..Constraints::default()
        })
    };
    let mut local_agent = object(
        "Device.LocalAgent.",
        vec![
            ParamDef::new("EndpointID", ValueType::String).default_value("proto::agent"),
            ParamDef::new("SoftwareVersion", ValueType::String).default_value("1.0"),
        ],
    );
    local_agent.events = vec![EventDef {
        name: "Periodic!".into(),
        args: vec![],
    }];
    [
        device,
        local_agent,
        table(
            "Device.LocalAgent.Controller.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"], &["EndpointID"]],
            vec![
                alias(),
                rw("EndpointID", ValueType::String),
                rw("Enable", ValueType::Boolean).default_value("false"),
                rw("ProvisioningCode", ValueType::String),
                ParamDef::new("Secret", ValueType::String).access(ParamAccess::WriteOnly),
            ],
        ),
        table(
            "Device.LocalAgent.Controller.{i}.MTP.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"]],
            vec![
                alias(),
                enumerated("Protocol", &["MQTT", "WebSocket", "STOMP", "UDS"]),
            ],
        ),
        fixed(
            &["ID"],
            "Device.LocalAgent.Subscription.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"], &["Recipient", "ID"]],
            vec![
                alias(),
                rw("Enable", ValueType::Boolean).default_value("false"),
                ParamDef::new("Recipient", ValueType::String),
                // As in TR-181 2.19: writable, no default, a non-functional key member.
                rw("ID", ValueType::String).constraints(Constraints {
                    min_length: Some(1),
                    max_length: Some(64),
                    ..Constraints::default()
                }),
                enumerated(
                    "NotifType",
                    &[
                        "ValueChange",
                        "ObjectCreation",
                        "ObjectDeletion",
                        "OperationComplete",
                        "Event",
                    ],
                ),
                list("ReferenceList"),
                rw("NotifRetry", ValueType::Boolean).default_value("false"),
                rw("NotifExpiration", ValueType::UnsignedInt).default_value("0"),
            ],
        ),
        table(
            "Device.LocalAgent.Request.{i}.",
            ObjectAccess::ReadOnly,
            &[&["Alias"], &["Originator", "Command", "CommandKey"]],
            vec![
                alias(),
                ParamDef::new("Originator", ValueType::String),
                ParamDef::new("Command", ValueType::String),
                ParamDef::new("CommandKey", ValueType::String),
                ParamDef::new("Status", ValueType::String),
            ],
        ),
        object(
            "Device.IP.",
            vec![ParamDef::new("IPv4Enable", ValueType::Boolean).default_value("true")],
        ),
        interface,
        object(
            "Device.IP.Interface.{i}.Stats.",
            vec![ParamDef::new("ErrorsSent", ValueType::UnsignedLong).default_value("0")],
        ),
        table(
            "Device.IP.Interface.{i}.IPv4Address.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"]],
            vec![
                alias(),
                rw("IPAddress", ValueType::String),
                enumerated("AddressingType", &["DHCP", "Static", "AutoIP"]),
            ],
        ),
        table(
            "Device.IP.Interface.{i}.IPv6Address.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"]],
            vec![
                alias(),
                rw("IPAddress", ValueType::String),
                rw("ValidLifetime", ValueType::DateTime).default_value("9999-12-31T23:59:59Z"),
            ],
        ),
        object("Device.NAT.", vec![]),
        table(
            "Device.NAT.PortMapping.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"], &["RemoteHost", "ExternalPort", "Protocol"]],
            vec![
                alias(),
                port_interface,
                // TR-181 default "" (any remote host).
                rw("RemoteHost", ValueType::String).default_value(""),
                rw("ExternalPort", ValueType::UnsignedInt).default_value("0"),
                enumerated("Protocol", &["TCP", "UDP"]).default_value("TCP"),
            ],
        ),
        object("Device.PCP.", vec![]),
        table(
            "Device.PCP.Client.{i}.",
            ObjectAccess::ReadOnly,
            &[&["Alias"]],
            vec![alias()],
        ),
        table(
            "Device.PCP.Client.{i}.Server.{i}.",
            ObjectAccess::ReadOnly,
            &[&["Alias"]],
            vec![alias(), list("Capabilities")],
        ),
        object(
            "Device.DeviceInfo.",
            vec![ParamDef::new("Manufacturer", ValueType::String).default_value("ACME")],
        ),
        table(
            "Device.DeviceInfo.ProcessStatus.Process.{i}.",
            ObjectAccess::ReadOnly,
            &[],
            vec![ParamDef::new("Command", ValueType::String)],
        ),
        object("Device.DeviceInfo.ProcessStatus.", vec![]),
    ]
    .into_iter()
    .collect()
}

fn wifi_schema() -> Schema {
    let mut reference = rw("SSIDReference", ValueType::String);
    reference.reference = Some(Reference {
        strong: true,
        target_parents: vec!["Device.WiFi.SSID.".into()],
    });
    [
        object("Device.WiFi.", vec![]),
        table(
            "Device.WiFi.SSID.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"]],
            vec![
                alias(),
                rw("SSID", ValueType::String),
                ParamDef::new("Status", ValueType::String).default_value("Up"),
            ],
        ),
        table(
            "Device.WiFi.AccessPoint.{i}.",
            ObjectAccess::AddDelete,
            &[&["Alias"]],
            vec![
                alias(),
                reference,
                rw("Enable", ValueType::Boolean).default_value("true"),
            ],
        ),
    ]
    .into_iter()
    .collect()
}

/// Test provider (a stand-in for a plugin's command code): serves its data from a real
/// `MemoryProvider` and runs three commands: `Device.Reboot()` and
/// `Device.IP.Interface.{i}.Reset()` synchronously, `Device.ScheduleTimer()` asynchronously.
pub struct CommandProvider {
    memory: MemoryProvider,
    tokens: Mutex<u64>,
}

#[async_trait]
impl Provider for CommandProvider {
    fn name(&self) -> &str {
        self.memory.name()
    }

    fn schema(&self) -> Arc<Schema> {
        self.memory.schema()
    }

    fn attach(&self, sink: ChangeSink) {
        self.memory.attach(sink)
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        self.memory.instances(table).await
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        self.memory.get(requests).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        self.memory.begin().await
    }

    async fn operate(
        &self,
        command: &str,
        _key: &str,
        input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        if command == "Device.Reboot()" {
            return Ok(OperateOutcome::Done(Args::new()));
        }
        if command == "Device.ScheduleTimer()" {
            assert!(
                input.contains_key("DelaySeconds"),
                "the engine checks mandatory args"
            );
            let mut tokens = self
                .tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *tokens += 1;
            return Ok(OperateOutcome::Started(*tokens));
        }
        if command.starts_with("Device.IP.Interface.") && command.ends_with(".Reset()") {
            return Ok(OperateOutcome::Done(Args::from([(
                "Result".to_string(),
                "ok".to_string(),
            )])));
        }
        Err(ProviderError::new(
            UspErrorCode::CommandFailure,
            format!("{command} failed"),
        ))
    }
}

/// Records what the handlers asked the agent to do.
#[derive(Default)]
pub struct TestHooks {
    core: Mutex<Option<MemoryProvider>>,
    notify_resps: Mutex<Vec<(String, String)>>,
    started: Mutex<Vec<StartedRequest>>,
}

impl TestHooks {
    pub fn notify_resps(&self) -> Vec<(String, String)> {
        self.notify_resps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn started(&self) -> Vec<StartedRequest> {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl AgentHooks for TestHooks {
    async fn start_request(&self, request: StartedRequest) -> Result<String, ProviderError> {
        let core = self
            .core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(core) = core else {
            return Err(ProviderError::new(UspErrorCode::InternalError, "no core"));
        };
        let params = ParamValues::from([
            ("Originator".to_string(), request.originator.clone()),
            ("Command".to_string(), request.command.clone()),
            ("CommandKey".to_string(), request.command_key.clone()),
            ("Status".to_string(), "Active".to_string()),
        ]);
        let number = core.add_instance("Device.LocalAgent.Request.", &params)?;
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request);
        Ok(format!("Device.LocalAgent.Request.{number}."))
    }

    fn fill_add(
        &self,
        ctx: &RequestContext,
        table: &usp_dm::ResolvedObject,
        params: &mut ParamValues,
    ) {
        if table.path == "Device.LocalAgent.Subscription." {
            params.insert("Recipient".into(), ctx.controller.clone());
        }
    }

    fn notify_resp(&self, _ctx: &RequestContext, msg_id: &str, subscription_id: &str) {
        self.notify_resps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((msg_id.to_string(), subscription_id.to_string()));
    }
}

/// The data model, a context for Controller `proto::controller`, and what was recorded.
pub struct Fixture {
    pub dm: DataModel,
    pub ctx: RequestContext,
    pub core: MemoryProvider,
    pub wifi: MemoryProvider,
    pub hooks: Arc<TestHooks>,
    pub commits: Arc<Mutex<Vec<Vec<StoredChange>>>>,
    changes: Arc<Mutex<Vec<Change>>>,
}

fn values(pairs: &[(&str, &str)]) -> ParamValues {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Fixture {
    pub async fn new() -> Fixture {
        let commits: Arc<Mutex<Vec<Vec<StoredChange>>>> = Arc::default();
        let log = Arc::clone(&commits);
        let hook: usp_dm::CommitHook = Arc::new(move |changes: &[StoredChange]| {
            log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(changes.to_vec());
        });
        let core = MemoryProvider::new("core", core_schema())
            .with_commit_hook(Arc::clone(&hook))
            .with_volatile("Device.LocalAgent.Request.");
        let wifi = MemoryProvider::new("wifi", wifi_schema()).with_commit_hook(hook);
        let seed = |result: Result<u32, ProviderError>| {
            result.unwrap_or_else(|error| panic!("fixture data: {error}"));
        };
        seed(core.add_instance(
            "Device.IP.Interface.",
            &values(&[
                ("Name", "eth0"),
                ("Type", "Normal"),
                ("Stats.ErrorsSent", "5"),
            ]),
        ));
        seed(core.add_instance(
            "Device.IP.Interface.",
            &values(&[("Name", "eth1"), ("Type", "Normal")]),
        ));
        seed(core.add_instance(
            "Device.IP.Interface.1.IPv4Address.",
            &values(&[("IPAddress", "192.168.1.1"), ("AddressingType", "Static")]),
        ));
        seed(core.add_instance(
            "Device.IP.Interface.1.IPv4Address.",
            &values(&[("IPAddress", "10.0.0.2"), ("AddressingType", "DHCP")]),
        ));
        seed(core.add_instance(
            "Device.IP.Interface.2.IPv4Address.",
            &values(&[("IPAddress", "172.16.0.1"), ("AddressingType", "Static")]),
        ));
        seed(core.add_instance(
            "Device.IP.Interface.1.IPv6Address.",
            &values(&[
                ("IPAddress", "fe80::1"),
                ("ValidLifetime", "2021-06-05T00:00:00Z"),
            ]),
        ));
        seed(core.add_instance(
            "Device.IP.Interface.2.IPv6Address.",
            &values(&[
                ("IPAddress", "fe80::2"),
                ("ValidLifetime", "2022-01-01T00:00:00Z"),
            ]),
        ));
        seed(core.add_instance(
            "Device.NAT.PortMapping.",
            &values(&[
                ("Interface", "Device.IP.Interface.2"),
                ("ExternalPort", "8080"),
            ]),
        ));
        seed(core.add_instance("Device.PCP.Client.", &ParamValues::new()));
        seed(core.add_instance(
            "Device.PCP.Client.1.Server.",
            &values(&[("Capabilities", "ThirdParty")]),
        ));
        seed(core.add_instance(
            "Device.PCP.Client.1.Server.",
            &values(&[("Capabilities", "ThirdParty,IPv6Firewall")]),
        ));
        seed(core.add_instance(
            "Device.LocalAgent.Controller.",
            &values(&[("EndpointID", "controller"), ("Secret", "s3cret")]),
        ));
        seed(core.add_instance(
            "Device.LocalAgent.Controller.1.MTP.",
            &values(&[("Protocol", "MQTT")]),
        ));
        seed(core.add_instance(
            "Device.LocalAgent.Subscription.",
            &values(&[
                ("ID", "sub-1"),
                ("Recipient", "controller"),
                ("NotifType", "ValueChange"),
            ]),
        ));
        seed(wifi.add_instance("Device.WiFi.SSID.", &values(&[("SSID", "MyHome")])));
        seed(wifi.add_instance("Device.WiFi.SSID.", &values(&[("SSID", "Guest")])));
        seed(wifi.add_instance(
            "Device.WiFi.AccessPoint.",
            &values(&[("SSIDReference", "Device.WiFi.SSID.1")]),
        ));
        seed(wifi.add_instance(
            "Device.WiFi.AccessPoint.",
            &values(&[("SSIDReference", "Device.WiFi.SSID.2")]),
        ));
        commits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();

        let changes: Arc<Mutex<Vec<Change>>> = Arc::default();
        let sink = Arc::clone(&changes);
        let mut dm = DataModel::new(ChangeSink::new(move |change| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(change);
        }));
        let provider = CommandProvider {
            memory: core.clone(),
            tokens: Mutex::new(0),
        };
        dm.register(Arc::new(provider))
            .unwrap_or_else(|error| panic!("{error}"));
        dm.register(Arc::new(wifi.clone()))
            .unwrap_or_else(|error| panic!("{error}"));
        let hooks = Arc::new(TestHooks::default());
        *hooks
            .core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(core.clone());
        let ctx =
            RequestContext::new("controller").with_hooks(Arc::clone(&hooks) as Arc<dyn AgentHooks>);
        Fixture {
            dm,
            ctx,
            core,
            wifi,
            hooks,
            commits,
            changes,
        }
    }

    /// Changes pushed to the data model's sink since the fixture was built.
    pub fn changes(&self) -> Vec<Change> {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Number of commit-hook calls since the fixture was built.
    pub fn commit_count(&self) -> usize {
        self.commits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

fn response(msg: usp::Msg) -> RespType {
    match msg.body.and_then(|body| body.msg_body) {
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(resp),
        })) => resp,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The Error of an answer (panics otherwise).
pub fn error_of(msg: usp::Msg) -> usp::Error {
    match msg.body.and_then(|body| body.msg_body) {
        Some(MsgBody::Error(error)) => error,
        other => panic!("expected an Error, got {other:?}"),
    }
}

macro_rules! extractor {
    ($name:ident, $variant:ident, $ty:ty) => {
        /// The typed response of an answer (panics otherwise).
        pub fn $name(msg: usp::Msg) -> $ty {
            match response(msg) {
                RespType::$variant(resp) => resp,
                other => panic!("expected {}, got {other:?}", stringify!($variant)),
            }
        }
    };
}

extractor!(get_resp, GetResp, usp::GetResp);
extractor!(set_resp, SetResp, usp::SetResp);
extractor!(add_resp, AddResp, usp::AddResp);
extractor!(delete_resp, DeleteResp, usp::DeleteResp);
extractor!(operate_resp, OperateResp, usp::OperateResp);
extractor!(get_instances_resp, GetInstancesResp, usp::GetInstancesResp);
extractor!(gsdm_resp, GetSupportedDmResp, usp::GetSupportedDmResp);
extractor!(
    gsp_resp,
    GetSupportedProtocolResp,
    usp::GetSupportedProtocolResp
);
