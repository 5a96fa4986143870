//! The PostgreSQL backend: one connection owned by the store's writer
//! thread (the synchronous `postgres` client, which runs its own small
//! runtime there). A batch commits in one transaction; within it the
//! plain writes to one table go out as one bulk statement per shape
//! (`INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING`, `UPDATE … FROM
//! UNNEST(…) WHERE gen = expected`, `DELETE … USING UNNEST(…)`), so a batch
//! of thousands of writes costs a handful of round trips; guarded writes
//! and ports (whose IPs are unique child rows) are made one at a time in
//! savepoints. Several processes may share the database: every write is a
//! compare-and-swap on the row's version token, the advisory locks a
//! batch's guards need are taken first and in order, and each commit
//! announces the rows it wrote on channel [`CHANNEL`] so the others
//! refresh their copies (`pg_feed::listen`).

use super::backend::{
    chains, pending, Backend, Op, Outcome, Refusal, HELD_SQL, LEASE_SQL, POSTGRES_MIGRATIONS,
    REKEY_AFTER, RELEASE_SQL,
};
use super::pg_batch::{announce, apply_alone, children_and_guards_hold, BulkPlan};
use super::schema::Kind;
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use std::collections::HashMap;

/// The notification channel commits announce their rows on.
pub const CHANNEL: &str = "rova_changes";
/// Advisory-lock key that serialises migrations between processes.
const MIGRATION_LOCK: i64 = 0x524f_5642;

pub struct Postgres {
    client: Client,
    url: String,
    shown: String,
    /// The store's owner name, on the first line of every announcement.
    owner: String,
}

impl Postgres {
    /// Connects and applies the migrations.
    pub fn open(url: &str, shown: &str, owner: &str) -> Result<Postgres, String> {
        let mut client = connect(url).map_err(|e| format!("connecting to {shown}: {e}"))?;
        migrate(&mut client).map_err(|e| format!("migrating {shown}: {e}"))?;
        Ok(Postgres {
            client,
            url: url.to_string(),
            shown: shown.to_string(),
            owner: owner.to_string(),
        })
    }

    /// Runs `work`; when it fails because the connection is gone (the
    /// server restarted, the session was terminated), connects again and
    /// runs it once more; a transaction the server aborted as a deadlock
    /// victim is run again too. A batch whose commit was lost with the
    /// connection may have committed: sent again, its writes are refused as
    /// changed rows (their tokens are already there), never doubled.
    fn with_retry<R>(
        &mut self,
        mut work: impl FnMut(&mut Client) -> Result<R, postgres::Error>,
    ) -> Result<R, String> {
        let mut tries = 0;
        let first = loop {
            match work(&mut self.client) {
                Err(e) if deadlocked(&e) && tries < 5 => {
                    tries += 1;
                    tracing::warn!("transaction aborted ({e:?}); running it again");
                }
                other => break other,
            }
        };
        match first {
            Err(e) if self.client.is_closed() || connection_lost(&e) => {
                tracing::warn!("lost the connection to {}: {e}; reconnecting", self.shown);
                forget_prepared();
                self.client = connect(&self.url)
                    .map_err(|e| format!("reconnecting to {}: {e}", self.shown))?;
                work(&mut self.client).map_err(|e| describe(&e))
            }
            other => other.map_err(|e| describe(&e)),
        }
    }
}

/// Whether `e` means the session is gone: the connection closed, or the
/// server ended it (SQLSTATE class 57P: administrator command, crash,
/// shutdown; class 08: connection exception). The error can arrive before
/// the client has noticed that its connection closed.
fn connection_lost(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.code()
            .is_some_and(|c| c.code().starts_with("57P") || c.code().starts_with("08"))
}

/// Whether the server aborted the transaction to break a deadlock or a
/// serialization conflict (it may simply be run again).
fn deadlocked(e: &postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code() == "40P01" || c.code() == "40001")
}

