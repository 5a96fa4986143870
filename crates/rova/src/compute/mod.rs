//! The compute service: instances, flavors, keypairs and instance actions,
//! with Nova's admission rules, and the operations that change them. HTTP
//! lives in `api/`; this layer sees typed commands and a `Ctx` only.

pub mod action_events;
pub mod actions;
pub mod actions_parse;
pub mod actions_run;
pub mod api;
pub mod build;
pub mod claims;
pub mod console_proxy;
pub mod consoles;
pub mod driver;
pub mod fault_steps;
pub mod flavors;
pub mod fleet;
pub mod floating;
pub mod guest_env;
pub mod interfaces;
pub mod keypairs;
pub mod live_migration;
pub mod liveness;
pub mod migrate;
pub mod move_steps;
pub mod operations;
pub mod ops;
pub mod owners;
pub mod periodic;
pub mod providers;
pub mod quotas;
pub mod scheduler;
pub mod secgroups;
pub mod server_groups;
pub mod servers;
pub mod settle;
pub mod sim_vnc;
pub mod tags;
pub mod views;
pub mod volume_swap;
pub mod volumes;

pub use actions::{ActionEvent, ActionLog, InstanceAction};

use crate::config::Config;
use crate::store::schema::Cell;
use crate::store::{Store, Table};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rova_core::model::Instance;
use rova_core::states::VmState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A flavor (Nova's `flavors` table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flavor {
    /// Public `flavorid`.
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u64,
    pub disk: u64,
    pub ephemeral: u64,
    pub swap: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    /// Kept as rows of `flavor_extra_specs` ([`flavors::Flavors`]), not in
    /// the flavor's document: filled when the flavor is read.
    #[serde(default, skip_serializing)]
    pub extra_specs: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    /// Projects granted access to a non-public flavor (Nova's
    /// `flavor_projects`), in the order they were added. Kept as rows of
    /// `flavor_projects`, like the extra specs.
    #[serde(default, skip_serializing)]
    pub projects: Vec<String>,
}

impl Flavor {
    /// Nova's flavor query scoping: admins see every flavor, others the
    /// public ones and the private ones their project was granted.
    pub fn visible_to(&self, ctx: &crate::http::Ctx) -> bool {
        ctx.is_admin() || self.is_public || self.projects.contains(&ctx.project_id)
    }
}

/// A keypair, owned by a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keypair {
    pub name: String,
    pub user_id: String,
    pub public_key: String,
    pub fingerprint: String,
    /// `ssh` or `x509`.
    pub key_type: String,
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

impl Keypair {
    pub fn key(user_id: &str, name: &str) -> String {
        format!("{user_id}/{name}")
    }
}

/// Compute state.
pub struct Compute {
    pub instances: Table<Instance>,
    /// Operations this process saw end, by kind and outcome (`/metrics`).
    pub ops_ended: crate::metrics::Counters,
    pub flavors: flavors::Flavors,
    pub keypairs: Table<Keypair>,
    pub actions: Table<InstanceAction>,
    /// The actions' events, one row per event ([`action_events`]).
    pub action_events: Table<action_events::EventRow>,
    next_id: IdCounter,
    /// Quota held per project beyond what the instance rows say: the
    /// servers of creates whose rows are not written yet, by uuid, with
    /// their (vcpus, ram). Usage is the rows' count plus this; the database checks the
    /// rows' count again when an instance row is written
    /// ([`crate::store::Guard::Quota`]), so processes sharing it cannot
    /// overshoot together.
    held: Mutex<HashMap<String, Held>>,
    pub driver: Arc<dyn driver::Driver>,
    /// The same driver when it is the simulated one (fault injection).
    pub fake: Option<Arc<driver::FakeDriver>>,
    /// The same driver when it is the QEMU one.
    pub qemu: Option<Arc<crate::virt::qemu::QemuDriver>>,
    /// The agents that registered through the agent API (set when this
    /// process serves it): the driver of a host one of them serves.
    pub agents: std::sync::OnceLock<Arc<crate::agent_api::remote::Agents>>,
    /// Console tokens handed out by remote-consoles.
    pub console_tokens: Table<consoles::ConsoleToken>,
    /// The simulated compute hosts, their services and resource claims.
    pub fleet: fleet::Fleet,
    pub server_groups: Table<server_groups::ServerGroup>,
    /// Server group memberships, one row per group and server.
    pub group_members: Table<server_groups::Member>,
    /// Servers' tags, one row per server and tag (see [`tags`]).
    pub tags: Table<tags::Tag>,
    /// Per-project quota overrides (see [`Compute::effective_quota`]).
    pub quotas: Table<quotas::ProjectQuota>,
    pub migrations: Table<migrate::Migration>,
    /// The operations in flight, one row per server running one (see
    /// [`operations`]).
    pub operations: Table<operations::Operation>,
    next_migration_id: IdCounter,
    /// Requests to running live migrations.
    pub live: live_migration::LiveControls,
    quota_defaults: crate::config::QuotaDefaults,
    /// This process's lease-owner name: the `op_owner` its writes record
    /// (see [`owners`]).
    owner: String,
    store: Arc<Store>,
}

