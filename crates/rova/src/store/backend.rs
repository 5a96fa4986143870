//! What the store's writer thread needs of a database, and the database
//! URL `rova serve --database` takes. The two backends (`sqlite`,
//! `postgres`) apply the same versioned migrations (kept per backend under
//! `crates/rova/migrations/`), load a kind's rows and commit a batch of
//! writes in one transaction.
//!
//! A PostgreSQL database may be served by several processes at once
//! (every write is a compare-and-swap, invariants are guards counted in
//! the writing transaction, and each commit is announced to the others).
//! An SQLite file is served by one process: the backend takes an `flock`
//! on the `.lock` file beside it and refuses to start without it.

use super::schema::{Cell, Kind};
use std::path::{Path, PathBuf};

/// One write, as the writer thread commits it. Every write is a
/// compare-and-swap on the row's version token (`gen`): `expect` is the
/// token the writer's process last saw (0: the row must not exist), and a
/// put leaves the row with the fresh token `gen`. A row another process
/// changed meanwhile is not written (a [`Rejection`] with the row as it
/// now is).
pub enum Op {
    Put {
        kind: &'static Kind,
        id: String,
        cells: Vec<Cell>,
        body: String,
        expect: i64,
        gen: i64,
        /// A condition on other rows, checked in the same transaction.
        guard: Option<Guard>,
    },
    Delete {
        kind: &'static Kind,
        id: String,
        expect: i64,
    },
}

/// A condition a write must meet, counted from the rows inside the
/// transaction that makes the write (so processes sharing a database
/// cannot overshoot together). Negative limits are unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// An instance row: the project's instances that are not deleted, this
    /// one included, stay within the instance, core and RAM limits
    /// (Nova counts quota usage from the rows the same way).
    Quota {
        project: String,
        instances: i64,
        cores: i64,
        ram: i64,
    },
    /// An allocation row on `node`: the allocations held on the node
    /// (every process's, this one included) fit the vCPU and RAM capacity
    /// its `resource_providers` row holds (allocation ratios and reserved
    /// memory applied), as Placement checks allocations against inventory.
    /// A node without a row has no room.
    Capacity { node: String },
    /// A row joining a set counted by one of its table's key columns: the
    /// rows whose `column` is `value`, this one included, are at most
    /// `limit` (Nova's key pairs per user, server groups per project).
    /// Refused with `message` (Nova's 403 text).
    Count {
        column: &'static str,
        value: String,
        limit: i64,
        message: String,
    },
    /// A row written only while another table holds few rows naming it:
    /// the rows of `table` whose `column` is `value` are at most `max`
    /// (a volume's delete: the volume's snapshots, none, or just those the
    /// delete takes along). Counted after the row is written, so a
    /// transaction adding such a row and writing the guarded row too (a
    /// snapshot's insert writes its volume's row) is serialised with it by
    /// the row. Refused with `message`.
    Rows {
        table: &'static str,
        column: &'static str,
        value: String,
        max: i64,
        message: String,
    },
    /// A volume or snapshot row within its project's block-storage quota,
    /// counted from the rows as Cinder's quota driver counts usage: the
    /// rows of the written table whose `project_id` is `project` at most
    /// `count` when given (a new row: the volumes or snapshots limit,
    /// refused with its message), and the GiB the project's volumes
    /// (each its size, or the size an extend takes it to) and snapshots
    /// hold together at most `gigabytes` (refused with Cinder's
    /// gigabytes text; `requested` is the row's share of them).
    Storage {
        project: String,
        count: Option<(i64, String)>,
        gigabytes: i64,
        requested: i64,
    },
}

/// The GiB a project's volumes and snapshots hold, as the database counts
/// them for [`Guard::Storage`] (`?1`/`$1`: the project): a volume counts
/// the larger of its size and the size an extend takes it to.
pub const STORAGE_GB_SQLITE: &str = "SELECT \
     (SELECT coalesce(sum(max(size_gb, coalesce(json_extract(body, '$.extend_to'), 0))), 0) FROM volumes WHERE project_id = ?1) \
     + (SELECT coalesce(sum(size_gb), 0) FROM snapshots WHERE project_id = ?1)";

/// [`STORAGE_GB_SQLITE`] for PostgreSQL.
pub const STORAGE_GB_POSTGRES: &str = "SELECT \
     (SELECT coalesce(sum(greatest(size_gb, coalesce((body->>'extend_to')::bigint, 0))), 0) FROM volumes WHERE project_id = $1)::bigint \
     + (SELECT coalesce(sum(size_gb), 0) FROM snapshots WHERE project_id = $1)::bigint";

