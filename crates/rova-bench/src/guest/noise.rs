//! Noise: CPU used during the run by other processes on the machine
//! (by command name, orphans included) and the hypervisor's steal time.

use super::*;

/// CPU used during the run by processes that are not this run's (not the
/// bench, not rova, not its QEMU or helpers), by command name, and the
/// time the hypervisor took from this VM (steal).
#[derive(Default)]
pub(super) struct Noise {
    /// All of it (the buckets below can be off where a process's time
    /// was charged to another name; the sum is not).
    pub(super) total: Duration,
    by_comm: BTreeMap<String, Duration>,
    pub(super) steal: Option<Duration>,
    pub(super) wall: Duration,
}

impl Noise {
    /// `rustc 41.2 s, cc1 3.0 s` (largest first, at most `k`).
    pub(super) fn top(&self, k: usize) -> String {
        let mut v: Vec<(&String, &Duration)> = self
            .by_comm
            .iter()
            .filter(|(_, d)| d.as_secs_f64() >= 0.05)
            .collect();
        v.sort_by_key(|(_, d)| std::cmp::Reverse(**d));
        let parts: Vec<String> = v
            .iter()
            .take(k)
            .map(|(n, d)| format!("{n} {:.1} s", d.as_secs_f64()))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One process in a sample.
struct Proc {
    comm: String,
    ppid: u32,
    /// utime + stime, in clock ticks.
    pub(super) own: u64,
    /// cutime + cstime: its reaped children's.
    children: u64,
}

/// The bucket for time that pid 1 collected from orphans it reaped.
const ORPHANS: &str = "(exited orphans, reaped by pid 1)";

/// Every process now.
fn all_processes() -> HashMap<u32, Proc> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((head, after)) = text.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("?", |(_, c)| c).to_string();
        let f: Vec<&str> = after.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        // Fields after the command name: state ppid ... utime(11)
        // stime(12) cutime(13) cstime(14).
        let (Some(ppid), Some(ut), Some(st), Some(cut), Some(cst)) =
            (num(1), num(11), num(12), num(13), num(14))
        else {
            continue;
        };
        let ppid = u32::try_from(ppid).unwrap_or(0);
        out.insert(
            pid,
            Proc {
                comm,
                ppid,
                own: ut + st,
                children: cut + cst,
            },
        );
    }
    out
}

/// The machine's steal time so far (`/proc/stat`), in ticks.
fn steal_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// Charges the CPU used between two samples to `ticks` by name, leaving
/// out processes for which `mine(pid, ppid)` holds.
fn charge(
    prev: &HashMap<u32, Proc>,
    now: &HashMap<u32, Proc>,
    mine: &mut dyn FnMut(u32, u32) -> bool,
    ticks: &mut BTreeMap<String, i64>,
) {
    // Pid 1's reaped children are orphans, not its own work.
    let bucket = |pid: u32, p: &Proc, children: bool| {
        if pid == 1 && children {
            ORPHANS.to_string()
        } else {
            p.comm.clone()
        }
    };
    for (pid, p) in now {
        if mine(*pid, p.ppid) {
            continue;
        }
        // A process started since the last sample: all its CPU is new.
        let (own0, children0) = prev.get(pid).map_or((0, 0), |b| (b.own, b.children));
        for (t, t0, children) in [(p.own, own0, false), (p.children, children0, true)] {
            let d = t.saturating_sub(t0);
            if d > 0 {
                *ticks.entry(bucket(*pid, p, children)).or_default() += d as i64;
            }
        }
    }
    // A process gone since the last sample: its reaper's `cutime` now
    // holds all of its time, of which the part up to the last sample
    // was counted (or, for ours, left out) already.
    for gone in prev
        .iter()
        .filter(|(pid, _)| !now.contains_key(pid))
        .map(|(_, g)| g)
    {
        // Its reaper: the nearest ancestor still alive (when a parent
        // went too, the parent's reaper got both), else pid 1.
        let mut reaper = gone.ppid;
        for _ in 0..64 {
            if reaper <= 1 || now.contains_key(&reaper) {
                break;
            }
            reaper = prev.get(&reaper).map_or(1, |p| p.ppid);
        }
        if !now.contains_key(&reaper) {
            reaper = 1;
        }
        if let Some(r) = now.get(&reaper) {
            if !mine(reaper, r.ppid) {
                *ticks.entry(bucket(reaper, r, true)).or_default() -=
                    (gone.own + gone.children) as i64;
            }
        }
    }
}

