//! A typed table: this process's copy of one kind's rows, with its
//! secondary and ordered indexes, and the writes that keep the copy and the
//! database in step. Every write changes the copy under the table's lock
//! and queues a compare-and-swap on the row's version token; the writer's
//! answer is applied to the copy before the caller hears (a refused write
//! leaves the copy as the database has the row). The change feed applies
//! other processes' writes through [`Remote`].

use super::backend::{fresh_gen, Op};
use super::rows::{Index, Meta, Rows};
use super::{ordered, schema, wait, Ack, Cell, Chunk, Done, Guard, Remote, Store};
use parking_lot::RwLock;
use rova_core::Fault;
use schema::Kind;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Ids per statement when [`Table::fetch`] reads rows by id.
const FETCH_CHUNK: usize = 256;

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
    fn settle(&self, id: &str, ack: &Ack, at: u64) {
        let current = match ack {
            Ok(Err(rejection)) => Some(rejection.current.clone()),
            _ => None,
        };
        let parsed = current.map(|c| c.and_then(|(gen, body)| Some((gen, self.parse(id, &body)?))));
        let mut rows = self.rows.write();
        rows.answered(id, at);
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

    /// Takes row `id` as read from the database (version `gen`), begun
    /// when [`Store::epoch`] was `since`, into the copy: what the copy
    /// holds for it afterwards. A row this process wrote since, or has a
    /// write to in flight, stays as the copy has it (`None` when that
    /// write deletes it). No watcher hears: nothing changed.
    fn take_read(&self, id: &str, gen: i64, body: &str, since: u64) -> Option<Arc<T>> {
        {
            let rows = self.rows.read();
            if !rows.takes_remote(id, Some(gen), since) {
                return rows.get(id).cloned();
            }
        }
        let row = self.parse(id, body)?;
        let mut rows = self.rows.write();
        if !rows.takes_remote(id, Some(gen), since) {
            return rows.get(id).cloned();
        }
        rows.take(id, Some((gen, row.clone())));
        Some(row)
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
        let gen = current.as_ref().map(|(g, _)| *g);
        {
            let rows = self.rows.read();
            // A cached table follows only the rows it holds; the others
            // are read from the database when asked for.
            let held = rows.map.contains_key(id) || rows.meta.contains_key(id);
            if (rows.cached() && !held) || !rows.takes_remote(id, gen, since) {
                return false;
            }
        }
        let parsed = match current {
            Some((gen, body)) => match self.parse(id, &body) {
                Some(row) => Some((gen, row)),
                None => return false,
            },
            None => None,
        };
        let mut rows = self.rows.write();
        // Checked again under the write lock: a local write may have
        // slipped in while the row was parsed.
        if !rows.takes_remote(id, gen, since) {
            return false;
        }
        let after = parsed.as_ref().map(|(_, r)| r.clone());
        let before = rows.get(id).cloned();
        rows.take(id, parsed);
        drop(rows);
        self.tell(before.as_deref(), after.as_deref());
        true
    }

    fn cached(&self) -> bool {
        self.rows.read().cached()
    }

    fn forget(&self) {
        let mut rows = self.rows.write();
        let oldest_read = rows.reads.oldest();
        let idle: Vec<String> = rows
            .map
            .keys()
            .filter(|id| rows.may_forget(id, oldest_read))
            .cloned()
            .collect();
        for id in idle {
            rows.remove(&id);
            rows.meta.remove(&id);
        }
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
        let began = std::time::Instant::now();
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
        tracing::debug!(
            table = kind.table,
            rows = rows.len(),
            ms = began.elapsed().as_millis() as u64,
            "table loaded"
        );
        Ok(Table::with_copy(kind, store, rows, meta, usize::MAX))
    }

    /// A table of `kind` whose rows stay in the database: this process
    /// keeps at most `cap` of them (those it read or wrote last, and every
    /// one with a write in flight), reads the others by id or by query
    /// when asked, and does not read the table at start. Writes are the
    /// same compare-and-swaps as a table kept whole.
    pub fn load_cached(kind: &'static str, store: &Arc<Store>, cap: usize) -> Result<Self, String> {
        let kind = schema::of(kind).ok_or_else(|| format!("no table for kind {kind:?}"))?;
        Ok(Table::with_copy(
            kind,
            store,
            HashMap::new(),
            HashMap::new(),
            cap.max(1),
        ))
    }

    fn with_copy(
        kind: &'static Kind,
        store: &Arc<Store>,
        map: HashMap<String, Arc<T>>,
        meta: HashMap<String, Meta>,
        cap: usize,
    ) -> Self {
        let inner = Arc::new(Copy {
            kind,
            rows: RwLock::new(Rows {
                map,
                indexes: Vec::new(),
                ordered: Vec::new(),
                meta,
                cap,
                fifo: std::collections::VecDeque::new(),
                reads: store.reads.clone(),
            }),
            watchers: RwLock::new(Vec::new()),
        });
        let remote: Arc<dyn Remote> = inner.clone();
        store.register(Arc::downgrade(&remote));
        Table {
            inner,
            store: store.clone(),
        }
    }

    /// Whether this table keeps only some rows in memory
    /// ([`Table::load_cached`]).
    pub fn is_cached(&self) -> bool {
        self.inner.rows.read().cached()
    }

    /// Row `id` if this process's copy holds it (a cached table may hold
    /// it in the database only).
    pub fn in_copy(&self, id: &str) -> Option<Arc<T>> {
        self.inner.rows.read().get(id).cloned()
    }

    /// Whether this process has a write to row `id` in flight.
    pub fn in_flight(&self, id: &str) -> bool {
        self.inner.rows.read().in_flight(id)
    }

    /// Reads rows `ids` from the database into the copy (a row with a
    /// write of this process in flight, or written since the read began,
    /// is given as the copy has it): the rows that exist, in no particular
    /// order.
    pub fn fetch(&self, ids: &[&str]) -> Result<Vec<Arc<T>>, Fault> {
        Ok(self.fetch_pairs(ids)?.into_iter().map(|(_, r)| r).collect())
    }

    fn fetch_pairs(&self, ids: &[&str]) -> Result<Vec<(String, Arc<T>)>, Fault> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(FETCH_CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "SELECT id, gen, CAST(body AS TEXT) FROM {} WHERE id IN ({})",
                self.inner.kind.table,
                marks.join(", ")
            );
            let params = chunk.iter().map(|id| Cell::Text(id.to_string())).collect();
            out.extend(self.read_rows(&sql, params)?);
        }
        Ok(out)
    }

    /// The rows `SELECT id, gen, CAST(body AS TEXT) FROM <table> WHERE
    /// <cond>` returns, taken into the copy as [`Table::fetch`] does, in the
    /// statement's order. A cached table's scans and queries go through
    /// here; on a table kept whole it reads the database all the same.
    pub fn select(&self, cond: &str, params: Vec<Cell>) -> Result<Vec<Arc<T>>, Fault> {
        let sql = format!(
            "SELECT id, gen, CAST(body AS TEXT) FROM {} WHERE {cond}",
            self.inner.kind.table
        );
        Ok(self
            .read_rows(&sql, params)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    fn read_rows(&self, sql: &str, params: Vec<Cell>) -> Result<Vec<(String, Arc<T>)>, Fault> {
        // Held until every row read is taken in (see `Rows::evict`).
        let mark = self.store.begin_read();
        let since = mark.since();
        let rows = self.store.select(sql, params)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match <[Cell; 3]>::try_from(r) {
                Ok([Cell::Text(id), Cell::Int(gen), Cell::Text(body)]) => {
                    let row = self.inner.take_read(&id, gen, &body, since)?;
                    Some((id, row))
                }
                _ => None,
            })
            .collect())
    }

    /// The rows of `(id, version token)` pairs a query of the database
    /// returned, in that order: from the copy when it holds that version
    /// (or has a write of this process in flight), the others read in one
    /// go. Rows gone meanwhile are left out.
    pub fn resolve(&self, found: &[(String, i64)]) -> Result<Vec<Arc<T>>, Fault> {
        let mut out: Vec<Option<Arc<T>>> = Vec::with_capacity(found.len());
        let mut missing: Vec<&str> = Vec::new();
        {
            let rows = self.inner.rows.read();
            for (id, gen) in found {
                let mine = rows.in_flight(id) || rows.gen_of(id).is_some_and(|(g, _)| g == *gen);
                match rows.get(id) {
                    Some(r) if mine => out.push(Some(r.clone())),
                    None if rows.in_flight(id) => out.push(None),
                    _ => {
                        out.push(None);
                        missing.push(id);
                    }
                }
            }
        }
        if !missing.is_empty() {
            let read: HashMap<String, Arc<T>> = self.fetch_pairs(&missing)?.into_iter().collect();
            for (slot, (id, _)) in out.iter_mut().zip(found) {
                if slot.is_none() {
                    *slot = read.get(id).cloned();
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
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

    /// Row `id`: from the copy, or for a cached table from the database
    /// when the copy does not hold it (a failed read is logged and reads
    /// as absent).
    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        {
            let rows = self.inner.rows.read();
            if let Some(r) = rows.get(id) {
                return Some(r.clone());
            }
            // A table kept whole has every row; a row whose delete is in
            // flight is gone for this process.
            if !rows.cached() || rows.in_flight(id) {
                return None;
            }
        }
        match self.fetch(&[id]) {
            Ok(rows) => rows.into_iter().next(),
            Err(e) => {
                tracing::error!(table = self.inner.kind.table, %id, "read failed: {}", e.message);
                None
            }
        }
    }

    /// How many rows the table has (a count in the database for a cached
    /// table; 0 when that read fails).
    pub fn len(&self) -> usize {
        {
            let rows = self.inner.rows.read();
            if !rows.cached() {
                return rows.len();
            }
        }
        let sql = format!("SELECT count(*) FROM {}", self.inner.kind.table);
        self.store
            .select(&sql, Vec::new())
            .ok()
            .and_then(|r| r.first().and_then(|r| r.first()).and_then(Cell::int))
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of every row (for a cached table, every row read from
    /// the database: a scan, for start-up and rare paths only; a failed
    /// read is logged and gives what the copy holds).
    pub fn all(&self) -> Vec<Arc<T>> {
        if self.is_cached() {
            match self.select("1 = 1", Vec::new()) {
                Ok(rows) => return rows,
                Err(e) => {
                    tracing::error!(table = self.inner.kind.table, "scan failed: {}", e.message)
                }
            }
        }
        self.inner.rows.read().values().cloned().collect()
    }

    /// Every row with its id (for a cached table read from the database,
    /// as [`Table::all`], but a failed read is an error).
    pub fn rows(&self) -> Result<Vec<(String, Arc<T>)>, Fault> {
        if self.is_cached() {
            let sql = format!(
                "SELECT id, gen, CAST(body AS TEXT) FROM {}",
                self.inner.kind.table
            );
            return self.read_rows(&sql, Vec::new());
        }
        Ok(self
            .inner
            .rows
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    /// Rows for which `keep` is true (a scan of the database for a cached
    /// table, as [`Table::all`]).
    pub fn filter(&self, mut keep: impl FnMut(&T) -> bool) -> Vec<Arc<T>> {
        if self.is_cached() {
            return self.all().into_iter().filter(|r| keep(r)).collect();
        }
        self.inner
            .rows
            .read()
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// For a cached table: brings row `id` into the copy if the database
    /// has it and the copy does not. Whether the row exists for this
    /// process.
    fn ensure(&self, id: &str) -> Result<bool, Fault> {
        {
            let rows = self.inner.rows.read();
            if rows.contains_key(id) {
                return Ok(true);
            }
            if !rows.cached() || rows.in_flight(id) {
                return Ok(false);
            }
        }
        Ok(!self.fetch(&[id])?.is_empty())
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
        let (op, done) = self.prepare(rows, id, value, guard)?;
        Ok(self.store.enqueue(op, done))
    }

    /// [`Table::stage`] without the queueing: the copy changed, and the
    /// write with what puts the copy in step with its outcome.
    pub(super) fn prepare(
        &self,
        rows: &mut Rows<T>,
        id: &str,
        value: Option<Arc<T>>,
        guard: Option<Guard>,
    ) -> Result<(Op, Done), Fault> {
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
        let store = self.store.clone();
        let key = id.to_string();
        Ok((
            op,
            Box::new(move |ack| {
                // Counted after the commit (see `Rows::answered`).
                let at = store.epoch.fetch_add(1, Ordering::SeqCst) + 1;
                inner.settle(&key, ack, at)
            }),
        ))
    }

    /// Writes row `id` (`None`: deletes it) behind: the copy changes at
    /// once and the write is queued, after every write staged before it
    /// and before every one staged after it, without waiting for its
    /// commit. A write the database refuses leaves the copy as the
    /// database has the row. Nothing is written when the copy already
    /// holds `value` (or, for a delete, no such row).
    pub fn write_behind(&self, id: &str, value: Option<T>) -> Result<(), Fault>
    where
        T: PartialEq,
    {
        self.ensure(id)?;
        let mut rows = self.inner.rows.write();
        if rows.get(id).map(|a| &**a) == value.as_ref() {
            return Ok(());
        }
        self.stage(&mut rows, id, value.map(Arc::new), None)
            .map(drop)
    }

    /// [`Table::write_behind`] of a row with a guard the database checks
    /// in the writing transaction: the write is always queued, and its
    /// outcome can be awaited ([`Staged::outcome`]). A refused write leaves
    /// the copy as the database has the row.
    pub fn write_behind_guarded(&self, id: &str, value: T, guard: Guard) -> Result<Staged, Fault> {
        self.ensure(id)?;
        let mut rows = self.inner.rows.write();
        self.stage(&mut rows, id, Some(Arc::new(value)), Some(guard))
            .map(Staged)
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
        // A cached table that does not hold the id leaves the check to the
        // database: the insert expects no row and is refused if one is
        // there.
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
        self.update_guarded(id, missing, None, change).await
    }

    /// [`Table::update`] with a guard the database checks in the same
    /// transaction (the write is refused, and the copy left as it was, when
    /// the guard fails).
    pub async fn update_guarded<R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        guard: Option<Guard>,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
    ) -> Result<(Arc<T>, R), Fault> {
        self.change_row(
            id,
            |cur| cur.map(|c| (**c).clone()).ok_or_else(missing),
            change,
            guard,
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
            let mut rows = self.lock_with(id)?;
            let mut next = start(rows.get(id))?;
            let r = change(&mut next)?;
            let arc = Arc::new(next);
            let rx = self.stage(&mut rows, id, Some(arc.clone()), guard)?;
            (arc, r, rx)
        };
        wait(rx).await?;
        Ok((arc, r))
    }

    /// The table's write lock, with row `id` in the copy if the database
    /// has it: a cached table reads the row in first, and should the cache
    /// give it up before the lock is taken, it is read again.
    pub(super) fn lock_with(
        &self,
        id: &str,
    ) -> Result<parking_lot::RwLockWriteGuard<'_, Rows<T>>, Fault> {
        let mut tries = 0;
        loop {
            let exists = self.ensure(id)?;
            let rows = self.inner.rows.write();
            if exists && !rows.contains_key(id) && !rows.in_flight(id) && tries < 3 {
                tries += 1;
                continue;
            }
            return Ok(rows);
        }
    }

    /// This table's write lock (for [`super::group::Group`]).
    pub(super) fn write_lock(&self) -> parking_lot::RwLockWriteGuard<'_, Rows<T>> {
        self.inner.rows.write()
    }

    /// What tells this table apart from every other (its copy's address).
    pub(super) fn identity(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    pub(super) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Removes a row; returns what was there.
    pub async fn remove(&self, id: &str) -> Result<Option<Arc<T>>, Fault> {
        self.ensure(id)?;
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

mod joint;
pub(super) use joint::first_refusal;
pub use joint::{Staged, TxView};
