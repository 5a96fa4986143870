//! Durable storage.
//!
//! Every resource kind lives in a [`Table`]: the kind's own table in the
//! database ([`schema`] says which table and which of the record's fields
//! are columns of their own; the migrations under `crates/rova/migrations/`
//! create them), and this process's copy of its rows in memory, which
//! lists and reads are served from. The database is SQLite (the embedded
//! default, a file in the data directory, one process) or PostgreSQL
//! ([`Database`], any number of processes).
//!
//! The database is the authority. Every row carries a version token
//! (`gen`); every write is a compare-and-swap on the token this process
//! last saw, so a row another process changed meanwhile is not
//! overwritten: the write is refused and the copy takes the row as the
//! database has it (the caller gets Nova's 409). Invariants that span
//! rows are [`Guard`]s counted inside the transaction that writes
//! (quota, host capacity) or unique keys the database enforces (a fixed
//! IP per subnet). On PostgreSQL each commit announces the rows it wrote
//! and every other process's copy re-reads them (`postgres::listen`).
//!
//! Writes go through a single writer thread that commits whatever is
//! queued in one transaction (group commit) and acknowledges each caller
//! only after the commit, so a 2xx always means the change is durable.
//! Table updates take the table lock, run a closure that may refuse
//! (compare-and-swap on the expected state), change the copy, enqueue the
//! write while still holding the lock (so writes to a row reach the
//! database in order) and then wait for the commit; a refused write puts
//! the copy back to what the database holds before the caller hears.
//!
//! This module owns the database; nothing else opens it. It also makes
//! the data directory private before anything is written there (see
//! [`make_private`]): the database holds password hashes and the directory
//! holds image bytes, keys and clouds.yaml.

mod backend;
mod copy;
mod ordered;
mod postgres;
pub mod schema;
mod sqlite;

pub use backend::{Database, Guard, Refusal};
pub use copy::{copy_all, Copied};
pub use postgres::{create_database, with_database};

use backend::{fresh_gen, Backend, Op, Outcome, Rejection};
use parking_lot::RwLock;
use rova_core::Fault;
use schema::Kind;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// What a queued write's caller hears: the outcome, or why the whole
/// batch failed.
type Ack = Result<Outcome, String>;

struct Write {
    op: Op,
    /// Run on the writer thread right after the commit (before the caller
    /// hears): puts the table's copy in step with the outcome.
    done: Box<dyn FnOnce(&Ack) + Send>,
    ack: Option<oneshot::Sender<Ack>>,
}

/// What the writer sends back for a load: rows `(id, gen, body)` a chunk
/// at a time, then how the read ended.
enum Chunk {
    Rows(Vec<(String, i64, String)>),
    End(Result<(), String>),
}

/// Rows per [`Chunk`], and chunks in flight between the reader and the
/// parsers (so a load never holds more than a few thousand bodies).
const CHUNK_ROWS: usize = 512;
const CHUNKS_IN_FLIGHT: usize = 8;

