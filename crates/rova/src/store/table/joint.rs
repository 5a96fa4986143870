//! The table's joint writes: a row written together with rows of
//! another table, or several rows of this one, all or nothing
//! ([`Table::update_along`], [`Table::update_with`],
//! [`Table::with_children`], [`Table::remove_with`],
//! [`Table::insert_with`], [`Table::transact`]), and the [`TxView`] they
//! hand out, whose reads see the writes pending in it.

use super::super::{wait, Ack, Guard};
use super::{Index, Rows, Table};
use rova_core::Fault;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

impl<T> Table<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// [`Table::update`] of row `id` made together with a change to row
    /// `other_id` of table `other`, in one transaction, all or nothing:
    /// `along` sees this row as changed and changes the other one
    /// (starting from `init()` when it is absent). When the database
    /// refuses either write, neither is made and both copies keep the
    /// rows as stored. `guard`, if any, is checked on this row's write in
    /// the same transaction. Locks this table, then `other`.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_along<U, R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
        other: &Table<U>,
        other_id: &str,
        init: impl FnOnce() -> U,
        along: impl FnOnce(&T, &mut U),
        guard: Option<Guard>,
    ) -> Result<(Arc<T>, R), Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        other.ensure(other_id)?;
        let along = |next: &T, view: &mut TxView<'_, U>| {
            let mut second = view.get(other_id).unwrap_or_else(init);
            along(next, &mut second);
            view.put(other_id, second);
            Ok(())
        };
        self.update_with_guard(id, missing, change, other, along, guard)
            .await
    }

    /// [`Table::update`] of row `id` made together with writes to the rows
    /// of table `other` (its child rows), in one transaction, all or
    /// nothing: `along` sees this row as changed and writes the others
    /// through a [`TxView`] (and may refuse, when nothing is written). The
    /// parent row is written even when `change` leaves it as it was, so a
    /// process that removed or changed it meanwhile makes the whole group
    /// fail. Locks this table, then `other`, which must be kept whole.
    pub async fn update_with<U, R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
        other: &Table<U>,
        along: impl FnOnce(&T, &mut TxView<'_, U>) -> Result<(), Fault>,
    ) -> Result<(Arc<T>, R), Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.update_with_guard(id, missing, change, other, along, None)
            .await
    }

    /// Writes to table `other` (row `id`'s child rows) made together with
    /// row `id` written unchanged, all or nothing: a row another process
    /// removed or changed meanwhile refuses them (`missing` when it is
    /// gone here). The row as written.
    pub async fn with_children<U>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        other: &Table<U>,
        along: impl FnOnce(&T, &mut TxView<'_, U>) -> Result<(), Fault>,
    ) -> Result<Arc<T>, Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.update_with(id, missing, |_| Ok(()), other, along)
            .await
            .map(|(row, ())| row)
    }

    /// [`Table::update_with`] with `guard`, if any, checked on this row's
    /// write.
    pub async fn update_with_guard<U, R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut T) -> Result<R, Fault>,
        other: &Table<U>,
        along: impl FnOnce(&T, &mut TxView<'_, U>) -> Result<(), Fault>,
        guard: Option<Guard>,
    ) -> Result<(Arc<T>, R), Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let (arc, r) = self
            .change_with(
                id,
                |cur| {
                    let mut next = cur.map(|c| (**c).clone()).ok_or_else(missing)?;
                    let r = change(&mut next)?;
                    Ok((Some(next), r))
                },
                other,
                |_, next, view| next.map_or(Ok(()), |n| along(n, view)),
                guard,
            )
            .await?;
        Ok((arc.ok_or_else(|| Fault::internal("row vanished"))?, r))
    }

    /// Removes row `id` together with writes to table `other` (its child
    /// rows: `along` deletes them), in one transaction, all or nothing.
    /// What was there, or `None` (nothing written) when there was no row.
    pub async fn remove_with<U>(
        &self,
        id: &str,
        other: &Table<U>,
        along: impl FnOnce(&T, &mut TxView<'_, U>) -> Result<(), Fault>,
    ) -> Result<Option<Arc<T>>, Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.change_with(
            id,
            |cur| Ok((None, cur.cloned())),
            other,
            |before, _, view| before.map_or(Ok(()), |b| along(b, view)),
            None,
        )
        .await
        .map(|(_, old)| old)
    }

    /// Inserts row `id` only if the id is free (else `conflict`), with
    /// `guard` checked on it, together with `along`'s writes to table
    /// `other` (e.g. removing child rows a former row of the id left), in
    /// one transaction, all or nothing.
    pub async fn insert_with<U>(
        &self,
        id: &str,
        value: T,
        conflict: Fault,
        guard: Option<Guard>,
        other: &Table<U>,
        along: impl FnOnce(&T, &mut TxView<'_, U>) -> Result<(), Fault>,
    ) -> Result<Arc<T>, Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let taken = conflict.clone();
        let made = self
            .change_with(
                id,
                |cur| match cur {
                    Some(_) => Err(taken),
                    None => Ok((Some(value), ())),
                },
                other,
                |_, next, view| next.map_or(Ok(()), |n| along(n, view)),
                guard,
            )
            .await;
        match made {
            Ok((Some(row), ())) => Ok(row),
            Ok((None, ())) => Err(Fault::internal("row vanished")),
            // Another process inserted the id first.
            Err(f) if f.code == 409 && self.get(id).is_some() => Err(conflict),
            Err(f) => Err(f),
        }
    }

    /// The shared body of [`Table::update_along`], [`Table::update_with`],
    /// [`Table::insert_with`] and [`Table::remove_with`]: under this table's lock, then
    /// `other`'s, `change` gives this row's next value from its current
    /// one (`None`: delete it), `along` (given the row before and after)
    /// writes `other`'s rows, and every
    /// write is queued as one all-or-nothing group. Nothing is written
    /// when the row is absent and stays absent.
    async fn change_with<U, R>(
        &self,
        id: &str,
        change: impl FnOnce(Option<&Arc<T>>) -> Result<(Option<T>, R), Fault>,
        other: &Table<U>,
        along: impl FnOnce(Option<&T>, Option<&T>, &mut TxView<'_, U>) -> Result<(), Fault>,
        guard: Option<Guard>,
    ) -> Result<(Option<Arc<T>>, R), Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let (arc, r, rxs) = {
            let mut rows = self.lock_with(id)?;
            let before = rows.get(id).cloned();
            let (next, r) = change(before.as_ref())?;
            if before.is_none() && next.is_none() {
                return Ok((None, r));
            }
            let arc = next.map(Arc::new);
            let mut others = other.inner.rows.write();
            let mut view = TxView::over(&others);
            along(before.as_deref(), arc.as_deref(), &mut view)?;
            let pending = std::mem::take(&mut view.pending);
            let mut guards = std::mem::take(&mut view.guards);
            let mut writes = Vec::with_capacity(pending.len() + 1);
            writes.push(self.prepare(&mut rows, id, arc.clone(), guard)?);
            for (oid, v) in pending {
                let g = guards.remove(&oid);
                writes.push(other.prepare(&mut others, &oid, v, g)?);
            }
            (arc, r, self.store.enqueue_group(writes))
        };
        first_refusal(rxs).await.map(|()| (arc, r))
    }

    /// Several rows changed together under one lock. `change` gets the
    /// whole map and returns the ids it wrote. The writes are made in one
    /// transaction, all or nothing: each is a compare-and-swap, and when
    /// another process changed one of the rows meanwhile none is made (a
    /// 409) and the copy keeps every row as stored.
    pub async fn transact<R>(
        &self,
        change: impl FnOnce(&mut TxView<'_, T>) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let (r, rxs) = {
            let mut rows = self.inner.rows.write();
            debug_assert!(
                !rows.cached(),
                "transact sees only the copy, not a cached table's rows"
            );
            let mut view = TxView::over(&rows);
            let r = change(&mut view)?;
            let pending = std::mem::take(&mut view.pending);
            let mut guards = std::mem::take(&mut view.guards);
            let mut writes = Vec::with_capacity(pending.len());
            for (id, v) in pending {
                let guard = guards.remove(&id);
                writes.push(self.prepare(&mut rows, &id, v, guard)?);
            }
            (r, self.store.enqueue_group(writes))
        };
        first_refusal(rxs).await.map(|()| r)
    }

    /// [`Table::transact`] over this table and table `other` together:
    /// `change` reads and writes both through their views, under both
    /// locks (this table's first, so every caller must name the two in
    /// the same order), and every write of either is made in one
    /// transaction, all or nothing. Both tables must be kept whole.
    pub async fn transact_with<U, R>(
        &self,
        other: &Table<U>,
        change: impl FnOnce(&mut TxView<'_, T>, &mut TxView<'_, U>) -> Result<R, Fault>,
    ) -> Result<R, Fault>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let (r, rxs) = {
            let mut rows = self.inner.rows.write();
            let mut others = other.inner.rows.write();
            debug_assert!(
                !rows.cached() && !others.cached(),
                "transact_with sees only the copies, not a cached table's rows"
            );
            let mut mine = TxView::over(&rows);
            let mut theirs = TxView::over(&others);
            let r = change(&mut mine, &mut theirs)?;
            let (pending, mut guards) = (mine.pending, mine.guards);
            let (other_pending, mut other_guards) = (theirs.pending, theirs.guards);
            let mut writes = Vec::with_capacity(pending.len() + other_pending.len());
            for (id, v) in pending {
                let guard = guards.remove(&id);
                writes.push(self.prepare(&mut rows, &id, v, guard)?);
            }
            for (id, v) in other_pending {
                let guard = other_guards.remove(&id);
                writes.push(other.prepare(&mut others, &id, v, guard)?);
            }
            (r, self.store.enqueue_group(writes))
        };
        first_refusal(rxs).await.map(|()| r)
    }
}

