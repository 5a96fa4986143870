//! The real-guest benchmark (`rova-bench --guests N`): one fresh
//! `rova serve --driver qemu --qemu-hosts 2`; N test guests booted one after
//! another (POST → task `spawning` → ACTIVE → `ready` on the serial
//! console), then two at once; the QEMU processes' RSS; one guest
//! live-migrated back and forth with its heartbeat checked; then everything
//! deleted and no QEMU process left behind. Also watches the rest of the
//! machine for noise. Prints tables and can write a markdown section.

use crate::client::{self, Api, MICROVERSION};
use crate::report::{self, CpuSnap, CpuUse, Machine};
use crate::server::{self, Server};
use crate::stats::summarize;
use crate::Args;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Compute hosts (QEMU agents) of the server under test.
const HOSTS: &str = "2";
/// Guests booted at once after the sequential ones.
const CONCURRENT: usize = 2;
/// Live migrations of one guest, alternating between the two hosts.
const MIGRATIONS: usize = 3;
const IMAGE: &str = "rova-guest";
const FLAVOR: &str = "cirros256";
/// Server state polls (task state, host) while building or migrating.
const STATE_POLL: Duration = Duration::from_millis(20);
/// Console polls while waiting for a guest line.
const CONSOLE_POLL: Duration = Duration::from_millis(200);
/// Noise sampling period (other processes' CPU).
const NOISE_POLL: Duration = Duration::from_millis(500);
/// The microversion of the live-migration call (`block_migration: auto`).
const MIGRATE_VERSION: &str = "2.30";

// ----- the guest's console -------------------------------------------------

/// What the guest said on its serial console. The API drops the final
/// newline, so the last line counts too, though it may be cut short if the
/// guest was still writing it: a `ready` line counts only with a
/// well-formed `uptime=` (two decimals, as the guest prints it), and a cut
/// heartbeat number is a prefix of the real one, so smaller; hence
/// `max_heartbeat`, and `first_heartbeat` is reliable once another line
/// follows it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Console {
    /// `ROVA-GUEST: ready ...` seen.
    ready: bool,
    /// Its `uptime=` value (seconds since the guest kernel started).
    ready_uptime: Option<f64>,
    /// `boot` lines, and their `boot_id`s.
    boots: usize,
    boot_ids: Vec<String>,
    first_heartbeat: Option<u64>,
    max_heartbeat: Option<u64>,
    /// Every heartbeat number, in log order (the console keeps the lines
    /// a guest printed on the hosts it left, so a migrated guest's log
    /// runs on from its first boot).
    heartbeats: Vec<u64>,
    /// The last few protocol lines, for error messages.
    tail: Vec<String>,
}

impl Console {
    /// The first heartbeat after `n`.
    fn first_heartbeat_after(&self, n: u64) -> Option<u64> {
        self.heartbeats.iter().copied().find(|&h| h > n)
    }

    fn parse(text: &str) -> Console {
        let mut c = Console::default();
        for raw in text.lines() {
            let Some((_, rest)) = raw.split_once("ROVA-GUEST: ") else {
                continue;
            };
            let line = rest.trim();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("ready") => {
                    if let Some(up) = field(line, "uptime").filter(|v| well_formed_uptime(v)) {
                        c.ready = true;
                        c.ready_uptime = up.parse().ok();
                    }
                }
                Some("heartbeat") => {
                    if let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) {
                        c.first_heartbeat.get_or_insert(n);
                        c.heartbeats.push(n);
                        c.max_heartbeat = c.max_heartbeat.max(Some(n));
                    }
                }
                Some("boot") => {
                    c.boots += 1;
                    if let Some(id) = field(line, "boot_id") {
                        c.boot_ids.push(id.to_string());
                    }
                }
                _ => {}
            }
            if c.tail.len() == 5 {
                c.tail.remove(0);
            }
            c.tail.push(line.to_string());
        }
        c
    }
}

/// `12.34`: digits, a dot, exactly two digits.
fn well_formed_uptime(v: &str) -> bool {
    v.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.len() == 2
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// `key=value` among whitespace-separated words.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

// ----- rova's stderr -------------------------------------------------------

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `key=<digits>` in a log line (the value may be quoted).
fn num_field(line: &str, key: &str) -> Option<u64> {
    let v = field(line, key)?.trim_matches('"');
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// QEMU's `(total_ms, downtime_ms)` of every `live migration completed`
/// line about `uuid`, in order.
fn migration_stats(log: &str, uuid: &str) -> Vec<(Option<u64>, Option<u64>)> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("live migration completed") && l.contains(uuid))
        .map(|l| (num_field(l, "total_ms"), num_field(l, "downtime_ms")))
        .collect()
}

/// The driver's start-up report: `rova: qemu driver: accelerator tcg: ...`
/// (its first line).
fn accelerator_line(log: &str) -> Option<String> {
    strip_ansi(log)
        .lines()
        .find_map(|l| l.strip_prefix("rova: qemu driver: "))
        .map(|s| s.trim().to_string())
}

// ----- QEMU processes ------------------------------------------------------

/// `(uuid, pid)` of every `<data>/qemu/<host>/<uuid>/qemu.pid`.
fn pidfiles(data_dir: &Path) -> Vec<(String, u32)> {
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
fn alive(pid: u32, uuid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(uuid))
}

/// The live QEMU process of guest `uuid`, from its pidfile.
fn qemu_pid(data_dir: &Path, uuid: &str) -> Option<u32> {
    pidfiles(data_dir)
        .into_iter()
        .find(|(u, pid)| u == uuid && alive(*pid, uuid))
        .map(|(_, pid)| pid)
}

