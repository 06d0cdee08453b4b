//! The Notify retry schedule (digest §9.2, R-NOT.1..4): retry n waits a random time in
//! `[m·(k/1000)^(n−1), m·(k/1000)^n]` seconds, with m = `USPNotifRetryMinimumWaitInterval`
//! (default 5) and k = `USPNotifRetryIntervalMultiplier` (default 2000); from the 10th retry on
//! the window stays that of the 10th. With the defaults: 5–10 s, 10–20 s, …, 2560–5120 s.

use std::time::Duration;

/// The Controller's retry parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `USPNotifRetryMinimumWaitInterval`, seconds (1..65535).
    pub minimum_wait: u32,
    /// `USPNotifRetryIntervalMultiplier`, thousandths (1000..65535).
    pub multiplier: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            minimum_wait: 5,
            multiplier: 2000,
        }
    }
}

/// The window stops growing at this retry.
const LAST_GROWING_RETRY: u32 = 10;

impl RetryPolicy {
    /// The policy from the Controller row's values; out-of-range or missing values fall back to
    /// the defaults (the data model validates them on write, so this guards old stores only).
    pub fn from_values(minimum_wait: Option<&str>, multiplier: Option<&str>) -> RetryPolicy {
        let default = RetryPolicy::default();
        RetryPolicy {
            minimum_wait: minimum_wait
                .and_then(|v| v.parse().ok())
                .filter(|v| (1..=65_535).contains(v))
                .unwrap_or(default.minimum_wait),
            multiplier: multiplier
                .and_then(|v| v.parse().ok())
                .filter(|v| (1000..=65_535).contains(v))
                .unwrap_or(default.multiplier),
        }
    }

    /// The wait window of retry `n` (1-based).
    pub fn window(&self, retry: u32) -> (Duration, Duration) {
        let n = retry.clamp(1, LAST_GROWING_RETRY);
        let factor = f64::from(self.multiplier) / 1000.0;
        let m = f64::from(self.minimum_wait);
        let low = m * factor.powi(n as i32 - 1);
        let high = m * factor.powi(n as i32);
        (Duration::from_secs_f64(low), Duration::from_secs_f64(high))
    }

    /// The wait before retry `n`, at `fraction` ∈ [0, 1] of its window (the caller draws the
    /// fraction at random, so that many agents do not retry in step).
    pub fn wait(&self, retry: u32, fraction: f64) -> Duration {
        let (low, high) = self.window(retry);
        low + (high - low).mul_f64(fraction.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_windows_match_the_spec_table() {
        let policy = RetryPolicy::default();
        let secs = |n| {
            let (low, high) = policy.window(n);
            (low.as_secs(), high.as_secs())
        };
        assert_eq!(secs(1), (5, 10));
        assert_eq!(secs(2), (10, 20));
        assert_eq!(secs(3), (20, 40));
        assert_eq!(secs(10), (2560, 5120));
        assert_eq!(secs(11), (2560, 5120));
        assert_eq!(secs(40), (2560, 5120));
    }

    #[test]
    fn custom_policy_scales_the_windows() {
        let policy = RetryPolicy::from_values(Some("1"), Some("1500"));
        let (low, high) = policy.window(2);
        assert_eq!((low.as_millis(), high.as_millis()), (1500, 2250));
    }

    #[test]
    fn waits_stay_inside_their_window() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait(1, 0.0), Duration::from_secs(5));
        assert_eq!(policy.wait(1, 1.0), Duration::from_secs(10));
        assert_eq!(policy.wait(2, 0.5), Duration::from_secs(15));
        assert_eq!(policy.wait(1, 7.0), Duration::from_secs(10));
    }

    #[test]
    fn bad_stored_values_fall_back_to_defaults() {
        let policy = RetryPolicy::from_values(Some("0"), Some("999"));
        assert_eq!(policy, RetryPolicy::default());
        assert_eq!(
            RetryPolicy::from_values(None, Some("x")),
            RetryPolicy::default()
        );
    }
}
