//! Which process runs which server's operation, and what happens to the
//! operations of a process that died.
//!
//! Several `rova serve` processes may share one database. Each one, from
//! before it settles at start until it stops, holds the lease
//! `process/<owner>` ([`LEASE_TTL`], renewed every [`RENEW_EVERY`]; given
//! up on a clean stop): holding it is what "alive" means. A process that
//! stops without giving it up (SIGKILL, power loss) is dead once the
//! lease lapses. On SQLite, where one process serves a database at a time
//! (the store's `flock`), a lease held by another OS process is a dead
//! one's too, so a restart after a crash settles at once.
//!
//! Every server record says which process runs the operation in flight on
//! it (`Instance::op_owner`, kept by [`op_owner_after`] on every write
//! through `Compute::update_instance`, and set at create): the process
//! that started (or took over) the build, delete or action, None when no
//! operation is in flight.
//!
//! Settling (`compute::settle`) is scoped by a [`Settling`]:
//! - at start, the servers with no owner or a dead one are settled as the
//!   restart table says (builds and deletes resumed, interrupted actions
//!   cleared or retried, with their migrations, stray ports and
//!   unfinished snapshot images); a server a live process is working on is
//!   left alone, with its ports, migrations and images;
//! - while running, a takeover duty (every [`TAKEOVER_EVERY`], in the one
//!   process holding lease [`TAKEOVER_LEASE`]) finds servers whose owner is
//!   another, dead, process and settles exactly those the same way.
//!
//! Every settling write re-checks, in its compare-and-swap closure, that
//! the server still has the owner it was found with ([`Settling::still`]),
//! and a build, delete or retried action is only resumed after a write
//! that makes this process its owner succeeded ([`Settling::claim`]), so two
//! processes never both resume one operation. Which servers a settling
//! covers is the pure [`settles`].

use crate::app::App;
use rova_core::model::Instance;
use rova_core::states::{TaskState, VmState};
use rova_core::Fault;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Lease names of live processes start with this.
pub const PROCESS_PREFIX: &str = "process/";
/// How long a process lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a process renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);
/// The lease of the process running the takeover duty.
pub const TAKEOVER_LEASE: &str = "takeover";
/// How often the takeover duty looks for dead processes' servers.
pub const TAKEOVER_EVERY: Duration = Duration::from_secs(3);

/// The liveness lease of process `owner`.
pub fn lease_name(owner: &str) -> String {
    format!("{PROCESS_PREFIX}{owner}")
}

/// Whether an operation is in flight on a server: a task state, a build,
/// (a delete in progress is task state `deleting`).
pub fn in_flight(i: &Instance) -> bool {
    state_in_flight(i.task_state, i.vm_state)
}

/// [`in_flight`] of a record in this task and vm state.
pub fn state_in_flight(task: Option<TaskState>, vm: VmState) -> bool {
    task.is_some() || vm == VmState::Building
}

/// What [`op_owner_after`] needs of a record before a write.
pub struct Before {
    task: Option<TaskState>,
    vm: VmState,
    owner: Option<String>,
}

impl Before {
    /// The `(task state, vm state)` the record had.
    pub fn state(&self) -> (Option<TaskState>, VmState) {
        (self.task, self.vm)
    }

    pub fn of(i: &Instance) -> Before {
        Before {
            task: i.task_state,
            vm: i.vm_state,
            owner: i.op_owner.clone(),
        }
    }
}

/// The `op_owner` a record gets from a write by process `me` (pure):
/// None when no operation is left in flight; what the write set, when it
/// set one itself (a takeover's claim); `me` when the write started or
/// moved an operation (its task or vm state changed) or the operation had
/// no owner; otherwise unchanged — a write beside an operation (metadata,
/// a lock, a tag) does not take it from the process running it.
pub fn op_owner_after(before: &Before, i: &Instance, me: &str) -> Option<String> {
    if !in_flight(i) {
        return None;
    }
    if i.op_owner != before.owner {
        return i.op_owner.clone();
    }
    let moved = before.task != i.task_state || before.vm != i.vm_state;
    if moved || i.op_owner.is_none() {
        return Some(me.to_string());
    }
    i.op_owner.clone()
}

/// When settling happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// At start, before serving.
    Start,
    /// While running: a dead process's servers.
    Takeover,
}

