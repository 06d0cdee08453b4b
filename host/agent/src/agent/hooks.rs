//! What the agent does for the message handlers ([`AgentHooks`]): `Device.LocalAgent.Request.{i}`
//! rows for asynchronous commands, agent-filled values of new subscriptions, NotifyResps.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use usp_dm::{MemoryProvider, ParamValues, ProviderError, ProviderId, ResolvedObject};

use super::access::find_controller;
use crate::builtin::local_agent::{REQUEST_TABLE, SUBSCRIPTION_TABLE};
use crate::messages::{AgentHooks, RequestContext, StartedRequest};

/// A running asynchronous command and its Request row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunningRequest {
    /// `Device.LocalAgent.Request.3.`
    pub row: String,
    /// What was started.
    pub started: StartedRequest,
}

/// The agent's [`AgentHooks`].
pub(crate) struct Hooks {
    tables: MemoryProvider,
    /// Running async commands by (provider, token): a token is only unique per provider.
    /// Shared between the handlers (which start requests) and the actor (which ends them).
    running: Mutex<HashMap<(ProviderId, u64), RunningRequest>>,
    /// msg_ids of the NotifyResps received while handling a message; the actor hands them to
    /// the notifier after the message (the handlers cannot reach the actor's state).
    notify_resps: Mutex<Vec<String>>,
}

impl Hooks {
    pub(crate) fn new(tables: MemoryProvider) -> Self {
        Hooks {
            tables,
            running: Mutex::new(HashMap::new()),
            notify_resps: Mutex::new(Vec::new()),
        }
    }

    /// The msg_ids of the NotifyResps received since the last call.
    pub(crate) fn take_notify_resps(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .notify_resps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Removes and returns the request a provider's token belongs to.
    pub(crate) fn finish(&self, provider: ProviderId, token: u64) -> Option<RunningRequest> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(provider, token))
    }
}

/// Now as a TR-106 dateTime.
pub(crate) fn now_datetime() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    datetime(seconds)
}

/// A Unix time as a TR-106 dateTime (`2026-11-25T20:11:56Z`).
pub(crate) fn datetime(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let rest = unix_seconds % 86_400;
    // Civil-from-days (proleptic Gregorian), valid for every u64 second count in range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[async_trait]
impl AgentHooks for Hooks {
    async fn start_request(&self, request: StartedRequest) -> Result<String, ProviderError> {
        let params: ParamValues = [
            ("Originator", request.originator.as_str()),
            ("Command", request.command.as_str()),
            ("CommandKey", request.command_key.as_str()),
            ("Status", "Active"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        let number = self.tables.add_instance(REQUEST_TABLE, &params)?;
        let row = format!("{REQUEST_TABLE}{number}.");
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                (request.provider, request.token),
                RunningRequest {
                    row: row.clone(),
                    started: request,
                },
            );
        Ok(row.trim_end_matches('.').to_string())
    }

    fn fill_add(&self, ctx: &RequestContext, table: &ResolvedObject, params: &mut ParamValues) {
        if table.path != SUBSCRIPTION_TABLE {
            return;
        }
        let recipient = find_controller(&self.tables, &ctx.controller)
            .map(|known| known.row)
            .unwrap_or_default();
        params.insert("Recipient".to_string(), recipient);
        params.insert("CreationDate".to_string(), now_datetime());
    }

    fn notify_resp(&self, ctx: &RequestContext, msg_id: &str, subscription_id: &str) {
        tracing::debug!(controller = %ctx.controller, msg_id, subscription_id, "NotifyResp");
        self.notify_resps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(msg_id.to_string());
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn datetime_formats_known_instants() {
        assert_eq!(datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(datetime(1_795_637_516), "2026-11-25T20:11:56Z");
    }
}
