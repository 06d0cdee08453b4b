//! Reconnect waits shared by every transport: the spec's randomised exponential backoff
//! (R-MQTT.10/33, R-WS.19..21, the STOMP `ServerRetry*` parameters) and the UDS client's
//! random 1–5 s wait.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The largest exponent the spec lets a retry range grow to: from retry 10 on, waits stay in
/// the 10th range.
const MAX_EXPONENT: u32 = 10;

/// How long to wait before reconnect attempt `n` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RetryPolicy {
    /// Retry `n` waits a random time in `[initial·(k/1000)^(n−1), initial·(k/1000)^n]`, the
    /// exponent capped at 10, both ends clipped to `max_secs`.
    Exponential {
        /// `initial` in seconds (`ConnectRetryTime`, `SessionRetryMinimumWaitInterval`,
        /// `ServerRetryInitialInterval`).
        initial_secs: u32,
        /// `k`, in thousandths (`...IntervalMultiplier`; 2000 doubles each range).
        multiplier: u32,
        /// Upper bound of every wait, in seconds (`ConnectRetryMaxInterval`,
        /// `ServerRetryMaxInterval`).
        max_secs: u32,
        /// When true the first wait is drawn from `[0, initial]` (STOMP's first retry).
        first_from_zero: bool,
    },
    /// Every wait is a random time in `[min, max]` (the UDS client: 1–5 s).
    Uniform {
        /// Shortest wait, in milliseconds.
        min_ms: u64,
        /// Longest wait, in milliseconds.
        max_ms: u64,
    },
}

impl RetryPolicy {
    /// The MQTT defaults: 5 s, ×2, at most 30720 s.
    pub const MQTT_DEFAULT: RetryPolicy = RetryPolicy::Exponential {
        initial_secs: 5,
        multiplier: 2000,
        max_secs: 30720,
        first_from_zero: false,
    };
    /// The WebSocket session-retry defaults: 5 s, ×2; the spec sets no maximum beyond the
    /// 10th range.
    pub const WEBSOCKET_DEFAULT: RetryPolicy = RetryPolicy::Exponential {
        initial_secs: 5,
        multiplier: 2000,
        max_secs: u32::MAX,
        first_from_zero: false,
    };
    /// The STOMP defaults: first wait in 0–60 s, ×2, at most 30720 s.
    pub const STOMP_DEFAULT: RetryPolicy = RetryPolicy::Exponential {
        initial_secs: 60,
        multiplier: 2000,
        max_secs: 30720,
        first_from_zero: true,
    };
    /// The UDS client: a random 1–5 s before every reconnect.
    pub const UDS: RetryPolicy = RetryPolicy::Uniform {
        min_ms: 1000,
        max_ms: 5000,
    };

    /// The range, in milliseconds, that wait number `attempt` (1-based) is drawn from.
    pub fn range_ms(&self, attempt: u32) -> (u64, u64) {
        match *self {
            RetryPolicy::Uniform { min_ms, max_ms } => (min_ms.min(max_ms), max_ms),
            RetryPolicy::Exponential {
                initial_secs,
                multiplier,
                max_secs,
                first_from_zero,
            } => {
                let n = attempt.clamp(1, MAX_EXPONENT);
                let k = f64::from(multiplier.max(1000)) / 1000.0;
                let initial_ms = f64::from(initial_secs) * 1000.0;
                let cap_ms = f64::from(max_secs) * 1000.0;
                let lower = if attempt <= 1 && first_from_zero {
                    0.0
                } else {
                    initial_ms * k.powi(n as i32 - 1)
                };
                let upper = if attempt <= 1 && first_from_zero {
                    initial_ms
                } else {
                    initial_ms * k.powi(n as i32)
                };
                // The float-to-int casts saturate, so huge products become u64::MAX.
                let upper = upper.min(cap_ms) as u64;
                let lower = (lower.min(cap_ms) as u64).min(upper);
                (lower, upper)
            }
        }
    }
}

/// Counts consecutive failed attempts and draws the next wait from a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    attempts: u32,
}

