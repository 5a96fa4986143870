//! The real-guest benchmark (`rova-bench --guests N`): one fresh
//! `rova serve --driver qemu --qemu-hosts 2`; N test guests booted one after
//! another (POST → task `spawning` → ACTIVE → `ready` on the serial
//! console), then two at once; the QEMU processes' RSS; one guest
//! live-migrated back and forth with its heartbeat checked; a volume
//! hot-plugged into it and out again; then everything
//! deleted and no QEMU process left behind. Also watches the rest of the
//! machine for noise. Prints tables and can write a markdown section.
//!
//! This module holds the constants, the run's shape and [`run`]; launch,
//! live-migration timing, the measured phases, QEMU processes, noise,
//! console and log parsing, teardown and the report are submodules.

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

mod api;
mod cleanup;
mod console;
mod launch;
mod logs;
mod measure;
mod migration;
mod noise;
mod output;
mod qemu;
mod table;
mod volumes;

use api::*;
use cleanup::*;
use console::*;
use launch::*;
use logs::*;
use measure::*;
use migration::*;
use noise::*;
use output::*;
use qemu::*;
use table::*;
use volumes::*;

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
    /// A volume plugged into the first guest and out again.
    volumes: Vec<VolumeCycle>,
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
