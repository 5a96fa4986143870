//! The simulated compute fleet: `rova-sim-1` … `rova-sim-N`, each a
//! nova-compute service with one compute node of configured inventory, plus
//! the resource claims (Placement allocations) held on them.
//!
//! Hosts are the `resource_providers` rows (`compute::providers`): each
//! process registers the hosts its configuration names, and follows the
//! rows other processes write. Their services' admin state (disabled,
//! forced down) is persisted in the `compute_service` table and survives a
//! restart. Claims are derived at start-up from the instances (the host
//! each one is on) and from the migrations still holding a source host —
//! derived again once start-up settling (`compute::settle`) has ended what
//! a stop cut short — and from then on changed only under the claim lock
//! ([`Fleet::with_claims`]), which is what makes scheduling atomic in this
//! process: the host states are read, a host is chosen and the claim
//! recorded in one critical section, so concurrent builds cannot
//! double-book a host.
//!
//! Every claim is also an `allocations` row (Placement's allocations):
//! each change is written behind under the claim lock, so the rows change
//! in the order the claims did. A new claim of a build or of a move's
//! destination is written with the database's capacity guard, which
//! counts every process's rows (a move's source hold included), so
//! processes sharing a database cannot over-commit a host together; the
//! book follows the other processes' rows through the change feed.
//! Settling makes the rows of the servers it settles equal to the claims
//! their records imply.
//!
//! This module owns host inventory and claims; choosing a host is
//! `rova_core::scheduler` (pure) driven by `compute::scheduler`.

use super::migrate::Migration;
use crate::config::Config;
use crate::store::{Store, Table};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rova_core::model::Instance;
use rova_core::scheduler::{HostState, Resources, Weights};
use rova_core::states::VmState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The host name of the control services (scheduler, conductor).
pub const CONTROL_HOST: &str = "rova-control";

use super::claims::TxOp;
pub use super::claims::{Claim, ClaimBook, ClaimTx, Held, HostUsage};
pub use super::providers::{hosts_from_config, stable_uuid, HostConfig, Provider};

/// The admin state of one service (Nova's `services` row).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    pub binary: String,
    pub host: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub updated_at: Option<DateTime<Utc>>,
    /// A control service (scheduler, conductor) deleted through the API:
    /// hidden until a process starts again, which registers it anew (as a
    /// restarted Nova service recreates its record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl ServiceRecord {
    pub fn key(binary: &str, host: &str) -> String {
        format!("{binary}@{host}")
    }
}

/// The resources an instance of this flavor takes on its host.
pub fn flavor_resources(f: &rova_core::model::FlavorSnapshot, volume_backed: bool) -> Resources {
    Resources::from_flavor(f.vcpus, f.ram, f.disk, f.ephemeral, f.swap, volume_backed)
}

/// The resources an instance takes with its current flavor.
pub fn instance_resources(i: &Instance) -> Resources {
    flavor_resources(&i.flavor, i.is_volume_backed())
}

/// A consumer whose allocation row is written with a guard, and the guard
/// for the host its claim is on (`None`: no guard there).
pub type Checked<'a> = (&'a str, &'a dyn Fn(&str) -> Option<crate::store::Guard>);

/// One claim as its `allocations` row keeps it (keyed by its consumer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The row's key again: a watcher of the table sees rows, not keys.
    pub consumer: String,
    pub instance_uuid: String,
    pub host: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

impl Allocation {
    fn of(consumer: &str, c: &Claim) -> Self {
        Allocation {
            consumer: consumer.to_string(),
            instance_uuid: c.instance_uuid.clone(),
            host: c.host.clone(),
            vcpus: c.resources.vcpus,
            memory_mb: c.resources.memory_mb,
            disk_gb: c.resources.disk_gb,
        }
    }

