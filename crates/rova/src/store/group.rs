//! All-or-nothing writes across several tables: a [`Group`] takes each
//! table's write lock in the order its caller names them, lets the caller
//! read and write that table's rows through a [`TxView`], and queues every
//! write as one group of the writer's batch (one transaction, or a
//! savepoint of one): either every write is made, or none is and every
//! copy keeps its rows as stored. The locks are held until the writes are
//! queued, so no other write to those rows slips in between.
//!
//! Callers name tables in one fixed order (instances, then instance
//! actions, then their events, then operations, then the rest), as
//! [`Table::update_along`] does, so two groups never wait on each other's
//! locks.

use super::rows::Rows;
use super::table::{first_refusal, Table, TxView};
use super::{Ack, Done, Op, Store};
use parking_lot::RwLockWriteGuard;
use rova_core::Fault;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a table of the group does when the group is queued: changes its
/// copy and gives its writes.
type Stage<'a> = Box<dyn FnOnce() -> Result<Vec<(Op, Done)>, Fault> + 'a>;

/// Writes to several tables made together (see the module doc).
pub struct Group<'a> {
    store: Option<Arc<Store>>,
    /// The tables whose locks the group holds.
    locked: Vec<usize>,
    stages: Vec<Stage<'a>>,
}

impl Default for Group<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Group<'a> {
    pub fn new() -> Self {
        Group {
            store: None,
            locked: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// Locks `table` (held until [`Group::queue`]) and lets `change` read
    /// and write its rows; its writes join the group. A refusal from
    /// `change` is the group's: nothing of it is written. Each table may
    /// be named once. A cached table shows only the rows its copy holds.
    pub fn with<T, R>(
        &mut self,
        table: &'a Table<T>,
        change: impl FnOnce(&mut TxView<'_, T>) -> Result<R, Fault>,
    ) -> Result<R, Fault>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.check_new(table)?;
        self.locked_with(table, table.write_lock(), change)
    }

    /// [`Group::with`] with row `id` in the view if the database has it:
    /// a cached table reads the row in before its lock is taken (as
    /// [`Table::update`] does), so `change` can change a row the copy
    /// had given up.
    pub fn with_row<T, R>(
        &mut self,
        table: &'a Table<T>,
        id: &str,
        change: impl FnOnce(&mut TxView<'_, T>) -> Result<R, Fault>,
    ) -> Result<R, Fault>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.check_new(table)?;
        self.locked_with(table, table.lock_with(id)?, change)
    }

    /// Locks `table` (held until [`Group::queue`]) and changes its row
    /// `id` (`missing` when there is none): `change` sees the row as it
    /// is and gives it as it is to be, written with a compare-and-swap on
    /// the token the copy has (read in first by a cached table, as
    /// [`Group::with_row`]), with `guard` if any. The row as written.
    pub fn update<T, R>(
        &mut self,
        table: &'a Table<T>,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
        guard: Option<super::Guard>,
    ) -> Result<(Arc<T>, R), Fault>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.with_row(table, id, |v| {
            let mut next = v.get(id).ok_or_else(missing)?;
            let r = change(&mut next)?;
            let next = Arc::new(next);
            v.put_shared(id, next.clone(), guard);
            Ok((next, r))
        })
    }

    /// Refuses a table the group already named.
    fn check_new<T>(&self, table: &Table<T>) -> Result<(), Fault>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if self.locked.contains(&table.identity()) {
            return Err(Fault::internal("a table named twice in one group"));
        }
        Ok(())
    }

    /// [`Group::with`] once `table`'s lock is taken (`rows`).
    fn locked_with<T, R>(
        &mut self,
        table: &'a Table<T>,
        rows: RwLockWriteGuard<'a, Rows<T>>,
        change: impl FnOnce(&mut TxView<'_, T>) -> Result<R, Fault>,
    ) -> Result<R, Fault>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let me = table.identity();
        let (r, pending, guards) = {
            let mut view = TxView::over(&rows);
            let r = change(&mut view)?;
            (r, view.pending, view.guards)
        };
        self.locked.push(me);
        self.store.get_or_insert_with(|| table.store().clone());
        let mut rows = rows;
        self.stages.push(Box::new(move || {
            let mut guards = guards;
            let mut writes = Vec::with_capacity(pending.len());
            for (id, v) in pending {
                let guard = guards.remove(&id);
                writes.push(table.prepare(&mut rows, &id, v, guard)?);
            }
            drop(rows);
            Ok(writes)
        }));
        Ok(r)
    }

    /// Queues every write of the group as one all-or-nothing group and
    /// lets the locks go; the returned [`Queued`] tells the outcome.
    /// Nothing is written when the group wrote nothing.
    pub fn queue(self) -> Result<Queued, Fault> {
        let mut writes = Vec::new();
        // A stage fails only when a record cannot be serialised; the
        // stages after it are dropped unrun, letting their locks go.
        for stage in self.stages {
            writes.extend(stage()?);
        }
        let rxs = match (&self.store, writes.is_empty()) {
            (Some(store), false) => store.enqueue_group(writes),
            _ => Vec::new(),
        };
        Ok(Queued(rxs))
    }
}

/// A queued group's writes ([`Group::queue`]).
pub struct Queued(Vec<oneshot::Receiver<Ack>>);

impl Queued {
    /// Waits for the group's commit: `Ok` when every write was made, else
    /// why the group was refused (nothing of it was written).
    pub async fn outcome(self) -> Result<(), Fault> {
        first_refusal(self.0).await
    }
}