enum Msg {
    Write(Write),
    Load(&'static Kind, std_mpsc::SyncSender<Chunk>),
    /// Which unexpired leases start with a prefix.
    Held {
        prefix: String,
        reply: oneshot::Sender<Result<Vec<(String, String)>, String>>,
    },
    Lease {
        name: String,
        /// `None` releases the lease.
        ttl_ms: Option<i64>,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Reserves a block of ids.
    Reserve {
        name: String,
        floor: i64,
        n: i64,
        reply: oneshot::Sender<Result<i64, String>>,
    },
}

/// What the change feed needs of a table, whatever its row type.
trait Remote: Send + Sync {
    fn table(&self) -> &'static str;
    /// Takes row `id` as the database has it now (`None`: deleted) unless
    /// this process wrote it since `since` (a [`Store::epoch`] value) or
    /// has a write to it in flight. Whether anything changed.
    fn apply_remote(&self, id: &str, current: Option<(i64, String)>, since: u64) -> bool;
    /// Every row id in the copy.
    fn ids(&self) -> Vec<String>;
}

/// The database and its writer thread.
pub struct Store {
    tx: std_mpsc::Sender<Msg>,
    database: Database,
    /// This store's name as a lease owner: unique per process start.
    owner: String,
    /// The tables loaded from this store, for the change feed.
    tables: RwLock<Vec<Weak<dyn Remote>>>,
    /// Counts this process's writes: a row's copy remembers the count at
    /// its last local write, so the change feed never replaces it with a
    /// read taken before that write.
    epoch: AtomicU64,
}

impl Store {
    /// Opens the embedded default: `<dir>/rova.sqlite`, after making `dir`
    /// private.
    pub fn open(dir: &Path) -> Result<Arc<Store>, String> {
        make_private(dir)?;
        Store::connect(&Database::default_in(dir))
    }

    /// Opens `database` (migrating it), and starts the writer thread that
    /// owns the connection from then on.
    pub fn connect(database: &Database) -> Result<Arc<Store>, String> {
        let (tx, rx) = std_mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), String>>();
        let db = database.clone();
        let owner = format!("{}/{}", std::process::id(), uuid::Uuid::new_v4());
        let me = owner.clone();
        std::thread::Builder::new()
            .name("rova-store-writer".into())
            .spawn(move || {
                let opened: Result<Box<dyn Backend>, String> = match &db {
                    Database::Sqlite(path) => {
                        sqlite::Sqlite::open(path).map(|b| Box::new(b) as Box<dyn Backend>)
                    }
                    Database::Postgres(url) => postgres::Postgres::open(url, &db.redacted(), &me)
                        .map(|b| Box::new(b) as Box<dyn Backend>),
                };
                match opened {
                    Ok(backend) => {
                        let _ = ready_tx.send(Ok(()));
                        writer_loop(backend, rx, &me);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| "the storage writer stopped while opening the database".to_string())??;
        let store = Arc::new(Store {
            tx,
            database: database.clone(),
            owner,
            tables: RwLock::new(Vec::new()),
            epoch: AtomicU64::new(1),
        });
        if let Database::Postgres(url) = database {
            follow(&store, url.clone(), database.redacted())?;
        }
        Ok(store)
    }

    /// The table copies of kind `table` that are still alive.
    fn copies_of(&self, table: &str) -> Vec<Arc<dyn Remote>> {
        self.tables
            .read()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|t| t.table() == table)
            .collect()
    }

    fn register(&self, table: Weak<dyn Remote>) {
        let mut tables = self.tables.write();
        tables.retain(|t| t.strong_count() > 0);
        tables.push(table);
    }

    /// The current value of the local write counter.
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Reserves `n` consecutive ids of counter `name` in the database,
    /// none below `floor`: the first of them. Processes sharing the
    /// database never get the same id.
    pub async fn reserve_ids(&self, name: &str, floor: i64, n: i64) -> Result<i64, Fault> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Reserve {
                name: name.to_string(),
                floor,
                n,
                reply,
            })
            .map_err(|_| Fault::internal("storage writer stopped"))?;
        match rx.await {
            Ok(Ok(first)) => Ok(first),
            Ok(Err(e)) => Err(Fault::internal(format!("id counter {name}: {e}"))),
            Err(_) => Err(Fault::internal("storage writer stopped")),
        }
    }

    /// This store's lease-owner name (process id and a random part).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes or renews lease `name` for `ttl`; whether this store holds it
    /// now. The decision is the database's (one conditional write), so of
    /// several processes sharing a database exactly one holds a lease.
    pub async fn acquire_lease(&self, name: &str, ttl: std::time::Duration) -> Result<bool, Fault> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.lease_msg(name, Some(ttl_ms)).await
    }

    /// Gives lease `name` up if this store holds it.
    pub async fn release_lease(&self, name: &str) -> Result<(), Fault> {
        self.lease_msg(name, None).await.map(drop)
    }

    async fn lease_msg(&self, name: &str, ttl_ms: Option<i64>) -> Result<bool, Fault> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Lease {
                name: name.to_string(),
                ttl_ms,
                reply,
            })
            .map_err(|_| Fault::internal("storage writer stopped"))?;
        match rx.await {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(e)) => Err(Fault::internal(format!("lease {name}: {e}"))),
            Err(_) => Err(Fault::internal("storage writer stopped")),
        }
    }

    /// The unexpired leases whose name starts with `prefix`, as
    /// `(name, owner)` pairs: what the database says now.
    pub async fn leases_held(&self, prefix: &str) -> Result<Vec<(String, String)>, Fault> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Held {
                prefix: prefix.to_string(),
                reply,
            })
            .map_err(|_| Fault::internal("storage writer stopped"))?;
        match rx.await {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(e)) => Err(Fault::internal(format!("leases {prefix}*: {e}"))),
            Err(_) => Err(Fault::internal("storage writer stopped")),
        }
    }

    /// [`Store::leases_held`] from outside a runtime (the CLI's tools).
    pub fn leases_held_blocking(&self, prefix: &str) -> Result<Vec<(String, String)>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Held {
                prefix: prefix.to_string(),
                reply,
            })
            .map_err(|_| "storage writer stopped".to_string())?;
        rx.blocking_recv()
            .map_err(|_| "storage writer stopped".to_string())?
    }

    /// Which database this store keeps its tables in.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Starts reading every row of one kind (used at start-up only); the
    /// rows arrive in chunks while the writer reads on.
    fn load_kind(&self, kind: &'static Kind) -> Result<std_mpsc::Receiver<Chunk>, String> {
        let (out, rows) = std_mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        self.tx
            .send(Msg::Load(kind, out))
            .map_err(|_| "storage writer stopped".to_string())?;
        Ok(rows)
    }

    fn enqueue(&self, op: Op, done: Box<dyn FnOnce(&Ack) + Send>) -> oneshot::Receiver<Ack> {
        let (ack, rx) = oneshot::channel();
        // A send only fails when the writer thread is gone; the receiver
        // then reports the failure below.
        let _ = self.tx.send(Msg::Write(Write {
            op,
            done,
            ack: Some(ack),
        }));
        rx
    }
}

