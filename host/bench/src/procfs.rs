//! The agent's resource use as Linux reports it: CPU time (utime + stime, all threads) from
//! `/proc/<pid>/stat` in clock ticks, and resident memory from `/proc/<pid>/status`. The same
//! figures the obuspa measurements used, so the two can be compared.

use std::fs;

/// Why a figure could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the process is gone, or not ours to see).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The procfs file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file did not have the expected shape.
    #[error("unexpected contents in {0}")]
    Format(String),
}

/// A process's accumulated CPU time and current memory, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// utime + stime, in nanoseconds (converted from clock ticks).
    pub cpu_ns: u64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS) in KiB.
    pub hwm_kib: u64,
    /// RssAnon (heap, stacks: what is the process's own) in KiB.
    pub anon_kib: u64,
    /// Number of threads.
    pub threads: u64,
}

/// Reads the current figures of `pid`.
pub fn sample(pid: u32) -> Result<Sample, ProcError> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat = read(&stat_path)?;
    let ticks = cpu_ticks(&stat).ok_or_else(|| ProcError::Format(stat_path.clone()))?;
    let status_path = format!("/proc/{pid}/status");
    let status = read(&status_path)?;
    let field =
        |name: &str| status_kib(&status, name).ok_or(ProcError::Format(status_path.clone()));
    let tick_ns = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
    Ok(Sample {
        cpu_ns: ticks * tick_ns,
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:")?,
        threads: field("Threads:")?,
    })
}

fn read(path: &str) -> Result<String, ProcError> {
    fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_string(),
        source,
    })
}

/// utime (field 14) + stime (field 15). The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The number of a `Name:   123 kB` (or a plain count) line of `/proc/<pid>/status`.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces_and_parens() {
        let stat = "42 (usp (agent) x) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(12));
    }

    #[test]
    fn status_fields_are_read_by_name() {
        let status = "Name:\tusp-agent\nVmHWM:\t  9000 kB\nVmRSS:\t  8123 kB\nRssAnon:\t 2000 kB\nThreads:\t4\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(8123));
        assert_eq!(status_kib(status, "RssAnon:"), Some(2000));
        assert_eq!(status_kib(status, "Threads:"), Some(4));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib && s.threads >= 1);
    }
}
