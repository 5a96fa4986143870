//! This run's QEMU processes: pidfiles under the data directory,
//! liveness by pid and command line, every process seen, and signals.

use super::*;

/// `(uuid, pid)` of every `<data>/qemu/<host>/<uuid>/qemu.pid`.
pub(super) fn pidfiles(data_dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(hosts) = std::fs::read_dir(data_dir.join("qemu")) else {
        return out;
    };
    for h in hosts.flatten() {
        if h.file_name() == "instances" {
            continue;
        }
        let Ok(guests) = std::fs::read_dir(h.path()) else {
            continue;
        };
        for g in guests.flatten() {
            let pid = std::fs::read_to_string(g.path().join("qemu.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if let Some(pid) = pid {
                out.push((g.file_name().to_string_lossy().into_owned(), pid));
            }
        }
    }
    out
}

/// Whether `pid` is alive and is the QEMU of guest `uuid` (a recycled pid
/// or a zombie has another or an empty command line).
pub(super) fn alive(pid: u32, uuid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(uuid))
}

/// The live QEMU process of guest `uuid`, from its pidfile.
pub(super) fn qemu_pid(data_dir: &Path, uuid: &str) -> Option<u32> {
    pidfiles(data_dir)
        .into_iter()
        .find(|(u, pid)| u == uuid && alive(*pid, uuid))
        .map(|(_, pid)| pid)
}

/// Every QEMU process this run has seen: pid → guest uuid.
#[derive(Default)]
pub(super) struct Seen(pub(super) BTreeMap<u32, String>);

impl Seen {
    /// Adds the live processes named by the pidfiles now.
    pub(super) fn scan(&mut self, data_dir: &Path) {
        for (uuid, pid) in pidfiles(data_dir) {
            if alive(pid, &uuid) {
                self.0.insert(pid, uuid);
            }
        }
    }

    pub(super) fn alive(&self) -> Vec<u32> {
        self.0
            .iter()
            .filter(|(pid, uuid)| alive(**pid, uuid))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// CPU time used so far by the live ones.
    pub(super) fn cpu(&self) -> Duration {
        self.alive()
            .iter()
            .filter_map(|pid| server::cpu_time_of(&format!("/proc/{pid}/stat")))
            .sum()
    }
}

pub(super) fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(p) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory preconditions; the caller checked
        // just before that `pid` is one of this run's QEMU processes.
        unsafe {
            libc::kill(p, sig);
        }
    }
}
