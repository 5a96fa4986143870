//! The embedded backend: one SQLite file in WAL mode, written by the
//! store's writer thread only. Opening it applies the migrations and, for a
//! file written by a release before the relational schema (one
//! `objects(kind, id, body)` table), moves every record into its kind's
//! table in the same transaction.

use super::backend::{pending, Backend, Op, HELD_SQL, LEASE_SQL, RELEASE_SQL, SQLITE_MIGRATIONS};
use super::schema::{self, Cell, Kind};
use std::path::{Path, PathBuf};

pub struct Sqlite {
    conn: rusqlite::Connection,
    path: PathBuf,
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
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(|e| format!("configuring {}: {e}", path.display()))?;
        let ckpt = open_conn(path)?;
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
        Ok(Sqlite {
            conn,
            path: path.to_path_buf(),
        })
    }
}

impl Backend for Sqlite {
    fn load(
        &mut self,
        kind: &Kind,
        sink: &mut dyn FnMut(String, String) -> bool,
    ) -> Result<(), String> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT id, body FROM {}", kind.table))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            let id: String = r.get(0).map_err(|e| e.to_string())?;
            let body: String = r.get(1).map_err(|e| e.to_string())?;
            if !sink(id, body) {
                break;
            }
        }
        Ok(())
    }

    fn commit(&mut self, ops: &[&Op]) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        for op in ops {
            match op {
                put @ Op::Put { .. } => write_row(&tx, put).map_err(|e| e.to_string())?,
                Op::Delete { kind, id } => {
                    let mut del = tx
                        .prepare_cached(&format!("DELETE FROM {} WHERE id = ?1", kind.table))
                        .map_err(|e| e.to_string())?;
                    del.execute([id]).map_err(|e| e.to_string())?;
                }
            }
        }
        tx.commit().map_err(|e| e.to_string())
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

/// Writes one `Op::Put` (anything else is ignored) with the kind's upsert.
fn write_row(tx: &rusqlite::Transaction<'_>, put: &Op) -> rusqlite::Result<()> {
    let Op::Put {
        kind,
        id,
        cells,
        body,
    } = put
    else {
        return Ok(());
    };
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(cells.len() + 2);
    params.push(id);
    params.extend(cells.iter().map(|c| c as &dyn rusqlite::ToSql));
    params.push(body);
    tx.prepare_cached(&upsert_sql(kind))?
        .execute(params.as_slice())
        .map(drop)
}

/// `INSERT … ON CONFLICT (id) DO UPDATE` for one kind: the columns, then
/// the document; `gen` counts the writes.
fn upsert_sql(kind: &Kind) -> String {
    let cols = kind.write_columns();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let mut sets: Vec<String> = cols[1..]
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    sets.push("gen = gen + 1".into());
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        kind.table,
        cols.join(", "),
        marks.join(", "),
        sets.join(", ")
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
        let put = Op::put(kind, id.clone(), body)?;
        write_row(tx, &put).map_err(|e| format!("importing {kind_name} {id}: {e}"))?;
        moved += 1;
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
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA secure_delete=ON;",
    )
    .map_err(|e| format!("configuring {}: {e}", path.display()))?;
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
