//! Durable storage for the embedded (single control process) mode.
//!
//! Every resource kind lives in a [`Table`]: an in-memory map that is the
//! authority while the process runs, persisted row by row to one SQLite file
//! (`objects(kind, id, body)`, WAL mode). Writes go through a single writer
//! thread that commits whatever is queued in one transaction (group commit)
//! and acknowledges each caller only after the commit, so a 2xx always means
//! the change is on disk. Table updates take the row lock, run a closure that
//! may refuse (compare-and-swap on the expected state), enqueue the write
//! while still holding the lock (so writes to a row reach the disk in order)
//! and then wait for the commit.
//!
//! This module owns the SQLite file; nothing else opens it. It also makes
//! the data directory private before anything is written there (see
//! [`make_private`]): the file holds password hashes and the directory
//! holds image bytes, keys and clouds.yaml.

use parking_lot::RwLock;
use rova_core::Fault;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

enum Op {
    Put {
        kind: &'static str,
        id: String,
        body: String,
    },
    Delete {
        kind: &'static str,
        id: String,
    },
}

struct Write {
    op: Op,
    ack: Option<oneshot::Sender<Result<(), String>>>,
}

/// The SQLite file and its writer thread.
pub struct Store {
    tx: std_mpsc::Sender<Write>,
    path: std::path::PathBuf,
}

impl Store {
    /// Opens (creating if needed) `<dir>/rova.sqlite` and starts the writer.
    pub fn open(dir: &Path) -> Result<Arc<Store>, String> {
        make_private(dir)?;
        let path = dir.join("rova.sqlite");
        // Created 0600 before SQLite opens it: SQLite gives the -wal and
        // -shm files the mode of the database file.
        create_private_file(&path)?;
        let conn = open_conn(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (
                kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (kind, id)) WITHOUT ROWID;",
        )
        .map_err(|e| format!("creating schema in {}: {e}", path.display()))?;
        // Checkpoints run beside the writer, not inside a commit: the writer
        // connection never auto-checkpoints, and a separate connection
        // copies the WAL back into the database every 500 ms (PASSIVE, so it
        // never blocks the writer). A commit then costs only its WAL append.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(|e| format!("configuring {}: {e}", path.display()))?;
        let ckpt = open_conn(&path)?;
        std::thread::Builder::new()
            .name("rova-store-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                if ckpt
                    .execute_batch("PRAGMA wal_checkpoint(PASSIVE);")
                    .is_err()
                {
                    tracing::warn!("WAL checkpoint failed");
                }
            })
            .map_err(|e| e.to_string())?;
        let (tx, rx) = std_mpsc::channel::<Write>();
        std::thread::Builder::new()
            .name("rova-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Store { tx, path }))
    }

    /// Reads every row of one kind (used at start-up only).
    fn load_kind(&self, kind: &str) -> Result<Vec<(String, String)>, String> {
        let conn = open_conn(&self.path)?;
        let mut stmt = conn
            .prepare("SELECT id, body FROM objects WHERE kind = ?1")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([kind], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }

    fn enqueue(&self, op: Op) -> oneshot::Receiver<Result<(), String>> {
        let (ack, rx) = oneshot::channel();
        // A send only fails when the writer thread is gone; the receiver
        // then reports the failure below.
        let _ = self.tx.send(Write { op, ack: Some(ack) });
        rx
    }
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

/// Creates `path` empty with mode 0600 unless it exists.
fn create_private_file(path: &Path) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .map(drop)
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

fn open_conn(path: &Path) -> Result<rusqlite::Connection, String> {
    let conn =
        rusqlite::Connection::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    // secure_delete: a replaced or deleted row's old bytes are zeroed, not
    // left in free space (records once held secrets in plain text).
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA secure_delete=ON;",
    )
    .map_err(|e| format!("configuring {}: {e}", path.display()))?;
    Ok(conn)
}

fn writer_loop(mut conn: rusqlite::Connection, rx: std_mpsc::Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &batch);
        for w in batch {
            if let Some(ack) = w.ack {
                let _ = ack.send(result.clone());
            }
        }
    }
}

fn commit(conn: &mut rusqlite::Connection, batch: &[Write]) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let mut put = tx
            .prepare_cached("INSERT OR REPLACE INTO objects (kind, id, body) VALUES (?1, ?2, ?3)")
            .map_err(|e| e.to_string())?;
        let mut del = tx
            .prepare_cached("DELETE FROM objects WHERE kind = ?1 AND id = ?2")
            .map_err(|e| e.to_string())?;
        for w in batch {
            match &w.op {
                Op::Put { kind, id, body } => put.execute((kind, id, body)),
                Op::Delete { kind, id } => del.execute((kind, id)),
            }
            .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

async fn wait(rx: oneshot::Receiver<Result<(), String>>) -> Result<(), Fault> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Fault::internal(format!("storage write failed: {e}"))),
        Err(_) => Err(Fault::internal("storage writer stopped")),
    }
}

/// A typed, persisted table of one resource kind, keyed by id.
pub struct Table<T> {
    kind: &'static str,
    rows: RwLock<HashMap<String, Arc<T>>>,
    store: Arc<Store>,
}