impl Compute {
    /// The driver of the guests on `host`: the agent's when an agent
    /// registered that host through the agent API, else this process's.
    pub fn driver_for(&self, host: Option<&str>) -> Arc<dyn driver::Driver> {
        host.zip(self.agents.get())
            .and_then(|(h, agents)| agents.driver(h))
            .unwrap_or_else(|| self.driver.clone())
    }

    pub fn load(store: &Arc<Store>, cfg: &Config) -> Result<Self, String> {
        // Every instance row in memory, or (`instance_cache` > 0) only the
        // rows used last, the others read from the database.
        let instances = match cfg.instance_cache {
            0 => servers::with_list_indexes(Table::load("instance", store)?),
            n => Table::load_cached("instance", store, n)?,
        };
        let (actions, action_events) = action_events::load(store, cfg.instance_cache)?;
        let counters = Table::<StoredCounter>::load("id_counter", store)?;
        let keypairs: Table<Keypair> = Table::load("keypair", store)?;
        // Instance and keypair ids come from one counter.
        let max_instance = if instances.is_cached() {
            store
                .select("SELECT max(instance_id) FROM instances", Vec::new())
                .map_err(|f| f.message)?
                .first()
                .and_then(|r| r.first())
                .and_then(Cell::int)
                .unwrap_or(0)
        } else {
            instances.all().iter().map(|i| i.id).max().unwrap_or(0)
        };
        let max_id = keypairs
            .all()
            .iter()
            .map(|k| k.id)
            .chain([max_instance])
            .max()
            .unwrap_or(0);
        let (driver, fake, qemu): (Arc<dyn driver::Driver>, _, _) = match cfg.driver {
            crate::config::DriverKind::Fake => {
                let fake = Arc::new(driver::FakeDriver::load(cfg.sim_latency_ms, store)?);
                (fake.clone(), Some(fake), None)
            }
            crate::config::DriverKind::Qemu => {
                let q = Arc::new(crate::virt::qemu::QemuDriver::new(
                    cfg.qemu.clone(),
                    &cfg.data_dir,
                ));
                (q.clone(), None, Some(q))
            }
        };
        let migrations: Table<migrate::Migration> = Table::load("migration", store)?;
        let max_migration = migrations.all().iter().map(|m| m.id).max().unwrap_or(0);
        let placed = fleet::placed_instances(store, &instances).map_err(|f| f.message)?;
        let fleet = fleet::Fleet::load(store, cfg, &placed, &migrations.all())?;
        Ok(Compute {
            instances,
            ops_ended: Default::default(),
            flavors: flavors::Flavors::load(store)?,
            keypairs,
            actions,
            action_events,
            next_id: IdCounter::load(store, &counters, "instance", max_id),
            held: Mutex::new(HashMap::new()),
            driver,
            fake,
            qemu,
            agents: std::sync::OnceLock::new(),
            console_tokens: Table::load("console_token", store)?,
            fleet,
            server_groups: Table::load("server_group", store)?,
            group_members: server_groups::members_table(store)?,
            tags: tags::table(store)?,
            quotas: Table::load("quota", store)?,
            migrations,
            operations: Table::load("operation", store)?,
            next_migration_id: IdCounter::load(store, &counters, "migration", max_migration),
            live: live_migration::LiveControls::load(store)?,
            quota_defaults: cfg.quota.clone(),
            owner: store.owner().to_string(),
            store: store.clone(),
        })
    }

