//! `Device.` itself: `RootDataModelVersion`, the device-level commands and the `Boot!` event.
//!
//! `Reboot()` and `FactoryReset()` are synchronous: they answer at once and hand a
//! [`DeviceAction`] to the agent, which carries it out after the response has been sent (the
//! configured command, or a restart of the agent process). `ScheduleTimer()` is asynchronous:
//! it completes through [`Change::OperationComplete`] after `DelaySeconds`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use usp_codec::UspErrorCode;
use usp_dm::{
    Args, Change, ChangeSink, GetRequest, GetResponse, OperateOutcome, Provider, ProviderError,
    Schema, Transaction,
};

use super::{BuiltinError, ReadOnlyTransaction, answer_get, no_tables, standard_object};

const OBJECT: &str = "Device.";

/// What a built-in command asks the agent to do once its response is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAction {
    /// `Device.Reboot()`.
    Reboot {
        /// The Controller's command key (reported in the next `Boot!`).
        command_key: String,
        /// `LocalReboot` or `RemoteReboot`.
        cause: String,
        /// Free text from the Controller.
        reason: String,
    },
    /// `Device.FactoryReset()`.
    FactoryReset {
        /// The Controller's command key (reported in the next `Boot!`).
        command_key: String,
        /// `LocalFactoryReset` or `RemoteFactoryReset`.
        cause: String,
        /// Free text from the Controller.
        reason: String,
    },
    /// `Device.LocalAgent.Controller.{i}.SendOnBoardRequest()`.
    SendOnBoardRequest {
        /// The Controller's row (`Device.LocalAgent.Controller.1`).
        controller: String,
    },
}

/// Serves `Device.`.
pub struct DeviceProvider {
    schema: Arc<Schema>,
    actions: mpsc::UnboundedSender<DeviceAction>,
    sink: Mutex<Option<ChangeSink>>,
    next_token: AtomicU64,
}

impl DeviceProvider {
    /// The provider; device-level commands are delivered on `actions`.
    pub fn new(actions: mpsc::UnboundedSender<DeviceAction>) -> Result<Self, BuiltinError> {
        let def = standard_object(
            OBJECT,
            &["RootDataModelVersion"],
            &["Reboot()", "FactoryReset()", "ScheduleTimer()"],
            &["Boot!"],
        )?;
        Ok(DeviceProvider {
            schema: Arc::new(std::iter::once(def).collect()),
            actions,
            sink: Mutex::new(None),
            next_token: AtomicU64::new(1),
        })
    }