/// Samples every process's CPU time until told to stop, adding up that of
/// processes that are not ours by name. A process that ends between two
/// samples is still counted once its parent reaps it (its time moves into
/// the parent's `cutime`, so it is charged to the parent's name).
pub(super) async fn watch_noise(
    rova_pid: u32,
    marker: String,
    mut stop: oneshot::Receiver<()>,
) -> Noise {
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|h| *h > 0)
        .unwrap_or(100);
    let me = std::process::id();
    let started = Instant::now();
    let steal0 = steal_ticks();
    let mut prev = all_processes();
    let mut ours: HashMap<u32, bool> = HashMap::new();
    // This run's own: the bench, rova, and anything whose command line
    // names the run's work directory (its QEMU processes) ...
    let mut direct = |pid: u32| {
        *ours.entry(pid).or_insert_with(|| {
            pid == me
                || pid == rova_pid
                || std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
    };
    // ... and their children (qemu-img, genisoimage, socat).
    let mut mine = |pid: u32, ppid: u32| direct(pid) || (ppid > 1 && direct(ppid));
    let mut ticks: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(NOISE_POLL) => {}
            _ = &mut stop => break,
        }
        let now = all_processes();
        charge(&prev, &now, &mut mine, &mut ticks);
        prev = now;
    }
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / hz as f64);
    Noise {
        total: secs(u64::try_from(ticks.values().sum::<i64>()).unwrap_or(0)),
        by_comm: ticks
            .into_iter()
            .map(|(k, t)| (k, secs(u64::try_from(t).unwrap_or(0))))
            .collect(),
        steal: steal0
            .zip(steal_ticks())
            .map(|(a, b)| secs(b.saturating_sub(a))),
        wall: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procs(list: &[(u32, &str, u32, u64, u64)]) -> HashMap<u32, Proc> {
        list.iter()
            .map(|&(pid, comm, ppid, own, children)| {
                let comm = comm.to_string();
                (
                    pid,
                    Proc {
                        comm,
                        ppid,
                        own,
                        children,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn noise_charges_exited_processes_once() {
        let mut mine = |pid: u32, _ppid: u32| pid == 50;
        let mut t = BTreeMap::new();
        // bash 10 runs cargo 11, which runs rustc 12 (which used 300
        // ticks before the run started); rova 50 is ours.
        let a = procs(&[
            (1, "init", 0, 5, 0),
            (10, "bash", 1, 1, 0),
            (11, "cargo", 10, 2, 0),
            (12, "rustc", 11, 300, 0),
            (50, "rova", 1, 7, 0),
        ]);
        // rustc used 40 more and was reaped by cargo.
        let b = procs(&[
            (1, "init", 0, 5, 0),
            (10, "bash", 1, 1, 0),
            (11, "cargo", 10, 3, 340),
            (50, "rova", 1, 99, 0),
        ]);
        charge(&a, &b, &mut mine, &mut t);
        assert_eq!(t.values().sum::<i64>(), 41, "{t:?}");
        // cargo used 1 more, then cargo and bash both went; init reaped
        // bash, which had reaped cargo.
        let c = procs(&[(1, "init", 0, 5, 1 + 4 + 340), (50, "rova", 1, 120, 0)]);
        charge(&b, &c, &mut mine, &mut t);
        assert_eq!(t.values().sum::<i64>(), 42, "{t:?}");
        // A process born and gone between samples, reaped by init.
        let d = procs(&[(1, "init", 0, 5, 345 + 9), (50, "rova", 1, 130, 0)]);
        charge(&c, &d, &mut mine, &mut t);
        assert_eq!(t.values().sum::<i64>(), 51, "{t:?}");
        assert_eq!(t.get(ORPHANS), Some(&(1 + 9)), "{t:?}");
    }
}
