//! Volumes on a real guest: one blank 1 GiB volume plugged into a running
//! test guest and pulled out again, [`VOLUME_CYCLES`] times. Attach is
//! timed from the `os-volume_attachments` POST to the guest's console line
//! `disk NAME size=1073741824 … serial=<volume id>`; detach from the
//! DELETE to the volume `available` in the block-storage API, and to the
//! guest's `disk NAME removed` line.

use super::*;
use crate::volumes::{send, until, volume_base};

/// Attach/detach cycles of one volume.
pub(super) const VOLUME_CYCLES: usize = 3;

/// One attach and detach.
pub(super) struct VolumeCycle {
    /// POST → 200 (the volume reserved, plugged in, recorded).
    pub(super) attach_call: Duration,
    /// POST sent → the guest's `disk` line for it.
    pub(super) attach_seen: Duration,
    /// DELETE sent → the volume `available`.
    pub(super) detach_available: Duration,
    /// DELETE sent → the guest's `removed` line.
    pub(super) detach_seen: Duration,
    /// The size the guest reported (bytes).
    pub(super) size: u64,
}

/// The raw serial console of `id`.
async fn console_text(api: &Api, id: &str) -> Result<String, String> {
    let a = api
        .call(
            reqwest::Method::POST,
            &format!("/servers/{id}/action"),
            Some(MICROVERSION),
            Some(json!({"os-getConsoleOutput": {}}).to_string()),
        )
        .await?;
    let v: Value =
        serde_json::from_slice(&a.body).map_err(|e| format!("console output of {id}: {e}"))?;
    Ok(v["output"].as_str().unwrap_or_default().to_string())
}

/// The `disk` lines naming `serial`: (device name, size) of each, and how
/// many `removed` lines name a device of those.
fn disk_lines(text: &str, serial: &str) -> (Vec<(String, u64)>, usize) {
    let mut seen = Vec::new();
    let mut removed = 0;
    for line in text.lines() {
        let Some(at) = line.find("ROVA-GUEST: disk ") else {
            continue;
        };
        let words: Vec<&str> = line[at + 17..].split_whitespace().collect();
        let Some(name) = words.first() else { continue };
        if words.get(1) == Some(&"removed") {
            if seen.iter().any(|(n, _)| n == name) {
                removed += 1;
            }
            continue;
        }
        if field(line, "serial") == Some(serial) {
            let size = field(line, "size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            seen.push((name.to_string(), size));
        }
    }
    (seen, removed)
}

/// Polls the console of `server` until `done` holds for its disk lines.
async fn wait_console(
    api: &Api,
    server: &str,
    serial: &str,
    timeout: Duration,
    done: impl Fn(&(Vec<(String, u64)>, usize)) -> bool,
) -> Result<(Vec<(String, u64)>, usize), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = disk_lines(&console_text(api, server).await?, serial);
        if done(&lines) {
            return Ok(lines);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "guest {server}: no console change for volume {serial} in {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Plugs one blank volume into `guest` and out again, [`VOLUME_CYCLES`]
/// times; the volume is deleted at the end.
pub(super) async fn volume_cycles(
    api: &Api,
    guest: &Boot,
    timeout: Duration,
) -> Result<Vec<VolumeCycle>, String> {
    let base = volume_base(api).await?;
    let (s, v) = send(
        api,
        reqwest::Method::POST,
        &format!("{base}/volumes"),
        Some(json!({"volume": {"size": 1, "name": "bench-hotplug"}})),
    )
    .await?;
    if s != 202 {
        return Err(format!("volume create: HTTP {s}: {v}"));
    }
    let vol = v["volume"]["id"].as_str().unwrap_or_default().to_string();
    let url = format!("{base}/volumes/{vol}");
    let available = |s: u16, v: &Value| s == 200 && v["volume"]["status"] == "available";
    until(api, &url, available).await?;
    let serial: String = vol.chars().take(20).collect();
    let mut out = Vec::new();
    for n in 0..VOLUME_CYCLES {
        let t = Instant::now();
        let a = api
            .call(
                reqwest::Method::POST,
                &format!("/servers/{}/os-volume_attachments", guest.id),
                Some(MICROVERSION),
                Some(json!({"volumeAttachment": {"volumeId": vol}}).to_string()),
            )
            .await?;
        let attach_call = t.elapsed();
        if a.status != 200 && a.status != 202 {
            return Err(format!(
                "attach: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
        }
        let (seen, _) =
            wait_console(api, &guest.id, &serial, timeout, |(s, _)| s.len() > n).await?;
        let attach_seen = t.elapsed();
        let size = seen.last().map_or(0, |(_, size)| *size);
        let t = Instant::now();
        let d = api
            .call(
                reqwest::Method::DELETE,
                &format!("/servers/{}/os-volume_attachments/{vol}", guest.id),
                Some(MICROVERSION),
                None,
            )
            .await?;
        if d.status != 202 {
            return Err(format!(
                "detach: HTTP {}: {}",
                d.status,
                String::from_utf8_lossy(&d.body)
            ));
        }
        until(api, &url, available).await?;
        let detach_available = t.elapsed();
        wait_console(api, &guest.id, &serial, timeout, |(_, r)| *r > n).await?;
        let detach_seen = t.elapsed();
        println!(
            "    cycle {}: attach call {:.0} ms, guest sees the disk ({} bytes) after {:.0} ms; detach → available {:.0} ms, guest saw it go after {:.0} ms",
            n + 1,
            attach_call.as_secs_f64() * 1000.0,
            size,
            attach_seen.as_secs_f64() * 1000.0,
            detach_available.as_secs_f64() * 1000.0,
            detach_seen.as_secs_f64() * 1000.0
        );
        out.push(VolumeCycle {
            attach_call,
            attach_seen,
            detach_available,
            detach_seen,
            size,
        });
    }
    let _ = send(api, reqwest::Method::DELETE, &url, None).await;
    Ok(out)
}