impl Guard {
    /// The advisory lock (PostgreSQL) that serialises the transactions
    /// counting what this guard counts, on `table`.
    pub fn lock_key(&self, table: &str) -> String {
        match self {
            Guard::Quota { project, .. } => format!("rova-quota/{project}"),
            Guard::Capacity { node, .. } => format!("rova-node/{node}"),
            Guard::Count { column, value, .. } => format!("rova-count/{table}/{column}/{value}"),
            Guard::Rows {
                table,
                column,
                value,
                ..
            } => format!("rova-count/{table}/{column}/{value}"),
            // Volumes and snapshots share the gigabytes: one lock.
            Guard::Storage { project, .. } => format!("rova-storage/{project}"),
        }
    }
}

/// The advisory locks a set of writes' guards need, sorted and without
/// repeats (taken in this order, two processes' transactions cannot
/// deadlock on them).
pub fn guard_locks(ops: &[&Op]) -> Vec<String> {
    let mut locks: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Put {
                kind,
                guard: Some(g),
                ..
            } => Some(g.lock_key(kind.table)),
            _ => None,
        })
        .collect();
    locks.sort();
    locks.dedup();
    locks
}

/// Why a write was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The row changed since this process read it.
    Changed,
    /// A [`Guard::Quota`] failed: Nova's message.
    Quota(String),
    /// A [`Guard::Capacity`] failed.
    Capacity(String),
    /// A unique key of the row's child rows is taken: an IP address of the
    /// port is allocated to another port.
    Taken { subnet: String, ip: String },
    /// Not made because another write of its all-or-nothing group was
    /// refused (nothing of the group was written).
    Together,
}

/// A write that was not made, with the row as the database has it now
/// (`(gen, body)`; `None`: no such row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub refusal: Refusal,
    pub current: Option<(i64, String)>,
}

/// The outcome of each write of a batch: the batch commits all of the
/// writes it does not reject.
pub type Outcome = Result<(), Rejection>;

impl Op {
    /// A write of record `id` of `kind` given as its JSON text, with its key
    /// columns read from that text.
    pub fn put(
        kind: &'static Kind,
        id: String,
        body: String,
        expect: i64,
        gen: i64,
    ) -> Result<Op, String> {
        let cells = if kind.cols.is_empty() {
            Vec::new()
        } else {
            kind.cells_of_json(&body)
                .map_err(|e| format!("stored {} {id} is unreadable: {e}", kind.kind))?
        };
        Ok(Op::Put {
            kind,
            id,
            cells,
            body,
            expect,
            gen,
            guard: None,
        })
    }

    pub fn kind(&self) -> &'static Kind {
        match self {
            Op::Put { kind, .. } | Op::Delete { kind, .. } => kind,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Op::Put { id, .. } | Op::Delete { id, .. } => id,
        }
    }

    pub fn expect(&self) -> i64 {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
        }
    }

    /// Whether this write must be made on its own (a savepoint around it),
    /// not in a bulk statement: it has a guard, or its kind has child rows
    /// with a unique key.
    pub fn alone(&self) -> bool {
        match self {
            Op::Put { kind, guard, .. } => guard.is_some() || kind.table == "ports",
            Op::Delete { kind, .. } => kind.table == "ports",
        }
    }
}

/// A fresh version token, never 0 (0 means "no row"): a bijective mix
/// (splitmix64) of a per-process random seed plus a counter, so tokens
/// never repeat within a process and collide across processes with
/// negligible odds, without a system call per write.
pub fn fresh_gen() -> i64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| uuid::Uuid::new_v4().as_u128() as u64);
    loop {
        let mut z = seed.wrapping_add(
            NEXT.fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let g = (z & (i64::MAX as u64)) as i64;
        if g != 0 {
            return g;
        }
    }
}

/// The writes of a batch, grouped by row: each row's writes in order (a
/// row's writes must all be made or all be refused), rows in the order of
/// their first write.
pub fn chains<'a>(ops: &[&'a Op]) -> Vec<Vec<(usize, &'a Op)>> {
    let mut at: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut out: Vec<Vec<(usize, &'a Op)>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let key = (op.kind().table, op.id());
        match at.get(&key) {
            Some(&c) => out[c].push((i, *op)),
            None => {
                at.insert(key, out.len());
                out.push(vec![(i, *op)]);
            }
        }
    }
    out
}