/// Which processes are alive, as seen once.
pub struct Liveness {
    me: String,
    /// Holders of unexpired `process/` leases.
    live: HashSet<String>,
    /// One OS process serves the database at a time (SQLite).
    single_process: bool,
}

/// The OS process id in a lease-owner name (`<pid>/<random>`).
fn pid_of(owner: &str) -> Option<u32> {
    owner.split('/').next().and_then(|p| p.parse().ok())
}

impl Liveness {
    pub fn new(me: &str, live: impl IntoIterator<Item = String>, single_process: bool) -> Self {
        Liveness {
            me: me.to_string(),
            live: live.into_iter().collect(),
            single_process,
        }
    }

    /// Reads the `process/` leases from the database.
    pub async fn read(app: &App) -> Result<Liveness, Fault> {
        let held = app.store.leases_held(PROCESS_PREFIX).await?;
        let live = held
            .into_iter()
            .filter(|(name, holder)| *name == lease_name(holder))
            .map(|(_, holder)| holder);
        let single = matches!(app.store.database(), crate::store::Database::Sqlite(_));
        Ok(Liveness::new(app.store.owner(), live, single))
    }

    /// Whether process `owner` is alive: this one is; another holds its
    /// lease, unless it is known dead — on a database one OS process
    /// serves, one of another OS process (it can only have died); one of
    /// this OS process whose [`Life`] ended.
    pub fn alive(&self, owner: &str) -> bool {
        if owner == self.me {
            return true;
        }
        let here = pid_of(owner) == pid_of(&self.me);
        if self.single_process && !here {
            return false;
        }
        if here && stopped_here().lock().contains(owner) {
            return false;
        }
        self.live.contains(owner)
    }
}

/// Whether a settling in `scope` covers server `i` (pure): at start, one
/// whose operation has no owner or a dead one; in a takeover, a server
/// with an operation in flight whose owner is another, dead, process.
/// Never one a live process (this one included) is running.
pub fn settles(scope: Scope, i: &Instance, live: &Liveness) -> bool {
    match (scope, i.op_owner.as_deref()) {
        (Scope::Start, None) => true,
        (Scope::Takeover, None) => false,
        (Scope::Start, Some(o)) => !live.alive(o),
        (Scope::Takeover, Some(o)) => !i.deleted && in_flight(i) && !live.alive(o),
    }
}

/// The servers one settling covers. Those with an operation in flight (or
/// an owner) are kept with the owner they were found with; at start the
/// others are covered unless a live process runs them, so the many idle
/// servers of a big cloud cost nothing.
pub struct Settling {
    pub scope: Scope,
    found: HashMap<String, Option<String>>,
    /// At start: the servers live processes run.
    left: HashSet<String>,
}

impl Settling {
    /// The settling decided from the records and leases now.
    pub async fn decide(app: &App, scope: Scope) -> Result<Settling, Fault> {
        let live = Liveness::read(app).await?;
        let mut found = HashMap::new();
        let mut left = HashSet::new();
        let candidates = app.compute.instances_where(
            "task_state IS NOT NULL OR vm_state = ?1 OR op_owner IS NOT NULL",
            vec![crate::store::schema::Cell::Text(
                VmState::Building.as_str().to_string(),
            )],
            |i| in_flight(i) || i.op_owner.is_some(),
        )?;
        for i in candidates {
            if settles(scope, &i, &live) {
                found.insert(i.uuid.clone(), i.op_owner.clone());
            } else if scope == Scope::Start {
                left.insert(i.uuid.clone());
            }
        }
        Ok(Settling { scope, found, left })
    }

    /// Whether no server with an operation in flight is covered.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The covered servers that have an operation in flight.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.found.keys().map(String::as_str)
    }

    /// Whether server `uuid` — or what belongs to it: a port bound to it,
    /// an image made from it, its migrations — is settled. At start that
    /// includes a server that is gone.
    pub fn covers(&self, uuid: &str) -> bool {
        self.found.contains_key(uuid) || (self.scope == Scope::Start && !self.left.contains(uuid))
    }

    /// Inside a settling write's closure: whether the record still has the
    /// owner it was found with (no other process settled it, or started
    /// an operation on it, meanwhile).
    pub fn still(&self, i: &Instance) -> bool {
        match self.found.get(&i.uuid) {
            Some(owner) => *owner == i.op_owner,
            None => self.covers(&i.uuid) && i.op_owner.is_none(),
        }
    }

    /// Makes this process the owner of the operation in flight on `uuid`
    /// before it is resumed: true when the write landed (the record still
    /// had the owner it was found with and an operation in flight).
    pub async fn claim(&self, app: &App, uuid: &str) -> bool {
        let me = app.compute.owner().to_string();
        let now = app.clock.now();
        app.compute
            .update_instance(uuid, now, |i| {
                if !self.still(i) || !in_flight(i) {
                    return Err(Fault::conflict("settled by another process"));
                }
                i.op_owner = Some(me);
                Ok(())
            })
            .await
            .is_ok()
    }
}

