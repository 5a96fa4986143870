//! The PostgreSQL backend: one connection owned by the store's writer
//! thread (the synchronous `postgres` client, which runs its own small
//! runtime there). A batch commits in one transaction; within it the
//! writes to one table go out as one `INSERT … SELECT FROM UNNEST(…)`
//! upsert and one `DELETE … = ANY(…)`, so a batch of thousands of writes
//! costs a handful of round trips.

use super::backend::{pending, Backend, Op, HELD_SQL, LEASE_SQL, POSTGRES_MIGRATIONS, RELEASE_SQL};
use super::schema::{Cell, Kind, Ty};
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use std::collections::HashMap;

/// Advisory-lock key of "this database is being served" ("ROVA").
const SERVING_LOCK: i64 = 0x524f_5641;
/// Advisory-lock key that serialises migrations between processes.
const MIGRATION_LOCK: i64 = 0x524f_5642;

pub struct Postgres {
    client: Client,
    url: String,
    shown: String,
}

impl Postgres {
    /// Connects, takes the one-process lock and applies the migrations.
    pub fn open(url: &str, shown: &str) -> Result<Postgres, String> {
        let mut client =
            Client::connect(url, NoTls).map_err(|e| format!("connecting to {shown}: {e}"))?;
        hold_lock(url, shown)?;
        migrate(&mut client).map_err(|e| format!("migrating {shown}: {e}"))?;
        Ok(Postgres {
            client,
            url: url.to_string(),
            shown: shown.to_string(),
        })
    }

    /// Runs `work`; when it fails because the connection is gone (the
    /// server restarted, the session was terminated), connects again and
    /// runs it once more. Every write here is an idempotent upsert or
    /// delete, so a batch whose commit was lost with the connection can be
    /// sent again.
    fn with_retry<R>(
        &mut self,
        mut work: impl FnMut(&mut Client) -> Result<R, postgres::Error>,
    ) -> Result<R, String> {
        match work(&mut self.client) {
            Err(e) if self.client.is_closed() || connection_lost(&e) => {
                tracing::warn!("lost the connection to {}: {e}; reconnecting", self.shown);
                self.client = Client::connect(&self.url, NoTls)
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
        sink: &mut dyn FnMut(String, String) -> bool,
    ) -> Result<(), String> {
        use postgres::fallible_iterator::FallibleIterator;
        let sql = format!("SELECT id, body::text FROM {}", kind.table);
        let none: [&(dyn ToSql + Sync); 0] = [];
        let mut rows = self
            .client
            .query_raw(sql.as_str(), none.iter().copied())
            .map_err(|e| describe(&e))?;
        while let Some(r) = rows.next().map_err(|e| describe(&e))? {
            if !sink(r.get::<_, String>(0), r.get::<_, String>(1)) {
                break;
            }
        }
        Ok(())
    }

    fn commit(&mut self, ops: &[&Op]) -> Result<(), String> {
        // The last write to each row is the one that counts; the rest of
        // the batch is grouped by table.
        // `gen` still counts every write: a row written n times in the
        // batch gains n. A row deleted and written again in the batch is
        // deleted first, so its count starts again as on SQLite.
        let mut last: HashMap<(&str, &str), (usize, i64, bool)> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let (key, put) = match op {
                Op::Put { kind, id, .. } => ((kind.table, id.as_str()), true),
                Op::Delete { kind, id } => ((kind.table, id.as_str()), false),
            };
            let (n, deleted) = match last.get(&key) {
                Some((_, n, deleted)) if put => (n + 1, *deleted),
                _ => (i64::from(put), !put),
            };
            last.insert(key, (i, n, deleted));
        }
        let mut order: Vec<(usize, i64, bool)> = last.into_values().collect();
        order.sort_unstable();
        let mut puts: Vec<(&'static Kind, Vec<(&Op, i64)>)> = Vec::new();
        let mut dels: Vec<(&'static Kind, Vec<&str>)> = Vec::new();
        for (i, n, deleted) in order {
            match ops[i] {
                op @ Op::Put { kind, id, .. } => {
                    if deleted {
                        group_delete(&mut dels, kind, id);
                    }
                    match puts.iter_mut().find(|(k, _)| k.table == kind.table) {
                        Some((_, v)) => v.push((op, n)),
                        None => puts.push((kind, vec![(op, n)])),
                    }
                }
                Op::Delete { kind, id } => group_delete(&mut dels, kind, id),
            }
        }
        self.with_retry(|client| {
            let mut tx = client.transaction()?;
            for (kind, ids) in &dels {
                tx.execute(
                    &format!("DELETE FROM {} WHERE id = ANY($1)", kind.table),
                    &[ids],
                )?;
            }
            for (kind, ops) in &puts {
                upsert(&mut tx, kind, ops)?;
            }
            tx.commit()
        })
    }
}

fn group_delete<'a>(
    dels: &mut Vec<(&'static Kind, Vec<&'a str>)>,
    kind: &'static Kind,
    id: &'a str,
) {
    match dels.iter_mut().find(|(k, _)| k.table == kind.table) {
        Some((_, v)) => v.push(id),
        None => dels.push((kind, vec![id])),
    }
}

/// One column's values across a batch, typed for its array parameter.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
}

impl Column {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(v) => v,
            Column::Int(v) => v,
            Column::Bool(v) => v,
        }
    }
}