/// A change another process should hear about: the row of table
/// `KINDS[kind]` with this id was written or deleted.
pub fn change_line(op: &Op) -> String {
    let k = super::schema::KINDS
        .iter()
        .position(|k| k.table == op.kind().table)
        .unwrap_or(usize::MAX);
    format!("{k} {}", op.id())
}

/// A database the store can keep its tables in.
pub trait Backend: Send {
    /// Hands every stored `(id, gen, body)` of one kind to `sink`, as the rows
    /// are read (never all of them at once); stops early when `sink`
    /// returns false.
    fn load(
        &mut self,
        kind: &Kind,
        sink: &mut dyn FnMut(String, i64, String) -> bool,
    ) -> Result<(), String>;
    /// Applies `ops` in one transaction: each write is made unless it is
    /// rejected (its outcome says why); an error fails the whole batch.
    /// The writes of each of `groups` (ranges of `ops`) are made all or
    /// nothing: when one is rejected none of its group is made, and every
    /// outcome of the group carries its row as stored (the others rejected
    /// as [`Refusal::Together`]). A backend may make the groups after the
    /// other writes (the writer never queues a single write to a row after
    /// a group that writes it in the same batch).
    fn commit(
        &mut self,
        ops: &[&Op],
        groups: &[std::ops::Range<usize>],
    ) -> Result<Vec<Outcome>, String>;
    /// Reserves `n` ids of counter `name`, never below `floor`: the first.
    fn reserve_ids(&mut self, name: &str, floor: i64, n: i64) -> Result<i64, String>;
    /// Runs [`LEASE_SQL`]: whether `owner` now holds lease `name`.
    fn lease(&mut self, name: &str, owner: &str, now_ms: i64, ttl_ms: i64) -> Result<bool, String>;
    /// Runs [`RELEASE_SQL`].
    fn release(&mut self, name: &str, owner: &str) -> Result<(), String>;
    /// Every unexpired lease at `now_ms` whose name starts with `prefix`:
    /// `(name, owner)`.
    fn leases_held(&mut self, prefix: &str, now_ms: i64) -> Result<Vec<(String, String)>, String>;
    /// Called by the writer after each batch it committed, when nothing
    /// else is being written: upkeep that must not run beside a write.
    fn after_commit(&mut self) {}
}

/// The outcomes of an all-or-nothing group that was rolled back because a
/// write was refused: `made` says which writes were made (`Ok`) or
/// refused, `current` gives each write's row as stored (nothing of the
/// group written). Every write is rejected, the refused ones for their own
/// reason, the others as [`Refusal::Together`].
pub fn rolled_back(
    made: Vec<Result<(), Refusal>>,
    current: Vec<Option<(i64, String)>>,
) -> Vec<Outcome> {
    made.into_iter()
        .zip(current)
        .map(|(m, current)| {
            Err(Rejection {
                refusal: m.err().unwrap_or(Refusal::Together),
                current,
            })
        })
        .collect()
}

/// A migration: its version, name and SQL.
pub type Migration = (i64, &'static str, &'static str);

/// After the migrations of these versions the store fills the key
/// columns of these tables again from each row's document
/// ([`rekey_sql`]): they added columns whose values only the code can
/// compute.
pub const REKEY_AFTER: &[(i64, &str)] = &[(5, "instance")];

/// `UPDATE … SET <every key column> WHERE id = ?1`, the columns bound from
/// `?2` on in the kind's order (`?N` placeholders).
pub fn rekey_sql(kind: &super::schema::Kind) -> String {
    let sets: Vec<String> = kind
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{}\" = ?{}", c.name, i + 2))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE id = ?1",
        kind.table,
        sets.join(", ")
    )
}

