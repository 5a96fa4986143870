//! The measured phases against a running rova: sequential and
//! concurrent boots, RSS of the QEMU processes, the live migrations and
//! the volume hot-plug cycles.

use super::*;

pub(super) async fn measure(
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
    println!(
        "  a blank 1 GiB volume into {} and out again, {VOLUME_CYCLES} times:",
        probe.name
    );
    let volumes = volume_cycles(&demo, probe, timeout).await?;
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
        volumes,
        phases,
    })
}