    /// Whether this row says what claim `c` holds.
    fn holds(&self, c: &Claim) -> bool {
        self.host == c.host
            && self.instance_uuid == c.instance_uuid
            && self.vcpus == c.resources.vcpus
            && self.memory_mb == c.resources.memory_mb
            && self.disk_gb == c.resources.disk_gb
    }

    fn claim(&self) -> Claim {
        Claim {
            host: self.host.clone(),
            instance_uuid: self.instance_uuid.clone(),
            resources: Resources {
                vcpus: self.vcpus,
                memory_mb: self.memory_mb,
                disk_gb: self.disk_gb,
            },
        }
    }
}

/// Hosts, services and claims.
pub struct Fleet {
    /// The registered hosts: the `resource_providers` rows (other
    /// processes' followed through the change feed).
    providers: Table<Provider>,
    pub services: Table<ServiceRecord>,
    claims: Arc<Mutex<ClaimBook>>,
    /// The claims as rows: written behind every change of `claims`.
    allocations: Table<Allocation>,
    pub weights: Weights,
    /// The services' heartbeats, and whether each is up.
    pub liveness: super::liveness::Liveness,
}

/// Migration statuses during which the source host is still held by the
/// migration (cold moves until confirm/revert, live ones until done, and
/// evacuations until the dead source comes back).
pub const HOLDING_SOURCE: &[&str] = &[
    "migrating",
    "post-migrating",
    "finished",
    "confirming",
    "reverting",
    "queued",
    "preparing",
    "running",
    "done",
];

/// The claims the records imply: every live instance (not offloaded) on
/// its host — or on the destination of a move still in flight — with its
/// current flavor, and every migration that still holds its source.
/// What the claims need of an instance that is not deleted.
#[derive(Debug, Clone)]
pub struct Placed {
    pub uuid: String,
    pub host: Option<String>,
    pub vm_state: VmState,
    pub resources: Resources,
}

impl Placed {
    pub fn of(i: &Instance) -> Placed {
        Placed {
            uuid: i.uuid.clone(),
            host: i.host.clone(),
            vm_state: i.vm_state,
            resources: instance_resources(i),
        }
    }
}

/// The instances that are not deleted, as the claims need them: from
/// the copy when it holds every row, else read from their columns (no
/// document is parsed).
pub fn placed_instances(
    store: &Store,
    instances: &Table<Instance>,
) -> Result<Vec<Placed>, rova_core::Fault> {
    use crate::store::schema::Cell;
    if !instances.is_cached() {
        return Ok(instances
            .filter(|i| !i.deleted)
            .iter()
            .map(|i| Placed::of(i))
            .collect());
    }
    let rows = store.select(
        "SELECT id, host, vm_state, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb, image_ref \
         FROM instances WHERE deleted = ?1",
        vec![Cell::Bool(false)],
    )?;
    let n = |c: Option<&Cell>| c.and_then(Cell::int).unwrap_or(0).max(0) as u64;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let uuid = r.first()?.text()?.to_string();
            Some(Placed {
                uuid,
                host: r.get(1).and_then(Cell::text).map(str::to_string),
                vm_state: r
                    .get(2)
                    .and_then(Cell::text)
                    .and_then(VmState::parse)
                    .unwrap_or(VmState::Error),
                resources: Resources::from_flavor(
                    n(r.get(3)) as u32,
                    n(r.get(4)),
                    n(r.get(5)),
                    n(r.get(6)),
                    n(r.get(7)),
                    r.get(8).and_then(Cell::text).unwrap_or("").is_empty(),
                ),
            })
        })
        .collect())
}