/// Owners in this OS process whose [`Life`] ended (dropped or stopped):
/// dead, whatever their lease still says — this process knows.
fn stopped_here() -> &'static parking_lot::Mutex<HashSet<String>> {
    static STOPPED: std::sync::OnceLock<parking_lot::Mutex<HashSet<String>>> =
        std::sync::OnceLock::new();
    STOPPED.get_or_init(Default::default)
}

/// This process's liveness lease and takeover duty, for its whole life:
/// dropping it ends both loops (the lease then lapses) and marks the owner
/// dead for stores of this OS process; [`Stopper::stop`] also gives the
/// leases up.
pub struct Life(Arc<LifeInner>);

/// Stops a [`Life`] cleanly (for the task that serves until a signal).
#[derive(Clone)]
pub struct Stopper(Arc<LifeInner>);

struct LifeInner {
    app: Arc<App>,
    tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl LifeInner {
    /// Marks the owner stopped and ends the loops; the handles, to wait on.
    fn halt(&self) -> Vec<tokio::task::JoinHandle<()>> {
        stopped_here()
            .lock()
            .insert(self.app.store.owner().to_string());
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        tasks
    }

    /// Waits for the loops `halt` ended, then gives the leases up.
    async fn release(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        for t in tasks {
            let _ = t.await;
        }
        let store = &self.app.store;
        for name in [lease_name(store.owner()), TAKEOVER_LEASE.to_string()] {
            if let Err(e) = store.release_lease(&name).await {
                tracing::warn!("giving up {name}: {}", e.message);
            }
        }
    }
}

/// Dropped: the loops end at once, and the leases are given up in the
/// background when a runtime is still there to do it (else they lapse).
impl Drop for Life {
    fn drop(&mut self) {
        let tasks = self.0.halt();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let inner = self.0.clone();
            rt.spawn(async move { inner.release(tasks).await });
        }
    }
}

/// Takes this process's lease (before anything is settled) and starts
/// renewing it; the takeover duty starts with [`Life::start_takeover`].
pub async fn start(app: &Arc<App>) -> Result<Life, String> {
    let name = lease_name(app.store.owner());
    match app.store.acquire_lease(&name, LEASE_TTL).await {
        Ok(true) => {}
        Ok(false) => return Err(format!("lease {name} is held by another process")),
        Err(e) => return Err(e.message),
    }
    let a = app.clone();
    let renew = tokio::spawn(async move {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            match a.store.acquire_lease(&name, LEASE_TTL).await {
                Ok(true) => {}
                Ok(false) => tracing::error!("lease {name} was taken by another process"),
                Err(e) => tracing::warn!("renewing {name}: {}", e.message),
            }
        }
    });
    Ok(Life(Arc::new(LifeInner {
        app: app.clone(),
        tasks: parking_lot::Mutex::new(vec![renew]),
    })))
}

impl Life {
    /// Starts the takeover duty: every [`TAKEOVER_EVERY`], take or renew
    /// [`TAKEOVER_LEASE`] and, if held, take over dead processes' servers.
    pub fn start_takeover(&self) {
        let app = self.0.app.clone();
        let duty = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TAKEOVER_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                match app
                    .store
                    .acquire_lease(TAKEOVER_LEASE, TAKEOVER_EVERY * 3)
                    .await
                {
                    Ok(true) => {
                        if let Err(e) = crate::compute::settle::take_over(&app).await {
                            tracing::warn!("takeover: {e}");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!("takeover lease: {}", e.message),
                }
            }
        });
        self.0.tasks.lock().push(duty);
    }

    /// The handle a clean stop goes through.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.0.clone())
    }
}