/// Starts the change feed of a PostgreSQL store: a thread that follows
/// the other processes' commits and refreshes this store's tables.
fn follow(store: &Arc<Store>, url: String, shown: String) -> Result<(), String> {
    let weak = Arc::downgrade(store);
    let owner = store.owner.clone();
    std::thread::Builder::new()
        .name("rova-change-feed".into())
        .spawn(move || {
            let marks = std::cell::RefCell::new(HashMap::<&'static str, u64>::new());
            let alive = || weak.upgrade();
            postgres::listen(
                &url,
                &shown,
                &owner,
                &mut |kind| {
                    if let Some(s) = alive() {
                        marks.borrow_mut().insert(kind.table, s.epoch());
                    }
                },
                &mut |kind, id, current| {
                    let Some(store) = alive() else {
                        return false;
                    };
                    let since = marks.borrow().get(kind.table).copied().unwrap_or(0);
                    for t in store.copies_of(kind.table) {
                        t.apply_remote(id, current.clone(), since);
                    }
                    true
                },
                &mut |all: &HashMap<&'static str, HashMap<String, (i64, String)>>, since| {
                    let Some(store) = alive() else {
                        return;
                    };
                    for (table, rows) in all {
                        for t in store.copies_of(table) {
                            for (id, row) in rows {
                                t.apply_remote(id, Some(row.clone()), since);
                            }
                            for id in t.ids() {
                                if !rows.contains_key(&id) {
                                    t.apply_remote(&id, None, since);
                                }
                            }
                        }
                    }
                },
                &|| alive().map(|s| s.epoch()),
            );
        })
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Makes the data directory private to the service user: the process
/// umask becomes 077, so every file and directory created from here on
/// (SQLite's, image bytes, QEMU's disks and sockets, also by child
/// processes) is 0600/0700, and whatever is already under `dir` is
/// tightened to 0700 (directories) and 0600 (files). Symbolic links are
/// not followed.
pub fn make_private(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        // SAFETY: umask only swaps the process's file-creation mask; it
        // cannot fail and touches no memory.
        unsafe {
            libc::umask(0o077);
        }
        tighten(dir).map_err(|e| format!("making {} private: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(unix)]
fn tighten(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Ok(());
    }
    let want = if ft.is_dir() { 0o700 } else { 0o600 };
    if meta.permissions().mode() & 0o7777 != want {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))?;
    }
    if ft.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if let Err(e) = tighten(&entry.path()) {
                // A file that vanished meanwhile (or is not ours) must not
                // stop the start.
                tracing::warn!(path = %entry.path().display(), "cannot make private: {e}");
            }
        }
    }
    Ok(())
}

fn writer_loop(mut backend: Box<dyn Backend>, rx: std_mpsc::Receiver<Msg>, owner: &str) {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Write(w) => batch.push(w),
                Msg::Load(kind, out) => {
                    // Whatever was queued before the load is committed first.
                    commit_batch(backend.as_mut(), &mut batch);
                    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
                    let read = backend.load(kind, &mut |id, gen, body| {
                        chunk.push((id, gen, body));
                        chunk.len() < CHUNK_ROWS
                            || out
                                .send(Chunk::Rows(std::mem::replace(
                                    &mut chunk,
                                    Vec::with_capacity(CHUNK_ROWS),
                                )))
                                .is_ok()
                    });
                    if read.is_ok() && !chunk.is_empty() {
                        let _ = out.send(Chunk::Rows(chunk));
                    }
                    let _ = out.send(Chunk::End(read));
                }
                Msg::Reserve {
                    name,
                    floor,
                    n,
                    reply,
                } => {
                    // Its own statement, before the batch queued so far
                    // (ids are only ever handed out, never taken back, so
                    // the order against other writes does not matter).
                    let _ = reply.send(backend.reserve_ids(&name, floor, n));
                }
                Msg::Held { prefix, reply } => {
                    let _ = reply.send(backend.leases_held(&prefix, now_ms()));
                }
                Msg::Lease {
                    name,
                    ttl_ms,
                    reply,
                } => {
                    let result = match ttl_ms {
                        Some(ttl) => backend.lease(&name, owner, now_ms(), ttl),
                        None => backend.release(&name, owner).map(|()| false),
                    };
                    let _ = reply.send(result);
                }
            }
            if batch.len() < 4096 {
                next = rx.try_recv().ok();
            }
        }
        commit_batch(backend.as_mut(), &mut batch);
    }
}