pub const SQLITE_MIGRATIONS: &[Migration] = &[
    (
        1,
        "tables",
        include_str!("../../migrations/sqlite/0001_tables.sql"),
    ),
    (
        2,
        "leases",
        include_str!("../../migrations/sqlite/0002_leases.sql"),
    ),
    (
        3,
        "claims",
        include_str!("../../migrations/sqlite/0003_claims.sql"),
    ),
    (
        4,
        "node_usage",
        include_str!("../../migrations/sqlite/0004_node_usage.sql"),
    ),
    (
        5,
        "instance_columns",
        include_str!("../../migrations/sqlite/0005_instance_columns.sql"),
    ),
    (
        6,
        "allocations",
        include_str!("../../migrations/sqlite/0006_allocations.sql"),
    ),
    (
        7,
        "dashboard_sessions",
        include_str!("../../migrations/sqlite/0007_dashboard_sessions.sql"),
    ),
    (
        8,
        "operations",
        include_str!("../../migrations/sqlite/0008_operations.sql"),
    ),
    (
        9,
        "server_group_members",
        include_str!("../../migrations/sqlite/0009_server_group_members.sql"),
    ),
    (
        10,
        "flavor_children",
        include_str!("../../migrations/sqlite/0010_flavor_children.sql"),
    ),
    (
        11,
        "security_group_rules",
        include_str!("../../migrations/sqlite/0011_security_group_rules.sql"),
    ),
    (
        12,
        "image_members",
        include_str!("../../migrations/sqlite/0012_image_members.sql"),
    ),
    (
        13,
        "image_tags",
        include_str!("../../migrations/sqlite/0013_image_tags.sql"),
    ),
    (
        14,
        "resource_providers",
        include_str!("../../migrations/sqlite/0014_resource_providers.sql"),
    ),
    (
        15,
        "instance_action_rows",
        include_str!("../../migrations/sqlite/0015_instance_action_rows.sql"),
    ),
    (
        16,
        "volumes",
        include_str!("../../migrations/sqlite/0016_volumes.sql"),
    ),
    (
        17,
        "snapshots",
        include_str!("../../migrations/sqlite/0017_snapshots.sql"),
    ),
    (
        18,
        "volume_quotas",
        include_str!("../../migrations/sqlite/0018_volume_quotas.sql"),
    ),
    (
        19,
        "instance_tags",
        include_str!("../../migrations/sqlite/0019_instance_tags.sql"),
    ),
    (
        20,
        "instance_action_events",
        include_str!("../../migrations/sqlite/0020_instance_action_events.sql"),
    ),
    (
        21,
        "l3",
        include_str!("../../migrations/sqlite/0021_l3.sql"),
    ),
    (
        22,
        "service_heartbeats",
        include_str!("../../migrations/sqlite/0022_service_heartbeats.sql"),
    ),
    (
        23,
        "agent_pki",
        include_str!("../../migrations/sqlite/0023_agent_pki.sql"),
    ),
    (
        24,
        "agent_endpoints",
        include_str!("../../migrations/sqlite/0024_agent_endpoints.sql"),
    ),
];

pub const POSTGRES_MIGRATIONS: &[Migration] = &[
    (
        1,
        "tables",
        include_str!("../../migrations/postgres/0001_tables.sql"),
    ),
    (
        2,
        "leases",
        include_str!("../../migrations/postgres/0002_leases.sql"),
    ),
    (
        3,
        "claims",
        include_str!("../../migrations/postgres/0003_claims.sql"),
    ),
    (
        4,
        "node_usage",
        include_str!("../../migrations/postgres/0004_node_usage.sql"),
    ),
    (
        5,
        "instance_columns",
        include_str!("../../migrations/postgres/0005_instance_columns.sql"),
    ),
    (
        6,
        "allocations",
        include_str!("../../migrations/postgres/0006_allocations.sql"),
    ),
    (
        7,
        "dashboard_sessions",
        include_str!("../../migrations/postgres/0007_dashboard_sessions.sql"),
    ),
    (
        8,
        "operations",
        include_str!("../../migrations/postgres/0008_operations.sql"),
    ),
    (
        9,
        "server_group_members",
        include_str!("../../migrations/postgres/0009_server_group_members.sql"),
    ),
    (
        10,
        "flavor_children",
        include_str!("../../migrations/postgres/0010_flavor_children.sql"),
    ),
    (
        11,
        "security_group_rules",
        include_str!("../../migrations/postgres/0011_security_group_rules.sql"),
    ),
    (
        12,
        "image_members",
        include_str!("../../migrations/postgres/0012_image_members.sql"),
    ),
    (
        13,
        "image_tags",
        include_str!("../../migrations/postgres/0013_image_tags.sql"),
    ),
    (
        14,
        "resource_providers",
        include_str!("../../migrations/postgres/0014_resource_providers.sql"),
    ),
    (
        15,
        "instance_action_rows",
        include_str!("../../migrations/postgres/0015_instance_action_rows.sql"),
    ),
    (
        16,
        "volumes",
        include_str!("../../migrations/postgres/0016_volumes.sql"),
    ),
    (
        17,
        "snapshots",
        include_str!("../../migrations/postgres/0017_snapshots.sql"),
    ),
    (
        18,
        "volume_quotas",
        include_str!("../../migrations/postgres/0018_volume_quotas.sql"),
    ),
    (
        19,
        "instance_tags",
        include_str!("../../migrations/postgres/0019_instance_tags.sql"),
    ),
    (
        20,
        "instance_action_events",
        include_str!("../../migrations/postgres/0020_instance_action_events.sql"),
    ),
    (
        21,
        "l3",
        include_str!("../../migrations/postgres/0021_l3.sql"),
    ),
    (
        22,
        "service_heartbeats",
        include_str!("../../migrations/postgres/0022_service_heartbeats.sql"),
    ),
    (
        23,
        "agent_pki",
        include_str!("../../migrations/postgres/0023_agent_pki.sql"),
    ),
    (
        24,
        "agent_endpoints",
        include_str!("../../migrations/postgres/0024_agent_endpoints.sql"),
    ),
];

