//! Latency summaries: exact percentiles over every recorded sample (a run keeps at most a few
//! million `u32` microsecond values, so sorting them is cheaper than any estimate is wrong).

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u32,
    /// 99th percentile.
    pub p99_us: u32,
    /// Largest sample.
    pub max_us: u32,
}

impl Latency {
    /// Summarises `samples` (sorted in place); `None` when there are none.
    pub fn of(samples: &mut [u32]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Latency {
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: samples[samples.len() - 1],
        })
    }
}

/// A duration as whole microseconds, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// `1234` µs as `1.23 ms`, `87` as `87 µs`.
pub fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
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
    fn percentiles_of_one_to_hundred() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        let l = Latency::of(&mut samples).unwrap();
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (51, 99, 100));
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(Latency::of(&mut []), None);
    }

    #[test]
    fn formatting_switches_to_milliseconds() {
        assert_eq!(fmt_us(87.0), "87.0 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
    }
}
