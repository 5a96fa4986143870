//! Reporting: machine facts, CPU accounting (server, bench client, everyone
//! else) for judging noise, the human-readable table, and the markdown
//! section written to `docs/benchmarks.md`.

use crate::stats::{ms, summarize};
use crate::{Args, RunResult};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The list queries timed against `GET /compute/v2.1/servers/detail`.
pub const LIST_QUERIES: [(&str, &str); 4] = [
    ("no filter (default limit = 1000 cap)", ""),
    ("limit=1000", "limit=1000"),
    ("name regex", "name=bench-0004"),
    ("status filter", "status=ACTIVE&limit=1000"),
];

/// The create→ACTIVE targets: on the embedded SQLite and on
/// PostgreSQL (N = 10,000).
const TARGET_SERVERS_PER_S_SQLITE: f64 = 2000.0;
const TARGET_SERVERS_PER_S_POSTGRES: f64 = 1000.0;
const TARGET_POST_P99: Duration = Duration::from_millis(10);
const TARGET_STARTUP: Duration = Duration::from_millis(200);

/// Facts about the machine and the code under test.
pub struct Machine {
    pub nproc: usize,
    pub model: String,
    pub kernel: String,
    pub date: String,
    pub commit: String,
    pub rova: String,
}

impl Machine {
    pub fn probe(rova: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            model,
            kernel,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit: git_commit(),
            rova: rova.display().to_string(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "rova-bench: {} CPU(s), {}, Linux {}, {}, rova at {} ({})",
            self.nproc, self.model, self.kernel, self.date, self.commit, self.rova
        )
    }
}

fn git_commit() -> String {
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match out(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} + uncommitted changes")
            } else {
                c
            }
        }
        None => "unknown commit".into(),
    }
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// CPU counters at one instant.
pub struct CpuSnap {
    at: Instant,
    server: Option<Duration>,
    /// The server's CPU time summed by thread name.
    threads: BTreeMap<String, Duration>,
    client: Option<Duration>,
    machine_busy: Option<Duration>,
}

impl CpuSnap {
    pub fn take(server_pid: u32) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            server: crate::server::cpu_time_of(&format!("/proc/{server_pid}/stat")),
            threads: thread_times(server_pid),
            client: crate::server::cpu_time_of("/proc/self/stat"),
            machine_busy: machine_busy(),
        }
    }
}

/// CPU time of each of a process's threads, summed by thread name (the
/// kernel's `comm`, at most 15 bytes: `tokio-runtime-w`, `rova-store-writ`).
fn thread_times(pid: u32) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let path = entry.path().join("stat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let name = text
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("?", |(n, _)| n)
            .to_string();
        if let Some(t) = crate::server::cpu_time_of(&path.to_string_lossy()) {
            *out.entry(name).or_default() += t;
        }
    }
    out
}

/// Busy CPU time of the whole machine (all CPUs) from `/proc/stat`.
fn machine_busy() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0);
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|h| *h > 0)?;
    Some(Duration::from_secs_f64(busy as f64 / hz as f64))
}

/// CPU used over an interval: by the server, by this client, by the rest.
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    pub wall: Duration,
    pub server: Option<Duration>,
    pub client: Option<Duration>,
    /// Busy time of every other process on the machine.
    pub other: Option<Duration>,
    /// The server's CPU by thread name, largest first.
    pub by_thread: Vec<(String, Duration)>,
}

impl CpuUse {
    pub fn between(a: &CpuSnap, b: &CpuSnap) -> CpuUse {
        let d = |x: Option<Duration>, y: Option<Duration>| Some(y?.saturating_sub(x?));
        let server = d(a.server, b.server);
        let client = d(a.client, b.client);
        let busy = d(a.machine_busy, b.machine_busy);
        let other = match (busy, server, client) {
            (Some(t), Some(s), Some(c)) => Some(t.saturating_sub(s + c)),
            _ => None,
        };
        let mut by_thread: Vec<(String, Duration)> = b
            .threads
            .iter()
            .map(|(name, t)| {
                let before = a.threads.get(name).copied().unwrap_or_default();
                (name.clone(), t.saturating_sub(before))
            })
            .filter(|(_, t)| !t.is_zero())
            .collect();
        by_thread.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        CpuUse {
            wall: b.at.duration_since(a.at),
            server,
            client,
            other,
            by_thread,
        }
    }