fn derive_claims(instances: &[Placed], migrations: &[Arc<Migration>]) -> ClaimBook {
    let mut claims: HashMap<String, Claim> = HashMap::new();
    // A move in flight before its finish step claimed the destination
    // for the instance; the instance row still names the source.
    let mut dest_of: HashMap<&str, &str> = HashMap::new();
    for m in migrations {
        if matches!(
            m.status.as_str(),
            "migrating" | "post-migrating" | "queued" | "preparing" | "running"
        ) {
            if let Some(d) = m.dest_compute.as_deref() {
                dest_of.insert(m.instance_uuid.as_str(), d);
            }
        }
    }
    for i in instances {
        if i.vm_state == VmState::ShelvedOffloaded {
            continue;
        }
        let Some(host) = dest_of.get(i.uuid.as_str()).copied().or(i.host.as_deref()) else {
            continue;
        };
        claims.insert(
            i.uuid.clone(),
            Claim {
                host: host.to_string(),
                instance_uuid: i.uuid.clone(),
                resources: i.resources,
            },
        );
    }
    let alive: HashMap<&str, &Placed> = instances.iter().map(|i| (i.uuid.as_str(), i)).collect();
    for m in migrations {
        let (Some(src), Some(held)) = (m.source_compute.as_deref(), m.held) else {
            continue;
        };
        if HOLDING_SOURCE.contains(&m.status.as_str())
            && alive.contains_key(m.instance_uuid.as_str())
        {
            claims.insert(
                m.uuid.clone(),
                Claim {
                    host: src.to_string(),
                    instance_uuid: m.instance_uuid.clone(),
                    resources: held.into(),
                },
            );
        }
    }
    let mut book = ClaimBook::default();
    for (consumer, c) in claims {
        book.insert(consumer, c);
    }
    book
}

impl Fleet {
    pub fn load(
        store: &Arc<Store>,
        cfg: &Config,
        instances: &[Placed],
        migrations: &[Arc<Migration>],
    ) -> Result<Self, String> {
        let providers: Table<Provider> = Table::load("resource_provider", store)?;
        // Agents register their own hosts: rows this process does not
        // serve are theirs wherever an agent API listens.
        let sole = !matches!(store.database(), crate::store::Database::Postgres(_))
            && cfg.agent_listen.is_none()
            && cfg.local_hosts;
        let own = hosts_from_config(cfg);
        super::providers::register(&providers, &own, sole)?;
        let names: Vec<String> = own.iter().map(|h| h.name.clone()).collect();
        let liveness = super::liveness::Liveness::load(store, cfg, &names)?;
        let services: Table<ServiceRecord> = Table::load("compute_service", store)?;
        for gone in services.filter(|s| s.deleted && s.host == CONTROL_HOST) {
            let back = ServiceRecord {
                deleted: false,
                ..(*gone).clone()
            };
            services
                .write_behind(&ServiceRecord::key(&back.binary, &back.host), Some(back))
                .map_err(|f| f.message)?;
        }
        let mut book = derive_claims(instances, migrations);
        book.dirty.clear();
        let allocations: Table<Allocation> = if cfg.instance_cache > 0 {
            Table::load_cached("allocation", store, cfg.instance_cache)?
        } else {
            Table::load("allocation", store)?
        };
        let claims = Arc::new(Mutex::new(book));
        // Other processes' claims (and a row the database kept when this
        // process's write of it was refused) come into the book as their
        // rows come into the copy; they are theirs, not written back.
        let follow = Arc::downgrade(&claims);
        allocations.watch(Box::new(move |before, after| {
            let Some(claims) = follow.upgrade() else {
                return;
            };
            let mut book = claims.lock();
            match (before, after) {
                (_, Some(a)) => book.insert(a.consumer.clone(), a.claim()),
                (Some(b), None) => {
                    book.remove(&b.consumer);
                }
                (None, None) => {}
            }
            book.dirty.clear();
        }));
        Ok(Fleet {
            providers,
            services,
            claims,
            allocations,
            weights: Weights::default(),
            liveness,
        })
    }