/// Waits for every write of an all-or-nothing group. The write refused
/// for its own reason tells why; the others of the group only say they
/// were not made with it.
pub(in crate::store) async fn first_refusal(rxs: Vec<oneshot::Receiver<Ack>>) -> Result<(), Fault> {
    let mut first_err: Option<Fault> = None;
    for rx in rxs {
        if let Err(e) = wait(rx).await {
            let together = e.message == crate::store::TOGETHER;
            if first_err
                .as_ref()
                .is_none_or(|f| f.message == crate::store::TOGETHER && !together)
            {
                first_err = Some(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A write queued without waiting ([`Table::write_behind_guarded`]).
pub struct Staged(pub(in crate::store) oneshot::Receiver<Ack>);

impl Staged {
    /// Waits for the write's commit: what [`Table::put`] would answer.
    pub async fn outcome(self) -> Result<(), Fault> {
        wait(self.0).await
    }
}

/// A view of a table inside [`Table::transact`]: reads see pending writes.
pub struct TxView<'a, T> {
    pub(in crate::store) rows: &'a HashMap<String, Arc<T>>,
    pub(in crate::store) indexes: &'a [Index<T>],
    pub(in crate::store) pending: HashMap<String, Option<Arc<T>>>,
    pub(in crate::store) guards: HashMap<String, Guard>,
}
impl<'a, T> TxView<'a, T> {
    /// A view of `rows` with nothing written yet.
    pub(in crate::store) fn over(rows: &'a Rows<T>) -> Self {
        TxView {
            rows: &rows.map,
            indexes: &rows.indexes,
            pending: HashMap::new(),
            guards: HashMap::new(),
        }
    }
}

impl<T: Clone> TxView<'_, T> {
    pub fn get(&self, id: &str) -> Option<T> {
        match self.pending.get(id) {
            Some(v) => v.as_deref().cloned(),
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
        out.extend(self.pending.values().flatten().map(|a| (**a).clone()));
        out
    }
    /// The ids of the rows whose index `name` has `value` (pending writes
    /// applied), without scanning the table.
    pub fn find_ids(&self, name: &str, value: &str) -> Vec<String> {
        let Some(ix) = self.indexes.iter().find(|ix| ix.name == name) else {
            debug_assert!(false, "no index {name}");
            return Vec::new();
        };
        let mut out: Vec<String> = ix
            .ids
            .get(value)
            .into_iter()
            .flatten()
            .filter(|id| !self.pending.contains_key(*id))
            .cloned()
            .collect();
        out.extend(self.pending.iter().filter_map(|(id, v)| {
            v.as_ref()
                .filter(|v| (ix.key)(v).as_deref() == Some(value))
                .map(|_| id.clone())
        }));
        out
    }
    /// Deletes the rows whose index `name` has `value` (a parent's child
    /// rows).
    pub fn delete_found(&mut self, name: &str, value: &str) {
        for id in self.find_ids(name, value) {
            self.delete(&id);
        }
    }
    /// The sum of `of` over the rows (pending writes applied), without
    /// cloning any.
    pub fn sum(&self, of: impl Fn(&T) -> u64) -> u64 {
        let stored: u64 = self
            .rows
            .iter()
            .filter(|(k, _)| !self.pending.contains_key(*k))
            .map(|(_, v)| of(v))
            .sum();
        stored + self.pending.values().flatten().map(|v| of(v)).sum::<u64>()
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
        self.pending.insert(id.to_string(), Some(Arc::new(value)));
    }
    /// A put of a value the caller keeps too (the copy holds this very
    /// `Arc`: nothing is cloned), with `guard` if any.
    pub fn put_shared(&mut self, id: &str, value: Arc<T>, guard: Option<Guard>) {
        if let Some(g) = guard {
            self.guards.insert(id.to_string(), g);
        }
        self.pending.insert(id.to_string(), Some(value));
    }
    /// A put the database makes only if `guard` holds in the transaction
    /// (else none of the transaction's writes is made).
    pub fn put_guarded(&mut self, id: &str, value: T, guard: Guard) {
        self.guards.insert(id.to_string(), guard);
        self.put(id, value);
    }
    pub fn delete(&mut self, id: &str) {
        self.pending.insert(id.to_string(), None);
    }
    /// A put of `value`, or a delete when it is `None`.
    pub fn write(&mut self, id: &str, value: Option<T>) {
        match value {
            Some(v) => self.put(id, v),
            None => self.delete(id),
        }
    }
}
