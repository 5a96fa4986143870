//! Nova's periodic tasks, run against the injected clock: reclaim of
//! soft-deleted servers (`reclaim_instance_interval`), offload of shelved
//! servers (`shelved_offload_time`), auto-confirm of resizes
//! (`resize_confirm_window`), build timeout (`instance_build_timeout`) and
//! rescue timeout (`rescue_timeout`). A background loop runs a pass every
//! `periodic_interval_secs` of real time; advancing the virtual clock runs
//! a pass at once, so a 24-hour interval can elapse in milliseconds.
//! Deciding what is due is a pure function ([`due`]); the loop only acts,
//! and only in the process holding the `periodic-tasks` lease (a row in
//! the database, so exactly one of several processes runs the passes).

use super::{ops, servers};
use crate::app::App;
use crate::http::Ctx;
use crate::store::schema::Cell;
use chrono::{DateTime, Duration, Utc};
use rova_core::model::{Instance, InstanceFault};
use rova_core::states::{PowerState, VmState};
use rova_core::Fault;
use std::sync::Arc;

/// The knobs the periodic tasks read.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub reclaim: i64,
    pub shelved_offload: i64,
    pub resize_confirm: i64,
    pub build_timeout: i64,
    pub rescue_timeout: i64,
}

/// One thing a pass must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Reclaim(String),
    Offload(String),
    ConfirmResize(String),
    BuildTimeout(String),
    Unrescue(String),
}