    fn sink(&self) -> Option<ChangeSink> {
        self.sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Emits `Device.Boot!` (TR-181: CommandKey, Cause, Reason, FirmwareUpdated,
    /// ParameterMap). Call after registration so the event reaches the change sink.
    pub fn announce_boot(&self, command_key: &str, cause: &str, reason: &str) {
        let Some(sink) = self.sink() else {
            return;
        };
        let args: Args = [
            ("CommandKey", command_key),
            ("Cause", cause),
            ("Reason", reason),
            ("FirmwareUpdated", "false"),
            ("ParameterMap", "{}"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        sink.push(Change::Event {
            object: OBJECT.to_string(),
            name: "Boot!".to_string(),
            args,
        });
    }

    fn send(&self, command: &str, action: DeviceAction) -> Result<OperateOutcome, ProviderError> {
        self.actions.send(action).map_err(|_| {
            ProviderError::new(
                UspErrorCode::CommandFailure,
                format!("{command}: the agent is shutting down"),
            )
        })?;
        Ok(OperateOutcome::Done(Args::new()))
    }

    fn schedule_timer(&self, input: &Args) -> Result<OperateOutcome, ProviderError> {
        let delay: u64 = input
            .get("DelaySeconds")
            .and_then(|value| value.parse().ok())
            .filter(|delay| *delay >= 1)
            .ok_or_else(|| {
                ProviderError::new(
                    UspErrorCode::InvalidCommandArguments,
                    "Device.ScheduleTimer(): DelaySeconds must be an unsignedInt >= 1",
                )
            })?;
        let sink = self.sink().ok_or_else(|| {
            ProviderError::new(
                UspErrorCode::CommandFailure,
                "Device.ScheduleTimer(): the provider is not registered",
            )
        })?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            sink.push(Change::OperationComplete {
                token,
                result: Ok(Args::new()),
            });
        });
        Ok(OperateOutcome::Started(token))
    }
}

fn input_or(input: &Args, name: &str, default: &str) -> String {
    input
        .get(name)
        .filter(|value| !value.is_empty())
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

#[async_trait]
impl Provider for DeviceProvider {
    fn name(&self) -> &str {
        "builtin Device"
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    fn attach(&self, sink: ChangeSink) {
        *self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink);
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        Err(no_tables(table))
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        answer_get(&self.schema, requests, |_, name| {
            (name == "RootDataModelVersion").then(|| "2.19".to_string())
        })
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        Ok(Box::new(ReadOnlyTransaction))
    }

    async fn operate(
        &self,
        command: &str,
        command_key: &str,
        input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        match command {
            "Device.Reboot()" => self.send(
                command,
                DeviceAction::Reboot {
                    command_key: command_key.to_string(),
                    cause: input_or(&input, "Cause", "RemoteReboot"),
                    reason: input_or(&input, "Reason", ""),
                },
            ),
            "Device.FactoryReset()" => self.send(
                command,
                DeviceAction::FactoryReset {
                    command_key: command_key.to_string(),
                    cause: input_or(&input, "Cause", "RemoteFactoryReset"),
                    reason: input_or(&input, "Reason", ""),
                },
            ),
            "Device.ScheduleTimer()" => self.schedule_timer(&input),
            other => Err(ProviderError::new(
                UspErrorCode::CommandFailure,
                format!("{other} is not served here"),
            )),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reboot_answers_and_hands_the_action_over() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let provider = DeviceProvider::new(tx).unwrap();
        let outcome = provider
            .operate("Device.Reboot()", "key-1", Args::new())
            .await
            .unwrap();
        assert_eq!(outcome, OperateOutcome::Done(Args::new()));
        assert_eq!(
            rx.recv().await.unwrap(),
            DeviceAction::Reboot {
                command_key: "key-1".into(),
                cause: "RemoteReboot".into(),
                reason: String::new(),
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn schedule_timer_completes_after_the_delay() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let provider = DeviceProvider::new(tx).unwrap();
        let (changes_tx, mut changes) = mpsc::unbounded_channel();
        provider.attach(ChangeSink::new(move |change| {
            let _ = changes_tx.send(change);
        }));
        let mut input = Args::new();
        input.insert("DelaySeconds".into(), "30".into());
        let OperateOutcome::Started(token) = provider
            .operate("Device.ScheduleTimer()", "", input)
            .await
            .unwrap()
        else {
            panic!("ScheduleTimer must be asynchronous");
        };
        let before = tokio::time::Instant::now();
        let change = changes.recv().await.unwrap();
        assert!(before.elapsed() >= Duration::from_secs(30));
        assert_eq!(
            change,
            Change::OperationComplete {
                token,
                result: Ok(Args::new())
            }
        );
    }

    #[tokio::test]
    async fn boot_event_carries_cause_and_command_key() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let provider = DeviceProvider::new(tx).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        provider.attach(ChangeSink::new(move |change| {
            sink.lock().unwrap().push(change)
        }));
        provider.announce_boot("k", "RemoteReboot", "");
        let seen = seen.lock().unwrap();
        let Change::Event { object, name, args } = &seen[0] else {
            panic!("expected an event");
        };
        assert_eq!((object.as_str(), name.as_str()), ("Device.", "Boot!"));
        assert_eq!(args["Cause"], "RemoteReboot");
        assert_eq!(args["CommandKey"], "k");
    }
}