/// Wall-clock milliseconds since the epoch (leases are about processes
/// being alive, so they run on real time, not the simulator's clock).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn commit_batch(backend: &mut dyn Backend, batch: &mut Vec<Write>) {
    if batch.is_empty() {
        return;
    }
    let ops: Vec<&Op> = batch.iter().map(|w| &w.op).collect();
    let result = backend.commit(&ops);
    let outcomes: Vec<Ack> = match result {
        Ok(out) if out.len() == batch.len() => out.into_iter().map(Ok).collect(),
        Ok(_) => {
            vec![Err("the backend answered for the wrong number of writes".into()); batch.len()]
        }
        Err(e) => {
            tracing::error!("storage commit failed: {e}");
            vec![Err(e); batch.len()]
        }
    };
    for (w, ack) in batch.drain(..).zip(outcomes) {
        (w.done)(&ack);
        if let Some(tx) = w.ack {
            let _ = tx.send(ack);
        }
    }
}

/// Waits for a queued write: Nova's 409 when the row changed under it, the
/// guard's fault when a guard refused it, a 500 when the commit failed.
async fn wait(rx: oneshot::Receiver<Ack>) -> Result<(), Fault> {
    match rx.await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(rejection))) => Err(refused(&rejection)),
        Ok(Err(e)) => Err(Fault::internal(format!("storage write failed: {e}"))),
        Err(_) => Err(Fault::internal("storage writer stopped")),
    }
}

/// The fault a refused write answers with.
pub fn refused(r: &Rejection) -> Fault {
    match &r.refusal {
        Refusal::Changed => Fault::conflict(
            "The resource was changed by another request meanwhile; retry the request.",
        ),
        Refusal::Quota(msg) => Fault::forbidden(msg.clone()),
        Refusal::Capacity(msg) => Fault::new(409, format!("{CAPACITY_PREFIX}{msg}")),
        Refusal::Taken { subnet, ip } => Fault::conflict(format!(
            "IP address {ip} already allocated in subnet {subnet}"
        )),
    }
}

/// How the message of a fault from a refused [`Guard::Capacity`] starts
/// (the scheduler then tries the next host).
pub const CAPACITY_PREFIX: &str = "No valid host: ";

/// The `(subnet, address)` of a port write refused because another port
/// holds one of its addresses (Neutron's IpAddressAlreadyAllocated).
pub fn taken_ip(f: &Fault) -> Option<(String, String)> {
    let rest = f.message.strip_prefix("IP address ")?;
    let (ip, subnet) = rest.split_once(" already allocated in subnet ")?;
    (f.code == 409).then(|| (subnet.to_string(), ip.to_string()))
}

/// Whether `f` is a refused [`Guard::Capacity`].
pub fn is_capacity_refusal(f: &Fault) -> bool {
    f.code == 409 && f.message.starts_with(CAPACITY_PREFIX)
}

/// A secondary index of a table: the ids of the rows whose `key` is each
/// value (rows whose key is `None` are not in it).
struct Index<T> {
    name: &'static str,
    key: fn(&T) -> Option<String>,
    ids: HashMap<String, std::collections::HashSet<String>>,
}

/// A table's rows and its secondary indexes (hash and ordered), changed
/// together under the table's lock. Reads go through `Deref` to the map of
/// rows; `insert` and `remove` keep every index in step.
struct Rows<T> {
    map: HashMap<String, Arc<T>>,
    indexes: Vec<Index<T>>,
    ordered: Vec<Box<dyn ordered::OrderedIndex<T>>>,
    /// Per row: the version token as this process last saw it (0: none),
    /// the [`Store::epoch`] of this process's last write to it (0: read),
    /// and its writes queued and not yet answered.
    meta: HashMap<String, Meta>,
}

/// What [`Rows::meta`] keeps per row.
#[derive(Clone, Copy, Default)]
struct Meta {
    gen: i64,
    epoch: u64,
    pending: u32,
}

impl<T> Rows<T> {
    fn gen_of(&self, id: &str) -> Option<(i64, u64)> {
        self.meta
            .get(id)
            .filter(|m| m.gen != 0)
            .map(|m| (m.gen, m.epoch))
    }

    fn in_flight(&self, id: &str) -> bool {
        self.meta.get(id).is_some_and(|m| m.pending > 0)
    }

