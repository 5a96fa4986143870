//! The embedded backend: one SQLite file in WAL mode, written by the
//! store's writer thread only. Opening it applies the migrations and, for a
//! file written by a release before the relational schema (one
//! `objects(kind, id, body)` table), moves every record into its kind's
//! table in the same transaction.

use super::backend::{
    pending, rekey_sql, Backend, Guard, Op, Outcome, Refusal, Rejection, HELD_SQL, LEASE_SQL,
    REKEY_AFTER, RELEASE_SQL, SQLITE_MIGRATIONS,
};
use super::schema::{self, Cell, Kind};
use std::path::{Path, PathBuf};

pub struct Sqlite {
    conn: rusqlite::Connection,
    path: PathBuf,
    /// Set by the checkpointer when the WAL has grown past
    /// [`WAL_RESET_FRAMES`]: the writer then checkpoints it whole between
    /// two batches ([`Backend::after_commit`]), so that it starts over.
    wal_big: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// WAL frames (pages of 4 KiB) past which the writer checkpoints the WAL
/// whole and starts it over. The checkpointer's passive checkpoints copy
/// frames back beside the writer, but under a steady stream of commits
/// they never catch up with the last one, and SQLite starts a WAL over
/// only after a checkpoint that did: without this the WAL grew to 7 GB
/// over 100,000 creates (a 480 MB database), and a start had to read it.
/// `ROVA_SQLITE_WAL_FRAMES` sets another bound (the tests use a small one).
const WAL_RESET_FRAMES: i64 = 65_536;

/// The bound on the WAL, in frames: [`WAL_RESET_FRAMES`] unless
/// `ROVA_SQLITE_WAL_FRAMES` names another. The WAL file is cut back to
/// that many pages when SQLite starts it over.
fn wal_frames() -> i64 {
    std::env::var("ROVA_SQLITE_WAL_FRAMES")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(WAL_RESET_FRAMES)
}

impl Sqlite {
    /// Opens (creating if needed) the file at `path`, takes the one-process
    /// lock, migrates and starts the checkpointer.
    pub fn open(path: &Path) -> Result<Sqlite, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        hold_lock(path)?;
        // Created 0600 before SQLite opens it: SQLite gives the -wal and
        // -shm files the mode of the database file.
        create_private_file(path)?;
        let mut conn = open_conn(path)?;
        migrate(&mut conn).map_err(|e| format!("migrating {}: {e}", path.display()))?;
        // Checkpoints run beside the writer, not inside a commit: the writer
        // connection never auto-checkpoints, and a separate connection
        // copies the WAL back into the database every 500 ms (PASSIVE, so it
        // never blocks the writer). A commit then costs only its WAL append.
        // The writer's page cache (16 MiB, against SQLite's 2 MiB) holds
        // the index pages a burst of creates keeps touching, which it read
        // back from the file again and again at 10,000 servers.
        let bound = wal_frames();
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={}; PRAGMA cache_size=-16384;",
            bound * 4096
        ))
        .map_err(|e| format!("configuring {}: {e}", path.display()))?;
        let ckpt = open_conn(path)?;
        let wal_big = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let big = wal_big.clone();
        std::thread::Builder::new()
            .name("rova-store-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                // (busy, frames in the WAL, frames copied back)
                let frames = ckpt.query_row("PRAGMA wal_checkpoint(PASSIVE);", [], |r| {
                    r.get::<_, i64>(1)
                });
                match frames {
                    Ok(n) if n >= bound => big.store(true, std::sync::atomic::Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("WAL checkpoint failed: {e}"),
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Sqlite {
            conn,
            path: path.to_path_buf(),
            wal_big,
        })
    }
}