fn stamp(i: &Instance, key: &str) -> Option<DateTime<Utc>> {
    i.system_metadata
        .get(key)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn older(t: Option<DateTime<Utc>>, secs: i64, now: DateTime<Utc>) -> bool {
    t.is_some_and(|t| t + Duration::seconds(secs) <= now)
}

/// What is due for one instance at `now` (pure).
pub fn due(i: &Instance, now: DateTime<Utc>, iv: &Intervals) -> Option<Due> {
    if i.deleted {
        return None;
    }
    // Run over every server each pass: nothing is allocated for one that
    // has nothing due.
    let id = || i.uuid.clone();
    let idle = i.task_state.is_none();
    match i.vm_state {
        VmState::SoftDeleted if iv.reclaim > 0 && idle && older(i.deleted_at, iv.reclaim, now) => {
            Some(Due::Reclaim(id()))
        }
        VmState::Shelved
            if iv.shelved_offload > 0
                && idle
                && older(stamp(i, "shelved_at"), iv.shelved_offload, now) =>
        {
            Some(Due::Offload(id()))
        }
        VmState::Resized
            if iv.resize_confirm > 0
                && idle
                && older(stamp(i, "resize_finished_at"), iv.resize_confirm, now) =>
        {
            Some(Due::ConfirmResize(id()))
        }
        VmState::Building
            if iv.build_timeout > 0 && older(Some(i.created_at), iv.build_timeout, now) =>
        {
            Some(Due::BuildTimeout(id()))
        }
        VmState::Rescued
            if iv.rescue_timeout > 0
                && idle
                && older(stamp(i, "rescued_at"), iv.rescue_timeout, now) =>
        {
            Some(Due::Unrescue(id()))
        }
        _ => None,
    }
}

/// The context periodic tasks act under (the server's own project, admin).
fn system_ctx(i: &Instance) -> Ctx {
    Ctx {
        user_id: i.user_id.clone(),
        user_name: "rova-periodic".into(),
        project_id: i.project_id.clone(),
        project_name: String::new(),
        roles: vec!["admin".into(), "member".into(), "reader".into()],
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        version: rova_core::microversion::MAX,
    }
}

/// Runs one pass; returns what it did.
pub async fn run_once(app: &Arc<App>) -> Vec<Due> {
    let now = app.clock.now();
    let iv = Intervals {
        reclaim: app.cfg.reclaim_instance_interval,
        shelved_offload: app.cfg.shelved_offload_time,
        resize_confirm: app.cfg.resize_confirm_window,
        build_timeout: app.cfg.instance_build_timeout,
        rescue_timeout: app.cfg.rescue_timeout,
    };
    // Only servers in a state some task acts on can be due.
    let states = [
        VmState::SoftDeleted,
        VmState::Shelved,
        VmState::Resized,
        VmState::Building,
        VmState::Rescued,
    ];
    let mut params = vec![Cell::Bool(false)];
    params.extend(states.iter().map(|s| Cell::Text(s.as_str().to_string())));
    let candidates = app
        .compute
        .instances_where(
            "deleted = ?1 AND vm_state IN (?2, ?3, ?4, ?5, ?6)",
            params,
            |i| due(i, now, &iv).is_some(),
        )
        .unwrap_or_else(|f| {
            tracing::error!("periodic tasks: {}", f.message);
            Vec::new()
        });
    let work: Vec<(Due, Arc<Instance>)> = candidates
        .into_iter()
        .filter_map(|i| due(&i, now, &iv).map(|d| (d, i)))
        .collect();
    let mut done = Vec::new();
    for (d, inst) in work {
        let ctx = system_ctx(&inst);
        let ok = match &d {
            Due::Reclaim(id) => {
                servers::terminate(app, id, &ctx.request_id).await;
                true
            }
            Due::Offload(id) => ops::start_offload(app, id).await,
            Due::ConfirmResize(id) => ops::confirm_resize(app, &ctx, id).await.is_ok(),
            Due::BuildTimeout(id) => build_timeout(app, id, now, iv.build_timeout).await,
            Due::Unrescue(id) => {
                let act = super::actions_run::ServerAction::Unrescue;
                let links = super::views::Links::new(&app.public_url, None);
                ops::run(app, &ctx, &links, id, act).await.is_ok()
            }
        };
        if ok {
            done.push(d);
        }
    }
    done
}

async fn build_timeout(app: &App, id: &str, now: DateTime<Utc>, secs: i64) -> bool {
    app.compute
        .update_instance(id, now, |i| {
            if i.vm_state != VmState::Building || i.deleted {
                return Err(Fault::conflict("no longer building"));
            }
            i.vm_state = VmState::Error;
            i.task_state = None;
            i.power_state = PowerState::NoState;
            i.fault = Some(InstanceFault {
                code: 500,
                message: format!(
                    "Build of instance {id} aborted: Instance failed to spawn in {secs} seconds"
                ),
                details: None,
                created: now,
            });
            Ok(())
        })
        .await
        .is_ok()
}

/// Starts the background loop.
/// The lease a process holds while it runs the periodic passes: of the
/// processes sharing a database, only its holder runs them.
pub const LEASE: &str = "periodic-tasks";

/// Starts the loop: every interval, take or renew [`LEASE`] (for three
/// intervals, so a holder that stops is replaced after at most three) and
/// run a pass if it is held.
pub fn spawn(app: Arc<App>) {
    let every = std::time::Duration::from_secs(app.cfg.periodic_interval_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match app.store.acquire_lease(LEASE, every * 3).await {
                Ok(true) => {
                    run_once(&app).await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("periodic tasks: {}", e.message),
            }
        }
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn iv() -> Intervals {
        Intervals {
            reclaim: 3600,
            shelved_offload: 60,
            resize_confirm: 30,
            build_timeout: 0,
            rescue_timeout: 0,
        }
    }

    #[test]
    fn intervals_decide() {
        let now = Utc::now();
        let mut i: Instance =
            serde_json::from_value(crate::compute::periodic::tests::sample()).expect("sample");
        i.vm_state = VmState::SoftDeleted;
        i.deleted_at = Some(now - Duration::seconds(3599));
        assert_eq!(due(&i, now, &iv()), None);
        i.deleted_at = Some(now - Duration::seconds(3600));
        assert_eq!(due(&i, now, &iv()), Some(Due::Reclaim(i.uuid.clone())));
        let mut off = iv();
        off.reclaim = 0;
        assert_eq!(due(&i, now, &off), None);
        i.vm_state = VmState::Shelved;
        i.system_metadata.insert(
            "shelved_at".into(),
            (now - Duration::seconds(61)).to_rfc3339(),
        );
        assert_eq!(due(&i, now, &iv()), Some(Due::Offload(i.uuid.clone())));
        let mut never = iv();
        never.shelved_offload = -1;
        assert_eq!(due(&i, now, &never), None);
        i.vm_state = VmState::Resized;
        i.system_metadata.insert(
            "resize_finished_at".into(),
            (now - Duration::seconds(10)).to_rfc3339(),
        );
        assert_eq!(due(&i, now, &iv()), None);
        assert_eq!(
            due(&i, now + Duration::seconds(20), &iv()),
            Some(Due::ConfirmResize(i.uuid.clone()))
        );
    }

    pub fn sample() -> serde_json::Value {
        serde_json::from_str(
            r#"{
            "id": 1, "uuid": "u1", "display_name": "n", "display_description": null, "project_id": "p",
            "user_id": "u", "image_ref": "i", "flavor": {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512,
            "disk": 1, "ephemeral": 0, "swap": 0}, "vm_state": "active", "task_state": null, "power_state": 1,
            "progress": 0, "host": "h", "node": "h", "availability_zone": "nova", "hostname": "n",
            "key_name": null, "key_data": null, "user_data": null, "config_drive": false,
            "access_ip_v4": null, "access_ip_v6": null, "auto_disk_config": false, "metadata": {},
            "tags": [], "locked_by": null, "locked_reason": null, "launch_index": 0, "reservation_id": "r",
            "kernel_id": "", "ramdisk_id": "", "root_device_name": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "launched_at": null, "terminated_at": null, "deleted_at": null, "deleted": false, "vifs": [],
            "security_groups": [], "fault": null, "scheduler_hints": {}, "block_device_mapping": [],
            "personality": []
        }"#,
        )
        .expect("sample instance")
    }
}