    /// Drops `id`'s entry once it holds nothing.
    fn tidy(&mut self, id: &str) {
        if self
            .meta
            .get(id)
            .is_some_and(|m| m.gen == 0 && m.pending == 0)
        {
            self.meta.remove(id);
        }
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = HashMap<String, Arc<T>>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<T> Rows<T> {
    fn unindex(&mut self, id: &str, old: &T) {
        for ix in &mut self.indexes {
            if let Some(k) = (ix.key)(old) {
                if let Some(set) = ix.ids.get_mut(&k) {
                    set.remove(id);
                    if set.is_empty() {
                        ix.ids.remove(&k);
                    }
                }
            }
        }
    }

    fn insert(&mut self, id: String, row: Arc<T>) -> Option<Arc<T>> {
        let old = self.map.get(&id).cloned();
        if let Some(old) = &old {
            self.unindex(&id, old);
        }
        for ix in &mut self.indexes {
            if let Some(k) = (ix.key)(&row) {
                ix.ids.entry(k).or_default().insert(id.clone());
            }
        }
        for ix in &mut self.ordered {
            ix.replace(&id, old.as_deref(), Some(&row));
        }
        self.map.insert(id, row)
    }

    fn remove(&mut self, id: &str) -> Option<Arc<T>> {
        let old = self.map.remove(id)?;
        self.unindex(id, &old);
        for ix in &mut self.ordered {
            ix.replace(id, Some(&old), None);
        }
        Some(old)
    }

    /// The token a write to `id` must find in the database (0: no row).
    fn expect(&self, id: &str) -> i64 {
        self.meta.get(id).map_or(0, |m| m.gen)
    }

    /// Records a local write of `id` (`gen` 0: a delete) made at `epoch`.
    fn wrote(&mut self, id: &str, gen: i64, epoch: u64) {
        let m = match self.meta.get_mut(id) {
            Some(m) => m,
            None => self.meta.entry(id.to_string()).or_default(),
        };
        m.gen = gen;
        m.epoch = epoch;
        m.pending += 1;
    }

    /// A local write of `id` was answered.
    fn answered(&mut self, id: &str) {
        if let Some(m) = self.meta.get_mut(id) {
            m.pending = m.pending.saturating_sub(1);
        }
        self.tidy(id);
    }

    /// Makes the copy of `id` what the database holds.
    fn take(&mut self, id: &str, current: Option<(i64, Arc<T>)>) {
        match current {
            Some((gen, row)) => {
                let m = self.meta.entry(id.to_string()).or_default();
                m.gen = gen;
                m.epoch = 0;
                self.insert(id.to_string(), row);
            }
            None => {
                if let Some(m) = self.meta.get_mut(id) {
                    m.gen = 0;
                    m.epoch = 0;
                }
                self.tidy(id);
                self.remove(id);
            }
        }
    }
}

/// Told of each row the copy takes from the database rather than from a
/// local write (another process's change, or the row as stored after a
/// refused write): the row before and after (`None`: absent).
pub type Watcher<T> = Box<dyn Fn(Option<&T>, Option<&T>) + Send + Sync>;

/// A table's copy, shared with the change feed.
struct Copy<T> {
    kind: &'static Kind,
    rows: RwLock<Rows<T>>,
    watchers: RwLock<Vec<Watcher<T>>>,
}

impl<T> Copy<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    fn parse(&self, id: &str, body: &str) -> Option<Arc<T>> {
        match serde_json::from_str::<T>(body) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                tracing::error!(table = self.kind.table, %id, "stored row is unreadable: {e}");
                None
            }
        }
    }

    /// After the writer answered a local write of `id`: a refused write
    /// leaves the copy as the database has the row.
    fn settle(&self, id: &str, ack: &Ack) {
        let current = match ack {
            Ok(Err(rejection)) => Some(rejection.current.clone()),
            _ => None,
        };
        let parsed = current.map(|c| c.and_then(|(gen, body)| Some((gen, self.parse(id, &body)?))));
        let mut rows = self.rows.write();
        rows.answered(id);
        // With later writes of this process still in flight, their outcome
        // decides the copy (the last one refused brings the row as stored):
        // taking the row now would drop a later write's change from the
        // copy while that write may yet succeed.
        if let Some(current) = parsed.filter(|_| !rows.in_flight(id)) {
            let after = current.as_ref().map(|(_, r)| r.clone());
            let before = rows.get(id).cloned();
            rows.take(id, current);
            drop(rows);
            self.tell(before.as_deref(), after.as_deref());
        }
    }

    fn tell(&self, before: Option<&T>, after: Option<&T>) {
        for w in self.watchers.read().iter() {
            w(before, after);
        }
    }
}

