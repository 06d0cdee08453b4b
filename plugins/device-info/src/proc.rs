//! Parsers for the `/proc` files the plugin reads. Pure functions over the file text, so they
//! are tested natively with fixed samples.

/// The values of TR-181 `Process.{i}.State`.
pub const STATES: [&str; 6] = [
    "Running",
    "Sleeping",
    "Stopped",
    "Idle",
    "Uninterruptible",
    "Zombie",
];

/// Linux's USER_HZ on every architecture the agent targets (x86_64, arm64, arm).
const CLOCK_TICKS_PER_SECOND: u64 = 100;
/// Page size of x86_64 and of the usual arm64 kernel configuration.
const PAGE_KIB: u64 = 4;

/// The two lines of `/proc/meminfo` TR-181 needs, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total_kib: u64,
    /// `MemFree`.
    pub free_kib: u64,
}

impl MemInfo {
    /// Parses `/proc/meminfo`; `None` when a needed line is missing.
    pub fn parse(text: &str) -> Option<MemInfo> {
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        };
        Some(MemInfo {
            total_kib: field("MemTotal")?,
            free_kib: field("MemFree")?,
        })
    }
}

/// Aggregate CPU time from the `cpu` line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// All ticks.
    pub total: u64,
    /// Idle and I/O-wait ticks.
    pub idle: u64,
}

impl CpuTimes {
    /// Parses the first line of `/proc/stat`.
    pub fn parse(text: &str) -> Option<CpuTimes> {
        let line = text.lines().find(|line| line.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some(CpuTimes {
            total: ticks.iter().sum(),
            idle,
        })
    }

    /// Busy percentage between `earlier` and `self` (since boot without an earlier sample).
    pub fn usage_since(&self, earlier: Option<&CpuTimes>) -> u32 {
        let (total, idle) = match earlier {
            Some(earlier) => (
                self.total.saturating_sub(earlier.total),
                self.idle.saturating_sub(earlier.idle),
            ),
            None => (self.total, self.idle),
        };
        if total == 0 {
            return 0;
        }
        (total.saturating_sub(idle) * 100 / total).min(100) as u32
    }
}

/// The fields of `/proc/<pid>/stat` TR-181 needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// `comm`, without the parentheses.
    pub command: String,
    /// One-letter state.
    pub state: char,
    /// User plus system time, in ticks.
    pub cpu_ticks: u64,
    /// Kernel priority (20 for a normal process at nice 0).
    pub priority: i64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

impl ProcStat {
    /// Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses, so fields are
    /// counted from the last `)`.
    pub fn parse(text: &str) -> Option<ProcStat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let command = text.get(open + 1..close)?.to_string();
        let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        // fields[0] is field 3 (state) of proc(5).
        let number = |index: usize| fields.get(index)?.parse::<i64>().ok();
        Some(ProcStat {
            command,
            state: fields.first()?.chars().next()?,
            cpu_ticks: (number(11)? + number(12)?).max(0) as u64,
            priority: number(15)?,
            rss_pages: number(21)?.max(0) as u64,
        })
    }

    /// Resident size in KiB.
    pub fn size_kib(&self) -> u64 {
        self.rss_pages * PAGE_KIB
    }

    /// CPU time in milliseconds.
    pub fn cpu_time_ms(&self) -> u64 {
        self.cpu_ticks * 1000 / CLOCK_TICKS_PER_SECOND
    }

    /// Priority clamped into TR-181's 0..=99.
    pub fn priority_0_99(&self) -> u32 {
        self.priority.clamp(0, 99) as u32
    }

    /// The TR-181 `State` for the kernel's letter.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            'R' => "Running",
            'S' => "Sleeping",
            'T' | 't' => "Stopped",
            'I' => "Idle",
            'D' => "Uninterruptible",
            _ => "Zombie",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_reads_total_and_free() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1234567 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(
            MemInfo::parse(text),
            Some(MemInfo {
                total_kib: 24_576_000,
                free_kib: 1_234_567
            })
        );
        assert_eq!(MemInfo::parse("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn cpu_usage_is_the_busy_share_between_samples() {
        let first = CpuTimes::parse("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            first,
            CpuTimes {
                total: 1000,
                idle: 800
            }
        );
        assert_eq!(first.usage_since(None), 20);
        let second = CpuTimes {
            total: 1100,
            idle: 850,
        };
        assert_eq!(second.usage_since(Some(&first)), 50);
        assert_eq!(first.usage_since(Some(&first)), 0);
    }

    #[test]
    fn proc_stat_handles_parentheses_in_the_command() {
        let text = "42 (tmux: (server)) S 1 42 42 0 -1 4194560 1 0 0 0 150 50 0 0 20 0 1 0 100 1000000 300 18446744073709551615";
        let stat = ProcStat::parse(text).unwrap();
        assert_eq!(stat.command, "tmux: (server)");
        assert_eq!(stat.state_name(), "Sleeping");
        assert_eq!(stat.cpu_time_ms(), 2000);
        assert_eq!(stat.priority_0_99(), 20);
        assert_eq!(stat.size_kib(), 1200);
    }
}
