//! Notify (Agent → Controller) builders and NotifyResp plumbing (TR-369 §"Notify").
//!
//! The notification machinery (subscriptions, retries, expiry) lives elsewhere; it builds its
//! Msgs here so the wire shape is in one place. `subscription_id` is the `Subscription.{i}.ID`
//! that fired, or "" for OnBoardRequest (R-NOT.7). A NotifyResp from a Controller is handed to
//! [`AgentHooks::notify_resp`](super::AgentHooks::notify_resp) with the msg_id it answers.

use std::collections::BTreeMap;

use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::notify::operation_complete::{
    CommandFailure, OperationResp, OutputArgs,
};
use usp_codec::usp_proto::usp::notify::{
    Event, Notification, ObjectCreation, ObjectDeletion, OnBoardRequest, OperationComplete,
    ValueChange,
};
use usp_codec::usp_proto::usp::request::ReqType;
use usp_dm::{Args, ProviderError};

use super::RequestContext;
use super::get_supported_protocol::SUPPORTED_VERSIONS;

/// What every Notify carries besides its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The Msg id (unique per Controller; retries reuse it).
    pub msg_id: String,
    /// `Subscription.{i}.ID`, or "" when no subscription is involved.
    pub subscription_id: String,
    /// Whether the Controller must answer with a NotifyResp (`NotifRetry`, OnBoardRequest).
    pub send_resp: bool,
}

fn notify(envelope: &Envelope, notification: Notification) -> usp::Msg {
    msg::request(
        &envelope.msg_id,
        ReqType::Notify(usp::Notify {
            subscription_id: envelope.subscription_id.clone(),
            send_resp: envelope.send_resp,
            notification: Some(notification),
        }),
    )
}

/// ValueChange of a parameter.
pub fn value_change(envelope: &Envelope, param_path: &str, param_value: &str) -> usp::Msg {
    notify(
        envelope,
        Notification::ValueChange(ValueChange {
            param_path: param_path.to_string(),
            param_value: param_value.to_string(),
        }),
    )
}

/// ObjectCreation of an instance, with its readable unique keys.
pub fn object_creation(
    envelope: &Envelope,
    obj_path: &str,
    unique_keys: BTreeMap<String, String>,
) -> usp::Msg {
    notify(
        envelope,
        Notification::ObjCreation(ObjectCreation {
            obj_path: obj_path.to_string(),
            unique_keys,
        }),
    )
}

/// ObjectDeletion of an instance.
pub fn object_deletion(envelope: &Envelope, obj_path: &str) -> usp::Msg {
    notify(
        envelope,
        Notification::ObjDeletion(ObjectDeletion {
            obj_path: obj_path.to_string(),
        }),
    )
}

/// An event (`obj_path` "Device.", `event_name` "Boot!").
pub fn event(envelope: &Envelope, obj_path: &str, event_name: &str, params: Args) -> usp::Msg {
    notify(
        envelope,
        Notification::Event(Event {
            obj_path: obj_path.to_string(),
            event_name: event_name.to_string(),
            params,
        }),
    )
}

/// OperationComplete for a concrete command path (`Device.LocalAgent.Controller.1.Foo()`),
/// split into the object path and the relative command name as the Msg wants them.
pub fn operation_complete(
    envelope: &Envelope,
    command: &str,
    command_key: &str,
    result: Result<Args, ProviderError>,
) -> usp::Msg {
    let cut = command
        .trim_end_matches("()")
        .rfind('.')
        .map_or(0, |dot| dot + 1);
    let operation_resp = match result {
        Ok(output_args) => OperationResp::ReqOutputArgs(OutputArgs { output_args }),
        Err(failure) => OperationResp::CmdFailure(CommandFailure {
            err_code: failure.code.code(),
            err_msg: failure.message,
        }),
    };
    notify(
        envelope,
        Notification::OperComplete(OperationComplete {
            obj_path: command[..cut].to_string(),
            command_name: command[cut..].to_string(),
            command_key: command_key.to_string(),
            operation_resp: Some(operation_resp),
        }),
    )
}