impl<T> Remote for Copy<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    fn table(&self) -> &'static str {
        self.kind.table
    }

    fn apply_remote(&self, id: &str, current: Option<(i64, String)>, since: u64) -> bool {
        let fresh = |rows: &Rows<T>| {
            !rows.in_flight(id)
                && match (rows.gen_of(id), &current) {
                    (Some((_, at)), _) if at > since => false,
                    (Some((g, _)), Some((gen, _))) => g != *gen,
                    (None, Some(_)) => true,
                    (Some(_), None) => true,
                    (None, None) => rows.map.contains_key(id),
                }
        };
        if !fresh(&self.rows.read()) {
            return false;
        }
        let parsed = match current {
            Some((gen, body)) => match self.parse(id, &body) {
                Some(row) => Some((gen, row)),
                None => return false,
            },
            None => None,
        };
        let mut rows = self.rows.write();
        let current_again = parsed.as_ref().map(|(g, _)| (*g, String::new()));
        // Checked again under the write lock: a local write may have
        // slipped in while the row was parsed.
        let still = !rows.in_flight(id)
            && match (rows.gen_of(id), &current_again) {
                (Some((_, at)), _) if at > since => false,
                (Some((g, _)), Some((gen, _))) => g != *gen,
                _ => true,
            };
        if still {
            let after = parsed.as_ref().map(|(_, r)| r.clone());
            let before = rows.get(id).cloned();
            rows.take(id, parsed);
            drop(rows);
            self.tell(before.as_deref(), after.as_deref());
        }
        still
    }

    fn ids(&self) -> Vec<String> {
        self.rows.read().map.keys().cloned().collect()
    }
}

/// A typed, persisted table of one resource kind, keyed by id.
pub struct Table<T> {
    inner: Arc<Copy<T>>,
    store: Arc<Store>,
}