fn upsert(
    tx: &mut postgres::Transaction<'_>,
    kind: &Kind,
    ops: &[(&Op, i64)],
) -> Result<(), postgres::Error> {
    let mut ids: Vec<&str> = Vec::with_capacity(ops.len());
    let mut writes: Vec<i64> = Vec::with_capacity(ops.len());
    let mut bodies: Vec<&str> = Vec::with_capacity(ops.len());
    let mut columns: Vec<Column> = kind
        .cols
        .iter()
        .map(|c| match c.ty {
            Ty::Text => Column::Text(Vec::with_capacity(ops.len())),
            Ty::Int => Column::Int(Vec::with_capacity(ops.len())),
            Ty::Bool => Column::Bool(Vec::with_capacity(ops.len())),
        })
        .collect();
    for (op, n) in ops {
        let Op::Put {
            id, cells, body, ..
        } = op
        else {
            continue;
        };
        ids.push(id);
        writes.push(*n);
        bodies.push(body);
        for (col, cell) in columns.iter_mut().zip(cells) {
            match (col, cell) {
                (Column::Text(v), Cell::Text(s)) => v.push(Some(s.clone())),
                (Column::Int(v), Cell::Int(i)) => v.push(Some(*i)),
                (Column::Bool(v), Cell::Bool(b)) => v.push(Some(*b)),
                (Column::Text(v), _) => v.push(None),
                (Column::Int(v), _) => v.push(None),
                (Column::Bool(v), _) => v.push(None),
            }
        }
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids];
    params.extend(columns.iter().map(Column::param));
    params.push(&bodies);
    params.push(&writes);
    tx.execute(&upsert_sql(kind), &params).map(drop)
}

fn upsert_sql(kind: &Kind) -> String {
    // id, the key columns, body, and the number of writes the batch made.
    let mut cols = kind.write_columns();
    cols.push("gen".into());
    let mut arrays = vec!["$1::text[]".to_string()];
    for (i, c) in kind.cols.iter().enumerate() {
        let ty = match c.ty {
            Ty::Text => "text",
            Ty::Int => "bigint",
            Ty::Bool => "boolean",
        };
        arrays.push(format!("${}::{ty}[]", i + 2));
    }
    arrays.push(format!("${}::text[]", kind.cols.len() + 2));
    arrays.push(format!("${}::bigint[]", kind.cols.len() + 3));
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            "body" => "u.body::json".to_string(),
            c => format!("u.{c}"),
        })
        .collect();
    let mut sets: Vec<String> = cols[1..cols.len() - 1]
        .iter()
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    sets.push(format!("gen = {}.gen + EXCLUDED.gen", kind.table));
    format!(
        "INSERT INTO {t} ({cols}) SELECT {select} FROM UNNEST({arrays}) AS u({cols}) ON CONFLICT (id) DO UPDATE SET {sets}",
        t = kind.table,
        cols = cols.join(", "),
        select = select.join(", "),
        arrays = arrays.join(", "),
        sets = sets.join(", ")
    )
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
        tracing::info!(version, name, "applied schema migration");
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Holds the "being served" advisory lock on a connection of its own for
/// the life of the process (a restart inside the same process keeps it).
fn hold_lock(url: &str, shown: &str) -> Result<(), String> {
    use std::sync::{Mutex, OnceLock};
    static HELD: OnceLock<Mutex<HashMap<String, Client>>> = OnceLock::new();
    let mut held = HELD
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "store lock registry poisoned".to_string())?;
    if held.contains_key(url) {
        return Ok(());
    }
    let mut lock =
        Client::connect(url, NoTls).map_err(|e| format!("connecting to {shown}: {e}"))?;
    let got: bool = lock
        .query_one("SELECT pg_try_advisory_lock($1)", &[&SERVING_LOCK])
        .map_err(|e| e.to_string())?
        .get(0);
    if !got {
        return Err(format!(
            "another Rova process is serving {shown}; one process serves a database"
        ));
    }
    held.insert(url.to_string(), lock);
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