/// OnBoardRequest (always `send_resp=true` and no subscription, R-NOT.5/7).
pub fn on_board_request(
    msg_id: &str,
    oui: &str,
    product_class: &str,
    serial_number: &str,
) -> usp::Msg {
    let envelope = Envelope {
        msg_id: msg_id.to_string(),
        subscription_id: String::new(),
        send_resp: true,
    };
    notify(
        &envelope,
        Notification::OnBoardReq(OnBoardRequest {
            oui: oui.to_string(),
            product_class: product_class.to_string(),
            serial_number: serial_number.to_string(),
            agent_supported_protocol_versions: SUPPORTED_VERSIONS.to_string(),
        }),
    )
}

/// A NotifyResp arrived: tell the agent which Notify (`msg_id`) was acknowledged.
pub fn handle_resp(ctx: &RequestContext, msg_id: &str, resp: &usp::NotifyResp) {
    ctx.hooks.notify_resp(ctx, msg_id, &resp.subscription_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use usp_codec::UspErrorCode;
    use usp_codec::usp_proto::usp::body::MsgBody;

    fn notification(msg: usp::Msg) -> (usp::Header, usp::Notify) {
        let header = msg.header.clone().unwrap_or_default();
        match msg.body.and_then(|b| b.msg_body) {
            Some(MsgBody::Request(usp::Request {
                req_type: Some(ReqType::Notify(notify)),
            })) => (header, notify),
            other => panic!("expected a Notify, got {other:?}"),
        }
    }

    fn envelope() -> Envelope {
        Envelope {
            msg_id: "n-1".into(),
            subscription_id: "sub-1".into(),
            send_resp: true,
        }
    }

    #[test]
    fn operation_complete_splits_object_and_command() {
        let (header, notify) = notification(operation_complete(
            &envelope(),
            "Device.LocalAgent.Controller.1.SendOnBoardRequest()",
            "k",
            Err(ProviderError::new(
                UspErrorCode::CommandCanceled,
                "canceled",
            )),
        ));
        assert_eq!(header.msg_type, usp::header::MsgType::Notify as i32);
        assert_eq!(notify.subscription_id, "sub-1");
        let Some(Notification::OperComplete(complete)) = notify.notification else {
            panic!("expected OperationComplete");
        };
        assert_eq!(complete.obj_path, "Device.LocalAgent.Controller.1.");
        assert_eq!(complete.command_name, "SendOnBoardRequest()");
        assert_eq!(
            complete.operation_resp,
            Some(OperationResp::CmdFailure(CommandFailure {
                err_code: 7023,
                err_msg: "canceled".into()
            }))
        );
    }

    #[test]
    fn on_board_request_has_no_subscription_and_wants_a_response() {
        let (_, notify) = notification(on_board_request("n-2", "00D09E", "Box", "123"));
        assert!(notify.send_resp);
        assert_eq!(notify.subscription_id, "");
        let Some(Notification::OnBoardReq(request)) = notify.notification else {
            panic!("expected OnBoardRequest");
        };
        assert_eq!(
            request.agent_supported_protocol_versions,
            SUPPORTED_VERSIONS
        );
    }

    #[test]
    fn value_change_and_event_carry_their_fields() {
        let (_, notify) = notification(value_change(&envelope(), "Device.X.1.Y", "5"));
        assert_eq!(
            notify.notification,
            Some(Notification::ValueChange(ValueChange {
                param_path: "Device.X.1.Y".into(),
                param_value: "5".into()
            }))
        );
        let args = Args::from([("Cause".to_string(), "LocalReboot".to_string())]);
        let (_, notify) = notification(event(&envelope(), "Device.", "Boot!", args.clone()));
        assert_eq!(
            notify.notification,
            Some(Notification::Event(Event {
                obj_path: "Device.".into(),
                event_name: "Boot!".into(),
                params: args
            }))
        );
    }
}
