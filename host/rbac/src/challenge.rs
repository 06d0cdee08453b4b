//! The challenge mechanism (digest §8.3, R-SEC.13..17): `ControllerTrust.RequestChallenge()`
//! and `ChallengeResponse()` as a state machine over caller-supplied time, with no I/O. The
//! agent owns the `Challenge.{i}` table and the Controllers' `AssignedRole`; this module
//! decides.
//!
//! Rules kept here:
//! - one outstanding request per Controller: a new request replaces the previous one;
//! - a request expires `RequestExpiration` after it was issued (0 = never);
//! - consecutive wrong answers to one `Challenge.{i}`, from any Controller, reaching its
//!   `Retries` lock it for `LockoutPeriod`; while locked it can be neither requested nor
//!   answered, and a lockout discards the outstanding requests for it;
//! - a right answer grants `Challenge.{i}.Role`, which replaces the untrusted role(s) in the
//!   Controller's `AssignedRole` ([`assigned_after_challenge`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use usp_codec::UspErrorCode;

/// A refused `RequestChallenge()` or `ChallengeResponse()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// `ChallengeRef` names no enabled `Challenge.{i}`.
    #[error("no enabled challenge at \"{reference}\"")]
    UnknownChallenge {
        /// The `ChallengeRef` given.
        reference: String,
    },
    /// The challenge is locked after too many wrong answers.
    #[error(
        "challenge \"{reference}\" is locked for {remaining:?} after too many failed responses"
    )]
    Locked {
        /// The locked challenge.
        reference: String,
        /// Time left.
        remaining: Duration,
    },
    /// `ChallengeID` is not this Controller's outstanding request.
    #[error("no outstanding challenge request with ChallengeID \"{id}\"")]
    UnknownRequest {
        /// The `ChallengeID` given.
        id: String,
    },
    /// The request's `RequestExpiration` has passed.
    #[error("challenge request \"{id}\" has expired")]
    Expired {
        /// The `ChallengeID` given.
        id: String,
    },
    /// The answer does not match `Challenge.{i}.Value`.
    #[error("wrong response to challenge request \"{id}\"")]
    WrongValue {
        /// The `ChallengeID` given.
        id: String,
    },
}

impl ChallengeError {
    /// The `cmd_failure` code of the refused command.
    pub fn code(&self) -> UspErrorCode {
        match self {
            ChallengeError::UnknownChallenge { .. }
            | ChallengeError::UnknownRequest { .. }
            | ChallengeError::Expired { .. } => UspErrorCode::InvalidCommandArguments,
            ChallengeError::Locked { .. } | ChallengeError::WrongValue { .. } => {
                UspErrorCode::RequestDenied
            }
        }
    }
}

/// One `ControllerTrust.Challenge.{i}` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `Enable` (default false).
    pub enable: bool,
    /// `Value`: the expected answer, base64 (secured).
    pub value: String,
    /// `ValueType`.
    pub value_type: String,
    /// `Instruction`, base64.
    pub instruction: String,
    /// `InstructionType`.
    pub instruction_type: String,
    /// `Role`: role references granted by a right answer.
    pub roles: Vec<String>,
    /// `Retries`: wrong answers allowed before the lockout (0 is treated as 1).
    pub retries: u32,
    /// `LockoutPeriod` (default 30 s).
    pub lockout_period: Duration,
}

/// The output arguments of a successful `RequestChallenge()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    /// `ChallengeID`.
    pub id: String,
    /// `Instruction`.
    pub instruction: String,
    /// `InstructionType`.
    pub instruction_type: String,
    /// `ValueType`.
    pub value_type: String,
}

#[derive(Debug, Clone)]
struct Pending {
    id: String,
    challenge: String,
    expires: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Outstanding requests and failure counts. Lives in memory only: a reboot clears it, as it
/// clears cached role decisions (R-SEC.21).
#[derive(Debug, Clone, Default)]
pub struct Challenges {
    pending: HashMap<String, Pending>,
    failures: HashMap<String, Failures>,
}

fn canonical(reference: &str) -> &str {
    reference.trim().trim_end_matches('.')
}

/// Compares without an early exit, so response time does not reveal how much of the value
/// matched.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (index, &byte) in a.iter().enumerate() {
        difference |= usize::from(byte ^ b.get(index).copied().unwrap_or(!byte));
    }
    difference == 0
}

impl Challenges {
    /// Nothing outstanding.
    pub fn new() -> Challenges {
        Challenges::default()
    }