/// A connection as the store uses it. Its statements are prepared once
/// ([`prepared`]) but planned for each execution's parameters
/// (`plan_cache_mode = force_custom_plan`): a generic plan cannot know how
/// many rows a batch's arrays hold, and for a small batch it chose to scan
/// the whole table, a cost that grew with the fleet.
pub(super) fn connect(url: &str) -> Result<Client, postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    client.batch_execute("SET plan_cache_mode = force_custom_plan")?;
    Ok(client)
}

thread_local! {
    /// The statements this thread's connection has prepared, by SQL text.
    /// Each thread here (the store's writer, the change feed) owns one
    /// connection at a time; [`forget_prepared`] empties it when that
    /// connection is replaced.
    static PREPARED: std::cell::RefCell<HashMap<String, postgres::Statement>> =
        std::cell::RefCell::new(HashMap::new());
}

/// `sql` prepared on `c` once, then reused: a statement costs one round
/// trip instead of two (parse, then bind and execute), and PostgreSQL plans
/// it once.
fn prepared(
    c: &mut impl postgres::GenericClient,
    sql: &str,
) -> Result<postgres::Statement, postgres::Error> {
    if let Some(st) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
        return Ok(st);
    }
    let st = c.prepare(sql)?;
    PREPARED.with(|p| p.borrow_mut().insert(sql.to_string(), st.clone()));
    Ok(st)
}

/// Forgets this thread's prepared statements (its connection is new).
pub(super) fn forget_prepared() {
    PREPARED.with(|p| p.borrow_mut().clear());
}

pub(super) fn query(
    c: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let st = prepared(c, sql)?;
    c.query(&st, params)
}

pub(super) fn exec(
    c: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, postgres::Error> {
    let st = prepared(c, sql)?;
    c.execute(&st, params)
}

/// An error with the server's message and detail (the `Display` of a
/// database error is only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {} ({d})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => e.to_string(),
    }
}

