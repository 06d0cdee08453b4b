//! USP message handlers: one file per message, one entry point, [`handle`].
//!
//! - [`get`], [`set`], [`add`], [`delete`], [`operate`], [`get_instances`],
//!   [`get_supported_dm`], [`get_supported_protocol`]: the Controller requests.
//! - [`notify`]: Notify builders (Agent → Controller) and NotifyResp plumbing.
//! - [`error`]: the one place where engine errors become USP error codes, and Error messages.
//!
//! The handlers only talk to [`DataModel`]; they never know whether a path is served by a
//! built-in object or a plugin. Access control is asked through [`RequestContext::access`]
//! once per resolved path ([`AccessCheck`]; the RBAC crate provides the real rules); what the
//! agent itself must do for a message (create `Device.LocalAgent.Request.{i}` rows, fill
//! agent-owned parameters on Add, note NotifyResps) goes through [`AgentHooks`].
//!
//! Persistence: every committed write reaches the memory providers' commit hooks while
//! [`handle`] runs; the caller writes what they buffered in one SQLite transaction after
//! `handle` returns and before it sends the response.

pub mod add;
pub mod delete;
pub mod error;
pub mod get;
pub mod get_instances;
pub mod get_supported_dm;
pub mod get_supported_protocol;
pub mod notify;
pub mod operate;
pub mod set;

#[cfg(test)]
mod fixture;

use std::sync::Arc;

use async_trait::async_trait;
use usp_codec::UspErrorCode;
use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_codec::usp_proto::usp::response::RespType;
use usp_dm::{DataModel, ParamValues, ProviderError, ProviderId, ResolvedObject};

/// The Controller's role(s), as RBAC will know them: references to
/// `Device.LocalAgent.ControllerTrust.Role.{i}` rows. The handlers never interpret it; they
/// hand it on through [`RequestContext`] so the [`AccessCheck`] can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    /// Role references (`Device.LocalAgent.ControllerTrust.Role.1`).
    pub references: Vec<String>,
}

/// The access questions the handlers ask, once per resolved path. Every method defaults to
/// "allowed"; the RBAC crate's `Access` implements them from the Controller's roles.
///
/// What a "no" means (TR-369 §"Roles"): unreadable parameters and objects are treated as
/// absent in Get / GetInstances / GetSupportedDM, a refused write, Add or Delete is 7006, a
/// refused command is a `cmd_failure` 7006.
pub trait AccessCheck: Send + Sync {
    /// Read a parameter's value (`Device.X.1.Name`).
    fn can_read_param(&self, path: &str) -> bool {
        let _ = path;
        true
    }

    /// Whether a secured parameter's real value may be shown (otherwise it reads as "").
    fn can_read_secured(&self, path: &str) -> bool {
        let _ = path;
        true
    }

    /// Write a parameter.
    fn can_write_param(&self, path: &str) -> bool {
        let _ = path;
        true
    }

    /// See an object in the Supported Data Model (supported path).
    fn can_read_obj(&self, path: &str) -> bool {
        let _ = path;
        true
    }

    /// See an instance (GetInstances, search results).
    fn can_read_instance(&self, path: &str) -> bool {
        let _ = path;
        true
    }

    /// Add to a table (`Device.X.Table.`).
    fn can_add(&self, table: &str) -> bool {
        let _ = table;
        true
    }

    /// Delete an instance.
    fn can_delete(&self, instance: &str) -> bool {
        let _ = instance;
        true
    }

    /// Run a command (`Device.Reboot()`).
    fn can_operate(&self, command: &str) -> bool {
        let _ = command;
        true
    }

    /// See a command or event in GetSupportedDM.
    fn can_read_command_event(&self, path: &str) -> bool {
        let _ = path;
        true
    }
}

/// Allows everything (the default until RBAC is wired in, and for the local CLI).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AccessCheck for AllowAll {}

/// An asynchronous command that was started, handed to [`AgentHooks::start_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedRequest {
    /// The provider that runs it: its pushed `Change::OperationComplete { token, .. }` (tagged
    /// with this id by [`DataModel::new_tagged`]) ends the request.
    pub provider: ProviderId,
    /// The provider's token.
    pub token: u64,
    /// The concrete command path (`Device.ScheduleTimer()`).
    pub command: String,
    /// The Controller's command key.
    pub command_key: String,
    /// The Controller that asked.
    pub originator: String,
}

/// What the agent itself does for some messages. Every method has a default, so tests and
/// tools can run the handlers without an agent.
#[async_trait]
pub trait AgentHooks: Send + Sync {
    /// An async command started (R-OPR.0/2): create its `Device.LocalAgent.Request.{i}` row
    /// (Status `Active`, Originator, Command, CommandKey) and return the row's path, reported
    /// in OperateResp `req_obj_path`. When the provider later pushes OperationComplete, the
    /// agent sends the Notify (see [`notify::operation_complete`]) and removes the row.
    /// The default refuses: without an agent there is no Request table.
    async fn start_request(&self, request: StartedRequest) -> Result<String, ProviderError> {
        Err(ProviderError::new(
            UspErrorCode::CommandFailure,
            format!(
                "{}: asynchronous commands need the agent's Request table",
                request.command
            ),
        ))
    }