impl<T> Table<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Loads every stored row of `kind`.
    pub fn load(kind: &'static str, store: &Arc<Store>) -> Result<Self, String> {
        let kind = schema::of(kind).ok_or_else(|| format!("no table for kind {kind:?}"))?;
        let chunks = parking_lot::Mutex::new(store.load_kind(kind)?);
        // The writer reads the rows while two parsers turn the chunks into
        // records (parsing the JSON is most of the cost of a start).
        let parse = || -> Result<Vec<(String, i64, Arc<T>)>, String> {
            let mut out = Vec::new();
            loop {
                let next = chunks.lock().recv();
                match next {
                    Ok(Chunk::Rows(rows)) => {
                        for (id, gen, body) in rows {
                            let value: T = serde_json::from_str(&body).map_err(|e| {
                                format!("stored {} {id} is unreadable: {e}", kind.kind)
                            })?;
                            out.push((id, gen, Arc::new(value)));
                        }
                    }
                    Ok(Chunk::End(read)) => {
                        read.map_err(|e| format!("reading {}: {e}", kind.table))?;
                        return Ok(out);
                    }
                    // The other parser took the end; the writer is done.
                    Err(_) => return Ok(out),
                }
            }
        };
        let (a, b) = std::thread::scope(|s| {
            let other = s.spawn(parse);
            let mine = parse();
            (mine, other.join())
        });
        let b = b.map_err(|_| format!("loading {}: a parser panicked", kind.table))?;
        let mut rows = HashMap::new();
        let mut meta = HashMap::new();
        for (id, gen, row) in a?.into_iter().chain(b?) {
            meta.insert(
                id.clone(),
                Meta {
                    gen,
                    epoch: 0,
                    pending: 0,
                },
            );
            rows.insert(id, row);
        }
        let inner = Arc::new(Copy {
            kind,
            rows: RwLock::new(Rows {
                map: rows,
                indexes: Vec::new(),
                ordered: Vec::new(),
                meta,
            }),
            watchers: RwLock::new(Vec::new()),
        });
        let remote: Arc<dyn Remote> = inner.clone();
        store.register(Arc::downgrade(&remote));
        Ok(Table {
            inner,
            store: store.clone(),
        })
    }

    /// Calls `w` for every row the copy takes from the database instead of
    /// from this process's writes (what other processes changed), so state
    /// derived from the rows can follow.
    pub fn watch(&self, w: Watcher<T>) {
        self.inner.watchers.write().push(w);
    }

    /// Adds a secondary index named `name` over `key` (built from the rows
    /// loaded so far and kept in step with every write), for [`Table::find`].
    pub fn indexed(self, name: &'static str, key: fn(&T) -> Option<String>) -> Self {
        {
            let mut rows = self.inner.rows.write();
            let mut ids: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
            for (id, row) in rows.map.iter() {
                if let Some(k) = key(row) {
                    ids.entry(k).or_default().insert(id.clone());
                }
            }
            rows.indexes.push(Index { name, key, ids });
        }
        self
    }

    /// The rows whose index `name` has the value `value`, without scanning
    /// the table. An index the table does not have finds nothing (and says
    /// so in debug builds).
    pub fn find(&self, name: &str, value: &str) -> Vec<Arc<T>> {
        let rows = self.inner.rows.read();
        let Some(ix) = rows.indexes.iter().find(|ix| ix.name == name) else {
            debug_assert!(false, "{} has no index {name}", self.inner.kind.table);
            return Vec::new();
        };
        ix.ids
            .get(value)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| rows.map.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds an ordered index named `name` over `key` (built from the rows
    /// loaded so far and kept in step with every write), for
    /// [`Table::walk`]. Rows whose key is `None` are not in it.
    pub fn ordered<K>(self, name: &'static str, key: fn(&T) -> Option<K>) -> Self
    where
        K: Ord + Send + Sync + 'static,
    {
        {
            let mut rows = self.inner.rows.write();
            let mut ix = ordered::Ordered::new(name, key);
            for (id, row) in rows.map.iter() {
                ordered::OrderedIndex::replace(&mut ix, id, None, Some(row));
            }
            rows.ordered.push(Box::new(ix));
        }
        self
    }

    /// Hands `take` the rows of ordered index `name` whose key lies in
    /// `range`, in key order (descending when `reverse`; rows with equal
    /// keys in id order, reversed too), until it returns `false`. Runs under
    /// the table's read lock, so `take` must be quick and must not block.
    /// False when the table has no such index keyed by `K` (nothing walked;
    /// said in debug builds).
    pub fn walk<K>(
        &self,
        name: &str,
        range: (Bound<K>, Bound<K>),
        reverse: bool,
        mut take: impl FnMut(&Arc<T>) -> bool,
    ) -> bool
    where
        K: Ord + Send + Sync + 'static,
    {
        let rows = self.inner.rows.read();
        let Some(ix) = rows
            .ordered
            .iter()
            .filter(|ix| ix.name() == name)
            .find_map(|ix| ordered::Ordered::<T, K>::of(ix.as_ref()))
        else {
            debug_assert!(
                false,
                "{} has no ordered index {name}",
                self.inner.kind.table
            );
            return false;
        };
        for row in ix.walk(range, reverse) {
            if !take(row) {
                break;
            }
        }
        true
    }

    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        self.inner.rows.read().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.rows.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.rows.read().is_empty()
    }

    /// A snapshot of every row.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.inner.rows.read().values().cloned().collect()
    }

    /// Rows for which `keep` is true.
    pub fn filter(&self, mut keep: impl FnMut(&T) -> bool) -> Vec<Arc<T>> {
        self.inner
            .rows
            .read()
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// Changes the copy of row `id` to `value` (`None`: deletes it) and
    /// queues the write, a compare-and-swap on the token the copy had,
    /// with `guard` if any. Called with the table's write lock held.
    fn stage(
        &self,
        rows: &mut Rows<T>,
        id: &str,
        value: Option<Arc<T>>,
        guard: Option<Guard>,
    ) -> Result<oneshot::Receiver<Ack>, Fault> {
        let expect = rows.expect(id);
        let (op, gen) = match &value {
            Some(v) => {
                let body = serde_json::to_string(&**v).map_err(|e| {
                    Fault::internal(format!("serialising {}: {e}", self.inner.kind.kind))
                })?;
                let gen = fresh_gen();
                let mut op = Op::put(self.inner.kind, id.to_string(), body, expect, gen)
                    .map_err(Fault::internal)?;
                if let Op::Put { guard: g, .. } = &mut op {
                    *g = guard;
                }
                (op, gen)
            }
            None => (
                Op::Delete {
                    kind: self.inner.kind,
                    id: id.to_string(),
                    expect,
                },
                0,
            ),
        };
        let epoch = self.store.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        rows.wrote(id, gen, epoch);
        match value {
            Some(v) => {
                rows.insert(id.to_string(), v);
            }
            None => {
                rows.remove(id);
            }
        }
        let inner = self.inner.clone();
        let key = id.to_string();
        Ok(self
            .store
            .enqueue(op, Box::new(move |ack| inner.settle(&key, ack))))
    }

    /// Inserts or replaces a row and waits for it to be durable.
    pub async fn put(&self, id: &str, value: T) -> Result<Arc<T>, Fault> {
        let arc = Arc::new(value);
        let rx = {
            let mut rows = self.inner.rows.write();
            self.stage(&mut rows, id, Some(arc.clone()), None)?
        };
        wait(rx).await?;
        Ok(arc)
    }

    /// Inserts a row only if the id is free (else `conflict`), with a guard
    /// the database checks in the same transaction.
    pub async fn insert_guarded(
        &self,
        id: &str,
        value: T,
        conflict: Fault,
        guard: Option<Guard>,
    ) -> Result<Arc<T>, Fault> {
        let arc = Arc::new(value);
        let rx = {
            let mut rows = self.inner.rows.write();
            if rows.contains_key(id) {
                return Err(conflict);
            }
            self.stage(&mut rows, id, Some(arc.clone()), guard)?
        };
        match wait(rx).await {
            // Another process inserted the id first.
            Err(f) if f.code == 409 && self.get(id).is_some_and(|r| !Arc::ptr_eq(&r, &arc)) => {
                Err(conflict)
            }
            other => other.map(|()| arc),
        }
    }

    /// Inserts a row only if the id is free (else `Err(existing)` as 409).
    pub async fn insert_new(&self, id: &str, value: T, conflict: Fault) -> Result<Arc<T>, Fault> {
        self.insert_guarded(id, value, conflict, None).await
    }

    /// Atomically reads, checks and changes one row. `change` sees the current
    /// value and may refuse with a `Fault`, in which case nothing is written.
    /// Returns the new value and whatever `change` returned.
    pub async fn update<R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
    ) -> Result<(Arc<T>, R), Fault> {
        self.change_row(
            id,
            |cur| cur.map(|c| (**c).clone()).ok_or_else(missing),
            change,
            None,
        )
        .await
    }

    /// [`Table::update`] with a guard the database checks in the same
    /// transaction (the write is refused, and the copy left as it was, when
    /// the guard fails).
    pub async fn update_guarded<R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        guard: Guard,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
    ) -> Result<(Arc<T>, R), Fault> {
        self.change_row(
            id,
            |cur| cur.map(|c| (**c).clone()).ok_or_else(missing),
            change,
            Some(guard),
        )
        .await
    }

    /// Like [`Table::update`], but starts from `init()` when the row is absent.
    pub async fn upsert<R>(
        &self,
        id: &str,
        init: impl FnOnce() -> T,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
    ) -> Result<(Arc<T>, R), Fault> {
        self.change_row(
            id,
            |cur| Ok(cur.map_or_else(init, |c| (**c).clone())),
            change,
            None,
        )
        .await
    }

    /// `update` and `upsert`: under the table lock, `start` gives the value
    /// to change from the current row (if any), `change` changes it, and
    /// the write is queued before the lock goes.
    async fn change_row<R>(
        &self,
        id: &str,
        start: impl FnOnce(Option<&Arc<T>>) -> Result<T, Fault>,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
        guard: Option<Guard>,
    ) -> Result<(Arc<T>, R), Fault> {
        let (arc, r, rx) = {
            let mut rows = self.inner.rows.write();
            let mut next = start(rows.get(id))?;
            let r = change(&mut next)?;
            let arc = Arc::new(next);
            let rx = self.stage(&mut rows, id, Some(arc.clone()), guard)?;
            (arc, r, rx)
        };
        wait(rx).await?;
        Ok((arc, r))
    }

    /// Several rows changed together under one lock. `change` gets the
    /// whole map and returns the ids it wrote. Each row's write is its own
    /// compare-and-swap: when another process changed one of them
    /// meanwhile, that one is refused (409) and the others stand.
    pub async fn transact<R>(
        &self,
        change: impl FnOnce(&mut TxView<'_, T>) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let (r, rxs) = {
            let mut rows = self.inner.rows.write();
            let mut view = TxView {
                rows: &rows.map,
                pending: HashMap::new(),
            };
            let r = change(&mut view)?;
            let pending = std::mem::take(&mut view.pending);
            let mut rxs = Vec::with_capacity(pending.len());
            for (id, v) in pending {
                rxs.push(self.stage(&mut rows, &id, v.map(Arc::new), None)?);
            }
            (r, rxs)
        };
        let mut first_err = None;
        for rx in rxs {
            if let Err(e) = wait(rx).await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(r),
        }
    }

    /// Removes a row; returns what was there.
    pub async fn remove(&self, id: &str) -> Result<Option<Arc<T>>, Fault> {
        let (old, rx) = {
            let mut rows = self.inner.rows.write();
            let Some(old) = rows.get(id).cloned() else {
                return Ok(None);
            };
            (old, self.stage(&mut rows, id, None, None)?)
        };
        wait(rx).await?;
        Ok(Some(old))
    }
}