impl Backoff {
    /// A counter at zero failed attempts.
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            attempts: 0,
        }
    }

    /// Consecutive failures since the last success (`CurrentRetryCount`).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Forgets past failures after a successful connection.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Counts one more failure and returns how long to wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        self.next_wait_with(&mut rand::rng())
    }

    /// [`Backoff::next_wait`] with a caller-chosen random source.
    pub fn next_wait_with(&mut self, rng: &mut impl Rng) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        let (lower, upper) = self.policy.range_ms(self.attempts);
        Duration::from_millis(rng.random_range(lower..=upper))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_mqtt_ranges_double_from_five_seconds() {
        let p = RetryPolicy::MQTT_DEFAULT;
        assert_eq!(p.range_ms(1), (5_000, 10_000));
        assert_eq!(p.range_ms(2), (10_000, 20_000));
        assert_eq!(p.range_ms(4), (40_000, 80_000));
        assert_eq!(p.range_ms(10), (2_560_000, 5_120_000));
    }

    #[test]
    fn ranges_stop_growing_after_the_tenth_retry() {
        let p = RetryPolicy::MQTT_DEFAULT;
        assert_eq!(p.range_ms(11), p.range_ms(10));
        assert_eq!(p.range_ms(u32::MAX), p.range_ms(10));
    }

    #[test]
    fn max_interval_caps_both_ends() {
        let p = RetryPolicy::Exponential {
            initial_secs: 5,
            multiplier: 2000,
            max_secs: 30,
            first_from_zero: false,
        };
        assert_eq!(p.range_ms(2), (10_000, 20_000));
        assert_eq!(p.range_ms(3), (20_000, 30_000));
        assert_eq!(p.range_ms(4), (30_000, 30_000));
        assert_eq!(p.range_ms(10), (30_000, 30_000));
    }

    #[test]
    fn stomp_first_wait_starts_at_zero() {
        assert_eq!(RetryPolicy::STOMP_DEFAULT.range_ms(1), (0, 60_000));
        assert_eq!(RetryPolicy::STOMP_DEFAULT.range_ms(2), (120_000, 240_000));
    }

    #[test]
    fn multiplier_below_one_is_treated_as_one() {
        let p = RetryPolicy::Exponential {
            initial_secs: 2,
            multiplier: 10,
            max_secs: 100,
            first_from_zero: false,
        };
        assert_eq!(p.range_ms(5), (2_000, 2_000));
    }

    #[test]
    fn huge_settings_saturate_instead_of_overflowing() {
        let p = RetryPolicy::Exponential {
            initial_secs: u32::MAX,
            multiplier: u32::MAX,
            max_secs: u32::MAX,
            first_from_zero: false,
        };
        let (lower, upper) = p.range_ms(10);
        assert!(lower <= upper);
        assert_eq!(upper, u64::from(u32::MAX) * 1000);
    }

    #[test]
    fn waits_stay_inside_their_range_and_reset_restarts() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(RetryPolicy::MQTT_DEFAULT);
        for attempt in 1..=12 {
            let wait = b.next_wait_with(&mut rng).as_millis() as u64;
            let (lower, upper) = RetryPolicy::MQTT_DEFAULT.range_ms(attempt);
            assert!((lower..=upper).contains(&wait), "attempt {attempt}: {wait}");
        }
        assert_eq!(b.attempts(), 12);
        b.reset();
        let wait = b.next_wait_with(&mut rng).as_millis() as u64;
        assert!((5_000..=10_000).contains(&wait));
    }

    #[test]
    fn waits_are_jittered() {
        let mut rng = StdRng::seed_from_u64(1);
        let draws: std::collections::HashSet<u128> = (0..20)
            .map(|_| {
                Backoff::new(RetryPolicy::MQTT_DEFAULT)
                    .next_wait_with(&mut rng)
                    .as_millis()
            })
            .collect();
        assert!(draws.len() > 10);
    }

    #[test]
    fn uds_waits_between_one_and_five_seconds() {
        let mut b = Backoff::new(RetryPolicy::UDS);
        for _ in 0..50 {
            let wait = b.next_wait();
            assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(5));
        }
    }
}