impl Backend for Sqlite {
    fn load(
        &mut self,
        kind: &Kind,
        sink: &mut dyn FnMut(String, i64, String) -> bool,
    ) -> Result<(), String> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT id, gen, body FROM {}", kind.table))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            let id: String = r.get(0).map_err(|e| e.to_string())?;
            let gen: i64 = r.get(1).map_err(|e| e.to_string())?;
            let body: String = r.get(2).map_err(|e| e.to_string())?;
            if !sink(id, gen, body) {
                break;
            }
        }
        Ok(())
    }

    fn commit(
        &mut self,
        ops: &[&Op],
        groups: &[std::ops::Range<usize>],
    ) -> Result<Vec<Outcome>, String> {
        // IMMEDIATE: the write lock is taken at the start, so an update's
        // read of the stored row (`update_changed`) never has to upgrade a
        // snapshot that another connection's commit made stale (SQLite
        // refuses that upgrade at once, "database is locked").
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let mut out: Vec<Outcome> = Vec::with_capacity(ops.len());
        // In queue order: a single write on its own, a group in a
        // savepoint taken back when one of its writes is refused.
        // (The groups come in queue order.)
        let mut groups = groups.iter().filter(|g| !g.is_empty()).peekable();
        let mut i = 0;
        while i < ops.len() {
            match groups.next_if(|g| g.start == i) {
                Some(g) => {
                    out.extend(commit_group(&tx, &ops[g.clone()]).map_err(|e| e.to_string())?);
                    i = g.end;
                }
                None => {
                    out.push(apply(&tx, ops[i]).map_err(|e| e.to_string())?);
                    i += 1;
                }
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn reserve_ids(&mut self, name: &str, floor: i64, n: i64) -> Result<i64, String> {
        self.conn
            .query_row(
                "INSERT INTO counters (name, next) VALUES (?1, ?2 + ?3) \
                 ON CONFLICT (name) DO UPDATE SET next = max(counters.next, ?2) + ?3 \
                 RETURNING next - ?3",
                (name, floor, n),
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())
    }

    fn lease(&mut self, name: &str, owner: &str, now_ms: i64, ttl_ms: i64) -> Result<bool, String> {
        self.lease_impl(name, owner, now_ms, ttl_ms)
    }

    fn release(&mut self, name: &str, owner: &str) -> Result<(), String> {
        self.conn
            .execute(RELEASE_SQL, (name, owner))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn after_commit(&mut self) {
        if !self
            .wal_big
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        // Between two batches nothing is appended meanwhile, so this
        // checkpoint catches up with the last frame (the checkpointer
        // copied most of them already), and the next commit starts the
        // WAL over, cutting the file back to the bound. PASSIVE:
        // a reader still on older frames makes it stop short rather than
        // wait (the next round tries again).
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE);", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
        match done {
            Ok((frames, copied)) if copied < frames => {
                tracing::debug!(frames, copied, "WAL checkpoint stopped short of a reader")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("WAL checkpoint failed: {e}"),
        }
    }

    fn leases_held(&mut self, prefix: &str, now_ms: i64) -> Result<Vec<(String, String)>, String> {
        let mut stmt = self
            .conn
            .prepare_cached(HELD_SQL)
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map((prefix, now_ms), |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }
}

impl Sqlite {
    fn lease_impl(
        &mut self,
        name: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, String> {
        let mut stmt = self
            .conn
            .prepare_cached(LEASE_SQL)
            .map_err(|e| e.to_string())?;
        let mut rows = stmt
            .query((name, owner, now_ms.saturating_add(ttl_ms), now_ms))
            .map_err(|e| e.to_string())?;
        Ok(rows.next().map_err(|e| e.to_string())?.is_some())
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Cell::Null => ToSqlOutput::Owned(Value::Null),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Cell::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
        })
    }
}

/// Makes one write (in a savepoint when it must stand alone): its outcome,
/// or an error that fails the batch.
fn apply(tx: &rusqlite::Transaction<'_>, op: &Op) -> rusqlite::Result<Outcome> {
    // A port's addresses are checked before anything is written (this
    // thread is the file's only writer), so only a guard, counted after
    // the write, needs a savepoint to take it back.
    let alone = matches!(op, Op::Put { guard: Some(_), .. });
    if alone {
        tx.execute_batch("SAVEPOINT w")?;
    }
    match write_checked(tx, op)? {
        Ok(()) => {
            if alone {
                tx.execute_batch("RELEASE w")?;
            }
            Ok(Ok(()))
        }
        Err(refusal) => {
            if alone {
                tx.execute_batch("ROLLBACK TO w; RELEASE w")?;
            }
            Ok(Err(Rejection {
                refusal,
                current: current_row(tx, op.kind(), op.id())?,
            }))
        }
    }
}

/// An all-or-nothing group inside the batch's transaction: every write
/// made, or (one refused) none, each outcome then carrying its row as
/// stored.
fn commit_group(tx: &rusqlite::Transaction<'_>, ops: &[&Op]) -> rusqlite::Result<Vec<Outcome>> {
    // Prepared once per connection: a create is a group, so these run
    // for every server.
    let run = |sql: &str| tx.prepare_cached(sql)?.execute([]).map(drop);
    run("SAVEPOINT g")?;
    let mut made = Vec::with_capacity(ops.len());
    for op in ops {
        made.push(write_checked(tx, op)?);
    }
    if made.iter().all(Result::is_ok) {
        run("RELEASE g")?;
        return Ok(vec![Ok(()); ops.len()]);
    }
    run("ROLLBACK TO g")?;
    run("RELEASE g")?;
    let current = ops
        .iter()
        .map(|op| current_row(tx, op.kind(), op.id()))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(super::backend::rolled_back(made, current))
}

/// The row `id` of `kind` as stored: `(gen, body)`.
fn current_row(
    tx: &rusqlite::Transaction<'_>,
    kind: &Kind,
    id: &str,
) -> rusqlite::Result<Option<(i64, String)>> {
    use rusqlite::OptionalExtension;
    tx.prepare_cached(&format!(
        "SELECT gen, body FROM {} WHERE id = ?1",
        kind.table
    ))?
    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// One write with its compare-and-swap, child rows and guard.
fn write_checked(tx: &rusqlite::Transaction<'_>, op: &Op) -> rusqlite::Result<Result<(), Refusal>> {
    match op {
        Op::Put {
            kind,
            id,
            cells,
            body,
            expect,
            gen,
            guard,
        } => {
            let ips = if kind.table == "ports" {
                match port_ips(tx, id, body)? {
                    Ok(ips) => ips,
                    Err(taken) => return Ok(Err(taken)),
                }
            } else {
                None
            };
            let written = if *expect == 0 {
                let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(cells.len() + 3);
                params.push(id);
                params.extend(cells.iter().map(|c| c as &dyn rusqlite::ToSql));
                params.push(body);
                params.push(gen);
                tx.prepare_cached(&statements(kind).insert)?
                    .execute(params.as_slice())?
            } else {
                update_changed(tx, kind, id, cells, body, *gen, *expect)?
            };
            if written == 0 {
                return Ok(Err(Refusal::Changed));
            }
            if let Some(ips) = ips {
                allocate_ips(tx, id, &ips)?;
            }
            match guard {
                Some(g) => check_guard(tx, kind.table, id, g),
                None => Ok(Ok(())),
            }
        }
        Op::Delete { kind, id, expect } => {
            let gone = tx
                .prepare_cached(&format!(
                    "DELETE FROM {} WHERE id = ?1 AND gen = ?2",
                    kind.table
                ))?
                .execute((id, expect))?;
            if gone == 0 && current_row(tx, kind, id)?.is_some() {
                return Ok(Err(Refusal::Changed));
            }
            if kind.table == "ports" {
                tx.prepare_cached("DELETE FROM ip_allocations WHERE port_id = ?1")?
                    .execute([id])?;
            }
            Ok(Ok(()))
        }
    }
}

/// An update that sets, besides the document and the version token, only
/// the key columns whose values differ from the stored row's: SQLite
/// rewrites the entry of every index over a column an `UPDATE` sets, so
/// setting all of them cost each of a build's state changes seven index
/// rewrites (and their pages in the WAL) where one or two changed. The
/// stored row is read first (its page is the one the update writes); a
/// row that is gone or holds another version token is refused without
/// writing (0 rows).
fn update_changed(
    tx: &rusqlite::Transaction<'_>,
    kind: &Kind,
    id: &str,
    cells: &[Cell],
    body: &str,
    gen: i64,
    expect: i64,
) -> rusqlite::Result<usize> {
    use rusqlite::OptionalExtension;
    let st = statements(kind);
    let changed = tx
        .prepare_cached(&st.select)?
        .query_row([id], |r| {
            let stored: i64 = r.get(0)?;
            let mut changed = Vec::new();
            for (i, c) in cells.iter().enumerate() {
                if !same(r.get_ref(i + 1)?, c) {
                    changed.push(i);
                }
            }
            Ok((stored, changed))
        })
        .optional()?;
    let Some((_, changed)) = changed.filter(|(stored, _)| *stored == expect) else {
        return Ok(0);
    };
    let mut sets: Vec<String> = changed
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{} = ?{}", st.cols[i], n + 2))
        .collect();
    let k = changed.len() + 2;
    sets.push(format!("body = ?{k}"));
    sets.push(format!("gen = ?{}", k + 1));
    let sql = format!(
        "UPDATE {} SET {} WHERE id = ?1 AND gen = ?{}",
        kind.table,
        sets.join(", "),
        k + 2
    );
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(changed.len() + 4);
    params.push(&id);
    params.extend(changed.iter().map(|&i| &cells[i] as &dyn rusqlite::ToSql));
    params.push(&body);
    params.push(&gen);
    params.push(&expect);
    tx.prepare_cached(&sql)?.execute(params.as_slice())
}

/// Whether a stored column value is the key cell a write would set.
fn same(stored: rusqlite::types::ValueRef<'_>, new: &Cell) -> bool {
    use rusqlite::types::ValueRef as V;
    match (stored, new) {
        (V::Null, Cell::Null) => true,
        (V::Integer(a), Cell::Int(b)) => a == *b,
        (V::Integer(a), Cell::Bool(b)) => a == i64::from(*b),
        (V::Text(a), Cell::Text(b)) => a == b.as_bytes(),
        _ => false,
    }
}

/// What a port write does to `ip_allocations`: `None` when the port holds
/// exactly these addresses already, else the addresses it will hold; a
/// refusal when another port holds one of them.
#[allow(clippy::type_complexity)]
fn port_ips(
    tx: &rusqlite::Transaction<'_>,
    port_id: &str,
    body: &str,
) -> rusqlite::Result<Result<Option<Vec<(String, String)>>, Refusal>> {
    let mut want = super::schema::fixed_ips(body);
    want.sort();
    let mut have: Vec<(String, String)> = tx
        .prepare_cached("SELECT subnet_id, ip_address FROM ip_allocations WHERE port_id = ?1")?
        .query_map([port_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    have.sort();
    if want == have {
        return Ok(Ok(None));
    }
    for (subnet, ip) in &want {
        use rusqlite::OptionalExtension;
        let holder: Option<String> = tx
            .prepare_cached(
                "SELECT port_id FROM ip_allocations WHERE subnet_id = ?1 AND ip_address = ?2",
            )?
            .query_row((subnet, ip), |r| r.get(0))
            .optional()?;
        if holder.is_some_and(|h| h != port_id) {
            return Ok(Err(Refusal::Taken {
                subnet: subnet.clone(),
                ip: ip.clone(),
            }));
        }
    }
    Ok(Ok(Some(want)))
}

/// Makes `ips` the port's `ip_allocations` rows (checked free by
/// [`port_ips`]).
fn allocate_ips(
    tx: &rusqlite::Transaction<'_>,
    port_id: &str,
    ips: &[(String, String)],
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM ip_allocations WHERE port_id = ?1")?
        .execute([port_id])?;
    for (subnet, ip) in ips {
        tx.prepare_cached(
            "INSERT INTO ip_allocations (subnet_id, ip_address, port_id) VALUES (?1, ?2, ?3)",
        )?
        .execute((subnet, ip, port_id))?;
    }
    Ok(())
}

/// Counts what a [`Guard`] limits, from the rows as this transaction sees
/// them (the guarded row written already).
fn check_guard(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    id: &str,
    guard: &Guard,
) -> rusqlite::Result<Result<(), Refusal>> {
    Ok(match guard {
        Guard::Count { column, value, .. } => {
            let n: i64 = tx
                .prepare_cached(&format!("SELECT count(*) FROM {table} WHERE {column} = ?1"))?
                .query_row([value], |r| r.get(0))?;
            super::schema::quota_verdict(guard, (0, 0), (n, 0, 0))
        }
        Guard::Rows {
            table: other,
            column,
            value,
            ..
        } => {
            let n: i64 = tx
                .prepare_cached(&format!("SELECT count(*) FROM {other} WHERE {column} = ?1"))?
                .query_row([value], |r| r.get(0))?;
            super::schema::quota_verdict(guard, (0, 0), (n, 0, 0))
        }
        Guard::Storage { project, .. } => {
            let n: i64 = tx
                .prepare_cached(&format!(
                    "SELECT count(*) FROM {table} WHERE project_id = ?1"
                ))?
                .query_row([project], |r| r.get(0))?;
            let gb: i64 = tx
                .prepare_cached(super::backend::STORAGE_GB_SQLITE)?
                .query_row([project], |r| r.get(0))?;
            super::schema::storage_verdict(guard, n, gb)
        }
        Guard::Quota { project, .. } => {
            let own: (i64, i64) = tx
                .prepare_cached(
                    "SELECT coalesce(json_extract(body, '$.resize_hold.vcpus'), json_extract(body, '$.flavor.vcpus'), 0), \
                     coalesce(json_extract(body, '$.resize_hold.ram'), json_extract(body, '$.flavor.ram'), 0) FROM instances WHERE id = ?1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let used: (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT count(*), coalesce(sum(coalesce(json_extract(body, '$.resize_hold.vcpus'), json_extract(body, '$.flavor.vcpus'))), 0), \
                     coalesce(sum(coalesce(json_extract(body, '$.resize_hold.ram'), json_extract(body, '$.flavor.ram'))), 0) \
                     FROM instances WHERE project_id = ?1 AND deleted = 0",
                )?
                .query_row([project], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            super::schema::quota_verdict(guard, own, used)
        }
        Guard::Capacity { node } => {
            use rusqlite::OptionalExtension;
            let used: (i64, i64) = tx
                .prepare_cached(
                    "SELECT coalesce(sum(vcpus), 0), coalesce(sum(memory_mb), 0) \
                     FROM allocations WHERE host = ?1",
                )?
                .query_row([node], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let capacity: Option<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT vcpu_capacity, memory_capacity FROM resource_providers WHERE name = ?1",
                )?
                .query_row([node], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            super::schema::capacity_verdict(node, used, capacity)
        }
    })
}

/// The statements a kind's writes use, written once per kind.
struct Statements {
    insert: String,
    /// The stored row's version token and key columns (`update_changed`).
    select: String,
    /// The key columns' quoted names, in `cells` order.
    cols: Vec<String>,
}

fn statements(kind: &Kind) -> &'static Statements {
    use std::sync::OnceLock;
    static ALL: OnceLock<Vec<Statements>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        schema::KINDS
            .iter()
            .map(|k| Statements {
                insert: insert_sql(k),
                select: select_sql(k),
                cols: k.cols.iter().map(|c| format!("\"{}\"", c.name)).collect(),
            })
            .collect()
    });
    let at = schema::KINDS
        .iter()
        .position(|k| k.table == kind.table)
        .unwrap_or(0);
    &all[at]
}

/// `INSERT … ON CONFLICT (id) DO NOTHING` for one kind: id, the columns,
/// the document, the version token.
fn insert_sql(kind: &Kind) -> String {
    let mut cols = kind.write_columns();
    cols.push("gen".into());
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        kind.table,
        cols.join(", "),
        marks.join(", ")
    )
}

/// `SELECT gen, <key columns> … WHERE id = ?1` for one kind: what
/// `update_changed` compares a write's cells with.
fn select_sql(kind: &Kind) -> String {
    let mut cols = vec!["gen".to_string()];
    cols.extend(kind.cols.iter().map(|c| format!("\"{}\"", c.name)));
    format!(
        "SELECT {} FROM {} WHERE id = ?1",
        cols.join(", "),
        kind.table
    )
}

/// Applies the pending migrations in one transaction, importing a
/// pre-relational file's `objects` table on the way.
fn migrate(conn: &mut rusqlite::Connection) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(|e| e.to_string())?;
    let applied: Vec<i64> = {
        let mut stmt = tx
            .prepare("SELECT version FROM schema_migrations")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    for (version, name, sql) in pending(SQLITE_MIGRATIONS, &applied)? {
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {version} ({name}): {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            (version, name, chrono::Utc::now().to_rfc3339()),
        )
        .map_err(|e| e.to_string())?;
        for (_, kind) in REKEY_AFTER.iter().filter(|(v, _)| v == version) {
            rekey(&tx, kind).map_err(|e| format!("migration {version} ({name}): {e}"))?;
        }
        tracing::info!(version, name, "applied schema migration");
    }
    let legacy: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'objects'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| e.to_string())?
        > 0;
    if legacy {
        import_objects(&tx)?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Fills every key column of `kind`'s rows again from their documents.
fn rekey(tx: &rusqlite::Transaction<'_>, kind: &str) -> Result<(), String> {
    let kind = schema::of(kind).ok_or_else(|| format!("no table for kind {kind:?}"))?;
    let rows: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare(&format!("SELECT id, body FROM {}", kind.table))
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    let mut stmt = tx.prepare(&rekey_sql(kind)).map_err(|e| e.to_string())?;
    for (id, body) in &rows {
        let cells = kind
            .cells_of_json(body)
            .map_err(|e| format!("{} {id}: {e}", kind.kind))?;
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![id];
        params.extend(cells.iter().map(|c| c as &dyn rusqlite::ToSql));
        stmt.execute(params.as_slice()).map_err(|e| e.to_string())?;
    }
    tracing::info!(
        table = kind.table,
        rows = rows.len(),
        "filled the new key columns"
    );
    Ok(())
}

/// Moves every row of the pre-relational `objects(kind, id, body)` table
/// into its kind's table and drops `objects`. A kind this release does not
/// know stops the start (nothing is silently lost).
fn import_objects(tx: &rusqlite::Transaction<'_>) -> Result<(), String> {
    let rows: Vec<(String, String, String)> = {
        let mut stmt = tx
            .prepare("SELECT kind, id, body FROM objects")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    let mut moved = 0usize;
    for (kind_name, id, body) in rows {
        let kind = schema::of(&kind_name).ok_or_else(|| {
            format!("the data directory holds records of kind {kind_name:?}, which this release does not know; run the release that wrote it")
        })?;
        for (kind, id, body) in schema::rows_of_record(kind, &id, body) {
            let put = Op::put(kind, id.clone(), body, 0, 1)?;
            match write_checked(tx, &put) {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => {
                    return Err(format!("importing {} {id}: {refused:?}", kind.kind))
                }
                Err(e) => return Err(format!("importing {} {id}: {e}", kind.kind)),
            }
            moved += 1;
        }
    }
    tx.execute_batch("DROP TABLE objects")
        .map_err(|e| e.to_string())?;
    tracing::info!(
        records = moved,
        "moved the pre-relational store into its tables"
    );
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
    // temp_store: the savepoints a batch takes (every create is a group
    // in one) keep their sub-journals in memory, not in temporary files:
    // written and deleted for each batch, those files were half of the
    // bytes the writer wrote during a burst of creates.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA secure_delete=ON; PRAGMA temp_store=MEMORY;",
    )
    .map_err(|e| format!("configuring {}: {e}", path.display()))?;
    // Room for every kind's statements and the updates of the column sets
    // that change together (`update_changed`).
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// Takes an exclusive `flock` on `<path>.lock` for the life of the process
/// (a restart inside the same process keeps it). Another process holding
/// it means the database is already being served.
fn hold_lock(path: &Path) -> Result<(), String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static HELD: OnceLock<Mutex<HashMap<PathBuf, std::fs::File>>> = OnceLock::new();
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let key = std::fs::canonicalize(path.parent().unwrap_or(Path::new(".")))
        .map(|d| d.join(lock_path.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| lock_path.clone());
    let mut held = HELD
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "store lock registry poisoned".to_string())?;
    if held.contains_key(&key) {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts
        .open(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(format!(
                "another Rova process is serving {} (it holds {}); one process serves a database",
                path.display(),
                lock_path.display()
            ));
        }
    }
    held.insert(key, file);
    Ok(())
}