    /// What a project's instance rows that are not deleted hold: walked
    /// in this process's copy, or for a cached copy counted by the
    /// database once this process's queued writes are committed (so a
    /// server this process shows as deleted is no longer counted).
    fn counted(&self, project_id: &str) -> Result<Usage, rova_core::Fault> {
        if !self.instances.is_cached() {
            return Ok(self.walked_usage(project_id));
        }
        let rows = self.store.select_settled(
            "SELECT count(*), CAST(coalesce(sum(vcpus), 0) AS BIGINT), \
             CAST(coalesce(sum(memory_mb), 0) AS BIGINT) \
             FROM instances WHERE project_id = ?1 AND deleted = ?2",
            vec![Cell::Text(project_id.to_string()), Cell::Bool(false)],
        )?;
        let row = rows.first();
        let at = |i: usize| row.and_then(|r| r.get(i)).and_then(Cell::int).unwrap_or(0);
        Ok(Usage {
            instances: at(0),
            cores: at(1),
            ram: at(2),
        })
    }

    /// [`Compute::counted`] from a copy that holds every row, by the
    /// project's ordered index.
    fn walked_usage(&self, project_id: &str) -> Usage {
        use std::ops::Bound::Included;
        let mut u = Usage::default();
        let lo: servers::ProjectOrderKey = (
            project_id.to_string(),
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            i64::MIN,
        );
        let hi: servers::ProjectOrderKey = (
            project_id.to_string(),
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
            i64::MAX,
        );
        self.instances.walk(
            servers::BY_PROJECT,
            (Included(lo), Included(hi)),
            false,
            |i| {
                if counts_for_quota(i) {
                    let (cores, ram) = i.quota_resources();
                    u.instances += 1;
                    u.cores += cores;
                    u.ram += ram;
                }
                true
            },
        );
        u
    }

    /// The instances that `cond` (SQL over the instance columns, `?N`
    /// parameters) selects and `keep` keeps: read from the database for a
    /// cached copy, filtered in memory otherwise (`cond` must hold for
    /// every row `keep` keeps).
    pub fn instances_where(
        &self,
        cond: &str,
        params: Vec<Cell>,
        keep: impl Fn(&Instance) -> bool,
    ) -> Result<Vec<Arc<Instance>>, rova_core::Fault> {
        if !self.instances.is_cached() {
            return Ok(self.instances.filter(|i| keep(i)));
        }
        Ok(self
            .instances
            .select(cond, params)?
            .into_iter()
            .filter(|i| keep(i))
            .collect())
    }

    /// Which held servers [`Compute::counted`] did not count: those whose
    /// row is not written (a row in the copy is, unless its write is still
    /// in flight; a cached copy may have given a written row up, so the
    /// database is asked about the others).
    fn held_uncounted(&self, uuids: &[&String]) -> std::collections::HashSet<String> {
        let mut out = std::collections::HashSet::new();
        let mut ask: Vec<&str> = Vec::new();
        for uuid in uuids {
            match self.instances.in_copy(uuid) {
                None if self.instances.in_flight(uuid) => {
                    out.insert(uuid.to_string());
                }
                None if self.instances.is_cached() => ask.push(uuid.as_str()),
                None => {
                    out.insert(uuid.to_string());
                }
                Some(_) if self.instances.in_flight(uuid) && self.instances.is_cached() => {
                    out.insert(uuid.to_string());
                }
                Some(_) => {}
            }
        }
        if !ask.is_empty() {
            let marks: Vec<String> = (1..=ask.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "SELECT id FROM instances WHERE id IN ({})",
                marks.join(", ")
            );
            let params = ask.iter().map(|u| Cell::Text(u.to_string())).collect();
            let written: std::collections::HashSet<String> = self
                .store
                .select(&sql, params)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r.first().and_then(Cell::text).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.extend(
                ask.into_iter()
                    .filter(|u| !written.contains(*u))
                    .map(str::to_string),
            );
        }
        out
    }

