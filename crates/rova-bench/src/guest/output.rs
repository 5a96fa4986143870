//! The report: per-boot lines, the result tables, the checks that must
//! hold for the figures to mean anything, and the markdown section.

use super::*;

pub(super) fn print_boot(b: &Boot) {
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

pub(super) fn tables(
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

    let mut v = Table::new(&[
        "#",
        "attach: POST → 200 (ms)",
        "attach: POST → guest's `disk` line (ms)",
        "size the guest saw (bytes)",
        "detach: DELETE → volume available (ms)",
        "detach: DELETE → guest's `removed` line (ms)",
    ]);
    for (i, c) in r.volumes.iter().enumerate() {
        v.row(vec![
            (i + 1).to_string(),
            msec(c.attach_call),
            msec(c.attach_seen),
            c.size.to_string(),
            msec(c.detach_available),
            msec(c.detach_seen),
        ]);
    }
    out.push((
        format!(
            "a blank 1 GiB volume hot-plugged into the first guest and out again ({VOLUME_CYCLES} times; the guest looks for new disks once a second)"
        ),
        v,
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
pub(super) fn failures(r: &GuestRun, c: &Cleanup) -> Vec<String> {
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
    for (i, v) in r.volumes.iter().enumerate() {
        if v.size != 1 << 30 {
            f.push(format!(
                "volume cycle {}: the guest saw {} bytes, not 1 GiB",
                i + 1,
                v.size
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

pub(super) fn markdown(
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