    /// `server 1.20 s (by thread: ...), bench client 0.30 s, other
    /// processes 0.05 s over 1.00 s wall`.
    pub fn describe(&self) -> String {
        let s = |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64()));
        format!(
            "server {} ({}), bench client {}, other processes {} over {:.2} s wall",
            s(self.server),
            self.threads(),
            s(self.client),
            s(self.other),
            self.wall.as_secs_f64()
        )
    }

    /// `tokio-runtime-w 3.10, rova-store-writ 2.90` (seconds).
    pub fn threads(&self) -> String {
        let parts: Vec<String> = self
            .by_thread
            .iter()
            .take(3)
            .map(|(n, t)| format!("{n} {:.2}", t.as_secs_f64()))
            .collect();
        if parts.is_empty() {
            "?".into()
        } else {
            parts.join(", ")
        }
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn servers_per_s(r: &RunResult) -> f64 {
    r.creates.active as f64 / r.creates.to_all_active.as_secs_f64()
}

/// Progress output right after one size finishes.
pub fn print_run(r: &RunResult, args: &Args) {
    let c = &r.creates;
    let post = summarize(&c.posts.latencies);
    println!("  load average before: {}", r.load_before);
    println!(
        "  start-up: {} ms to first 200 on GET /compute/v2.1 (ready line {} ms; server says {} ms; server CPU by then {} ms)",
        ms(r.startup.to_serving),
        r.startup.to_ready_line.map_or("?".into(), ms),
        r.startup
            .self_reported_ms
            .map_or("?".into(), |v| v.to_string()),
        r.startup.cpu.map_or("?".into(), ms),
    );
    println!(
        "  create: {} POSTs ({} failed) in {:.3} s = {:.0} POST/s; no server building after {:.3} s ({} polls): {} ACTIVE, {} ERROR = {:.0} servers/s",
        r.n,
        c.posts.failed,
        c.posts.elapsed.as_secs_f64(),
        c.posts.latencies.len() as f64 / c.posts.elapsed.as_secs_f64(),
        c.to_all_active.as_secs_f64(),
        c.polls,
        c.active,
        c.error,
        servers_per_s(r),
    );
    if let Some(f) = &c.error_example {
        println!(
            "  WARNING: {} servers went to ERROR, e.g. fault: {f}",
            c.error
        );
    }
    println!(
        "  POST latency at concurrency {}: min {} ms, p50 {} ms, p99 {} ms, max {} ms",
        args.concurrency,
        ms(post.min),
        ms(post.p50),
        ms(post.p99),
        ms(post.max)
    );
    println!("  CPU during create phase: {}", r.create_cpu.describe());
    for l in &r.lists {
        let s = summarize(&l.latencies);
        println!(
            "  GET /servers/detail?{:<26} {:>5} items{} {:>9} bytes: min {} ms, p50 {} ms, p99 {} ms",
            l.query,
            l.items,
            if l.next_link { " +next" } else { "      " },
            l.bytes,
            ms(s.min),
            ms(s.p50),
            ms(s.p99)
        );
    }
    println!("  CPU during list phase: {}", r.list_cpu.describe());
    println!(
        "  RSS: {} MiB after creates, {} MiB after lists (peak {} MiB)",
        mib(r.rss_after_creates_kib),
        mib(r.rss_after_lists_kib),
        mib(r.peak_rss_kib)
    );
    if let Some(p) = &r.probe {
        let s = summarize(&p.latencies);
        println!(
            "  POST latency at concurrency 1 ({} POSTs): min {} ms, p50 {} ms, p99 {} ms",
            p.latencies.len(),
            ms(s.min),
            ms(s.p50),
            ms(s.p99)
        );
    }
    if !r.actions.is_empty() {
        let s = summarize(&r.actions);
        println!(
            "  action round trip pause→PAUSED→unpause→ACTIVE ({} servers): p50 {} ms, p99 {} ms",
            r.actions.len(),
            ms(s.p50),
            ms(s.p99)
        );
    }
    if let Some(s) = &r.restart {
        println!(
            "  restart on the same data ({} servers stored): {} ms to first 200 (server CPU {} ms), RSS {} MiB",
            r.n,
            ms(s.to_serving),
            s.cpu.map_or("?".into(), ms),
            mib(r.rss_after_restart_kib)
        );
    }
    if let Some(log) = &r.server_log {
        let lines: Vec<&str> = log.lines().collect();
        println!("  server stderr ({} lines), last few:", lines.len());
        for l in lines.iter().rev().take(5).rev() {
            println!("    {l}");
        }
    }
}

/// One row of the results table: a metric, its target, a cell per size.
struct Row {
    metric: String,
    target: String,
    cells: Vec<String>,
}

fn rows(runs: &[RunResult], args: &Args) -> Vec<Row> {
    let mut out = Vec::new();
    let mut row = |metric: String, target: &str, f: &dyn Fn(&RunResult) -> String| {
        out.push(Row {
            metric,
            target: target.to_string(),
            cells: runs.iter().map(f).collect(),
        });
    };
    row(
        "start-up: spawn → first 200 on GET /compute/v2.1 (ms)".into(),
        "< 200 ms",
        &|r| {
            format!(
                "{} {}",
                ms(r.startup.to_serving),
                verdict(r.startup.to_serving < TARGET_STARTUP)
            )
        },
    );
    row(
        "start-up: spawn → \"serving on\" line (ms)".into(),
        "",
        &|r| r.startup.to_ready_line.map_or("?".into(), ms),
    );
    row("start-up: server CPU used by then (ms)".into(), "", &|r| {
        r.startup.cpu.map_or("?".into(), ms)
    });
    row(
        "restart with the N servers stored: spawn → first 200 (ms; CPU ms)".into(),
        "",
        &|r| {
            r.restart.map_or("?".into(), |s| {
                format!("{}; {}", ms(s.to_serving), s.cpu.map_or("?".into(), ms))
            })
        },
    );
    let (rate_target, rate_label) = if args.postgres.is_some() {
        (TARGET_SERVERS_PER_S_POSTGRES, "≥ 1000/s")
    } else {
        (TARGET_SERVERS_PER_S_SQLITE, "≥ 2000/s")
    };
    row(
        "servers/s (first POST → all ACTIVE)".into(),
        rate_label,
        &|r| {
            let v = servers_per_s(r);
            format!("{v:.0} {}", verdict(v >= rate_target))
        },
    );
    row("first POST → all ACTIVE (s)".into(), "", &|r| {
        format!("{:.3}", r.creates.to_all_active.as_secs_f64())
    });
    row("POST/s (POST phase alone)".into(), "", &|r| {
        format!(
            "{:.0}",
            r.creates.posts.latencies.len() as f64 / r.creates.posts.elapsed.as_secs_f64()
        )
    });
    let c = args.concurrency;
    row(format!("POST p50 at concurrency {c} (ms)"), "", &|r| {
        ms(summarize(&r.creates.posts.latencies).p50)
    });
    row(
        format!("POST p99 at concurrency {c} (ms)"),
        "< 10 ms",
        &|r| {
            let p99 = summarize(&r.creates.posts.latencies).p99;
            format!("{} {}", ms(p99), verdict(p99 < TARGET_POST_P99))
        },
    );
    if args.probe > 0 {
        row(
            format!("POST p50 / p99 at concurrency 1, {} POSTs (ms)", args.probe),
            "",
            &|r| {
                r.probe.as_ref().map_or("?".into(), |p| {
                    let s = summarize(&p.latencies);
                    format!("{} / {}", ms(s.p50), ms(s.p99))
                })
            },
        );
    }
    if args.actions > 0 {
        row(
            format!(
                "action round trip pause→PAUSED→unpause→ACTIVE p50 / p99 (ms), {} servers, {} at once",
                args.actions, args.action_concurrency
            ),
            "",
            &|r| {
                if r.actions.is_empty() {
                    return "?".into();
                }
                let s = summarize(&r.actions);
                format!("{} / {}", ms(s.p50), ms(s.p99))
            },
        );
    }
    row("failed POSTs / servers in ERROR".into(), "0 / 0", &|r| {
        format!("{} / {}", r.creates.posts.failed, r.creates.error)
    });
    row(
        "server CPU in create phase (s; ms per server)".into(),
        "",
        &|r| {
            r.create_cpu.server.map_or("?".into(), |s| {
                format!(
                    "{:.2}; {:.2}",
                    s.as_secs_f64(),
                    s.as_secs_f64() * 1000.0 / r.n as f64
                )
            })
        },
    );
    row(
        "bench client / other processes' CPU in create phase (s)".into(),
        "",
        &|r| {
            let s =
                |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.2}", d.as_secs_f64()));
            format!("{} / {}", s(r.create_cpu.client), s(r.create_cpu.other))
        },
    );
    let k = args.list_iterations;
    for (i, (label, query)) in LIST_QUERIES.iter().enumerate() {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        row(
            format!("GET /servers/detail{q} p50 / p99 (ms), {label}, K={k}"),
            "",
            &|r| {
                r.lists.get(i).map_or("?".into(), |l| {
                    let s = summarize(&l.latencies);
                    format!(
                        "{} / {} [{} items{}]",
                        ms(s.p50),
                        ms(s.p99),
                        l.items,
                        if l.next_link { ", next link" } else { "" }
                    )
                })
            },
        );
    }
    row(
        format!("GET /servers/{{id}} p50 / p99 (ms), K={}", k * 20),
        "< 2 ms",
        &|r| {
            if r.shows.is_empty() {
                return "?".into();
            }
            let s = summarize(&r.shows);
            let ok = if s.p99 < Duration::from_millis(2) {
                "ok"
            } else {
                "MISSED"
            };
            format!("{} / {} {ok}", ms(s.p50), ms(s.p99))
        },
    );
    row("server CPU in list phase (s)".into(), "", &|r| {
        r.list_cpu
            .server
            .map_or("?".into(), |s| format!("{:.2}", s.as_secs_f64()))
    });
    row("RSS after creates (MiB)".into(), "", &|r| {
        mib(r.rss_after_creates_kib)
    });
    row("RSS after lists (MiB)".into(), "", &|r| {
        mib(r.rss_after_lists_kib)
    });
    row("peak RSS (VmHWM, MiB)".into(), "", &|r| mib(r.peak_rss_kib));
    row(
        "RSS right after a restart with N servers (MiB)".into(),
        "",
        &|r| mib(r.rss_after_restart_kib),
    );
    row("load average before start".into(), "", &|r| {
        r.load_before.clone()
    });
    out
}