/// Takes or renews lease `name` for `owner` until `now_ms + ttl_ms`, in
/// the database: granted when the lease is free, already `owner`'s, or
/// expired at `now_ms`. The one statement both backends run (`?N`
/// placeholders; PostgreSQL's are rewritten to `$N`).
pub const LEASE_SQL: &str = "INSERT INTO leases (name, owner, expires_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
     WHERE leases.owner = excluded.owner OR leases.expires_at <= ?4 \
     RETURNING owner";

/// The unexpired leases whose name starts with a prefix (`?1` is the
/// prefix, `?2` the time in milliseconds).
pub const HELD_SQL: &str = "SELECT name, owner FROM leases \
     WHERE substr(name, 1, length(CAST(?1 AS TEXT))) = CAST(?1 AS TEXT) AND expires_at > ?2";

/// Gives lease `name` up if `owner` holds it.
pub const RELEASE_SQL: &str = "DELETE FROM leases WHERE name = ?1 AND owner = ?2";

/// Where the store lives: `sqlite://PATH` (or `sqlite:PATH`) or
/// `postgres://…` / `postgresql://…` (libpq's URL form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    /// The embedded default: `rova.sqlite` in the data directory.
    pub fn default_in(data_dir: &Path) -> Database {
        Database::Sqlite(data_dir.join("rova.sqlite"))
    }

    pub fn parse(url: &str) -> Result<Database, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_string()));
        }
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(format!("database URL {url:?} names no file"));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        Err(format!(
            "database URL {url:?} is neither sqlite://PATH nor postgres://…"
        ))
    }

    /// The URL with any password replaced, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            Database::Sqlite(p) => format!("sqlite://{}", p.display()),
            Database::Postgres(url) => redact(url),
        }
    }
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// The migrations of `all` not yet in `applied`, in order; an applied
/// version this build does not know means a newer Rova wrote the database.
pub fn pending<'a>(all: &'a [Migration], applied: &[i64]) -> Result<Vec<&'a Migration>, String> {
    let newest = all.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(v) = applied.iter().find(|v| **v > newest) {
        return Err(format!(
            "the database has schema version {v}, newer than this Rova knows ({newest}); run the Rova release that wrote it"
        ));
    }
    Ok(all.iter().filter(|m| !applied.contains(&m.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Database::parse("sqlite:///var/lib/rova/db.sqlite"),
            Ok(Database::Sqlite("/var/lib/rova/db.sqlite".into()))
        );
        assert_eq!(
            Database::parse("sqlite:rel.sqlite"),
            Ok(Database::Sqlite("rel.sqlite".into()))
        );
        assert!(matches!(
            Database::parse("postgresql://u@h/db"),
            Ok(Database::Postgres(_))
        ));
        assert!(Database::parse("mysql://x").is_err());
        assert!(Database::parse("sqlite://").is_err());
        assert_eq!(
            Database::parse("postgres://rova:secret@db:5432/rova")
                .expect("pg")
                .redacted(),
            "postgres://rova:***@db:5432/rova"
        );
    }

    #[test]
    fn pending_migrations() {
        const ALL: &[Migration] = &[(1, "a", ""), (2, "b", "")];
        let p = pending(ALL, &[1]).expect("pending");
        assert_eq!(p.iter().map(|m| m.0).collect::<Vec<_>>(), vec![2]);
        assert!(pending(ALL, &[1, 2]).expect("none").is_empty());
        assert!(pending(ALL, &[3]).is_err(), "a newer schema is refused");
    }
}