    /// Replaces every claim by what the records imply (start-up settling,
    /// once interrupted operations have been settled), and makes the
    /// allocation rows of the servers `covers` says are settled equal to
    /// those claims (the rows of servers a live process runs stay its).
    pub fn rebuild_claims(
        &self,
        instances: &[Placed],
        migrations: &[Arc<Migration>],
        covers: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        let mut book = self.claims.lock();
        *book = derive_claims(instances, migrations);
        // The servers another, live, process runs keep the claims its rows
        // say (an operation of theirs may hold what the records do not
        // show yet).
        let theirs: Vec<String> = book
            .claims
            .iter()
            .filter(|(_, c)| !covers(&c.instance_uuid))
            .map(|(k, _)| k.clone())
            .collect();
        for consumer in theirs {
            book.remove(&consumer);
        }
        let stored = self.allocations.rows().map_err(|f| f.message)?;
        let mut stale = Vec::new();
        for (consumer, row) in &stored {
            if !covers(&row.instance_uuid) {
                book.insert(consumer.clone(), row.claim());
            } else if !book.claims.contains_key(consumer) {
                stale.push(consumer.clone());
            }
        }
        // Only the settled claims whose rows differ are written (after a
        // clean stop: none).
        let by_consumer: HashMap<&str, &Allocation> =
            stored.iter().map(|(k, a)| (k.as_str(), &**a)).collect();
        for (consumer, c) in &book.claims {
            if covers(&c.instance_uuid)
                && by_consumer
                    .get(consumer.as_str())
                    .is_none_or(|a| !a.holds(c))
            {
                stale.push(consumer.clone());
            }
        }
        book.dirty = stale;
        self.write_behind(&mut book);
        Ok(())
    }

    /// Writes the allocation rows of the consumers whose claims changed
    /// (under the claim lock, so in the order they changed).
    fn write_behind(&self, book: &mut ClaimBook) {
        self.write_behind_checked(book, None);
    }