/// The results as an aligned plain-text table, one column per size.
pub fn text_table(runs: &[RunResult], args: &Args) -> String {
    let rows = rows(runs, args);
    let mut header = vec!["metric".to_string(), "target".to_string()];
    header.extend(runs.iter().map(|r| format!("N={}", r.n)));
    let mut lines: Vec<Vec<String>> = vec![header];
    for r in rows {
        let mut l = vec![r.metric, r.target];
        l.extend(r.cells);
        lines.push(l);
    }
    let cols = lines[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (cols - 1)));
            out.push('\n');
        }
    }
    out
}

pub fn begin_marker(label: &str) -> String {
    format!("<!-- rova-bench:begin {label} -->")
}

pub fn end_marker(label: &str) -> String {
    format!("<!-- rova-bench:end {label} -->")
}

/// The command line that reproduces this run.
pub fn reproduce() -> String {
    let mut cmd = String::from("scripts/bench.sh");
    for a in std::env::args().skip(1) {
        let plain = a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:".contains(c));
        if plain {
            cmd.push(' ');
            cmd.push_str(&a);
        } else {
            cmd.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        }
    }
    cmd
}

/// This run's markdown section, between begin/end markers.
pub fn markdown_section(runs: &[RunResult], args: &Args, m: &Machine) -> String {
    let mut s = String::new();
    s.push_str(&begin_marker(&args.label));
    s.push('\n');
    s.push_str(&format!("## {} ({})\n\n", args.label, m.date));
    s.push_str(&format!(
        "- Machine: {} CPU(s), {}, Linux {}\n- Code: {}; `rova` release build\n",
        m.nproc, m.model, m.kernel, m.commit
    ));
    s.push_str(&format!(
        "- Settings: concurrency {}, K = {} timed requests per list query, {} sequential POSTs, sim latency {}, quotas unlimited, microversion {}\n",
        args.concurrency,
        args.list_iterations,
        args.probe,
        args.sim_latency_ms
            .map_or("server default (5 ms per build step)".into(), |v| format!("{v} ms")),
        crate::client::MICROVERSION
    ));
    s.push_str(&format!(
        "- Database: {}\n",
        if args.postgres.is_some() {
            "PostgreSQL (a fresh database per fleet, `--postgres`)"
        } else {
            "SQLite (the embedded default)"
        }
    ));
    s.push_str(&format!("- Reproduce: `{}`\n", reproduce()));
    for n in &args.note {
        s.push_str(&format!("- Note: {n}\n"));
    }
    s.push('\n');

    let rows = rows(runs, args);
    s.push_str("| metric | target |");
    for r in runs {
        s.push_str(&format!(" N={} |", r.n));
    }
    s.push_str("\n|---|---|");
    for _ in runs {
        s.push_str("---:|");
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!("| {} | {} |", r.metric, r.target));
        for c in r.cells {
            s.push_str(&format!(" {c} |"));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nNoise: this machine has {} cores shared with other developers' builds, and the bench \
client (one thread) runs beside the server, so wall-clock figures move by tens of percent between \
runs; \"other processes' CPU\" and the load average show how busy the machine was. Server CPU \
seconds are the steadier figure (start-up too: its CPU row is what it costs on an idle \
machine, give or take the 10 ms tick). POST latency is measured in a closed loop: at concurrency C, \
p50 ≈ C ÷ POST/s (Little's law), so p99 < 10 ms at C = {} would need well over {} POST/s; the \
concurrency-1 row shows the unloaded latency.\n",
        m.nproc,
        args.concurrency,
        args.concurrency * 100
    ));
    s.push_str(&end_marker(&args.label));
    s.push('\n');
    s
}