/// Creates database `name` through the server at `admin_url` unless it
/// exists (for tests and tools that want a database of their own). Runs
/// on a thread of its own, so it may be called from async code.
pub fn create_database(admin_url: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("database name {name:?} is not a plain identifier"));
    }
    let (url, sql) = (admin_url.to_string(), format!("CREATE DATABASE {name}"));
    std::thread::spawn(move || {
        let mut client = Client::connect(&url, NoTls).map_err(|e| e.to_string())?;
        match client.batch_execute(&sql) {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .join()
    .map_err(|_| "creating the database panicked".to_string())?
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A statement written with SQLite's `?N` placeholders, in PostgreSQL's
/// `$N` form.
fn dollar(sql: &str) -> String {
    sql.replace('?', "$")
}

impl Backend for Postgres {
    fn lease(&mut self, name: &str, owner: &str, now_ms: i64, ttl_ms: i64) -> Result<bool, String> {
        let sql = dollar(LEASE_SQL);
        let until = now_ms.saturating_add(ttl_ms);
        let rows = self.with_retry(|c| c.query(&sql, &[&name, &owner, &until, &now_ms]))?;
        Ok(!rows.is_empty())
    }

    fn release(&mut self, name: &str, owner: &str) -> Result<(), String> {
        let sql = dollar(RELEASE_SQL);
        self.with_retry(|c| c.execute(&sql, &[&name, &owner]).map(drop))
    }

    fn leases_held(&mut self, prefix: &str, now_ms: i64) -> Result<Vec<(String, String)>, String> {
        let sql = dollar(HELD_SQL);
        let rows = self.with_retry(|c| c.query(&sql, &[&prefix, &now_ms]))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn load(
        &mut self,
        kind: &Kind,
        sink: &mut dyn FnMut(String, i64, String) -> bool,
    ) -> Result<(), String> {
        use postgres::fallible_iterator::FallibleIterator;
        let sql = format!("SELECT id, gen, body::text FROM {}", kind.table);
        let none: [&(dyn ToSql + Sync); 0] = [];
        let mut rows = self
            .client
            .query_raw(sql.as_str(), none.iter().copied())
            .map_err(|e| describe(&e))?;
        while let Some(r) = rows.next().map_err(|e| describe(&e))? {
            if !sink(
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2),
            ) {
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
        // The advisory locks the guards need, taken first and in one order
        // (so two processes' batches cannot deadlock on them).
        let locks = super::backend::guard_locks(ops);
        let rows = chains(ops);
        let all: Vec<&Vec<(usize, &Op)>> = rows.iter().collect();
        let alone: Vec<&Vec<(usize, &Op)>> = rows
            .iter()
            .filter(|chain| chain.iter().any(|(_, op)| op.alone()))
            .collect();
        let together = BulkPlan::of(&all);
        // When that fails: the single writes first, in bulk, the guarded
        // and port writes one by one; then each group in a savepoint (the
        // writer never queues a single write to a row after a group that
        // writes it in the same batch).
        let mut grouped = vec![false; ops.len()];
        for g in groups {
            grouped[g.clone()].fill(true);
        }
        let singles: Vec<usize> = (0..ops.len()).filter(|&i| !grouped[i]).collect();
        let single_ops: Vec<&Op> = singles.iter().map(|&i| ops[i]).collect();
        // Without groups the single writes are the batch: its chains serve.
        let own_rows;
        let single_rows = if groups.is_empty() {
            &rows
        } else {
            own_rows = chains(&single_ops);
            &own_rows
        };
        let (single_alone, single_bulk): (Vec<_>, Vec<_>) = single_rows
            .iter()
            .partition(|chain| chain.iter().any(|(_, op)| op.alone()));
        let plan = BulkPlan::of(&single_bulk);
        let owner = self.owner.clone();
        self.with_retry(|client| {
            let mut out: Vec<Outcome> = vec![Ok(()); ops.len()];
            let mut tx = client.transaction()?;
            lock_all(&mut tx, &locks)?;
            // With guarded or port writes or groups in the batch, first
            // everything together, in a savepoint: all writes in bulk, then
            // the ports' addresses and the guards checked in a few
            // statements, and every group made whole. Only when an address
            // is taken, a guard fails or a group's row changed (other
            // processes' doing) is it taken back, and the writes made as
            // above, each deciding for itself.
            let together_ok = (!alone.is_empty() || !groups.is_empty()) && {
                let mut sp = tx.savepoint("together")?;
                let mut trial = out.clone();
                together.run(&mut sp, &mut trial)?;
                let whole = groups.iter().all(|g| g.clone().all(|i| trial[i].is_ok()));
                if whole && children_and_guards_hold(&mut sp, &alone, &trial)? {
                    sp.commit()?;
                    out = trial;
                    true
                } else {
                    false
                }
            };
            if !together_ok {
                let mut single_out: Vec<Outcome> = vec![Ok(()); single_ops.len()];
                plan.run(&mut tx, &mut single_out)?;
                for chain in &single_alone {
                    for (i, op) in chain.iter() {
                        single_out[*i] = apply_alone(&mut tx, op)?;
                    }
                }
                for (k, &i) in singles.iter().enumerate() {
                    out[i] = single_out[k].clone();
                }
                for g in groups.iter().filter(|g| !g.is_empty()) {
                    let made = commit_group(&mut tx, &ops[g.clone()])?;
                    for (i, o) in g.clone().zip(made) {
                        out[i] = o;
                    }
                }
            }
            announce(&mut tx, &owner, ops, &out)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn reserve_ids(&mut self, name: &str, floor: i64, n: i64) -> Result<i64, String> {
        let row = self.with_retry(|c| {
            c.query_one(
                "INSERT INTO counters (name, next) VALUES ($1::text, $2::bigint + $3::bigint) \
                 ON CONFLICT (name) DO UPDATE SET next = GREATEST(counters.next, $2::bigint) + $3::bigint \
                 RETURNING next - $3::bigint",
                &[&name, &floor, &n],
            )
        })?;
        Ok(row.get(0))
    }
}

/// An all-or-nothing group inside a batch's transaction, in a savepoint:
/// every write made, or (one refused) none, each outcome then carrying its
/// row as stored.
fn commit_group(
    tx: &mut postgres::Transaction<'_>,
    ops: &[&Op],
) -> Result<Vec<Outcome>, postgres::Error> {
    let mut sp = tx.savepoint("g")?;
    let mut made = Vec::with_capacity(ops.len());
    for op in ops {
        made.push(apply_alone(&mut sp, op)?);
    }
    if made.iter().all(Result::is_ok) {
        sp.commit()?;
        return Ok(made);
    }
    sp.rollback()?;
    let refusals: Vec<Result<(), Refusal>> =
        made.into_iter().map(|o| o.map_err(|r| r.refusal)).collect();
    let mut current = Vec::with_capacity(ops.len());
    for op in ops {
        current.push(super::pg_batch::fetch(tx, op.kind(), &[op.id()])?.remove(op.id()));
    }
    Ok(super::backend::rolled_back(refusals, current))
}

/// Takes the advisory locks a transaction's guards need
/// ([`super::backend::guard_locks`]), in their order.
fn lock_all(tx: &mut postgres::Transaction<'_>, locks: &[String]) -> Result<(), postgres::Error> {
    for key in locks {
        exec(tx, "SELECT pg_advisory_xact_lock(hashtext($1))", &[key])?;
    }
    Ok(())
}

/// Applies the pending migrations in one transaction, serialised between
/// processes by an advisory lock.
fn migrate(client: &mut Client) -> Result<(), String> {
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| e.to_string())?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(|e| e.to_string())?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, name, sql) in pending(POSTGRES_MIGRATIONS, &applied)? {
        tx.batch_execute(sql)
            .map_err(|e| format!("migration {version} ({name}): {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &chrono::Utc::now().to_rfc3339()],
        )
        .map_err(|e| e.to_string())?;
        for (_, kind) in REKEY_AFTER.iter().filter(|(v, _)| v == version) {
            rekey(&mut tx, kind).map_err(|e| format!("migration {version} ({name}): {e}"))?;
        }
        tracing::info!(version, name, "applied schema migration");
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Fills every key column of `kind`'s rows again from their documents.
fn rekey(tx: &mut postgres::Transaction<'_>, kind: &str) -> Result<(), String> {
    use super::schema::{Cell, Ty};
    let kind = super::schema::of(kind).ok_or_else(|| format!("no table for kind {kind:?}"))?;
    let rows = tx
        .query(&format!("SELECT id, body::text FROM {}", kind.table), &[])
        .map_err(|e| e.to_string())?;
    let sets: Vec<String> = kind
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = match c.ty {
                Ty::Text | Ty::Members(_) => "text",
                Ty::Int | Ty::Nanos => "bigint",
                Ty::Bool => "boolean",
            };
            format!("\"{}\" = ${}::{ty}", c.name, i + 2)
        })
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE id = $1",
        kind.table,
        sets.join(", ")
    );
    let stmt = tx.prepare(&sql).map_err(|e| e.to_string())?;
    for row in &rows {
        let id: String = row.get(0);
        let body: String = row.get(1);
        let cells = kind
            .cells_of_json(&body)
            .map_err(|e| format!("{} {id}: {e}", kind.kind))?;
        let values: Vec<Box<dyn ToSql + Sync>> = cells
            .iter()
            .zip(kind.cols)
            .map(|(cell, col)| -> Box<dyn ToSql + Sync> {
                match (cell, col.ty) {
                    (Cell::Text(t), _) => Box::new(t.clone()),
                    (Cell::Int(i), _) => Box::new(*i),
                    (Cell::Bool(b), _) => Box::new(*b),
                    (Cell::Null, Ty::Text | Ty::Members(_)) => Box::new(None::<String>),
                    (Cell::Null, Ty::Int | Ty::Nanos) => Box::new(None::<i64>),
                    (Cell::Null, Ty::Bool) => Box::new(None::<bool>),
                }
            })
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
        params.extend(values.iter().map(|v| &**v));
        tx.execute(&stmt, &params).map_err(|e| e.to_string())?;
    }
    tracing::info!(
        table = kind.table,
        rows = rows.len(),
        "filled the new key columns"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_in_urls() {
        use super::with_database;
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