    /// Current usage of a project: its rows plus what is held.
    pub fn usage_of(&self, project_id: &str) -> Result<Usage, rova_core::Fault> {
        let mut u = self.counted(project_id)?;
        self.add_held(project_id, &mut u);
        Ok(u)
    }

    /// Adds what is held for `project_id` and not yet a row (read after
    /// the rows: a server whose row lands in between is counted by
    /// neither, and the database's guard catches that rare overshoot;
    /// it is never counted twice).
    fn add_held(&self, project_id: &str, u: &mut Usage) {
        let held = self.held.lock();
        let mine: Vec<&String> = held
            .get(project_id)
            .into_iter()
            .flatten()
            .map(|(u, _)| u)
            .collect();
        let uncounted = self.held_uncounted(&mine);
        for (uuid, (vcpus, ram)) in held.get(project_id).into_iter().flatten() {
            if uncounted.contains(uuid) {
                u.instances += 1;
                u.cores += vcpus;
                u.ram += ram;
            }
        }
    }

    /// Reserves instances of a flavor for a project against its limits:
    /// as many of `min..=max` as [`quotas::instances_allowed`] allows.
    /// Returns the uuids of the servers held, or Nova's 403 quota fault.
    /// Each is given back by [`Compute::release`] once its row is written
    /// (the row counts then) or when it never will be.
    pub fn reserve(
        &self,
        project_id: &str,
        min: u64,
        max: u64,
        vcpus: u32,
        ram: u64,
        limits: &crate::config::QuotaDefaults,
    ) -> Result<Vec<String>, rova_core::Fault> {
        let unlimited = limits.instances < 0 && limits.cores < 0 && limits.ram < 0;
        // Counting is skipped when nothing is limited.
        let mut u = if unlimited {
            Usage::default()
        } else {
            self.counted(project_id)?
        };
        let mut all = self.held.lock();
        let held = all.entry(project_id.to_string()).or_default();
        if !unlimited {
            let mine: Vec<&String> = held.keys().collect();
            let uncounted = self.held_uncounted(&mine);
            for (uuid, (c, r)) in held.iter() {
                if uncounted.contains(uuid) {
                    u.instances += 1;
                    u.cores += c;
                    u.ram += r;
                }
            }
        }
        let n = quotas::instances_allowed(limits, &u, min, max, vcpus, ram)?;
        let uuids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        for id in &uuids {
            held.insert(id.clone(), (i64::from(vcpus), ram as i64));
        }
        Ok(uuids)
    }

    /// What a server moving from flavor `from` to `to` (a resize, or the
    /// revert of one that shrank it: Nova checks that revert's growth as
    /// well) must hold against its project's quota: nothing when it does
    /// not grow; else the growth is checked against the limits now
    /// ([`Compute::check_growth`], Nova's message) and the answer is the
    /// hold to write with the admission, the larger of both flavors, and
    /// the guard the database checks on that write (only on what grows:
    /// a project over a lowered limit may still shrink).
    pub fn hold_growth(
        &self,
        project_id: &str,
        from: &rova_core::model::FlavorSnapshot,
        to: &rova_core::model::FlavorSnapshot,
    ) -> Result<
        (
            Option<rova_core::model::ResizeHold>,
            Option<crate::store::Guard>,
        ),
        rova_core::Fault,
    > {
        let cores = (i64::from(to.vcpus) - i64::from(from.vcpus)).max(0);
        let ram = (to.ram as i64 - from.ram as i64).max(0);
        if cores == 0 && ram == 0 {
            return Ok((None, None));
        }
        let quota = self.effective_quota(project_id);
        self.check_growth(project_id, cores, ram, &quota)?;
        let hold = rova_core::model::ResizeHold {
            vcpus: from.vcpus.max(to.vcpus),
            ram: from.ram.max(to.ram),
        };
        let guard = crate::store::Guard::Quota {
            project: project_id.to_string(),
            instances: -1,
            cores: if cores > 0 { quota.cores } else { -1 },
            ram: if ram > 0 { quota.ram } else { -1 },
        };
        Ok((Some(hold), Some(guard)))
    }

