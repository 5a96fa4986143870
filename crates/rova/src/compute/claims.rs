//! The claim book: every resource claim (a Placement allocation) this
//! process knows of, with per-host usage and per-instance indexes kept on
//! each change, and the transaction view [`ClaimTx`] that
//! [`super::fleet::Fleet::with_claims`] hands out. The book is memory; the
//! `allocations` rows it writes behind (see `fleet`) are what the
//! database guards.

use rova_core::scheduler::Resources;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Resources held by one consumer on one host: an instance, or a migration
/// holding the source host of a move (as Nova moves the source allocation
/// to the migration record).
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub host: String,
    pub instance_uuid: String,
    pub resources: Resources,
}

pub(super) enum TxOp {
    Insert(String, Claim),
    Remove(String),
}

/// Claim changes recorded inside [`Fleet::with_claims`]; reads see them.
pub struct ClaimTx<'a> {
    pub(super) book: &'a ClaimBook,
    pub(super) ops: Vec<TxOp>,
}

impl ClaimTx<'_> {
    /// The claim a consumer holds, pending changes included.
    pub fn get(&self, consumer: &str) -> Option<Claim> {
        for op in self.ops.iter().rev() {
            match op {
                TxOp::Insert(k, c) if k == consumer => return Some(c.clone()),
                TxOp::Remove(k) if k == consumer => return None,
                _ => {}
            }
        }
        self.book.get(consumer).cloned()
    }

    /// Records a claim (replacing the consumer's earlier one).
    pub fn insert(&mut self, consumer: String, c: Claim) {
        self.ops.push(TxOp::Insert(consumer, c));
    }

    /// Drops a consumer's claim, returning it.
    pub fn remove(&mut self, consumer: &str) -> Option<Claim> {
        let cur = self.get(consumer);
        if cur.is_some() {
            self.ops.push(TxOp::Remove(consumer.to_string()));
        }
        cur
    }
}

/// Usage of one host, kept up to date as claims come and go.
#[derive(Debug, Clone, Default)]
pub struct HostUsage {
    pub vcpus: u64,
    pub memory_mb: u64,
    pub disk_gb: u64,
    /// Claims per instance on this host (a same-host resize holds two).
    pub(super) counts: HashMap<String, u32>,
    /// The instances with at least one claim here.
    pub instances: Arc<std::collections::BTreeSet<String>>,
}

/// Every claim, plus per-host and per-instance indexes maintained on each
/// change, so scheduling reads host usage in O(hosts) instead of summing
/// every claim each time.
#[derive(Debug, Default)]
pub struct ClaimBook {
    pub(super) claims: HashMap<String, Claim>,
    pub(super) usage: HashMap<String, HostUsage>,
    pub(super) by_instance: HashMap<String, std::collections::BTreeSet<String>>,
    /// Consumers changed since their allocation rows were last written.
    pub(super) dirty: Vec<String>,
}

impl ClaimBook {
    /// Records (or replaces) a consumer's claim.
    pub fn insert(&mut self, consumer: String, c: Claim) {
        self.remove(&consumer);
        self.dirty.push(consumer.clone());
        let u = self.usage.entry(c.host.clone()).or_default();
        u.vcpus += c.resources.vcpus as u64;
        u.memory_mb += c.resources.memory_mb;
        u.disk_gb += c.resources.disk_gb;
        let n = u.counts.entry(c.instance_uuid.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            Arc::make_mut(&mut u.instances).insert(c.instance_uuid.clone());
        }
        self.by_instance
            .entry(c.instance_uuid.clone())
            .or_default()
            .insert(consumer.clone());
        self.claims.insert(consumer, c);
    }

    /// Drops a consumer's claim, returning it.
    pub fn remove(&mut self, consumer: &str) -> Option<Claim> {
        let c = self.claims.remove(consumer)?;
        self.dirty.push(consumer.to_string());
        if let Some(u) = self.usage.get_mut(&c.host) {
            u.vcpus = u.vcpus.saturating_sub(c.resources.vcpus as u64);
            u.memory_mb = u.memory_mb.saturating_sub(c.resources.memory_mb);
            u.disk_gb = u.disk_gb.saturating_sub(c.resources.disk_gb);
            let gone = match u.counts.get_mut(&c.instance_uuid) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => true,
            };
            if gone {
                u.counts.remove(&c.instance_uuid);
                Arc::make_mut(&mut u.instances).remove(&c.instance_uuid);
            }
        }
        if let Some(set) = self.by_instance.get_mut(&c.instance_uuid) {
            set.remove(consumer);
            if set.is_empty() {
                self.by_instance.remove(&c.instance_uuid);
            }
        }
        Some(c)
    }

    pub fn get(&self, consumer: &str) -> Option<&Claim> {
        self.claims.get(consumer)
    }
}

/// The resources a migration holds on its source (stored on the record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

impl From<Held> for Resources {
    fn from(h: Held) -> Self {
        Resources {
            vcpus: h.vcpus,
            memory_mb: h.memory_mb,
            disk_gb: h.disk_gb,
        }
    }
}

impl From<Resources> for Held {
    fn from(r: Resources) -> Self {
        Held {
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            disk_gb: r.disk_gb,
        }
    }
}
