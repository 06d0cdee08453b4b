//! `RequestChallenge()` and `ChallengeResponse()`: a Controller earns the roles of a
//! `Challenge.{i}` row by answering it, and its `AssignedRole` is updated.

use std::time::{Duration, Instant};

use usp_codec::UspErrorCode;
use usp_dm::{Args, Provider, ProviderError};
use usp_rbac::{Challenge, Challenges, assigned_after_challenge};

use super::{CHALLENGE_TABLE, ControllerTrustProvider, split_list};
use crate::builtin::local_agent::CONTROLLER_TABLE;

/// How long a challenge stays open when `RequestChallenge()` gives no `RequestExpiration`.
const DEFAULT_REQUEST_EXPIRATION: Duration = Duration::from_secs(900);

impl ControllerTrustProvider {
    fn challenge(&self, reference: &str) -> Option<Challenge> {
        let path = format!("{}.", reference.trim().trim_end_matches('.'));
        if !path.starts_with(CHALLENGE_TABLE) {
            return None;
        }
        let value = |name: &str| self.tables.value(&format!("{path}{name}"));
        let enable = value("Enable")?;
        Some(Challenge {
            enable: enable == "true",
            value: value("Value").unwrap_or_default(),
            value_type: value("ValueType").unwrap_or_default(),
            instruction: value("Instruction").unwrap_or_default(),
            instruction_type: value("InstructionType").unwrap_or_default(),
            roles: split_list(&value("Role").unwrap_or_default()),
            retries: value("Retries").and_then(|v| v.parse().ok()).unwrap_or(0),
            lockout_period: Duration::from_secs(
                value("LockoutPeriod")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(30),
            ),
        })
    }

    fn challenges(&self) -> std::sync::MutexGuard<'_, Challenges> {
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn controller_instance(&self, endpoint_id: &str) -> Option<String> {
        let numbers = self.controllers.instances(CONTROLLER_TABLE).await.ok()?;
        numbers.into_iter().find_map(|number| {
            let path = format!("{CONTROLLER_TABLE}{number}.");
            (self
                .controllers
                .value(&format!("{path}EndpointID"))
                .as_deref()
                == Some(endpoint_id))
            .then_some(path)
        })
    }

    pub(super) async fn request_challenge(
        &self,
        originator: &str,
        input: &Args,
    ) -> Result<Args, ProviderError> {
        let reference = input.get("ChallengeRef").cloned().unwrap_or_default();
        let expiration = match input.get("RequestExpiration") {
            Some(value) if !value.is_empty() => {
                let seconds = value.parse::<i64>().map_err(|_| {
                    ProviderError::new(
                        UspErrorCode::InvalidCommandArguments,
                        format!("RequestExpiration \"{value}\" is not an integer"),
                    )
                })?;
                Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
            }
            _ => DEFAULT_REQUEST_EXPIRATION,
        };
        let challenge = self.challenge(&reference);
        let id = uuid::Uuid::new_v4().to_string();
        let issued = self
            .challenges()
            .request(
                originator,
                &reference,
                challenge.as_ref(),
                expiration,
                id,
                Instant::now(),
            )
            .map_err(|error| ProviderError::new(error.code(), error.to_string()))?;
        Ok(Args::from([
            ("Instruction".to_string(), issued.instruction),
            ("InstructionType".to_string(), issued.instruction_type),
            ("ValueType".to_string(), issued.value_type),
            ("ChallengeID".to_string(), issued.id),
        ]))
    }

    pub(super) async fn challenge_response(
        &self,
        originator: &str,
        input: &Args,
    ) -> Result<Args, ProviderError> {
        let id = input.get("ChallengeID").cloned().unwrap_or_default();
        let value = input.get("Value").cloned().unwrap_or_default();
        let pending = self
            .challenges()
            .pending_challenge(originator, &id)
            .map(str::to_string);
        let challenge = pending
            .as_deref()
            .and_then(|reference| self.challenge(reference));
        let granted = self
            .challenges()
            .respond(originator, &id, &value, challenge.as_ref(), Instant::now())
            .map_err(|error| ProviderError::new(error.code(), error.to_string()))?;
        let controller = self.controller_instance(originator).await.ok_or_else(|| {
            ProviderError::new(
                UspErrorCode::CommandFailure,
                format!("no Device.LocalAgent.Controller entry has EndpointID \"{originator}\""),
            )
        })?;
        let assigned_path = format!("{controller}AssignedRole");
        let assigned = split_list(&self.controllers.value(&assigned_path).unwrap_or_default());
        let trust = self.trust.current();
        let updated = assigned_after_challenge(&assigned, trust.untrusted_roles(), &granted);
        self.controllers
            .set_value(&assigned_path, &updated.join(","))?;
        Ok(Args::new())
    }
}
