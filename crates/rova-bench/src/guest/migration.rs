//! Live-migration timing of the probe guest: one migration to the other
//! host, with the client-side times, QEMU's figures and the heartbeat
//! check across the move ([`Migration`]).

use super::*;

/// One live migration of the probe guest.
pub(super) struct Migration {
    pub(super) from: String,
    pub(super) to: String,
    /// `os-migrateLive` sent → ACTIVE, no task, on the new host.
    pub(super) wall: Duration,
    /// QEMU's own figures, from rova's log.
    pub(super) total_ms: Option<u64>,
    pub(super) downtime_ms: Option<u64>,
    /// Last heartbeat on the console just before the call.
    pub(super) hb_before: u64,
    /// First and latest heartbeat on the destination's console (read
    /// again 1.5 s after the first newer one was seen).
    pub(super) hb_first_after: Option<u64>,
    pub(super) hb_after: u64,
    /// A `boot` line other than the original boot's appeared.
    pub(super) rebooted: bool,
    /// ACTIVE on the new host → a heartbeat newer than `hb_before` seen
    /// (the guest prints one a second; console polled every 200 ms).
    pub(super) to_heartbeat: Duration,
}

impl Migration {
    pub(super) fn ok(&self) -> bool {
        !self.rebooted
            && self.hb_after > self.hb_before
            && self.hb_first_after.is_some_and(|f| f >= self.hb_before)
    }
}

pub(super) async fn migrate_once(
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
