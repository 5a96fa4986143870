//! Teardown: delete every server of the run, stop rova, and make sure no
//! QEMU process is left behind.

use super::*;

/// Deletes every server this run created, stops rova, and makes sure no
/// QEMU process of the run is left (killing any by pid). Returns rova's
/// log text.
pub(super) async fn cleanup(
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
