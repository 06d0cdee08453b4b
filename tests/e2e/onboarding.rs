//! `Device.LocalAgent.Controller.{i}.SendOnBoardRequest()` end to end over the real WebSocket
//! MTP (TP-469 1.60): the OnBoardRequest reaches the Controller, is retried on the
//! Controller's `USPNotifRetry*` schedule while unanswered (R-NOT.6a), and a NotifyResp with
//! its msg_id ends the retries.

use std::time::Duration;

use anyhow::bail;
use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::notify::Notification;
use usp_codec::usp_proto::usp::operate_resp::operation_result::OperationResp;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_codec::usp_proto::usp::response::RespType;
use usp_codec::usp_proto::usp::{self, set};

use crate::mtp::harness::{Agent, CONTROLLER, Setup, bounded};
use crate::mtp::peer::WsLink;
use crate::notifications::{exchange, notify_resp, wait_notify};

const CONTROLLER_ROW: &str = "Device.LocalAgent.Controller.1.";

/// How far a retry may land outside its window (scheduling and transport).
const TOLERANCE: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tp_1_60_on_board_request_is_retried_until_its_notify_resp() -> anyhow::Result<()> {
    bounded(async {
        let agent = Agent::start(Setup::default()).await?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        let mut early = Vec::new();
        // m = 1 s (k stays 2000): the 1st retry comes 1–2 s after the OnBoardRequest, the 2nd
        // 2–4 s after the 1st.
        let answer = exchange(
            &mut link,
            "set-1",
            ReqType::Set(usp::Set {
                allow_partial: false,
                update_objs: vec![set::UpdateObject {
                    obj_path: CONTROLLER_ROW.to_string(),
                    param_settings: vec![set::UpdateParamSetting {
                        param: "USPNotifRetryMinimumWaitInterval".to_string(),
                        value: "1".to_string(),
                        required: true,
                    }],
                }],
            }),
            &mut early,
        )
        .await?;
        if !matches!(
            answer.body.and_then(|body| body.msg_body),
            Some(MsgBody::Response(usp::Response {
                resp_type: Some(RespType::SetResp(_))
            }))
        ) {
            bail!("the Set failed");
        }

        let command = format!("{CONTROLLER_ROW}SendOnBoardRequest()");
        let answer = exchange(
            &mut link,
            "operate-1",
            ReqType::Operate(usp::Operate {
                command: command.clone(),
                command_key: "onboard".to_string(),
                send_resp: true,
                input_args: Default::default(),
            }),
            &mut early,
        )
        .await?;
        let Some(MsgBody::Response(usp::Response {
            resp_type: Some(RespType::OperateResp(resp)),
        })) = answer.body.and_then(|body| body.msg_body)
        else {
            bail!("expected an OperateResp");
        };
        let result = resp.operation_results.first();
        assert!(
            matches!(
                result.and_then(|r| r.operation_resp.as_ref()),
                Some(OperationResp::ReqOutputArgs(_))
            ),
            "{result:?}"
        );
        assert_eq!(
            result.map(|r| r.executed_command.as_str()),
            Some(command.as_str())
        );

        let (sent_at, id, notify) = match early.pop() {
            Some(first) => first,
            None => wait_notify(&mut link, Duration::from_secs(2)).await?,
        };
        assert!(notify.send_resp, "R-NOT.6a: send_resp=true");
        assert_eq!(notify.subscription_id, "", "R-NOT.7");
        let Some(Notification::OnBoardReq(request)) = &notify.notification else {
            bail!("expected OnBoardRequest, got {notify:?}");
        };
        // The test configuration's DeviceInfo defaults.
        assert_eq!(
            (
                request.oui.as_str(),
                request.product_class.as_str(),
                request.serial_number.as_str()
            ),
            ("000000", "usp-agent", "0001")
        );
        assert!(
            request
                .agent_supported_protocol_versions
                .split(',')
                .any(|version| version == "1.4"),
            "{:?}",
            request.agent_supported_protocol_versions
        );

        // Unanswered: retried with the same msg_id inside the 1st window.
        let (retry_at, retry_id, retry) = wait_notify(&mut link, Duration::from_secs(3)).await?;
        assert_eq!(retry_id, id, "a retry reuses the msg_id");
        assert_eq!(retry, notify);
        let gap = retry_at - sent_at;
        assert!(
            gap + TOLERANCE >= Duration::from_secs(1) && gap <= Duration::from_secs(2) + TOLERANCE,
            "1st retry after {gap:?}"
        );

        // Answered: the 2nd retry (due 2–4 s after the 1st) never comes.
        notify_resp(&mut link, &id, "").await?;
        let quiet = Duration::from_secs(4) + TOLERANCE;
        let left = quiet.saturating_sub(retry_at.elapsed());
        if let Ok((at, other, notify)) = wait_notify(&mut link, left).await {
            bail!(
                "a Notify {other} {:?} after the NotifyResp: {notify:?}",
                at - retry_at
            );
        }
        Ok(())
    })
    .await
}
