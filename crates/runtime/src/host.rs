//! Host — facts about the machine a real process runs on (name, processor, memory, kernel), for
//! reports that must say where their figures were measured. Read from Linux's `/proc`; a fact
//! the machine does not expose is `None`, never an error.

use std::path::Path;

/// What a report says about the machine that measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// The host name (`/proc/sys/kernel/hostname`).
    pub hostname: Option<String>,
    /// The processor's model name (`/proc/cpuinfo`).
    pub cpu_model: Option<String>,
    /// Cores this process may run on.
    pub cores: Option<usize>,
    /// Installed memory in bytes (`/proc/meminfo` MemTotal).
    pub memory_bytes: Option<u64>,
    /// The kernel's release (`/proc/sys/kernel/osrelease`).
    pub kernel: Option<String>,
    /// The operating system's name (`/etc/os-release` PRETTY_NAME).
    pub os: Option<String>,
}

impl Host {
    /// The facts of this machine.
    pub fn current() -> Self {
        let read = |path: &str| std::fs::read_to_string(Path::new(path)).ok();
        let trimmed =
            |path: &str| read(path).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Self {
            hostname: trimmed("/proc/sys/kernel/hostname"),
            cpu_model: read("/proc/cpuinfo").and_then(|text| cpu_model(&text)),
            cores: std::thread::available_parallelism().ok().map(usize::from),
            memory_bytes: read("/proc/meminfo").and_then(|text| memory_bytes(&text)),
            kernel: trimmed("/proc/sys/kernel/osrelease"),
            os: read("/etc/os-release").and_then(|text| os_name(&text)),
        }
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned())
}

fn memory_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn os_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|line| line.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_files_it_reads() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n").as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(memory_bytes("MemTotal:       24576 kB\nMemFree: 1 kB\n"), Some(24576 * 1024));
        assert_eq!(os_name("NAME=x\nPRETTY_NAME=\"Debian 12\"\n").as_deref(), Some("Debian 12"));
        assert_eq!(memory_bytes("nothing"), None);
    }

    #[test]
    fn this_machine_has_at_least_one_core() {
        assert!(Host::current().cores.is_some_and(|cores| cores >= 1));
    }
}