const HEADER: &str = "# Rova benchmarks

Figures from `rova-bench` (crates/rova-bench), which drives a release build of
`rova serve` over HTTP on loopback: for each fleet size N it starts a fresh
server in an empty data directory with unlimited quotas, times start-up
(process spawn → first 200 on `GET /compute/v2.1`), logs in as `admin`,
creates N servers (`POST /compute/v2.1/servers`, microversion 2.90,
`networks: \"auto\"`, flavor `1`) with bounded concurrency, waits until none is
building, times `GET /compute/v2.1/servers/detail` with several queries, reads
the server's RSS from `/proc/<pid>/status`, times a few sequential POSTs, and
finally restarts the server on the same data directory (N servers stored).
The simulated host is sized to hold every server the run creates, so the
scheduler never refuses. CPU time is read from `/proc` for the server (by
thread), the bench client and every other process, to judge noise.

Targets: ≥ 2000 servers/s to ACTIVE on SQLite and ≥ 1000/s on PostgreSQL, POST p99 < 10 ms, start-to-serving < 200 ms.

Run it with `scripts/bench.sh [rova-bench options]` (`--help` lists them); with
`--markdown docs/benchmarks.md` it replaces the section of the same `--label`
here, or appends one.
";

/// Writes `section` into `path`: replaces the section with the same label,
/// or appends it (creating the file with a short header).
pub fn write_markdown(path: &Path, label: &str, section: &str) -> Result<(), String> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let doc = splice(&existing, label, section);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, doc).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn splice(existing: &str, label: &str, section: &str) -> String {
    let (begin, end) = (begin_marker(label), end_marker(label));
    if let (Some(b), Some(e)) = (existing.find(&begin), existing.find(&end)) {
        if e > b {
            let mut after = &existing[e + end.len()..];
            if let Some(rest) = after.strip_prefix('\n') {
                after = rest;
            }
            return format!("{}{}{}", &existing[..b], section, after);
        }
    }
    let mut doc = if existing.trim().is_empty() {
        HEADER.to_string()
    } else {
        existing.to_string()
    };
    if !doc.ends_with('\n') {
        doc.push('\n');
    }
    doc.push('\n');
    doc.push_str(section);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_appends_then_replaces() {
        let one = "<!-- rova-bench:begin a -->\nsection-a-one\n<!-- rova-bench:end a -->\n";
        let doc = splice("", "a", one);
        assert!(doc.starts_with("# Rova benchmarks"));
        assert!(doc.ends_with(one));
        let other = "<!-- rova-bench:begin b -->\nb\n<!-- rova-bench:end b -->\n";
        let doc = splice(&doc, "b", other);
        let two = "<!-- rova-bench:begin a -->\nsection-a-two\n<!-- rova-bench:end a -->\n";
        let doc = splice(&doc, "a", two);
        assert!(!doc.contains("section-a-one"));
        assert!(doc.contains("section-a-two"));
        assert!(doc.contains("\nb\n"));
        assert_eq!(doc.matches("rova-bench:begin a").count(), 1);
        assert!(doc.find("section-a-two").unwrap_or(0) < doc.find("\nb\n").unwrap_or(0));
    }
}