    /// Checks that a resize's growth in cores/RAM fits the project's
    /// limits, counted from this process's copy (Nova's message); the
    /// database checks it again through [`Compute::hold_growth`]'s guard.
    fn check_growth(
        &self,
        project_id: &str,
        cores: i64,
        ram: i64,
        limits: &crate::config::QuotaDefaults,
    ) -> Result<(), rova_core::Fault> {
        let u = self.usage_of(project_id)?;
        if limits.cores >= 0 && cores > 0 && u.cores + cores > limits.cores {
            return Err(rova_core::Fault::forbidden(format!(
                "Quota exceeded for cores: Requested {cores}, but already used {} of {} cores",
                u.cores, limits.cores
            )));
        }
        if limits.ram >= 0 && ram > 0 && u.ram + ram > limits.ram {
            return Err(rova_core::Fault::forbidden(format!(
                "Quota exceeded for ram: Requested {ram}, but already used {} of {} ram",
                u.ram, limits.ram
            )));
        }
        Ok(())
    }

    /// Stops holding servers reserved by [`Compute::reserve`]: their rows
    /// are written (and count from now on), or never will be.
    pub fn release(&self, project_id: &str, uuids: &[String]) {
        let mut all = self.held.lock();
        if let Some(held) = all.get_mut(project_id) {
            for id in uuids {
                held.remove(id);
            }
            if held.is_empty() {
                all.remove(project_id);
            }
        }
    }

    /// This process's lease-owner name (the `op_owner` of the operations
    /// it runs).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Allocates the next migration id.
    pub async fn next_migration_id(&self) -> Result<i64, rova_core::Fault> {
        self.next_migration_id.take().await
    }

    /// Changes one instance atomically (compare-and-swap under the table
    /// lock): `change` sees the current row and may refuse with a `Fault`;
    /// on success the row's `updated_at` becomes `now` and its generation is
    /// bumped. A missing row is Nova's 404. When no operation is left in
    /// flight (no task state, not building) the admin password the last
    /// one handed to the driver is dropped: the guest has it. The row's
    /// `op_owner` follows [`owners::op_owner_after`].
    pub async fn update_instance<R>(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        change: impl FnOnce(&mut Instance) -> Result<R, rova_core::Fault>,
    ) -> Result<(Arc<Instance>, R), rova_core::Fault> {
        let missing = || rova_core::Fault::instance_not_found(id);
        let change = self.stamped(now, None, change);
        self.instances.update(id, missing, change).await
    }

    /// [`Compute::update_instance`] for the write that marks a server
    /// deleted: it leaves its server groups and loses its tags in the same
    /// transaction (as Nova's instance destroy removes its group
    /// memberships and tags), so a deleted server never counts against a
    /// group's member quota.
    pub async fn update_instance_leaving_groups<R>(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        change: impl FnOnce(&mut Instance) -> Result<R, rova_core::Fault>,
    ) -> Result<(Arc<Instance>, R), rova_core::Fault> {
        let missing = || rova_core::Fault::instance_not_found(id);
        let change = self.stamped(now, None, change);
        let (queued, written) = {
            let mut g = crate::store::Group::new();
            let staged = g.update(&self.instances, id, missing, change, None);
            let staged = staged.and_then(|(i, r)| {
                g.with(&self.group_members, |view| {
                    for grp in &i.server_groups {
                        let member = format!("{grp}/{}", i.uuid);
                        if view.get(&member).is_some() {
                            view.delete(&member);
                        }
                    }
                    Ok(())
                })?;
                g.with(&self.tags, |view| {
                    view.delete_found(tags::BY_SERVER, &i.uuid);
                    Ok(())
                })?;
                Ok((i, r))
            });
            match staged {
                Ok(w) => (g.queue(), w),
                Err(e) => return Err(e),
            }
        };
        queued?.outcome().await?;
        Ok(written)
    }

