//! A table's rows as this process holds them: the copy of one kind's
//! rows with its secondary and ordered indexes, and per row the version
//! token last seen, this process's writes to it in flight, and (for a
//! cached table) the bound on how many rows are kept. `super::table`
//! changes them under its lock.

use super::ordered;
use std::collections::HashMap;
use std::sync::Arc;

/// A secondary index of a table: the ids of the rows whose `key` is each
/// value (rows whose key is `None` are not in it).
pub(super) struct Index<T> {
    pub(super) name: &'static str,
    pub(super) key: fn(&T) -> Option<String>,
    pub(super) ids: HashMap<String, std::collections::HashSet<String>>,
}

/// A table's rows and its secondary indexes (hash and ordered), changed
/// together under the table's lock. Reads go through `Deref` to the map of
/// rows; `insert` and `remove` keep every index in step.
pub(super) struct Rows<T> {
    pub(super) map: HashMap<String, Arc<T>>,
    pub(super) indexes: Vec<Index<T>>,
    pub(super) ordered: Vec<Box<dyn ordered::OrderedIndex<T>>>,
    /// Per row: the version token as this process last saw it (0: none),
    /// the [`Store::epoch`] of this process's last write to it (0: read),
    /// and its writes queued and not yet answered.
    pub(super) meta: HashMap<String, Meta>,
    /// How many rows the copy keeps: `usize::MAX` for a table kept whole,
    /// else a cache of the database ([`Table::load_cached`]) that gives up
    /// its oldest rows (never one with a write in flight) beyond this.
    pub(super) cap: usize,
    /// A cached table's rows in the order they came in (ids no longer in
    /// the copy are skipped when met).
    pub(super) fifo: std::collections::VecDeque<String>,
    /// The store's reads in progress.
    pub(super) reads: Arc<super::ReadMarks>,
}

/// What [`Rows::meta`] keeps per row.
#[derive(Clone, Copy, Default)]
pub(super) struct Meta {
    pub(super) gen: i64,
    pub(super) epoch: u64,
    pub(super) pending: u32,
}

impl<T> Rows<T> {
    /// Whether this copy holds only some of the table's rows.
    pub(super) fn cached(&self) -> bool {
        self.cap != usize::MAX
    }

    /// Whether the copy may give row `id` up: no write of this process to
    /// it is in flight, and no read that began before its last one is
    /// still to be taken in (it would bring the row back as it was; a read
    /// is only refused over a row the copy holds or remembers writing).
    pub(super) fn may_forget(&self, id: &str, oldest_read: Option<u64>) -> bool {
        match self.meta.get(id) {
            None => true,
            Some(m) => m.pending == 0 && oldest_read.is_none_or(|since| m.epoch <= since),
        }
    }

    /// Gives up the oldest rows beyond the cache's size, keeping those
    /// [`Rows::may_forget`] refuses.
    pub(super) fn evict(&mut self) {
        let oldest_read = self.reads.oldest();
        let mut looked = 0;
        while self.map.len() > self.cap && looked < self.fifo.len() {
            let Some(id) = self.fifo.pop_front() else {
                break;
            };
            if !self.map.contains_key(&id) {
                continue;
            }
            if !self.may_forget(&id, oldest_read) {
                looked += 1;
                self.fifo.push_back(id);
                continue;
            }
            self.remove(&id);
            self.meta.remove(&id);
        }
        if self.fifo.len() > 2 * self.cap.max(1024) {
            let map = &self.map;
            self.fifo.retain(|id| map.contains_key(id));
        }
    }

    pub(super) fn gen_of(&self, id: &str) -> Option<(i64, u64)> {
        self.meta
            .get(id)
            .filter(|m| m.gen != 0)
            .map(|m| (m.gen, m.epoch))
    }

    /// Whether the copy of `id` should take the database's row (version
    /// `gen`; `None`: deleted) read after [`Store::epoch`] was `since`: not
    /// while this process has a write to it in flight or wrote it since,
    /// and only when it differs.
    pub(super) fn takes_remote(&self, id: &str, gen: Option<i64>, since: u64) -> bool {
        !self.in_flight(id)
            && match (self.gen_of(id), gen) {
                (Some((_, at)), _) if at > since => false,
                (Some((g, _)), Some(gen)) => g != gen,
                (None, Some(_)) | (Some(_), None) => true,
                (None, None) => self.map.contains_key(id),
            }
    }

    pub(super) fn in_flight(&self, id: &str) -> bool {
        self.meta.get(id).is_some_and(|m| m.pending > 0)
    }

    /// Drops `id`'s entry once it holds nothing.
    pub(super) fn tidy(&mut self, id: &str) {
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
    pub(super) fn unindex(&mut self, id: &str, old: &T) {
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

    pub(super) fn insert(&mut self, id: String, row: Arc<T>) -> Option<Arc<T>> {
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
        if self.cached() && old.is_none() {
            self.fifo.push_back(id.clone());
        }
        let old = self.map.insert(id, row);
        if self.map.len() > self.cap {
            self.evict();
        }
        old
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<T>> {
        let old = self.map.remove(id)?;
        self.unindex(id, &old);
        for ix in &mut self.ordered {
            ix.replace(id, Some(&old), None);
        }
        Some(old)
    }

    /// The token a write to `id` must find in the database (0: no row).
    pub(super) fn expect(&self, id: &str) -> i64 {
        self.meta.get(id).map_or(0, |m| m.gen)
    }

    /// Records a local write of `id` (`gen` 0: a delete) made at `epoch`.
    pub(super) fn wrote(&mut self, id: &str, gen: i64, epoch: u64) {
        let m = match self.meta.get_mut(id) {
            Some(m) => m,
            None => self.meta.entry(id.to_string()).or_default(),
        };
        m.gen = gen;
        m.epoch = epoch;
        m.pending += 1;
    }

    /// A local write of `id` was answered.
    /// `at` is the write count taken when the answer came, after the
    /// commit: a read begun before it may not have seen the write.
    pub(super) fn answered(&mut self, id: &str, at: u64) {
        if let Some(m) = self.meta.get_mut(id) {
            m.pending = m.pending.saturating_sub(1);
            if m.epoch != 0 {
                m.epoch = m.epoch.max(at);
            }
        }
        self.tidy(id);
    }

    /// Makes the copy of `id` what the database holds.
    pub(super) fn take(&mut self, id: &str, current: Option<(i64, Arc<T>)>) {
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