impl<T> Table<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Loads every stored row of `kind`.
    pub fn load(kind: &'static str, store: &Arc<Store>) -> Result<Self, String> {
        let mut rows = HashMap::new();
        for (id, body) in store.load_kind(kind)? {
            let value: T = serde_json::from_str(&body)
                .map_err(|e| format!("stored {kind} {id} is unreadable: {e}"))?;
            rows.insert(id, Arc::new(value));
        }
        Ok(Table {
            kind,
            rows: RwLock::new(rows),
            store: store.clone(),
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        self.rows.read().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.rows.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.read().is_empty()
    }

    /// A snapshot of every row.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.rows.read().values().cloned().collect()
    }

    /// Rows for which `keep` is true.
    pub fn filter(&self, mut keep: impl FnMut(&T) -> bool) -> Vec<Arc<T>> {
        self.rows
            .read()
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    fn put_op(&self, id: &str, value: &T) -> Result<Op, Fault> {
        let body = serde_json::to_string(value)
            .map_err(|e| Fault::internal(format!("serialising {}: {e}", self.kind)))?;
        Ok(Op::Put {
            kind: self.kind,
            id: id.to_string(),
            body,
        })
    }

    /// Inserts or replaces a row and waits for it to be durable.
    pub async fn put(&self, id: &str, value: T) -> Result<Arc<T>, Fault> {
        let arc = Arc::new(value);
        let rx = {
            let mut rows = self.rows.write();
            let op = self.put_op(id, &arc)?;
            rows.insert(id.to_string(), arc.clone());
            self.store.enqueue(op)
        };
        wait(rx).await?;
        Ok(arc)
    }

    /// Inserts or replaces a row and queues its write without waiting for
    /// the commit: the one writer commits it no later than any write queued
    /// after it. For a counter, whose new value must be on disk before any
    /// row that uses the value it handed out.
    pub fn put_queued(&self, id: &str, value: T) -> Result<(), Fault> {
        let mut rows = self.rows.write();
        let op = self.put_op(id, &value)?;
        rows.insert(id.to_string(), Arc::new(value));
        drop(self.store.enqueue(op));
        Ok(())
    }

    /// Inserts a row only if the id is free (else `Err(existing)` as 409).
    pub async fn insert_new(&self, id: &str, value: T, conflict: Fault) -> Result<Arc<T>, Fault> {
        let arc = Arc::new(value);
        let rx = {
            let mut rows = self.rows.write();
            if rows.contains_key(id) {
                return Err(conflict);
            }
            let op = self.put_op(id, &arc)?;
            rows.insert(id.to_string(), arc.clone());
            self.store.enqueue(op)
        };
        wait(rx).await?;
        Ok(arc)
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
        let (arc, r, rx) = {
            let mut rows = self.rows.write();
            let cur = rows.get(id).ok_or_else(missing)?;
            let mut next: T = (**cur).clone();
            let r = change(&mut next)?;
            let op = self.put_op(id, &next)?;
            let arc = Arc::new(next);
            rows.insert(id.to_string(), arc.clone());
            (arc, r, self.store.enqueue(op))
        };
        wait(rx).await?;
        Ok((arc, r))
    }

    /// Like [`Table::update`], but starts from `init()` when the row is absent.
    pub async fn upsert<R>(
        &self,
        id: &str,
        init: impl FnOnce() -> T,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
    ) -> Result<(Arc<T>, R), Fault> {
        let (arc, r, rx) = {
            let mut rows = self.rows.write();
            let mut next: T = match rows.get(id) {
                Some(cur) => (**cur).clone(),
                None => init(),
            };
            let r = change(&mut next)?;
            let op = self.put_op(id, &next)?;
            let arc = Arc::new(next);
            rows.insert(id.to_string(), arc.clone());
            (arc, r, self.store.enqueue(op))
        };
        wait(rx).await?;
        Ok((arc, r))
    }

    /// Several rows changed together under one lock: all or nothing.
    /// `change` gets the whole map and returns the ids it wrote.
    pub async fn transact<R>(
        &self,
        change: impl FnOnce(&mut TxView<'_, T>) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let (r, rxs) = {
            let mut rows = self.rows.write();
            let mut view = TxView {
                rows: &rows,
                pending: HashMap::new(),
            };
            let r = change(&mut view)?;
            let pending = std::mem::take(&mut view.pending);
            let mut ops = Vec::new();
            for (id, v) in &pending {
                ops.push(match v {
                    Some(v) => self.put_op(id, v)?,
                    None => Op::Delete {
                        kind: self.kind,
                        id: id.clone(),
                    },
                });
            }
            for (id, v) in pending {
                match v {
                    Some(v) => {
                        rows.insert(id, Arc::new(v));
                    }
                    None => {
                        rows.remove(&id);
                    }
                }
            }
            let rxs: Vec<_> = ops.into_iter().map(|op| self.store.enqueue(op)).collect();
            (r, rxs)
        };
        for rx in rxs {
            wait(rx).await?;
        }
        Ok(r)
    }

    /// Removes a row; returns what was there.
    pub async fn remove(&self, id: &str) -> Result<Option<Arc<T>>, Fault> {
        let (old, rx) = {
            let mut rows = self.rows.write();
            let old = rows.remove(id);
            if old.is_none() {
                return Ok(None);
            }
            (
                old,
                self.store.enqueue(Op::Delete {
                    kind: self.kind,
                    id: id.to_string(),
                }),
            )
        };
        wait(rx).await?;
        Ok(old)
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