    /// [`Compute::update_instance`] that also records the instance action
    /// `log` (for the server as changed), with the event it starts with,
    /// in the same transaction: the state change, its action's row and
    /// the event's row are made together or not at all, and `guard` (if
    /// any) is checked on the instance row in it.
    pub async fn update_instance_logged<R>(
        &self,
        id: &str,
        ctx: &crate::http::Ctx,
        now: chrono::DateTime<chrono::Utc>,
        log: actions::Logged,
        guard: Option<crate::store::Guard>,
        change: impl FnOnce(&mut Instance) -> Result<R, rova_core::Fault>,
    ) -> Result<(Arc<Instance>, R), rova_core::Fault> {
        let along = Along { guard, ports: None };
        self.update_instance_along(id, ctx, now, log, along, change)
            .await
    }

    /// [`Compute::update_instance_logged`] that also writes `along`'s
    /// port rows in the same transaction (a port written, or deleted when
    /// `None`): an interface attached or detached together with the
    /// server's record of it.
    pub async fn update_instance_along<R>(
        &self,
        id: &str,
        ctx: &crate::http::Ctx,
        now: chrono::DateTime<chrono::Utc>,
        log: actions::Logged,
        along: Along<'_>,
        change: impl FnOnce(&mut Instance) -> Result<R, rova_core::Fault>,
    ) -> Result<(Arc<Instance>, R), rova_core::Fault> {
        let Along { guard, ports } = along;
        let change = self.stamped(now, Some(log.action), change);
        // The action takes the server's next place; the server's own
        // compare-and-swap keeps two writers from taking the same one.
        let (key, seq) = actions::next_row(&self.actions, id);
        let queued = {
            let mut g = crate::store::Group::new();
            let missing = || rova_core::Fault::instance_not_found(id);
            g.update(&self.instances, id, missing, change, guard)
                .and_then(|(inst, r)| {
                    let mut action = log.entry(ctx, &inst, now);
                    action.seq = seq;
                    // Its events are stored as rows, not in its document.
                    let events = std::mem::take(&mut action.events);
                    g.with(&self.actions, |v| {
                        v.put(&key, action);
                        Ok(())
                    })?;
                    if !events.is_empty() {
                        g.with(&self.action_events, |v| {
                            action_events::put_first(v, &key, id, &events);
                            Ok(())
                        })?;
                    }
                    if let Some((table, ports)) = ports {
                        g.with(table, |v| {
                            for (pid, port) in ports {
                                v.write(&pid, port);
                            }
                            Ok(())
                        })?;
                    }
                    Ok((inst, r))
                })
                .and_then(|(inst, r)| g.queue().map(|q| (inst, r, q)))
        };
        let (inst, r, q) = queued?;
        q.outcome().await?;
        Ok((inst, r))
    }

    /// `change` followed by [`Compute::stamp`]; `kind` names the action
    /// the write records, if any.
    fn stamped<'a, R>(
        &'a self,
        now: chrono::DateTime<chrono::Utc>,
        kind: Option<&'static str>,
        change: impl FnOnce(&mut Instance) -> Result<R, rova_core::Fault> + 'a,
    ) -> impl FnOnce(&mut Instance) -> Result<R, rova_core::Fault> + 'a {
        move |i: &mut Instance| {
            let before = owners::Before::of(i);
            let r = change(i)?;
            self.stamp(&before, i, now);
            self.follow_operation(&before, i, kind, now);
            Ok(r)
        }
    }

    /// Queues the write of server `i`'s operations row as its write
    /// leaves it ([`operations::next`]), before the server's own write
    /// (this runs under the instance table's lock, before that write is
    /// queued). Nothing is written when the row stays as it is.
    fn follow_operation(
        &self,
        before: &owners::Before,
        i: &Instance,
        kind: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let row = self.operations.get(&i.uuid);
        let next = operations::next(row.as_deref(), before.state(), i, kind, now);
        if next.as_ref() == row.as_deref() {
            return;
        }
        if let Some(ended) = row.filter(|r| next.as_ref().is_none_or(|n| n.op_id != r.op_id)) {
            let outcome = if i.vm_state == VmState::Error {
                "error"
            } else {
                "success"
            };
            self.ops_ended.add(&[&ended.kind, outcome]);
        }
        if let Err(f) = self.operations.write_behind(&i.uuid, next) {
            tracing::error!(server = %i.uuid, "writing its operation: {}", f.message);
        }
    }

    /// What every instance write does after its change: the admin
    /// password goes once no operation is in flight, the operation's owner
    /// follows, a resize's quota hold goes once the server is out of the
    /// resize, and the row's time and generation move on.
    fn stamp(&self, before: &owners::Before, i: &mut Instance, now: chrono::DateTime<chrono::Utc>) {
        if i.task_state.is_none() && i.vm_state != VmState::Building {
            i.admin_pass = None;
        }
        i.op_owner = owners::op_owner_after(before, i, &self.owner);
        if !i.resizing() {
            i.resize_hold = None;
        }
        i.updated_at = now;
        i.generation += 1;
    }

    /// The database guard that keeps a project's instance rows within its
    /// quota (none when nothing is limited).
    pub fn quota_guard(&self, project_id: &str) -> Option<crate::store::Guard> {
        let q = self.effective_quota(project_id);
        (q.instances >= 0 || q.cores >= 0 || q.ram >= 0).then(|| crate::store::Guard::Quota {
            project: project_id.to_string(),
            instances: q.instances,
            cores: q.cores,
            ram: q.ram,
        })
    }

    /// Allocates the next internal instance id.
    pub async fn next_instance_id(&self) -> Result<i64, rova_core::Fault> {
        self.next_id.take().await
    }
}