    /// [`Fleet::write_behind`], the row of `checked`'s consumer (when it
    /// still has a claim) written with the guard `checked` gives for its
    /// host: that write's outcome, to await.
    fn write_behind_checked(
        &self,
        book: &mut ClaimBook,
        checked: Option<Checked<'_>>,
    ) -> Option<crate::store::Staged> {
        let mut dirty = std::mem::take(&mut book.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let mut staged = None;
        for consumer in dirty {
            let claim = book.claims.get(&consumer);
            let guard = checked
                .filter(|(key, _)| *key == consumer)
                .zip(claim)
                .and_then(|((_, guard_of), c)| guard_of(&c.host));
            let written = match (claim, guard) {
                (Some(c), Some(g)) => self
                    .allocations
                    .write_behind_guarded(&consumer, Allocation::of(&consumer, c), g)
                    .map(|s| staged = Some(s)),
                _ => self
                    .allocations
                    .write_behind(&consumer, claim.map(|c| Allocation::of(&consumer, c))),
            };
            if let Err(f) = written {
                tracing::error!(consumer, "writing an allocation: {}", f.message);
            }
        }
        staged
    }

    /// Every registered host (not being retired), in hypervisor-id order.
    pub fn hosts(&self) -> Vec<HostConfig> {
        super::providers::hosts_of(&self.providers)
    }

    pub fn host(&self, name: &str) -> Option<HostConfig> {
        self.providers
            .get(&super::providers::node_key(name))
            .filter(|p| !p.retiring)
            .map(|p| p.host.clone())
    }

    /// Registers (or re-registers) a host an agent serves, with the
    /// inventory it reports and the allocation ratios of this cloud's
    /// configuration: its `resource_providers` row, written only when it
    /// differs from the stored one. A host keeps the index it was first
    /// given; a new one takes the next free index.
    pub async fn register_agent_host(
        &self,
        cfg: &Config,
        name: &str,
        inv: crate::agent_api::types::Inventory,
        zone: Option<&str>,
        address: &str,
    ) -> Result<HostConfig, rova_core::Fault> {
        let key = super::providers::node_key(name);
        let current = self.providers.get(&key);
        let index = match &current {
            Some(p) => p.host.index,
            None => {
                let top = self
                    .providers
                    .filter(|_| true)
                    .iter()
                    .map(|p| p.host.index)
                    .max()
                    .unwrap_or(0);
                top + 1
            }
        };
        let base = &cfg.sim_host;
        let host = HostConfig {
            index,
            name: name.to_string(),
            availability_zone: zone
                .map(str::to_string)
                .unwrap_or_else(|| base.availability_zone.clone()),
            host_ip: address
                .rsplit_once(':')
                .map_or(address, |(ip, _)| ip)
                .to_string(),
            vcpus: inv.vcpus,
            memory_mb: inv.memory_mb,
            disk_gb: inv.disk_gb,
            cpu_allocation_ratio: base.cpu_allocation_ratio,
            ram_allocation_ratio: base.ram_allocation_ratio,
            disk_allocation_ratio: base.disk_allocation_ratio,
            reserved_memory_mb: base.reserved_host_memory_mb.min(inv.memory_mb / 4),
        };
        let row = Provider::of(&host);
        if current.as_deref() != Some(&row) {
            self.providers.put(&key, row).await?;
        }
        Ok(host)
    }

    /// Takes host `name` out of the fleet (its compute service deleted),
    /// refused with `held()` while anything is allocated on it. Under the
    /// claim lock: a claim of this process on it refuses at once; else the
    /// host leaves the hosts this process schedules onto as its provider
    /// row is written retiring with no capacity, guarded by the node's
    /// capacity, so
    /// the database refuses it while any process's allocation is on the
    /// node and, once made, refuses every later claim there. Then the row
    /// is deleted. Refused, the host is back as it was.
    pub async fn retire(
        &self,
        name: &str,
        held: impl Fn() -> rova_core::Fault,
    ) -> Result<(), rova_core::Fault> {
        let (key, staged) = {
            let claims = self.claims.lock();
            if claims
                .usage
                .get(name)
                .is_some_and(|u| !u.instances.is_empty() || u.vcpus > 0 || u.memory_mb > 0)
            {
                return Err(held());
            }
            let Some(host) = self.host(name) else {
                return Err(rova_core::Fault::not_found(format!(
                    "Compute host {name} could not be found."
                )));
            };
            // The copy takes the row at once: the host leaves this
            // process's scheduling before the claim lock goes.
            let guard = crate::store::Guard::Capacity {
                node: name.to_string(),
            };
            let key = host.node_uuid();
            let staged =
                self.providers
                    .write_behind_guarded(&key, Provider::retiring(&host), guard)?;
            (key, staged)
        };
        // Refused, the copy has the row as stored again: the host is back.
        match staged.outcome().await {
            Ok(()) => self.providers.remove(&key).await.map(drop),
            Err(f) if crate::store::is_capacity_refusal(&f) => Err(held()),
            Err(f) => Err(f),
        }
    }

    /// The zone of hosts not configured otherwise (`default_availability_zone`).
    pub fn default_zone(&self) -> String {
        self.hosts()
            .first()
            .map(|h| h.availability_zone.clone())
            .unwrap_or_else(|| "nova".into())
    }

    /// Every availability zone with at least one host, sorted.
    pub fn zones(&self) -> Vec<String> {
        let mut z: Vec<String> = self
            .hosts()
            .iter()
            .map(|h| h.availability_zone.clone())
            .collect();
        z.sort();
        z.dedup();
        z
    }

    pub fn has_zone(&self, zone: &str) -> bool {
        self.hosts().iter().any(|h| h.availability_zone == zone)
    }

    /// The stored admin state of a service, or the default (enabled, up).
    pub fn service(&self, binary: &str, host: &str) -> ServiceRecord {
        self.services
            .get(&ServiceRecord::key(binary, host))
            .map(|s| (*s).clone())
            .unwrap_or_else(|| ServiceRecord {
                binary: binary.into(),
                host: host.into(),
                ..Default::default()
            })
    }

    /// Nova's `service_is_up` for a host's nova-compute: not forced down,
    /// and its last heartbeat within `service_down_time`.
    pub fn compute_up(&self, host: &str) -> bool {
        self.liveness.is_up(&self.service("nova-compute", host))
    }

    /// Nova's `service_is_up` for any service record.
    pub fn service_up(&self, svc: &ServiceRecord) -> bool {
        self.liveness.is_up(svc)
    }

    /// Nova's `host_status` for a server on `host`: DOWN when the compute
    /// service is forced down, MAINTENANCE when disabled, UP while its
    /// heartbeat is current, else UNKNOWN; "" without a host.
    pub fn host_status(&self, host: Option<&str>) -> &'static str {
        match host {
            None => "",
            Some(h) => {
                let svc = self.service("nova-compute", h);
                let up = self.liveness.is_up(&svc);
                rova_core::liveness::host_status(svc.forced_down, svc.disabled, up)
            }
        }
    }

