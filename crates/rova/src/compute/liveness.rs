//! Service heartbeats: the `service_heartbeats` rows (one per binary and
//! host, Nova's `last_seen_up` and `report_count`), written by the
//! services this process runs — a nova-compute per host its configuration
//! names (its in-process agents) and the control services — every
//! `report_interval` seconds of real time, and read to decide whether a
//! service is up (`rova_core::liveness`). Heartbeats are kept apart from
//! the services' admin state (`compute_service`) so that a report never
//! races an operator's disable or force-down.
//!
//! The simulated mode can stop a host's heartbeats (`halted` on its row,
//! so every process sharing the database stops reporting for it): the
//! host then looks as it does in Nova when its nova-compute died — `down`
//! once `service_down_time` has passed, `host_status` UNKNOWN, no new
//! servers, and evacuation allowed.

use super::fleet::{ServiceRecord, CONTROL_HOST};
use crate::app::App;
use crate::config::Config;
use crate::store::{Store, Table};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};

/// The control services every process runs (on [`CONTROL_HOST`]).
pub const CONTROL_BINARIES: [&str; 2] = ["nova-scheduler", "nova-conductor"];

/// One service's last report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    pub binary: String,
    pub host: String,
    pub last_seen: DateTime<Utc>,
    #[serde(default)]
    pub report_count: u64,
    /// Reports stopped on purpose (the simulated mode's dead agent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub halted: bool,
}

impl Heartbeat {
    /// A service's first row: reported at `now` (unless `halted`).
    fn first(binary: &str, host: &str, now: DateTime<Utc>, halted: bool) -> Heartbeat {
        Heartbeat {
            binary: binary.into(),
            host: host.into(),
            last_seen: now,
            report_count: 0,
            halted,
        }
    }
}

/// The heartbeat rows and the rule that reads them.
pub struct Liveness {
    beats: Table<Heartbeat>,
    /// `service_down_time`, seconds.
    pub down_time: i64,
    /// `report_interval`, seconds.
    pub report_interval: u64,
    /// The services this process reports for: (binary, host).
    own: Vec<(String, String)>,
}

impl Liveness {
    /// Loads the rows and writes a first report for every service this
    /// process runs, so each is up from the moment the process serves.
    pub fn load(store: &Arc<Store>, cfg: &Config, hosts: &[String]) -> Result<Self, String> {
        let beats: Table<Heartbeat> = Table::load("service_heartbeat", store)?;
        let mut own: Vec<(String, String)> = hosts
            .iter()
            .map(|h| ("nova-compute".to_string(), h.clone()))
            .collect();
        own.extend(
            CONTROL_BINARIES
                .iter()
                .map(|b| (b.to_string(), CONTROL_HOST.to_string())),
        );
        let live = Liveness {
            beats,
            down_time: cfg.service_down_time as i64,
            report_interval: cfg.report_interval,
            own,
        };
        let now = Utc::now();
        for (binary, host) in &live.own {
            if let Some(next) = live.next_beat(binary, host, now) {
                live.beats
                    .write_behind(&ServiceRecord::key(binary, host), Some(next))
                    .map_err(|f| f.message)?;
            }
        }
        Ok(live)
    }

    /// The report to write for a service at `now` (`None` when halted).
    fn next_beat(&self, binary: &str, host: &str, now: DateTime<Utc>) -> Option<Heartbeat> {
        let cur = self.beats.get(&ServiceRecord::key(binary, host));
        if cur.as_ref().is_some_and(|c| c.halted) {
            return None;
        }
        Some(Heartbeat {
            binary: binary.into(),
            host: host.into(),
            last_seen: now,
            report_count: cur.map_or(0, |c| c.report_count) + 1,
            halted: false,
        })
    }

    /// A service's last report, if it ever reported.
    pub fn last_seen(&self, binary: &str, host: &str) -> Option<DateTime<Utc>> {
        self.beats
            .get(&ServiceRecord::key(binary, host))
            .map(|b| b.last_seen)
    }

    /// How many reports a service has sent.
    pub fn report_count(&self, binary: &str, host: &str) -> u64 {
        self.beats
            .get(&ServiceRecord::key(binary, host))
            .map_or(0, |b| b.report_count)
    }

    /// Nova's `service_is_up` for this record, now.
    pub fn is_up(&self, rec: &ServiceRecord) -> bool {
        rova_core::liveness::is_up(
            rec.forced_down,
            self.last_seen(&rec.binary, &rec.host),
            Utc::now(),
            self.down_time,
        )
    }

    /// Writes one report for every service this process runs.
    pub async fn report(&self) -> Result<(), Fault> {
        for (binary, host) in &self.own {
            self.beat(binary, host).await?;
        }
        Ok(())
    }

    /// Writes one report for a service (one this process runs, or an
    /// agent's reported through the agent API), unless it is halted; the
    /// report count after it.
    pub async fn beat(&self, binary: &str, host: &str) -> Result<u64, Fault> {
        let now = Utc::now();
        let key = ServiceRecord::key(binary, host);
        if let Some(cur) = self.beats.get(&key).filter(|c| c.halted) {
            return Ok(cur.report_count);
        }
        let (row, _) = self
            .beats
            .upsert(
                &key,
                || Heartbeat::first(binary, host, now, false),
                |row| {
                    if !row.halted {
                        row.last_seen = now;
                        row.report_count += 1;
                    }
                    Ok(())
                },
            )
            .await?;
        Ok(row.report_count)
    }

    /// Stops (`halted`) or restarts a service's reports; restarting
    /// reports at once.
    pub async fn set_halted(&self, binary: &str, host: &str, halted: bool) -> Result<(), Fault> {
        let now = Utc::now();
        self.beats
            .upsert(
                &ServiceRecord::key(binary, host),
                || Heartbeat::first(binary, host, now, halted),
                |row| {
                    row.halted = halted;
                    if !halted {
                        row.last_seen = now;
                        row.report_count += 1;
                    }
                    Ok(())
                },
            )
            .await
            .map(drop)
    }

    /// Whether a service's reports are stopped.
    pub fn halted(&self, binary: &str, host: &str) -> bool {
        self.beats
            .get(&ServiceRecord::key(binary, host))
            .is_some_and(|b| b.halted)
    }
}

/// Starts the reporting loop: every `report_interval` seconds, a report
/// for every service this process runs. It ends with the application.
pub fn spawn(app: &Arc<App>) {
    let weak: Weak<App> = Arc::downgrade(app);
    let every = std::time::Duration::from_secs(app.compute.fleet.liveness.report_interval.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else {
                return;
            };
            if let Err(f) = app.compute.fleet.liveness.report().await {
                tracing::warn!("service heartbeats: {}", f.message);
            }
        }
    });
}
