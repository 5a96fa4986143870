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
mod group;
mod ordered;
mod pg_batch;
mod pg_feed;
mod postgres;
pub mod reader;
mod rows;
pub mod schema;
mod sqlite;
mod table;

pub use backend::{Database, Guard, Refusal};
pub use copy::{copy_all, Copied};
pub use group::{Group, Queued};
pub use postgres::{create_database, with_database};
pub use table::{Staged, Table, TxView, Watcher};

use backend::{Backend, Op, Outcome, Rejection};
use parking_lot::RwLock;
use rova_core::Fault;
use schema::{Cell, Kind};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// What a queued write's caller hears: the outcome, or why the whole
/// batch failed.
type Ack = Result<Outcome, String>;

/// Run on the writer thread right after a write's commit (before the
/// caller hears): puts the table's copy in step with the outcome.
type Done = Box<dyn FnOnce(&Ack) + Send>;

struct Write {
    op: Op,
    done: Done,
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
    /// Writes made all together or not at all, in a transaction of their
    /// own (after the writes queued before them).
    Group(Vec<Write>),
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
    /// Answered once every write queued before it is committed.
    Barrier(std_mpsc::SyncSender<()>),
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
    /// Whether the copy holds only some rows ([`Table::load_cached`]).
    fn cached(&self) -> bool;
    /// Gives up every row without a write in flight (a cached copy whose
    /// rows may have changed unseen).
    fn forget(&self);
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
    /// Connections that answer reads beside the writer.
    reader: reader::Reader,
    /// The [`Store::epoch`] at which each read of rows in progress began.
    reads: Arc<ReadMarks>,
    /// Writes queued for the writer and not yet answered.
    queued: Arc<AtomicUsize>,
}

/// How a store's connections are used at one moment (for `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub readers: usize,
    pub readers_busy: usize,
    pub writes_queued: usize,
}

/// The reads of rows in progress, by the write count when each began: a
/// cached copy keeps a row this process wrote until no read that began
/// before that write is still to be taken in (which would bring back the
/// row as it was before the write).
#[derive(Default)]
pub(crate) struct ReadMarks(parking_lot::Mutex<std::collections::BTreeMap<u64, usize>>);

impl ReadMarks {
    /// The write count at which the oldest read in progress began.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.0.lock().keys().next().copied()
    }
}

/// A read in progress (see [`ReadMarks`]); ends when dropped.
pub(crate) struct ReadMark {
    marks: Arc<ReadMarks>,
    since: u64,
}

impl ReadMark {
    pub(crate) fn since(&self) -> u64 {
        self.since
    }
}

