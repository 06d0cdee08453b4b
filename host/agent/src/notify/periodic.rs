//! `Device.LocalAgent.Periodic!` timing (digest §9.3): every `PeriodicNotifInterval` seconds,
//! in phase with `PeriodicNotifTime` (when it is the Unknown Time or absent, the agent picks
//! the phase: the moment the schedule starts).

/// Seconds from `now` (Unix seconds) to the next fire time of a schedule with `interval`
/// seconds (≥ 1) and phase `phase` (Unix seconds, any past or future instant). Never 0: a fire
/// time equal to `now` is the current one, already due, so the next is a full interval later.
pub fn seconds_to_next(now: i64, interval: u64, phase: i64) -> u64 {
    let interval = interval.max(1);
    let step = i64::try_from(interval).unwrap_or(i64::MAX);
    let since = (now - phase).rem_euclid(step);
    interval - u64::try_from(since).unwrap_or(0)
}

/// The phase in Unix seconds from a `PeriodicNotifTime` value; `None` for the Unknown Time,
/// an empty or malformed value.
pub fn phase_of(periodic_notif_time: &str) -> Option<i64> {
    match usp_dm::value::DateTime::parse(periodic_notif_time)? {
        usp_dm::value::DateTime::At(seconds, _) => Some(seconds),
        usp_dm::value::DateTime::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_fire_time_keeps_the_phase() {
        // Phase at 100, every 60 s: fires at 100, 160, 220, ...
        assert_eq!(seconds_to_next(100, 60, 100), 60);
        assert_eq!(seconds_to_next(101, 60, 100), 59);
        assert_eq!(seconds_to_next(159, 60, 100), 1);
        // A phase in the future works the same way.
        assert_eq!(seconds_to_next(100, 60, 1_000), 60);
        assert_eq!(seconds_to_next(0, 1, 0), 1);
        assert_eq!(seconds_to_next(5, 0, 0), 1);
    }

    #[test]
    fn unknown_time_lets_the_agent_pick_the_phase() {
        assert_eq!(phase_of("0001-01-01T00:00:00Z"), None);
        assert_eq!(phase_of(""), None);
        assert_eq!(phase_of("1970-01-01T00:01:40Z"), Some(100));
    }
}
