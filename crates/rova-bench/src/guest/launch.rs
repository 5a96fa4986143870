//! One guest launch, timed: POST, task `spawning`, ACTIVE and `ready` on
//! the serial console ([`Boot`]).

use super::*;

/// One guest's boot, as the API client saw it.
pub(super) struct Boot {
    pub(super) name: String,
    pub(super) id: String,
    pub(super) host: String,
    /// POST sent → 202.
    pub(super) post: Duration,
    /// 202 → task state `spawning` first seen (None: never seen).
    pub(super) control: Option<Duration>,
    /// `spawning` seen → ACTIVE seen.
    pub(super) qemu_start: Option<Duration>,
    /// POST sent → ACTIVE seen.
    pub(super) to_active: Duration,
    /// ACTIVE seen → `ready` line seen on the console.
    pub(super) guest: Duration,
    /// POST sent → `ready` seen.
    pub(super) total: Duration,
    /// The guest's own uptime on its `ready` line.
    pub(super) uptime: Option<f64>,
    pub(super) boot_id: Option<String>,
    /// CPU time of the QEMU process when `ready` was seen.
    pub(super) qemu_cpu: Option<Duration>,
}

/// What every boot needs.
pub(super) struct Ctx<'a> {
    pub(super) demo: &'a Api,
    pub(super) admin: &'a Api,
    pub(super) data_dir: &'a Path,
    pub(super) image: &'a str,
    pub(super) flavor: &'a str,
    /// Every server created, for the teardown.
    pub(super) ids: &'a Mutex<Vec<String>>,
    pub(super) timeout: Duration,
}

pub(super) async fn boot_one(ctx: &Ctx<'_>, name: &str) -> Result<Boot, String> {
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