    /// Lets the agent fill parameters a Controller cannot set but the agent must, before an
    /// Add reaches the provider (e.g. `Subscription.{i}.Recipient`, the creating Controller).
    /// Values added here are not validated against write access.
    fn fill_add(&self, ctx: &RequestContext, table: &ResolvedObject, params: &mut ParamValues) {
        let _ = (ctx, table, params);
    }

    /// A Controller answered a Notify (R-NOT.9: the agent ignores the subscription id's
    /// value; the msg_id identifies the Notify being acknowledged).
    fn notify_resp(&self, ctx: &RequestContext, msg_id: &str, subscription_id: &str) {
        let _ = (ctx, msg_id, subscription_id);
    }
}

/// The agent without its own objects: async commands are refused, nothing is filled in.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl AgentHooks for NoHooks {}

/// Who is asking, and what the handlers may ask about them.
#[derive(Clone)]
pub struct RequestContext {
    /// The Controller's Endpoint ID (the Record's `from_id`).
    pub controller: String,
    /// The Controller's roles (interpreted by `access` only).
    pub role: Role,
    /// Access checks, asked per resolved path.
    pub access: Arc<dyn AccessCheck>,
    /// Agent-side actions.
    pub hooks: Arc<dyn AgentHooks>,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("controller", &self.controller)
            .field("role", &self.role)
            .finish()
    }
}

impl RequestContext {
    /// A context that allows everything and has no agent hooks.
    pub fn new(controller: impl Into<String>) -> Self {
        RequestContext {
            controller: controller.into(),
            role: Role::default(),
            access: Arc::new(AllowAll),
            hooks: Arc::new(NoHooks),
        }
    }

    /// Builder: sets the access checks.
    pub fn with_access(mut self, access: Arc<dyn AccessCheck>) -> Self {
        self.access = access;
        self
    }

    /// Builder: sets the agent hooks.
    pub fn with_hooks(mut self, hooks: Arc<dyn AgentHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Builder: sets the role.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
}

/// Handles one Msg from a Controller and returns the answer, or `None` when none is due
/// (responses and Errors from the Controller, Operate with `send_resp=false`, a Msg without a
/// header). Unknown or unsupported requests get Error 7001 (R-MSG.1).
pub async fn handle(dm: &mut DataModel, ctx: &RequestContext, msg: usp::Msg) -> Option<usp::Msg> {
    let msg_id = msg.header.as_ref()?.msg_id.clone();
    match msg.body.and_then(|body| body.msg_body) {
        Some(MsgBody::Request(request)) => match request.req_type {
            Some(ReqType::Get(get)) => Some(get::handle(dm, ctx, &msg_id, get).await),
            Some(ReqType::Set(set)) => Some(set::handle(dm, ctx, &msg_id, set).await),
            Some(ReqType::Add(add)) => Some(add::handle(dm, ctx, &msg_id, add).await),
            Some(ReqType::Delete(delete)) => Some(delete::handle(dm, ctx, &msg_id, delete).await),
            Some(ReqType::Operate(operate)) => operate::handle(dm, ctx, &msg_id, operate).await,
            Some(ReqType::GetInstances(request)) => {
                Some(get_instances::handle(dm, ctx, &msg_id, request).await)
            }
            Some(ReqType::GetSupportedDm(request)) => {
                Some(get_supported_dm::handle(dm, ctx, &msg_id, request))
            }
            Some(ReqType::GetSupportedProtocol(_)) => Some(get_supported_protocol::handle(&msg_id)),
            Some(other) => Some(error::unsupported(&msg_id, msg::request_type(&other))),
            None => Some(msg::error(
                &msg_id,
                UspErrorCode::MessageNotSupported,
                "request of an unknown type",
                Vec::new(),
            )),
        },
        Some(MsgBody::Response(response)) => {
            if let Some(RespType::NotifyResp(resp)) = response.resp_type {
                notify::handle_resp(ctx, &msg_id, &resp);
            }
            None
        }
        Some(MsgBody::Error(_)) | None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixture::Fixture;

    #[tokio::test]
    async fn unsupported_request_gets_7001() {
        let mut fx = Fixture::new().await;
        let request = msg::request("r1", ReqType::Register(usp::Register::default()));
        let answer = handle(&mut fx.dm, &fx.ctx, request).await;
        let Some(usp::Msg {
            body:
                Some(usp::Body {
                    msg_body: Some(MsgBody::Error(error)),
                }),
            ..
        }) = answer
        else {
            panic!("expected an Error, got {answer:?}");
        };
        assert_eq!(error.err_code, 7001);
    }

    #[tokio::test]
    async fn responses_from_the_controller_get_no_answer() {
        let mut fx = Fixture::new().await;
        let resp = msg::response(
            "n1",
            RespType::NotifyResp(usp::NotifyResp {
                subscription_id: "s".into(),
            }),
        );
        assert!(handle(&mut fx.dm, &fx.ctx, resp).await.is_none());
        assert_eq!(
            fx.hooks.notify_resps(),
            vec![("n1".to_string(), "s".to_string())]
        );
    }
}