    fn check_lock(&mut self, reference: &str, now: Instant) -> Result<(), ChallengeError> {
        let Some(failures) = self.failures.get_mut(reference) else {
            return Ok(());
        };
        match failures.locked_until {
            Some(until) if until > now => Err(ChallengeError::Locked {
                reference: reference.to_string(),
                remaining: until - now,
            }),
            Some(_) => {
                *failures = Failures::default();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// `RequestChallenge(ChallengeRef, RequestExpiration)` from `controller` (its endpoint ID
    /// or instance path): `challenge` is the entry `ChallengeRef` names, if any; `id` a fresh,
    /// unpredictable `ChallengeID` chosen by the caller.
    pub fn request(
        &mut self,
        controller: &str,
        challenge_ref: &str,
        challenge: Option<&Challenge>,
        expiration: Duration,
        id: String,
        now: Instant,
    ) -> Result<IssuedChallenge, ChallengeError> {
        let reference = canonical(challenge_ref);
        let Some(challenge) = challenge.filter(|c| c.enable) else {
            return Err(ChallengeError::UnknownChallenge {
                reference: challenge_ref.to_string(),
            });
        };
        self.check_lock(reference, now)?;
        let expires = (!expiration.is_zero()).then(|| now + expiration);
        self.pending.insert(
            controller.to_string(),
            Pending {
                id: id.clone(),
                challenge: reference.to_string(),
                expires,
            },
        );
        Ok(IssuedChallenge {
            id,
            instruction: challenge.instruction.clone(),
            instruction_type: challenge.instruction_type.clone(),
            value_type: challenge.value_type.clone(),
        })
    }

    /// The `Challenge.{i}` reference of `controller`'s outstanding request with this ID, for
    /// the caller to look the entry up before [`Challenges::respond`].
    pub fn pending_challenge(&self, controller: &str, id: &str) -> Option<&str> {
        self.pending
            .get(controller)
            .filter(|pending| pending.id == id)
            .map(|pending| pending.challenge.as_str())
    }

    /// `ChallengeResponse(ChallengeID, Value)` from `controller`. `challenge` is the entry the
    /// request was for ([`Challenges::pending_challenge`]), `None` if it was deleted since.
    /// On success returns the role references to grant.
    pub fn respond(
        &mut self,
        controller: &str,
        id: &str,
        value: &str,
        challenge: Option<&Challenge>,
        now: Instant,
    ) -> Result<Vec<String>, ChallengeError> {
        let unknown = || ChallengeError::UnknownRequest { id: id.to_string() };
        let pending = self
            .pending
            .get(controller)
            .filter(|pending| pending.id == id)
            .cloned()
            .ok_or_else(unknown)?;
        if pending.expires.is_some_and(|expires| expires <= now) {
            self.pending.remove(controller);
            return Err(ChallengeError::Expired { id: id.to_string() });
        }
        let Some(challenge) = challenge.filter(|c| c.enable) else {
            self.pending.remove(controller);
            return Err(ChallengeError::UnknownChallenge {
                reference: pending.challenge,
            });
        };
        self.check_lock(&pending.challenge, now)?;
        if same_secret(&challenge.value, value) {
            self.pending.remove(controller);
            self.failures.remove(&pending.challenge);
            return Ok(challenge.roles.clone());
        }
        let failures = self.failures.entry(pending.challenge.clone()).or_default();
        failures.count += 1;
        if failures.count >= challenge.retries.max(1) {
            failures.locked_until = Some(now + challenge.lockout_period);
            let locked = pending.challenge;
            self.pending.retain(|_, p| p.challenge != locked);
        }
        Err(ChallengeError::WrongValue { id: id.to_string() })
    }
}

/// The `AssignedRole` after a right answer: the untrusted roles removed, the granted ones
/// appended (each once), the rest kept in order.
pub fn assigned_after_challenge(
    assigned: &[String],
    untrusted: &[String],
    granted: &[String],
) -> Vec<String> {
    let is_untrusted = |role: &str| untrusted.iter().any(|u| canonical(u) == canonical(role));
    let mut result: Vec<String> = Vec::new();
    for role in assigned.iter().chain(granted) {
        let present = result.iter().any(|r| canonical(r) == canonical(role));
        if !is_untrusted(role) && !present {
            result.push(canonical(role).to_string());
        }
    }
    result
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    const REF: &str = "Device.LocalAgent.ControllerTrust.Challenge.1";

    fn challenge(retries: u32) -> Challenge {
        Challenge {
            enable: true,
            value: "c2VjcmV0".to_string(),
            value_type: "text/plain".to_string(),
            instruction: "RW50ZXIgdGhlIGxhYmVs".to_string(),
            instruction_type: "text/plain".to_string(),
            roles: vec!["Device.LocalAgent.ControllerTrust.Role.1".to_string()],
            retries,
            lockout_period: Duration::from_secs(30),
        }
    }

    fn request(
        state: &mut Challenges,
        who: &str,
        c: &Challenge,
        id: &str,
        now: Instant,
    ) -> Result<IssuedChallenge, ChallengeError> {
        state.request(
            who,
            REF,
            Some(c),
            Duration::from_secs(900),
            id.to_string(),
            now,
        )
    }

    #[test]
    fn right_answer_grants_the_challenge_roles_once() {
        let (mut state, c, now) = (Challenges::new(), challenge(3), Instant::now());
        let issued = request(&mut state, "ctrl-a", &c, "id-1", now).unwrap();
        assert_eq!(issued.instruction, c.instruction);
        assert_eq!(issued.id, "id-1");
        assert_eq!(state.pending_challenge("ctrl-a", "id-1"), Some(REF));
        let roles = state
            .respond("ctrl-a", "id-1", "c2VjcmV0", Some(&c), now)
            .unwrap();
        assert_eq!(roles, c.roles);
        let again = state
            .respond("ctrl-a", "id-1", "c2VjcmV0", Some(&c), now)
            .unwrap_err();
        assert_eq!(
            again,
            ChallengeError::UnknownRequest {
                id: "id-1".to_string()
            }
        );
    }

    #[test]
    fn responses_must_match_the_controllers_own_request() {
        let (mut state, c, now) = (Challenges::new(), challenge(3), Instant::now());
        request(&mut state, "ctrl-a", &c, "id-1", now).unwrap();
        let error = state
            .respond("ctrl-b", "id-1", "c2VjcmV0", Some(&c), now)
            .unwrap_err();
        assert_eq!(error.code(), UspErrorCode::InvalidCommandArguments);
        // A new request replaces the outstanding one.
        request(&mut state, "ctrl-a", &c, "id-2", now).unwrap();
        assert!(
            state
                .respond("ctrl-a", "id-1", "c2VjcmV0", Some(&c), now)
                .is_err()
        );
        assert!(
            state
                .respond("ctrl-a", "id-2", "c2VjcmV0", Some(&c), now)
                .is_ok()
        );
    }

    #[test]
    fn requests_expire() {
        let (mut state, c, now) = (Challenges::new(), challenge(3), Instant::now());
        request(&mut state, "ctrl-a", &c, "id-1", now).unwrap();
        let late = now + Duration::from_secs(900);
        let error = state
            .respond("ctrl-a", "id-1", "c2VjcmV0", Some(&c), late)
            .unwrap_err();
        assert_eq!(
            error,
            ChallengeError::Expired {
                id: "id-1".to_string()
            }
        );

        state
            .request(
                "ctrl-a",
                REF,
                Some(&c),
                Duration::ZERO,
                "id-2".to_string(),
                now,
            )
            .unwrap();
        let much_later = now + Duration::from_secs(1_000_000);
        assert!(
            state
                .respond("ctrl-a", "id-2", "c2VjcmV0", Some(&c), much_later)
                .is_ok()
        );
    }

    #[test]
    fn failures_across_controllers_lock_the_challenge() {
        let (mut state, c, now) = (Challenges::new(), challenge(2), Instant::now());
        request(&mut state, "ctrl-a", &c, "a", now).unwrap();
        request(&mut state, "ctrl-b", &c, "b", now).unwrap();
        let wrong = state
            .respond("ctrl-a", "a", "bm9wZQ==", Some(&c), now)
            .unwrap_err();
        assert_eq!(wrong.code(), UspErrorCode::RequestDenied);
        assert!(
            state
                .respond("ctrl-b", "b", "bm9wZQ==", Some(&c), now)
                .is_err()
        );
        // Locked: neither a new request nor a right answer gets through.
        let locked = request(&mut state, "ctrl-c", &c, "c", now).unwrap_err();
        assert!(
            matches!(locked, ChallengeError::Locked { remaining, .. } if remaining == Duration::from_secs(30))
        );
        assert!(
            state
                .respond("ctrl-a", "a", "c2VjcmV0", Some(&c), now)
                .is_err()
        );
        // After the lockout period the challenge is usable again.
        let later = now + Duration::from_secs(30);
        request(&mut state, "ctrl-c", &c, "c", later).unwrap();
        assert!(
            state
                .respond("ctrl-c", "c", "c2VjcmV0", Some(&c), later)
                .is_ok()
        );
    }

    #[test]
    fn disabled_or_missing_challenges_are_refused() {
        let (mut state, mut c, now) = (Challenges::new(), challenge(3), Instant::now());
        let missing = state
            .request("ctrl-a", REF, None, Duration::ZERO, "x".to_string(), now)
            .unwrap_err();
        assert!(missing.to_string().contains(REF));
        c.enable = false;
        assert!(request(&mut state, "ctrl-a", &c, "x", now).is_err());
    }

    #[test]
    fn secret_comparison_is_exact() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
        assert!(same_secret("", ""));
    }

    #[test]
    fn granted_roles_replace_the_untrusted_role() {
        let untrusted = ["Device.LocalAgent.ControllerTrust.Role.2".to_string()];
        let assigned = [
            "Device.LocalAgent.ControllerTrust.Role.2.".to_string(),
            "Device.LocalAgent.ControllerTrust.Role.5".to_string(),
        ];
        let granted = [
            "Device.LocalAgent.ControllerTrust.Role.1".to_string(),
            "Device.LocalAgent.ControllerTrust.Role.5".to_string(),
        ];
        assert_eq!(
            assigned_after_challenge(&assigned, &untrusted, &granted),
            [
                "Device.LocalAgent.ControllerTrust.Role.5",
                "Device.LocalAgent.ControllerTrust.Role.1"
            ]
        );
    }
}