/// What a logged server write carries along in its transaction
/// ([`Compute::update_instance_along`]): a guard on the server's row, and
/// port rows to write (`None`: delete).
#[derive(Default)]
pub struct Along<'a> {
    pub guard: Option<crate::store::Guard>,
    pub ports: Option<PortWrites<'a>>,
}

/// Rows of the ports table to write with a server's write (`None`:
/// delete the port).
pub type PortWrites<'a> = (
    &'a Table<crate::network::Port>,
    Vec<(String, Option<crate::network::Port>)>,
);

/// A stored id counter: the next id it hands out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StoredCounter {
    pub next: i64,
}

/// Hands out integer ids that are never reused, even after the row holding
/// the highest one is deleted, the service restarts, or several processes
/// share the database: ids come from the database's counter row of this
/// name, [`ID_BLOCK`] at a time.
struct IdCounter {
    name: &'static str,
    /// Reserved and not yet handed out: `next..end`.
    block: Mutex<(i64, i64)>,
    /// Held while a new block is fetched, so one task fetches it and the
    /// others wait for it instead of each fetching a block of its own.
    refill: tokio::sync::Mutex<()>,
    /// No id below this (the highest in use when the counter began, plus
    /// one, or what the counter row of an older release said).
    floor: i64,
    store: Arc<Store>,
}

/// How many ids a process reserves at once.
const ID_BLOCK: i64 = 32;

impl IdCounter {
    /// Starts past both the stored counter and the highest id in use.
    fn load(
        store: &Arc<Store>,
        stored: &Table<StoredCounter>,
        name: &'static str,
        max_in_use: i64,
    ) -> Self {
        let floor = stored.get(name).map_or(1, |c| c.next).max(max_in_use + 1);
        IdCounter {
            name,
            block: Mutex::new((0, 0)),
            refill: tokio::sync::Mutex::new(()),
            floor,
            store: store.clone(),
        }
    }

    fn next_in_block(&self) -> Option<i64> {
        let mut b = self.block.lock();
        (b.0 < b.1).then(|| {
            b.0 += 1;
            b.0 - 1
        })
    }

    async fn take(&self) -> Result<i64, rova_core::Fault> {
        loop {
            if let Some(id) = self.next_in_block() {
                return Ok(id);
            }
            let _refilling = self.refill.lock().await;
            // Another task may have refilled it while this one waited.
            if let Some(id) = self.next_in_block() {
                return Ok(id);
            }
            let first = self
                .store
                .reserve_ids(self.name, self.floor, ID_BLOCK)
                .await?;
            *self.block.lock() = (first, first + ID_BLOCK);
        }
    }
}

/// The servers a project's creates hold before their rows exist: uuid →
/// (vcpus, ram).
type Held = HashMap<String, (i64, i64)>;

/// Quota usage of one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
}

impl Usage {}

/// Instances that hold quota: not deleted (soft-deleted ones still do).
pub fn counts_for_quota(i: &Instance) -> bool {
    !i.deleted
}