/// Every QEMU process this run has seen: pid → guest uuid.
#[derive(Default)]
struct Seen(BTreeMap<u32, String>);

impl Seen {
    /// Adds the live processes named by the pidfiles now.
    fn scan(&mut self, data_dir: &Path) {
        for (uuid, pid) in pidfiles(data_dir) {
            if alive(pid, &uuid) {
                self.0.insert(pid, uuid);
            }
        }
    }

    fn alive(&self) -> Vec<u32> {
        self.0
            .iter()
            .filter(|(pid, uuid)| alive(**pid, uuid))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// CPU time used so far by the live ones.
    fn cpu(&self) -> Duration {
        self.alive()
            .iter()
            .filter_map(|pid| server::cpu_time_of(&format!("/proc/{pid}/stat")))
            .sum()
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(p) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory preconditions; the caller checked
        // just before that `pid` is one of this run's QEMU processes.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

// ----- noise: other processes' CPU ----------------------------------------

/// CPU used during the run by processes that are not this run's (not the
/// bench, not rova, not its QEMU or helpers), by command name, and the
/// time the hypervisor took from this VM (steal).
#[derive(Default)]
struct Noise {
    /// All of it (the buckets below can be off where a process's time
    /// was charged to another name; the sum is not).
    total: Duration,
    by_comm: BTreeMap<String, Duration>,
    steal: Option<Duration>,
    wall: Duration,
}

impl Noise {
    /// `rustc 41.2 s, cc1 3.0 s` (largest first, at most `k`).
    fn top(&self, k: usize) -> String {
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
    own: u64,
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
async fn watch_noise(rova_pid: u32, marker: String, mut stop: oneshot::Receiver<()>) -> Noise {
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

// ----- API helpers ---------------------------------------------------------

/// The id of the ACTIVE image named `name` (compute image proxy, 2.1).
async fn image_id(api: &Api, name: &str) -> Result<String, String> {
    let a = api
        .call(reqwest::Method::GET, "/images/detail", None, None)
        .await?;
    let v: Value = serde_json::from_slice(&a.body).map_err(|e| format!("GET /images: {e}"))?;
    v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == name && i["status"] == "ACTIVE")
        .and_then(|i| i["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            format!("no ACTIVE image {name:?}: is the test guest built (`bash guest/build.sh`)?")
        })
}

async fn flavor_id(api: &Api, name: &str) -> Result<String, String> {
    let v = api.get_json("/flavors", Some(MICROVERSION)).await?;
    v["flavors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == name)
        .and_then(|f| f["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no flavor named {name:?}"))
}

async fn console(api: &Api, id: &str) -> Result<Console, String> {
    let a = api
        .call(
            reqwest::Method::POST,
            &format!("/servers/{id}/action"),
            Some(MICROVERSION),
            Some(json!({"os-getConsoleOutput": {}}).to_string()),
        )
        .await?;
    if a.status != 200 {
        return Err(format!(
            "console output of {id}: HTTP {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ));
    }
    let v: Value =
        serde_json::from_slice(&a.body).map_err(|e| format!("console output of {id}: {e}"))?;
    Ok(Console::parse(v["output"].as_str().unwrap_or_default()))
}

/// `(status, task_state, host)` as the admin sees them.
async fn state(api: &Api, id: &str) -> Result<(String, Option<String>, String, Value), String> {
    let v = api
        .get_json(&format!("/servers/{id}"), Some(MICROVERSION))
        .await?;
    let s = &v["server"];
    Ok((
        s["status"].as_str().unwrap_or("?").to_string(),
        s["OS-EXT-STS:task_state"].as_str().map(str::to_string),
        s["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or("").to_string(),
        s["fault"].clone(),
    ))
}

// ----- one boot ------------------------------------------------------------

/// One guest's boot, as the API client saw it.
struct Boot {
    name: String,
    id: String,
    host: String,
    /// POST sent → 202.
    post: Duration,
    /// 202 → task state `spawning` first seen (None: never seen).
    control: Option<Duration>,
    /// `spawning` seen → ACTIVE seen.
    qemu_start: Option<Duration>,
    /// POST sent → ACTIVE seen.
    to_active: Duration,
    /// ACTIVE seen → `ready` line seen on the console.
    guest: Duration,
    /// POST sent → `ready` seen.
    total: Duration,
    /// The guest's own uptime on its `ready` line.
    uptime: Option<f64>,
    boot_id: Option<String>,
    /// CPU time of the QEMU process when `ready` was seen.
    qemu_cpu: Option<Duration>,
}

/// What every boot needs.
struct Ctx<'a> {
    demo: &'a Api,
    admin: &'a Api,
    data_dir: &'a Path,
    image: &'a str,
    flavor: &'a str,
    /// Every server created, for the teardown.
    ids: &'a Mutex<Vec<String>>,
    timeout: Duration,
}

async fn boot_one(ctx: &Ctx<'_>, name: &str) -> Result<Boot, String> {
    let Ctx {
        demo,
        admin,
        data_dir,
        image,
        flavor,
        ids,
        timeout,
    } = *ctx;
    let body = json!({"server": {
        "name": name, "imageRef": image, "flavorRef": flavor, "networks": "auto"}});
    let t0 = Instant::now();
    let a = demo
        .call(
            reqwest::Method::POST,
            "/servers",
            Some(MICROVERSION),
            Some(body.to_string()),
        )
        .await?;
    let accepted = Instant::now();
    if a.status != 202 {
        return Err(format!(
            "POST /servers ({name}): HTTP {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ));
    }
    let v: Value = serde_json::from_slice(&a.body).map_err(|e| format!("POST /servers: {e}"))?;
    let id = v["server"]["id"]
        .as_str()
        .ok_or("POST /servers: no server id in the answer")?
        .to_string();
    ids.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(id.clone());
    let deadline = t0 + timeout;

    let mut spawning: Option<Instant> = None;
    let active = loop {
        let v = demo
            .get_json(&format!("/servers/{id}"), Some(MICROVERSION))
            .await?;
        let now = Instant::now();
        let s = &v["server"];
        let task = s["OS-EXT-STS:task_state"].as_str();
        if task == Some("spawning") && spawning.is_none() {
            spawning = Some(now);
        }
        match s["status"].as_str() {
            Some("ACTIVE") if task.is_none() => break now,
            Some("ERROR") => {
                return Err(format!(
                    "{name} ({id}) went to ERROR: {}",
                    s["fault"]["message"].as_str().unwrap_or("no fault message")
                ))
            }
            _ => {}
        }
        if now > deadline {
            return Err(format!(
                "{name} ({id}) not ACTIVE after {} s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(STATE_POLL).await;
    };

    let (ready, con) = loop {
        let c = console(demo, &id).await?;
        let now = Instant::now();
        if c.ready {
            break (now, c);
        }
        if now > deadline {
            return Err(format!(
                "{name} ({id}): no `ready` line on the console after {} s; last lines: {:?}",
                timeout.as_secs(),
                c.tail
            ));
        }
        tokio::time::sleep(CONSOLE_POLL).await;
    };
    let qemu_cpu =
        qemu_pid(data_dir, &id).and_then(|pid| server::cpu_time_of(&format!("/proc/{pid}/stat")));
    let host = state(admin, &id).await?.2;
    Ok(Boot {
        name: name.to_string(),
        id,
        host,
        post: accepted - t0,
        control: spawning.map(|s| s.saturating_duration_since(accepted)),
        qemu_start: spawning.map(|s| active - s),
        to_active: active - t0,
        guest: ready - active,
        total: ready - t0,
        uptime: con.ready_uptime,
        boot_id: con.boot_ids.first().cloned(),
        qemu_cpu,
    })
}

// ----- live migration ------------------------------------------------------

/// One live migration of the probe guest.
struct Migration {
    from: String,
    to: String,
    /// `os-migrateLive` sent → ACTIVE, no task, on the new host.
    wall: Duration,
    /// QEMU's own figures, from rova's log.
    total_ms: Option<u64>,
    downtime_ms: Option<u64>,
    /// Last heartbeat on the console just before the call.
    hb_before: u64,
    /// First and latest heartbeat on the destination's console (read
    /// again 1.5 s after the first newer one was seen).
    hb_first_after: Option<u64>,
    hb_after: u64,
    /// A `boot` line other than the original boot's appeared.
    rebooted: bool,
    /// ACTIVE on the new host → a heartbeat newer than `hb_before` seen
    /// (the guest prints one a second; console polled every 200 ms).
    to_heartbeat: Duration,
}

impl Migration {
    fn ok(&self) -> bool {
        !self.rebooted
            && self.hb_after > self.hb_before
            && self.hb_first_after.is_some_and(|f| f >= self.hb_before)
    }
}

async fn migrate_once(
    admin: &Api,
    demo: &Api,
    guest: &Boot,
    log_path: &Path,
    nth: usize,
    timeout: Duration,
) -> Result<Migration, String> {
    let id = &guest.id;
    let before = console(demo, id).await?;
    let hb_before = before
        .max_heartbeat
        .ok_or_else(|| format!("{id}: no heartbeat on the console before migrating"))?;
    let (_, _, from, _) = state(admin, id).await?;
    let t = Instant::now();
    let a = admin
        .call(
            reqwest::Method::POST,
            &format!("/servers/{id}/action"),
            Some(MIGRATE_VERSION),
            Some(json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}).to_string()),
        )
        .await?;
    if a.status != 202 {
        return Err(format!(
            "os-migrateLive {id}: HTTP {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ));
    }
    let mut saw_task = false;
    let (to, wall) = loop {
        let (status, task, host, fault) = state(admin, id).await?;
        saw_task |= task.is_some();
        if status == "ACTIVE" && task.is_none() {
            if host != from {
                break (host, t.elapsed());
            }
            if saw_task || t.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "live migration of {id} ended on the same host {from} (fault: {})",
                    fault["message"].as_str().unwrap_or("none")
                ));
            }
        }
        if status == "ERROR" {
            return Err(format!(
                "live migration of {id} put it in ERROR: {}",
                fault["message"].as_str().unwrap_or("no fault message")
            ));
        }
        if t.elapsed() > timeout {
            return Err(format!(
                "live migration of {id} not done after {} s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(STATE_POLL).await;
    };
    let active = Instant::now();

    let to_heartbeat = loop {
        let c = console(demo, id).await?;
        if c.max_heartbeat.is_some_and(|n| n > hb_before) {
            break active.elapsed();
        }
        if active.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "{id}: no heartbeat after {hb_before} within 30 s of the migration to {to}; last lines: {:?}",
                c.tail
            ));
        }
        tokio::time::sleep(CONSOLE_POLL).await;
    };
    // Another line or so, so that the first one is surely complete.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = console(demo, id).await?;

    // QEMU's figures are logged before the server turns ACTIVE; allow for
    // a slow file write all the same.
    let mut stats = (None, None);
    for _ in 0..50 {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if let Some(s) = migration_stats(&log, id).get(nth) {
            stats = *s;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rebooted = after.boots > after.boot_ids.len()
        || after
            .boot_ids
            .iter()
            .any(|b| Some(b.as_str()) != guest.boot_id.as_deref());
    Ok(Migration {
        from,
        to,
        wall,
        total_ms: stats.0,
        downtime_ms: stats.1,
        hb_before,
        hb_first_after: after.first_heartbeat_after(hb_before),
        hb_after: after.max_heartbeat.unwrap_or(0),
        rebooted,
        to_heartbeat,
    })
}

// ----- the run -------------------------------------------------------------

/// CPU over one phase: rova, this run's QEMU processes, everyone else.
struct Phase {
    name: &'static str,
    cpu: CpuUse,
    qemu: Duration,
}

impl Phase {
    fn foreign(&self) -> Option<Duration> {
        self.cpu.other.map(|o| o.saturating_sub(self.qemu))
    }
}

/// Everything measured.
struct GuestRun {
    n: usize,
    startup: server::Startup,
    accel: String,
    sequential: Vec<Boot>,
    concurrent: Vec<Boot>,
    /// First POST → both `ready`.
    concurrent_wall: Duration,
    qemu_rss_kib: Vec<u64>,
    rova_rss_kib: Option<u64>,
    migrations: Vec<Migration>,
    phases: Vec<Phase>,
}

/// How the teardown went.
#[derive(Default)]
struct Cleanup {
    /// DELETEs sent → every server gone (404).
    delete_wall: Option<Duration>,
    delete_error: Option<String>,
    qemu_seen: usize,
    /// Still alive 15 s after the servers were gone.
    left_after_delete: Vec<u32>,
    /// Still alive after rova stopped; killed by the bench.
    killed: Vec<u32>,
}

/// Runs the whole guest benchmark; `args.guests` > 0.
pub async fn run(args: &Args, rova: &Path) -> Result<(), String> {
    let machine = Machine::probe(rova);
    println!("{}", machine.describe());
    let qemu_version = qemu_version();
    println!("rova-bench: {qemu_version}");
    let load_before = report::loadavg();
    let http = client::http_client(8)?;
    let launch = server::Launch {
        rova,
        sim_latency_ms: None,
        run_tag: "guests",
        capacity: args.guests + CONCURRENT,
        reuse: None,
        extra_args: &["--driver", "qemu", "--qemu-hosts", HOSTS],
        extra_env: &[("ROVA_LOG", "info"), ("NO_COLOR", "1")],
    };
    println!(
        "\n== {} guests one by one, then {CONCURRENT} at once, then {MIGRATIONS} live migrations; starting {} serve --driver qemu --qemu-hosts {HOSTS}",
        args.guests,
        rova.display()
    );
    let (srv, startup) = server::start(&launch, &http).await?;
    let log = std::fs::read_to_string(srv.log_path()).unwrap_or_default();
    let accel = accelerator_line(&log).unwrap_or_else(|| "? (no `qemu driver:` line)".into());
    println!(
        "  serving after {:.0} ms; qemu driver: {accel}",
        startup.to_serving.as_secs_f64() * 1000.0
    );

    let (stop_tx, stop_rx) = oneshot::channel();
    let noise = tokio::spawn(watch_noise(
        srv.pid,
        srv.work.to_string_lossy().into_owned(),
        stop_rx,
    ));
    let ids = Mutex::new(Vec::new());
    let mut seen = Seen::default();
    let measured = measure(args, &srv, &http, &ids, &mut seen, startup, accel).await;
    if let Err(e) = &measured {
        eprintln!("rova-bench: {e}\n  cleaning up");
    }
    let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
    let (cleanup, srv_log) = cleanup(args, srv, &http, &ids, &mut seen, measured.is_err()).await;
    let _ = stop_tx.send(());
    let noise = noise.await.unwrap_or_default();
    let load_after = report::loadavg();
    let r = match measured {
        Ok(r) => r,
        Err(e) => {
            if let Some(log) = srv_log {
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("  rova stderr, last lines:");
                for l in lines.iter().rev().take(15).rev() {
                    eprintln!("    {l}");
                }
            }
            return Err(e);
        }
    };

    let tables = tables(&r, &cleanup, &noise, &load_before, &load_after);
    println!();
    for (title, t) in &tables {
        println!("{title}\n{}", t.text());
    }
    let failures = failures(&r, &cleanup);
    for f in &failures {
        println!("CHECK FAILED: {f}");
    }
    if let Some(path) = &args.markdown {
        let section = markdown(
            &r,
            &tables,
            &failures,
            args,
            &machine,
            &qemu_version,
            &noise,
        );
        report::write_markdown(path, &args.label, &section)?;
        println!("wrote section '{}' to {}", args.label, path.display());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", failures.len()))
    }
}

fn qemu_version() -> String {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "qemu-system-x86_64: version unknown".into())
}

async fn measure(
    args: &Args,
    srv: &Server,
    http: &reqwest::Client,
    ids: &Mutex<Vec<String>>,
    seen: &mut Seen,
    startup: server::Startup,
    accel: String,
) -> Result<GuestRun, String> {
    let login = |user: &'static str, project: &'static str| async move {
        let password = client::password_of(&srv.data_dir, user)?;
        let token = client::login(http, &srv.base, user, &password, project).await?;
        Ok::<Api, String>(Api {
            http: http.clone(),
            base: srv.base.clone(),
            token,
        })
    };
    let demo = login("demo", "demo").await?;
    let admin = login("admin", "admin").await?;
    let image = image_id(&demo, IMAGE).await?;
    let flavor = flavor_id(&demo, FLAVOR).await?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let data = &srv.data_dir;
    let ctx = Ctx {
        demo: &demo,
        admin: &admin,
        data_dir: data,
        image: &image,
        flavor: &flavor,
        ids,
        timeout,
    };

    println!("  sequential boots (image {IMAGE}, flavor {FLAVOR} = {flavor}):");
    let snap = CpuSnap::take(srv.pid);
    let q0 = seen.cpu();
    let mut sequential = Vec::new();
    for i in 0..args.guests {
        let name = format!("guest-{i}");
        let b = boot_one(&ctx, &name).await?;
        seen.scan(data);
        print_boot(&b);
        sequential.push(b);
    }
    let mut phases = vec![Phase {
        name: "sequential boots",
        cpu: CpuUse::between(&snap, &CpuSnap::take(srv.pid)),
        qemu: seen.cpu().saturating_sub(q0),
    }];

    println!("  {CONCURRENT} boots at once:");
    let snap = CpuSnap::take(srv.pid);
    let q0 = seen.cpu();
    let t = Instant::now();
    let names: Vec<String> = (0..CONCURRENT).map(|i| format!("together-{i}")).collect();
    let boots = join_all(names.iter().map(|n| boot_one(&ctx, n))).await;
    let concurrent_wall = t.elapsed();
    let mut concurrent = Vec::new();
    for b in boots {
        let b = b?;
        print_boot(&b);
        concurrent.push(b);
    }
    seen.scan(data);
    phases.push(Phase {
        name: "concurrent boots",
        cpu: CpuUse::between(&snap, &CpuSnap::take(srv.pid)),
        qemu: seen.cpu().saturating_sub(q0),
    });

    // Everyone is ready now.
    let qemu_rss_kib: Vec<u64> = seen
        .alive()
        .iter()
        .filter_map(|pid| server::status_field(*pid, "VmRSS:"))
        .collect();
    let rova_rss_kib = srv.rss_kib();
    println!(
        "  RSS: {} QEMU processes, mean {} MiB, max {} MiB; rova {} MiB",
        qemu_rss_kib.len(),
        mean_mib(&qemu_rss_kib),
        max_mib(&qemu_rss_kib),
        mib(rova_rss_kib)
    );
    if qemu_rss_kib.len() != args.guests + CONCURRENT {
        return Err(format!(
            "expected {} QEMU processes, found {} from the pidfiles",
            args.guests + CONCURRENT,
            qemu_rss_kib.len()
        ));
    }

    let probe = sequential.first().ok_or("no guest to migrate")?;
    println!("  live migrations of {} ({}):", probe.name, probe.id);
    let mut migrations = Vec::new();
    for nth in 0..MIGRATIONS {
        let m = migrate_once(&admin, &demo, probe, srv.log_path(), nth, timeout).await?;
        seen.scan(data);
        println!(
            "    {} → {}: {:.0} ms wall, QEMU total {} ms, downtime {} ms; heartbeat {} before, {}..{} on the destination{}",
            m.from,
            m.to,
            m.wall.as_secs_f64() * 1000.0,
            opt(m.total_ms),
            opt(m.downtime_ms),
            m.hb_before,
            opt(m.hb_first_after),
            m.hb_after,
            if m.rebooted { " — REBOOTED" } else { "" }
        );
        migrations.push(m);
    }
    Ok(GuestRun {
        n: args.guests,
        startup,
        accel,
        sequential,
        concurrent,
        concurrent_wall,
        qemu_rss_kib,
        rova_rss_kib,
        migrations,
        phases,
    })
}

/// Awaits all futures concurrently (on this one thread), in order.
async fn join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Deletes every server this run created, stops rova, and makes sure no
/// QEMU process of the run is left (killing any by pid). Returns rova's
/// log text.
async fn cleanup(
    args: &Args,
    srv: Server,
    http: &reqwest::Client,
    ids: &[String],
    seen: &mut Seen,
    failed: bool,
) -> (Cleanup, Option<String>) {
    let mut c = Cleanup::default();
    seen.scan(&srv.data_dir);
    match delete_all(&srv, http, ids).await {
        Ok(d) => c.delete_wall = Some(d),
        Err(e) => {
            eprintln!("rova-bench: deleting the guests: {e}");
            c.delete_error = Some(e);
        }
    }
    seen.scan(&srv.data_dir);
    c.qemu_seen = seen.0.len();
    let until = Instant::now() + Duration::from_secs(15);
    while !seen.alive().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.left_after_delete = seen.alive();
    let work = srv.work.clone();
    let log = srv.stop(true).await;
    let left = seen.alive();
    if !left.is_empty() {
        for &pid in &left {
            if let Some(uuid) = seen.0.get(&pid).filter(|u| alive(pid, u)) {
                eprintln!("rova-bench: QEMU {pid} ({uuid}) outlived rova; SIGTERM");
                signal(pid, libc::SIGTERM);
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        for &pid in &left {
            if let Some(uuid) = seen.0.get(&pid).filter(|u| alive(pid, u)) {
                eprintln!("rova-bench: QEMU {pid} ({uuid}) still there; SIGKILL");
                signal(pid, libc::SIGKILL);
            }
        }
        c.killed = left;
    }
    println!(
        "  teardown: {} servers deleted in {}; {} QEMU processes seen, {} alive 15 s after the deletes, {} killed by the bench after rova stopped",
        ids.len(),
        c.delete_wall
            .map_or("? (failed)".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        c.qemu_seen,
        c.left_after_delete.len(),
        c.killed.len()
    );
    if args.keep || failed {
        println!("  kept {} (data, rova's log)", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    (c, log)
}

/// DELETEs each server as admin, then waits until every one is gone.
async fn delete_all(
    srv: &Server,
    http: &reqwest::Client,
    ids: &[String],
) -> Result<Duration, String> {
    let password = client::password_of(&srv.data_dir, "admin")?;
    let token = client::login(http, &srv.base, "admin", &password, "admin").await?;
    let admin = Api {
        http: http.clone(),
        base: srv.base.clone(),
        token,
    };
    let t = Instant::now();
    for id in ids {
        let a = admin
            .call(
                reqwest::Method::DELETE,
                &format!("/servers/{id}"),
                Some(MICROVERSION),
                None,
            )
            .await?;
        if a.status != 204 && a.status != 404 {
            return Err(format!(
                "DELETE {id}: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
        }
    }
    for id in ids {
        loop {
            let a = admin
                .call(
                    reqwest::Method::GET,
                    &format!("/servers/{id}"),
                    Some(MICROVERSION),
                    None,
                )
                .await?;
            if a.status == 404 {
                break;
            }
            if t.elapsed() > Duration::from_secs(120) {
                return Err(format!("{id} still there 120 s after DELETE"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(t.elapsed())
}

// ----- output --------------------------------------------------------------

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

fn mean_mib(kib: &[u64]) -> String {
    if kib.is_empty() {
        return "?".into();
    }
    format!(
        "{:.0}",
        kib.iter().sum::<u64>() as f64 / kib.len() as f64 / 1024.0
    )
}

fn max_mib(kib: &[u64]) -> String {
    mib(kib.iter().max().copied())
}

fn msec(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn sec(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn print_boot(b: &Boot) {
    println!(
        "    {} on {}: POST {} ms, → spawning {} ms, → ACTIVE {} ms (POST → ACTIVE {} ms), → ready {} s (total {} s; guest uptime {} s; QEMU CPU {} s)",
        b.name,
        b.host,
        msec(b.post),
        b.control.map_or("?".into(), msec),
        b.qemu_start.map_or("?".into(), msec),
        msec(b.to_active),
        sec(b.guest),
        sec(b.total),
        b.uptime.map_or("?".into(), |u| format!("{u:.2}")),
        b.qemu_cpu.map_or("?".into(), sec),
    );
}

/// A small table rendered as aligned text or markdown.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn text(&self) -> String {
        let all: Vec<&Vec<String>> = std::iter::once(&self.head).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.head.len())
            .map(|c| {
                all.iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, r) in all.iter().enumerate() {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    let s = r.get(c).map_or("", String::as_str);
                    format!("{s}{}", " ".repeat(w - s.chars().count()))
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
                out.push('\n');
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.head.join(" | "));
        // Numbers right, text left.
        for i in 0..self.head.len() {
            let numeric = self.rows.iter().all(|r| {
                r.get(i)
                    .and_then(|c| c.chars().next())
                    .is_none_or(|c| c.is_ascii_digit() || c == '?')
            });
            s.push_str(if numeric { "---:|" } else { "---|" });
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        s
    }
}

/// A duration formatter (`msec` or `sec`).
type Fmt = fn(Duration) -> String;

/// Per-guest boot rows plus p50 and max rows.
fn boot_table(boots: &[Boot]) -> Table {
    let mut t = Table::new(&[
        "guest",
        "host",
        "POST (ms)",
        "control plane: 202 → spawning (ms)",
        "QEMU start: spawning → ACTIVE (ms)",
        "POST → ACTIVE (ms)",
        "guest boot: ACTIVE → ready (s)",
        "POST → ready (s)",
        "guest uptime at ready (s)",
        "QEMU CPU at ready (s)",
    ]);
    for b in boots {
        t.row(vec![
            b.name.clone(),
            b.host.clone(),
            msec(b.post),
            b.control.map_or("? (not seen)".into(), msec),
            b.qemu_start.map_or("?".into(), msec),
            msec(b.to_active),
            sec(b.guest),
            sec(b.total),
            b.uptime.map_or("?".into(), |u| format!("{u:.2}")),
            b.qemu_cpu.map_or("?".into(), sec),
        ]);
    }
    let durs = |f: &dyn Fn(&Boot) -> Option<Duration>| -> Vec<Duration> {
        boots.iter().filter_map(f).collect()
    };
    let up: Vec<Duration> = boots
        .iter()
        .filter_map(|b| b.uptime.and_then(|u| Duration::try_from_secs_f64(u).ok()))
        .collect();
    let cols: [(Vec<Duration>, Fmt); 8] = [
        (durs(&|b| Some(b.post)), msec),
        (durs(&|b| b.control), msec),
        (durs(&|b| b.qemu_start), msec),
        (durs(&|b| Some(b.to_active)), msec),
        (durs(&|b| Some(b.guest)), sec),
        (durs(&|b| Some(b.total)), sec),
        (up, sec),
        (durs(&|b| b.qemu_cpu), sec),
    ];
    for (label, pick) in [("p50", 0), ("max", 1)] {
        let mut r = vec![label.to_string(), String::new()];
        for (v, f) in &cols {
            if v.is_empty() {
                r.push("?".into());
            } else {
                let s = summarize(v);
                r.push(f(if pick == 0 { s.p50 } else { s.max }));
            }
        }
        t.row(r);
    }
    t
}

fn tables(
    r: &GuestRun,
    c: &Cleanup,
    noise: &Noise,
    load_before: &str,
    load_after: &str,
) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    out.push((
        format!("{} guests booted one after another", r.n),
        boot_table(&r.sequential),
    ));
    out.push((
        format!(
            "{CONCURRENT} guests booted at once (POSTs sent together; first POST → both ready {} s)",
            sec(r.concurrent_wall)
        ),
        boot_table(&r.concurrent),
    ));

    let mut m = Table::new(&[
        "#",
        "from → to",
        "wall: API call → ACTIVE on the new host (ms)",
        "QEMU total_ms",
        "QEMU downtime_ms",
        "heartbeat: last before / first on dest / checked",
        "ACTIVE → first newer heartbeat seen (ms)",
        "new boot line",
        "heartbeat continued",
    ]);
    for (i, x) in r.migrations.iter().enumerate() {
        m.row(vec![
            (i + 1).to_string(),
            format!("{} → {}", x.from, x.to),
            msec(x.wall),
            opt(x.total_ms),
            opt(x.downtime_ms),
            format!(
                "{} / {} / {}",
                x.hb_before,
                opt(x.hb_first_after),
                x.hb_after
            ),
            msec(x.to_heartbeat),
            if x.rebooted { "YES" } else { "no" }.into(),
            if x.ok() { "yes" } else { "NO" }.into(),
        ]);
    }
    out.push((
        format!("live migration of one guest ({MIGRATIONS} times, alternating hosts)"),
        m,
    ));

    let mut s = Table::new(&["metric", "value"]);
    s.row(vec![
        "rova start-up: spawn → first 200 (ms), incl. the accelerator probe".into(),
        msec(r.startup.to_serving),
    ]);
    s.row(vec![
        format!(
            "QEMU RSS per guest, {} guests all ready: mean / max (MiB)",
            r.qemu_rss_kib.len()
        ),
        format!(
            "{} / {}",
            mean_mib(&r.qemu_rss_kib),
            max_mib(&r.qemu_rss_kib)
        ),
    ]);
    s.row(vec![
        "rova RSS at that moment (MiB)".into(),
        mib(r.rova_rss_kib),
    ]);
    for p in &r.phases {
        let f = |d: Option<Duration>| d.map_or("?".into(), sec);
        s.row(vec![
            format!(
                "CPU during {} ({} s wall): rova / its QEMUs / bench / rest of the machine (s)",
                p.name,
                sec(p.cpu.wall)
            ),
            format!(
                "{} / {} / {} / {}",
                f(p.cpu.server),
                sec(p.qemu),
                f(p.cpu.client),
                f(p.foreign())
            ),
        ]);
    }
    s.row(vec![
        "teardown: DELETE all → all 404 (s)".into(),
        c.delete_wall.map_or_else(
            || format!("failed: {}", c.delete_error.as_deref().unwrap_or("?")),
            sec,
        ),
    ]);
    s.row(vec![
        "QEMU processes seen / alive 15 s after the deletes / killed by the bench".into(),
        format!(
            "{} / {} / {}",
            c.qemu_seen,
            c.left_after_delete.len(),
            c.killed.len()
        ),
    ]);
    s.row(vec![
        format!(
            "other processes' CPU over the whole run ({} s wall), top users",
            sec(noise.wall)
        ),
        format!("{} s: {}", sec(noise.total), noise.top(4)),
    ]);
    s.row(vec![
        "CPU time taken by the hypervisor (steal) over the run (s)".into(),
        noise.steal.map_or("?".into(), sec),
    ]);
    s.row(vec![
        "load average before / after".into(),
        format!("{load_before} / {load_after}"),
    ]);
    out.push(("summary".into(), s));
    out
}

/// Checks that must hold for the figures to mean anything.
fn failures(r: &GuestRun, c: &Cleanup) -> Vec<String> {
    let mut f = Vec::new();
    for (i, m) in r.migrations.iter().enumerate() {
        if !m.ok() {
            f.push(format!(
                "migration {}: heartbeat did not continue (before {}, on the destination {}..{}, new boot line: {})",
                i + 1,
                m.hb_before,
                opt(m.hb_first_after),
                m.hb_after,
                m.rebooted
            ));
        }
        if m.total_ms.is_none() || m.downtime_ms.is_none() {
            f.push(format!(
                "migration {}: no `live migration completed` figures in rova's log",
                i + 1
            ));
        }
    }
    if let Some(e) = &c.delete_error {
        f.push(format!("teardown: {e}"));
    }
    if !c.left_after_delete.is_empty() {
        f.push(format!(
            "QEMU processes alive 15 s after their servers were deleted: {:?}",
            c.left_after_delete
        ));
    }
    f
}

fn markdown(
    r: &GuestRun,
    tables: &[(String, Table)],
    failures: &[String],
    args: &Args,
    m: &Machine,
    qemu_version: &str,
    noise: &Noise,
) -> String {
    let mut s = String::new();
    s.push_str(&report::begin_marker(&args.label));
    s.push('\n');
    s.push_str(&format!("## {} ({})\n\n", args.label, m.date));
    s.push_str(&format!(
        "Real guests: `rova serve --driver qemu --qemu-hosts {HOSTS}` (release build, fresh data \
directory), image `{IMAGE}` (the test guest: Debian cloud kernel + busybox initramfs, see \
guest/README.md), flavor `{FLAVOR}` (1 vCPU, 256 MiB), `networks: \"auto\"`, created as `demo`. \
Control plane = POST answered 202 → task state `spawning` first seen (`GET /servers/{{id}}` \
right away, then every {} ms, so a value just above that means \"reached between the first and \
second poll\": the figure is at the poll's resolution); QEMU start = `spawning` → ACTIVE (the \
driver has started QEMU and its QMP answers); guest boot = ACTIVE → the guest's `ready` line \
seen in `os-getConsoleOutput` (polled every {} ms, so up to that much late); the guest's own \
`uptime=` on that line is its kernel's view (the guest starts running before ACTIVE). QEMU CPU \
is the QEMU process's user + system time when `ready` was seen. Live migration as `admin` \
(`os-migrateLive`, host chosen by the scheduler, microversion {MIGRATE_VERSION}); QEMU's \
total/downtime figures come from rova's log. RSS is `VmRSS` of each QEMU process (pid from \
its pidfile) once all {} guests were ready.\n\n",
        STATE_POLL.as_millis(),
        CONSOLE_POLL.as_millis(),
        r.n + CONCURRENT
    ));
    s.push_str(&format!(
        "- Machine: {} CPU(s), {}, Linux {}\n- Accelerator: {}\n- {}\n- Code: {}; `rova` release build\n",
        m.nproc,
        m.model,
        m.kernel,
        r.accel.strip_prefix("accelerator ").unwrap_or(&r.accel),
        qemu_version,
        m.commit
    ));
    s.push_str(&format!("- Reproduce: `{}`\n", report::reproduce()));
    for n in &args.note {
        s.push_str(&format!("- Note: {n}\n"));
    }
    let foreign = noise.total.as_secs_f64();
    let capacity = noise.wall.as_secs_f64() * m.nproc.max(1) as f64;
    s.push_str(&format!(
        "- Noise: other processes used {foreign:.1} CPU-s of the {capacity:.0} available during \
the run ({:.0}%; top: {}; sampled every {} ms, a process that ended is charged to its \
parent), and the hypervisor took {} s (steal). \"Rest of the machine\" in the phase rows is \
`/proc/stat` busy time minus rova, its QEMU processes and the bench: other processes, rova's \
short-lived helpers (qemu-img, genisoimage), kernel threads and steal.\n",
        if capacity > 0.0 {
            100.0 * foreign / capacity
        } else {
            0.0
        },
        noise.top(4),
        NOISE_POLL.as_millis(),
        noise.steal.map_or("?".into(), sec),
    ));
    for f in failures {
        s.push_str(&format!("- CHECK FAILED: {f}\n"));
    }
    for (title, t) in tables {
        s.push_str(&format!("\n**{title}**\n\n{}", t.markdown()));
    }
    s.push_str(&report::end_marker(&args.label));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines() {
        let text = "\x1b[0m\r\nROVA-GUEST: boot kernel=6.1 uptime=1.20 boot_id=abc\r\n\
[    2.0] random kernel line\r\n\
ROVA-GUEST: ready uptime=5.43\r\n\
ROVA-GUEST: heartbeat 0\r\nROVA-GUEST: heartbeat 1\r\nROVA-GUEST: heartbeat 2\r\n\
ROVA-GUEST: heartbe";
        let c = Console::parse(text);
        assert!(c.ready);
        assert_eq!(c.ready_uptime, Some(5.43));
        assert_eq!(c.boots, 1);
        assert_eq!(c.boot_ids, vec!["abc".to_string()]);
        assert_eq!(c.first_heartbeat, Some(0));
        assert_eq!(c.max_heartbeat, Some(2));
        // The API drops the final newline: the last line counts ...
        let last = Console::parse("x\nROVA-GUEST: ready uptime=11.25");
        assert!(last.ready);
        assert_eq!(last.ready_uptime, Some(11.25));
        // ... unless it is visibly cut short.
        for cut in ["ROVA-GUEST: ready uptime=11.2", "ROVA-GUEST: ready upt"] {
            assert!(!Console::parse(cut).ready, "{cut}");
        }
        // A cut heartbeat number is smaller than the one before it.
        let hb = Console::parse("ROVA-GUEST: heartbeat 19\nROVA-GUEST: heartbeat 2");
        assert_eq!(hb.first_heartbeat, Some(19));
        assert_eq!(hb.max_heartbeat, Some(19));
        // After a migration the log runs on: the first heartbeat after the
        // last one seen before is the next number when no line was lost.
        let moved = Console::parse(
            "ROVA-GUEST: heartbeat 7\nROVA-GUEST: heartbeat 8\nROVA-GUEST: heartbeat 9\n",
        );
        assert_eq!(moved.first_heartbeat_after(7), Some(8));
        assert_eq!(moved.first_heartbeat_after(9), None);
    }

    #[test]
    fn migration_figures_from_log() {
        let log = "2026-11-27T10:00:00Z \x1b[32m INFO\x1b[0m \x1b[2mrova::compute::live_migration\x1b[0m\x1b[2m:\x1b[0m live migration completed \x1b[3muuid\x1b[0m\x1b[2m=\x1b[0mU1 \x1b[3mtotal_ms\x1b[0m\x1b[2m=\x1b[0m812 \x1b[3mdowntime_ms\x1b[0m\x1b[2m=\x1b[0m14\n\
x INFO live migration completed uuid=U2 total_ms=5 downtime_ms=1\n\
y INFO live migration completed uuid=\"U1\" total_ms=900 downtime_ms=20\n";
        assert_eq!(
            migration_stats(log, "U1"),
            vec![(Some(812), Some(14)), (Some(900), Some(20))]
        );
        assert_eq!(migration_stats(log, "U3"), vec![]);
    }

    #[test]
    fn accelerator_from_log() {
        let log = "2026 INFO rova::server: qemu driver: accelerator tcg: x\n\
rova: qemu driver: accelerator tcg: using TCG: probe failed\nmore\n";
        assert_eq!(
            accelerator_line(log).as_deref(),
            Some("accelerator tcg: using TCG: probe failed")
        );
    }

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

    #[test]
    fn table_renders() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.text(), "a    bb\n-------\nxyz  1\n");
        assert_eq!(t.markdown(), "| a | bb |\n|---|---:|\n| xyz | 1 |\n");
    }
}