impl Drop for ReadMark {
    fn drop(&mut self) {
        let mut m = self.marks.0.lock();
        if let Some(n) = m.get_mut(&self.since) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.since);
            }
        }
    }
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
        let queued = Arc::new(AtomicUsize::new(0));
        let counted = queued.clone();
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
                        writer_loop(backend, rx, &me, counted);
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
        let reader = reader::Reader::start(database)?;
        let store = Arc::new(Store {
            tx,
            database: database.clone(),
            owner,
            tables: RwLock::new(Vec::new()),
            epoch: AtomicU64::new(1),
            reader,
            reads: Arc::new(ReadMarks::default()),
            queued,
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

    /// Marks a read of rows as begun now, until the mark is dropped.
    fn begin_read(&self) -> ReadMark {
        let marks = &self.reads;
        // The mark is taken under the lock, so no write count can slip in
        // between reading it and registering it.
        let mut m = marks.0.lock();
        let since = self.epoch();
        *m.entry(since).or_default() += 1;
        drop(m);
        ReadMark {
            marks: marks.clone(),
            since,
        }
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

    /// Runs a read in the database (see [`reader`] for the statement's
    /// form) and waits for its rows. It sees every committed write.
    pub fn select(&self, sql: &str, params: Vec<Cell>) -> Result<reader::Rows, Fault> {
        self.reader.select(sql, params).map_err(|e| {
            tracing::error!("storage read failed: {e}: {sql}");
            Fault::internal(format!("storage read failed: {e}"))
        })
    }

    /// [`Store::select`] once every write this process queued before the
    /// call is committed: the answer agrees with what this process's
    /// copies already show (a read of its own writes).
    pub fn select_settled(&self, sql: &str, params: Vec<Cell>) -> Result<reader::Rows, Fault> {
        let (reply, done) = std_mpsc::sync_channel(1);
        self.tx
            .send(Msg::Barrier(reply))
            .map_err(|_| Fault::internal("storage writer stopped"))?;
        done.recv()
            .map_err(|_| Fault::internal("storage writer stopped"))?;
        self.select(sql, params)
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
    /// How the connections are used now.
    pub fn usage(&self) -> Usage {
        Usage {
            readers: reader::THREADS,
            readers_busy: self.reader.busy(),
            writes_queued: self.queued.load(Ordering::Relaxed),
        }
    }

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

    /// Queues writes to be made all together or not at all.
    fn enqueue_group(&self, writes: Vec<(Op, Done)>) -> Vec<oneshot::Receiver<Ack>> {
        self.queued.fetch_add(writes.len(), Ordering::Relaxed);
        let mut rxs = Vec::with_capacity(writes.len());
        let group = writes
            .into_iter()
            .map(|(op, done)| {
                let (ack, rx) = oneshot::channel();
                rxs.push(rx);
                Write {
                    op,
                    done,
                    ack: Some(ack),
                }
            })
            .collect();
        // A send only fails when the writer thread is gone; the receivers
        // then report the failure.
        let _ = self.tx.send(Msg::Group(group));
        rxs
    }

    fn enqueue(&self, op: Op, done: Done) -> oneshot::Receiver<Ack> {
        self.queued.fetch_add(1, Ordering::Relaxed);
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
            pg_feed::listen(
                (&url, &shown),
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
                    for kind in schema::KINDS {
                        if all.contains_key(kind.table) {
                            continue;
                        }
                        for t in store.copies_of(kind.table) {
                            t.forget();
                        }
                    }
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
                &|table| alive().is_none_or(|s| s.copies_of(table).iter().all(|t| !t.cached())),
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

/// The writes queued for one commit, and which of them are all-or-nothing
/// groups ([`Backend::commit`]).
#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    groups: Vec<std::ops::Range<usize>>,
    /// The rows the batch's groups write. A backend may make a batch's
    /// groups after its single writes, so a single write to one of these
    /// rows (which must follow its group) starts a new batch.
    grouped: HashSet<(&'static str, String)>,
    /// The store's count of writes queued and not yet answered.
    queued: Arc<AtomicUsize>,
}

impl Batch {
    fn len(&self) -> usize {
        self.writes.len()
    }

    fn push(&mut self, backend: &mut dyn Backend, w: Write) {
        if !self.grouped.is_empty() {
            let row = (w.op.kind().table, w.op.id().to_string());
            if self.grouped.contains(&row) {
                self.commit(backend);
            }
        }
        self.writes.push(w);
    }

    fn push_group(&mut self, group: Vec<Write>) {
        if group.is_empty() {
            return;
        }
        let start = self.writes.len();
        for w in &group {
            self.grouped
                .insert((w.op.kind().table, w.op.id().to_string()));
        }
        self.writes.extend(group);
        self.groups.push(start..self.writes.len());
    }

    /// Commits what is queued in one transaction and answers each write.
    fn commit(&mut self, backend: &mut dyn Backend) {
        if self.writes.is_empty() {
            return;
        }
        let ops: Vec<&Op> = self.writes.iter().map(|w| &w.op).collect();
        let result = backend.commit(&ops, &self.groups);
        self.queued.fetch_sub(self.writes.len(), Ordering::Relaxed);
        answer(std::mem::take(&mut self.writes), result);
        self.groups.clear();
        self.grouped.clear();
    }
}

fn writer_loop(
    mut backend: Box<dyn Backend>,
    rx: std_mpsc::Receiver<Msg>,
    owner: &str,
    queued: Arc<AtomicUsize>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = Batch {
            queued: queued.clone(),
            ..Batch::default()
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Write(w) => batch.push(backend.as_mut(), w),
                // An all-or-nothing group joins the batch: the backend
                // makes it in a savepoint of the batch's transaction.
                Msg::Group(group) => batch.push_group(group),
                Msg::Load(kind, out) => {
                    // Whatever was queued before the load is committed first.
                    batch.commit(backend.as_mut());
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
                Msg::Barrier(reply) => {
                    batch.commit(backend.as_mut());
                    let _ = reply.send(());
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
        batch.commit(backend.as_mut());
        backend.after_commit();
    }
}

/// Wall-clock milliseconds since the epoch (leases are about processes
/// being alive, so they run on real time, not the simulator's clock).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Hands each write its outcome of a commit: the copy's step first, then
/// the caller.
fn answer(writes: Vec<Write>, result: Result<Vec<Outcome>, String>) {
    let outcomes: Vec<Ack> = match result {
        Ok(out) if out.len() == writes.len() => out.into_iter().map(Ok).collect(),
        Ok(_) => {
            vec![Err("the backend answered for the wrong number of writes".into()); writes.len()]
        }
        Err(e) => {
            tracing::error!("storage commit failed: {e}");
            vec![Err(e); writes.len()]
        }
    };
    for (w, ack) in writes.into_iter().zip(outcomes) {
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
        Refusal::Together => Fault::conflict(TOGETHER),
    }
}

/// The message of a write not made because another of its all-or-nothing
/// group was refused.
pub const TOGETHER: &str =
    "Another change made together with this one was refused; nothing was changed.";

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
