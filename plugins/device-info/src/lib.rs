//! `Device.DeviceInfo.MemoryStatus.` and `Device.DeviceInfo.ProcessStatus.` (with
//! `Process.{i}.`), read from a read-only preopen of the host's `/proc`.
//!
//! Layout:
//! - [`proc`]: parsers for `/proc/meminfo`, `/proc/stat` and `/proc/<pid>/stat`.
//! - this file: the schema and the [`Plugin`] implementation.
//!
//! `Process.{i}` instance numbers are the PIDs: stable for the life of a process and never
//! shared by two live processes. `TotalPersistent`/`FreePersistent` and the `CPU.{i}` table are
//! not served: WASI 0.2 has no `statvfs`, and per-CPU usage needs two samples over time.

pub mod proc;

use std::cell::Cell;

use usp_sdk::{Fault, Object, ObjectPath, Param, Plugin, Schema, Type, Values};

/// Where the host's `/proc` is preopened.
const PROC: &str = "/proc";

/// The plugin: remembers the last `/proc/stat` sample so `CPUUsage` covers the time since the
/// previous read.
#[derive(Default)]
pub struct DeviceInfo {
    last_cpu: Cell<Option<proc::CpuTimes>>,
}

fn read(path: &str) -> Result<String, Fault> {
    std::fs::read_to_string(path).map_err(|err| Fault::internal(path, err))
}

impl DeviceInfo {
    fn memory_status(&self) -> Result<Values, Fault> {
        let meminfo = proc::MemInfo::parse(&read(&format!("{PROC}/meminfo"))?)
            .ok_or_else(|| Fault::internal("/proc/meminfo", "MemTotal or MemFree missing"))?;
        Ok(Values::new()
            .with("Total", clamp_u32(meminfo.total_kib))
            .with("Free", clamp_u32(meminfo.free_kib)))
    }

    fn process_status(&self) -> Result<Values, Fault> {
        let now = proc::CpuTimes::parse(&read(&format!("{PROC}/stat"))?)
            .ok_or_else(|| Fault::internal("/proc/stat", "no cpu line"))?;
        let usage = now.usage_since(self.last_cpu.get().as_ref());
        self.last_cpu.set(Some(now));
        Ok(Values::new()
            .with("CPUUsage", usage)
            .with("ProcessNumberOfEntries", self.pids()?.len() as u32))
    }

    fn pids(&self) -> Result<Vec<u32>, Fault> {
        let entries = std::fs::read_dir(PROC).map_err(|err| Fault::internal(PROC, err))?;
        let mut pids: Vec<u32> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|pid| *pid > 0)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    fn process(&self, object: &ObjectPath, pid: u32) -> Result<Values, Fault> {
        let text = std::fs::read_to_string(format!("{PROC}/{pid}/stat"))
            .map_err(|_| Fault::no_such_object(object))?;
        let stat = proc::ProcStat::parse(&text)
            .ok_or_else(|| Fault::internal(object, "unreadable /proc/<pid>/stat"))?;
        Ok(Values::new()
            .with("PID", pid)
            .with(
                "Command",
                stat.command.chars().take(256).collect::<String>(),
            )
            .with("Size", clamp_u32(stat.size_kib()))
            .with("Priority", stat.priority_0_99())
            .with("CPUTime", clamp_u32(stat.cpu_time_ms()))
            .with("State", stat.state_name().to_string()))
    }
}

fn clamp_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Plugin for DeviceInfo {
    fn schema(&self) -> Schema {
        Schema::new()
            .object(
                Object::new("Device.DeviceInfo.MemoryStatus.")
                    .param(Param::new("Total", Type::UnsignedInt))
                    .param(Param::new("Free", Type::UnsignedInt).volatile()),
            )
            .object(
                Object::new("Device.DeviceInfo.ProcessStatus.")
                    .param(
                        Param::new("CPUUsage", Type::UnsignedInt)
                            .range(None, Some(100))
                            .volatile(),
                    )
                    .param(Param::new("ProcessNumberOfEntries", Type::UnsignedInt).volatile()),
            )
            .object(
                Object::new("Device.DeviceInfo.ProcessStatus.Process.{i}.")
                    .unique_key(&["PID"])
                    .param(Param::new("PID", Type::UnsignedInt))
                    .param(Param::new("Command", Type::String).max_length(256))
                    .param(Param::new("Size", Type::UnsignedInt).volatile())
                    .param(
                        Param::new("Priority", Type::UnsignedInt)
                            .range(None, Some(99))
                            .volatile(),
                    )
                    .param(Param::new("CPUTime", Type::UnsignedInt).volatile())
                    .param(
                        Param::new("State", Type::String)
                            .enumeration(&proc::STATES)
                            .volatile(),
                    ),
            )
    }

    fn instances(&self, table: &ObjectPath) -> Result<Vec<u32>, Fault> {
        match table.matches::<0>("Device.DeviceInfo.ProcessStatus.Process.") {
            Some(_) => self.pids(),
            None => Err(Fault::invalid_path(table)),
        }
    }

    fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
        if object
            .matches::<0>("Device.DeviceInfo.MemoryStatus.")
            .is_some()
        {
            self.memory_status()
        } else if object
            .matches::<0>("Device.DeviceInfo.ProcessStatus.")
            .is_some()
        {
            self.process_status()
        } else if let Some([pid]) = object.matches("Device.DeviceInfo.ProcessStatus.Process.{i}.") {
            self.process(object, pid)
        } else {
            Err(Fault::invalid_path(object))
        }
    }
}

usp_sdk::export_plugin!(DeviceInfo::default());