impl Stopper {
    /// A clean stop: both loops end (waited for), then the leases are
    /// given up, so other processes treat this one as gone at once.
    pub async fn stop(&self) {
        let tasks = self.0.halt();
        self.0.release(tasks).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(task: Option<TaskState>, vm: VmState, owner: Option<&str>) -> Instance {
        let mut i: Instance =
            serde_json::from_value(crate::compute::periodic::tests::sample()).expect("sample");
        i.task_state = task;
        i.vm_state = vm;
        i.op_owner = owner.map(str::to_string);
        i
    }

    #[test]
    fn which_servers_a_settling_covers() {
        use Scope::*;
        let me = "100/me";
        let live = Liveness::new(me, ["100/me".into(), "100/other".into()], false);
        let building = |owner| record(Some(TaskState::Spawning), VmState::Building, owner);
        // No owner: settled at start only.
        assert!(settles(Start, &building(None), &live));
        assert!(settles(Start, &record(None, VmState::Active, None), &live));
        assert!(!settles(Takeover, &building(None), &live));
        for scope in [Start, Takeover] {
            // A live process's (this one's, another's): never.
            assert!(!settles(scope, &building(Some(me)), &live));
            assert!(!settles(scope, &building(Some("100/other")), &live));
            // A dead one's (no lease): both.
            assert!(settles(scope, &building(Some("100/dead")), &live));
            assert!(settles(scope, &building(Some("200/dead")), &live));
        }
        // A takeover leaves what has nothing in flight, and deleted rows.
        let idle = record(None, VmState::Active, Some("100/dead"));
        assert!(!settles(Takeover, &idle, &live));
        let mut gone = building(Some("100/dead"));
        gone.deleted = true;
        assert!(!settles(Takeover, &gone, &live));
        // Another OS process holding a lease is alive on a shared
        // database, dead on one only one process serves.
        let shared = Liveness::new(me, ["300/x".into()], false);
        assert!(!settles(Takeover, &building(Some("300/x")), &shared));
        let single = Liveness::new(me, ["300/x".into(), "100/y".into()], true);
        assert!(settles(Takeover, &building(Some("300/x")), &single));
        assert!(!settles(Takeover, &building(Some("100/y")), &single));
        assert!(settles(Takeover, &building(Some("100/z")), &single));
        assert!(!settles(Takeover, &building(Some(me)), &single));
    }

    #[test]
    fn op_owner_follows_the_operation() {
        let me = "1/me";
        let idle = record(None, VmState::Active, None);
        // Starting an action: this process runs it.
        let mut i = idle.clone();
        let b = Before::of(&i);
        i.task_state = Some(TaskState::PoweringOff);
        assert_eq!(op_owner_after(&b, &i, me).as_deref(), Some(me));
        // A write beside another process's operation keeps its owner.
        let mut i = record(Some(TaskState::Spawning), VmState::Building, Some("2/x"));
        let b = Before::of(&i);
        i.metadata.insert("k".into(), "v".into());
        assert_eq!(op_owner_after(&b, &i, me).as_deref(), Some("2/x"));
        // Moving it on (a delete over a build) makes this process its owner.
        let b = Before::of(&i);
        i.task_state = Some(TaskState::Deleting);
        assert_eq!(op_owner_after(&b, &i, me).as_deref(), Some(me));
        // An owner the write set itself (a claim) stands.
        let mut i = record(Some(TaskState::Spawning), VmState::Building, Some("2/x"));
        let b = Before::of(&i);
        i.op_owner = Some("3/y".into());
        assert_eq!(op_owner_after(&b, &i, me).as_deref(), Some("3/y"));
        // An operation without an owner (an old record) gets one.
        let i = record(Some(TaskState::Rebooting), VmState::Active, None);
        assert_eq!(op_owner_after(&Before::of(&i), &i, me).as_deref(), Some(me));
        // Nothing left in flight: no owner.
        let mut i = record(Some(TaskState::Spawning), VmState::Building, Some("2/x"));
        let b = Before::of(&i);
        i.task_state = None;
        i.vm_state = VmState::Active;
        assert_eq!(op_owner_after(&b, &i, me), None);
    }

    #[test]
    fn the_pid_is_read_from_an_owner_name() {
        assert_eq!(pid_of("42/abc"), Some(42));
        assert_eq!(pid_of("x/abc"), None);
    }
}