/// A view of a table inside [`Table::transact`]: reads see pending writes.
pub struct TxView<'a, T> {
    rows: &'a HashMap<String, Arc<T>>,
    pending: HashMap<String, Option<T>>,
}
impl<T: Clone> TxView<'_, T> {
    pub fn get(&self, id: &str) -> Option<T> {
        match self.pending.get(id) {
            Some(v) => v.clone(),
            None => self.rows.get(id).map(|a| (**a).clone()),
        }
    }
    /// Every row (pending writes applied).
    pub fn values(&self) -> Vec<T> {
        let mut out: Vec<T> = self
            .rows
            .iter()
            .filter(|(k, _)| !self.pending.contains_key(*k))
            .map(|(_, v)| (**v).clone())
            .collect();
        out.extend(self.pending.values().flatten().cloned());
        out
    }
    /// How many rows (pending writes applied) match, without cloning any.
    pub fn count(&self, matches: impl Fn(&T) -> bool) -> usize {
        let stored = self
            .rows
            .iter()
            .filter(|(k, v)| !self.pending.contains_key(*k) && matches(v))
            .count();
        stored
            + self
                .pending
                .values()
                .flatten()
                .filter(|v| matches(v))
                .count()
    }
    pub fn put(&mut self, id: &str, value: T) {
        self.pending.insert(id.to_string(), Some(value));
    }
    pub fn delete(&mut self, id: &str) {
        self.pending.insert(id.to_string(), None);
    }
}