    /// The service's `updated_at`: the later of its last heartbeat and
    /// its last admin change (Nova's record is updated by both).
    pub fn heartbeat(&self, svc: &ServiceRecord) -> Option<DateTime<Utc>> {
        let seen = self.liveness.last_seen(&svc.binary, &svc.host);
        match (seen, svc.updated_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn states_from(&self, book: &ClaimBook) -> Vec<HostState> {
        self.hosts()
            .iter()
            .map(|h| {
                let svc = self.service("nova-compute", &h.name);
                let used = book.usage.get(&h.name);
                HostState {
                    host: h.name.clone(),
                    availability_zone: h.availability_zone.clone(),
                    host_ip: h.host_ip.clone(),
                    hypervisor_type: "fake".into(),
                    service_up: self.liveness.is_up(&svc),
                    service_disabled: svc.disabled,
                    vcpus: h.vcpus,
                    vcpus_used: used.map_or(0, |u| u.vcpus),
                    cpu_allocation_ratio: h.cpu_allocation_ratio,
                    memory_mb: h.memory_mb,
                    instance_memory_mb: used.map_or(0, |u| u.memory_mb),
                    reserved_memory_mb: h.reserved_memory_mb,
                    ram_allocation_ratio: h.ram_allocation_ratio,
                    local_gb: h.disk_gb,
                    local_gb_used: used.map_or(0, |u| u.disk_gb),
                    disk_allocation_ratio: h.disk_allocation_ratio,
                    instances: used.map(|u| u.instances.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The current state of every host.
    pub fn host_states(&self) -> Vec<HostState> {
        let claims = self.claims.lock();
        self.states_from(&claims)
    }

    /// Runs `f` with the host states and the claims under the claim lock:
    /// whatever `f` decides and records is atomic with what it read. The
    /// changes `f` makes are applied once the host states (which share the
    /// per-host instance sets) are dropped, so no set is copied.
    pub fn with_claims<R>(&self, f: impl FnOnce(&[HostState], &mut ClaimTx<'_>) -> R) -> R {
        self.with_claims_checked(None, f).0
    }

    /// [`Fleet::with_claims`], the allocation row of consumer `checked.0`
    /// written with the guard `checked.1` gives for its host (the
    /// database's capacity check, every process's rows counted): that
    /// write's outcome, to await. A refused row leaves the claim book as
    /// the database has it (the claim gone).
    pub fn with_claims_checked<R>(
        &self,
        checked: Option<Checked<'_>>,
        f: impl FnOnce(&[HostState], &mut ClaimTx<'_>) -> R,
    ) -> (R, Option<crate::store::Staged>) {
        let mut book = self.claims.lock();
        let states = self.states_from(&book);
        let (r, ops) = {
            let mut tx = ClaimTx {
                book: &book,
                ops: Vec::new(),
            };
            let r = f(&states, &mut tx);
            (r, tx.ops)
        };
        drop(states);
        for op in ops {
            match op {
                TxOp::Insert(consumer, c) => book.insert(consumer, c),
                TxOp::Remove(consumer) => {
                    book.remove(&consumer);
                }
            }
        }
        let staged = self.write_behind_checked(&mut book, checked);
        (r, staged)
    }

    /// Derives again the claims of some consumers from the records that
    /// `read` returns (the instances, their migrations, and every consumer
    /// to settle: a consumer the records give no claim loses its own). The
    /// records are read under the claim lock, so a release that follows its
    /// record's write (a confirm, a delete) can never be undone by a
    /// derivation from the records before that write.
    pub fn rederive(
        &self,
        read: impl FnOnce() -> Result<(Vec<Placed>, Vec<Arc<Migration>>, Vec<String>), String>,
    ) -> Result<(), String> {
        let mut book = self.claims.lock();
        let (placed, migrations, consumers) = read()?;
        let derived = derive_claims(&placed, &migrations);
        for c in consumers {
            match derived.claims.get(&c) {
                Some(claim) => book.insert(c, claim.clone()),
                None => {
                    book.remove(&c);
                }
            }
        }
        self.write_behind(&mut book);
        Ok(())
    }

    /// Drops one consumer's claim.
    pub fn release(&self, consumer: &str) -> Option<Claim> {
        let mut book = self.claims.lock();
        let gone = book.remove(consumer);
        self.write_behind(&mut book);
        gone
    }

    /// Drops every claim held for an instance (its own and its migrations').
    pub fn release_instance(&self, instance_uuid: &str) {
        let mut book = self.claims.lock();
        let consumers: Vec<String> = book
            .by_instance
            .get(instance_uuid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for c in consumers {
            book.remove(&c);
        }
        self.write_behind(&mut book);
    }

    /// Moves a claim to another consumer (Nova's allocation swap), replacing
    /// what that consumer held.
    pub fn transfer(&self, from: &str, to: &str) -> bool {
        let mut claims = self.claims.lock();
        let moved = match claims.remove(from) {
            Some(c) => {
                claims.remove(to);
                claims.insert(to.to_string(), c);
                true
            }
            None => false,
        };
        self.write_behind(&mut claims);
        moved
    }

    /// The claim of one consumer.
    pub fn claim_of(&self, consumer: &str) -> Option<Claim> {
        self.claims.lock().claims.get(consumer).cloned()
    }

    /// Running instances per host (distinct instance uuids).
    pub fn instances_on(&self, host: &str) -> Vec<String> {
        let book = self.claims.lock();
        book.usage
            .get(host)
            .map(|u| u.instances.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_uuids() {
        let a = stable_uuid("x");
        assert_eq!(a, stable_uuid("x"));
        assert_ne!(a, stable_uuid("y"));
        assert!(rova_core::validate::fields::is_uuid_like(&a));
    }

    #[test]
    fn hosts_and_overrides() {
        let mut cfg = Config::new("/tmp/x".into(), "127.0.0.1:0".parse().unwrap());
        cfg.sim_hosts = 3;
        let (name, o) = crate::config::SimHostOverride::parse(
            "rova-sim-2:vcpus=4,ram_mb=2048,az=az2,ip=192.168.5.5",
        )
        .unwrap();
        cfg.sim_host_overrides.insert(name, o);
        let hosts = hosts_from_config(&cfg);
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0].name, "rova-sim-1");
        assert_eq!(hosts[1].vcpus, 4);
        assert_eq!(hosts[1].memory_mb, 2048);
        assert_eq!(hosts[1].availability_zone, "az2");
        assert_eq!(hosts[1].host_ip, "192.168.5.5");
        assert_eq!(hosts[2].vcpus, 16);
        assert!(crate::config::SimHostOverride::parse("nohost").is_err());
        assert!(crate::config::SimHostOverride::parse("h:bogus=1").is_err());
        assert!(crate::config::SimHostOverride::parse("h:vcpus=x").is_err());
    }
}
