//! Reads answered by the database itself: a few threads, each with a
//! connection of its own beside the writer's, that run one `SELECT` at a
//! time for any caller. The tables whose rows are not all kept in memory
//! ([`super::Table::load_cached`]) read through here: a row by id, rows by
//! a condition, a page in list order, a count.
//!
//! Statements are written once for both backends with `?N` placeholders
//! (rewritten to `$N` for PostgreSQL) and must return only text, integer,
//! boolean or NULL columns (cast a document with `CAST(body AS TEXT)` and
//! a sum with `CAST(… AS BIGINT)`). A caller waits for its answer on the
//! thread it runs on: the reads are single-row or index-ordered pages.

use super::backend::Database;
use super::schema::Cell;
use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

/// Rows of cells, in the order the statement returns them.
pub type Rows = Vec<Vec<Cell>>;

struct Job {
    sql: String,
    params: Vec<Cell>,
    reply: std_mpsc::SyncSender<Result<Rows, String>>,
}

/// The reading threads of one store.
pub struct Reader {
    jobs: std_mpsc::Sender<Job>,
    /// Reads sent and not yet answered.
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

/// How many reading threads (and connections) a store keeps.
pub const THREADS: usize = 2;

impl Reader {
    /// Opens the connections and starts the threads.
    pub fn start(database: &Database) -> Result<Reader, String> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..THREADS {
            let rx = rx.clone();
            let db = database.clone();
            let (ready, opened) = std_mpsc::sync_channel::<Result<(), String>>(1);
            // Each thread opens its own connection (the synchronous
            // PostgreSQL client may not be created on a runtime's thread).
            std::thread::Builder::new()
                .name(format!("rova-store-reader-{n}"))
                .spawn(move || {
                    let mut conn = match Conn::open(&db) {
                        Ok(c) => {
                            let _ = ready.send(Ok(()));
                            c
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    loop {
                        let job = {
                            let Ok(rx) = rx.lock() else { return };
                            match rx.recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            }
                        };
                        let out = conn.select(&job.sql, &job.params);
                        let _ = job.reply.send(out);
                    }
                })
                .map_err(|e| e.to_string())?;
            opened
                .recv()
                .map_err(|_| "a storage reader stopped while connecting".to_string())??;
        }
        Ok(Reader {
            jobs,
            busy: Arc::default(),
        })
    }

    /// Runs `sql` with `params` and waits for its rows.
    pub fn select(&self, sql: &str, params: Vec<Cell>) -> Result<Rows, String> {
        use std::sync::atomic::Ordering;
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.busy.fetch_add(1, Ordering::Relaxed);
        let sent = self.jobs.send(Job {
            sql: sql.to_string(),
            params,
            reply,
        });
        let out = match sent {
            Ok(()) => answer
                .recv()
                .map_err(|_| "the storage readers stopped".to_string())
                .and_then(|r| r),
            Err(_) => Err("the storage readers stopped".to_string()),
        };
        self.busy.fetch_sub(1, Ordering::Relaxed);
        out
    }

    /// Reads in progress or waiting for a connection.
    pub fn busy(&self) -> usize {
        self.busy.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One reading connection.
enum Conn {
    Sqlite(Box<rusqlite::Connection>),
    Postgres(Box<PgConn>),
}

struct PgConn {
    url: String,
    client: postgres::Client,
    prepared: HashMap<String, postgres::Statement>,
}

impl Conn {
    fn open(database: &Database) -> Result<Conn, String> {
        match database {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)
                    .map_err(|e| format!("opening {}: {e}", path.display()))?;
                // A larger page cache than the default (2 MiB): the pages
                // of the indexes the lists walk stay in it.
                conn.execute_batch(
                    "PRAGMA busy_timeout=5000; PRAGMA query_only=1; PRAGMA cache_size=-8192;",
                )
                .map_err(|e| format!("configuring {}: {e}", path.display()))?;
                Ok(Conn::Sqlite(Box::new(conn)))
            }
            Database::Postgres(url) => Ok(Conn::Postgres(Box::new(PgConn {
                url: url.clone(),
                client: super::postgres::connect(url)
                    .map_err(|e| format!("connecting to {}: {e}", database.redacted()))?,
                prepared: HashMap::new(),
            }))),
        }
    }

    fn select(&mut self, sql: &str, params: &[Cell]) -> Result<Rows, String> {
        match self {
            Conn::Sqlite(conn) => sqlite_select(conn, sql, params).map_err(|e| e.to_string()),
            Conn::Postgres(pg) => {
                let PgConn {
                    url,
                    client,
                    prepared,
                } = &mut **pg;
                let sql = sql.replace('?', "$");
                match pg_select(client, prepared, &sql, params) {
                    Err(e) if client.is_closed() || e.is_closed() => {
                        // The session is gone (a restarted server): once more
                        // on a new one.
                        prepared.clear();
                        *client = super::postgres::connect(url).map_err(|e| e.to_string())?;
                        pg_select(client, prepared, &sql, params).map_err(|e| e.to_string())
                    }
                    other => other.map_err(|e| e.to_string()),
                }
            }
        }
    }
}

fn sqlite_select(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Cell],
) -> rusqlite::Result<Rows> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare_cached(sql)?;
    let width = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(width);
        for i in 0..width {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Real(f) => Cell::Int(f as i64),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Cell::Text(String::from_utf8_lossy(t).into_owned())
                }
            });
        }
        out.push(row);
    }
    Ok(out)
}

fn pg_select(
    client: &mut postgres::Client,
    prepared: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    params: &[Cell],
) -> Result<Rows, postgres::Error> {
    use postgres::types::{ToSql, Type};
    let stmt = match prepared.get(sql) {
        Some(s) => s.clone(),
        None => {
            let s = client.prepare(sql)?;
            prepared.insert(sql.to_string(), s.clone());
            s
        }
    };
    let values: Vec<Box<dyn ToSql + Sync>> = params
        .iter()
        .zip(stmt.params())
        .map(|(cell, ty)| -> Box<dyn ToSql + Sync> {
            match (cell, ty) {
                (Cell::Int(i), t) if *t == Type::INT4 => {
                    Box::new(i32::try_from(*i).unwrap_or(i32::MAX))
                }
                (Cell::Int(i), t) if *t == Type::INT2 => {
                    Box::new(i16::try_from(*i).unwrap_or(i16::MAX))
                }
                (Cell::Int(i), _) => Box::new(*i),
                (Cell::Text(s), _) => Box::new(s.clone()),
                (Cell::Bool(b), _) => Box::new(*b),
                (Cell::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
                (Cell::Null, t) if *t == Type::INT4 => Box::new(None::<i32>),
                (Cell::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
                (Cell::Null, _) => Box::new(None::<String>),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v).collect();
    let rows = client.query(&stmt, &refs)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut row = Vec::with_capacity(r.len());
        for (i, col) in r.columns().iter().enumerate() {
            let t = col.type_();
            let cell = if *t == Type::INT8 {
                r.try_get::<_, Option<i64>>(i)?
                    .map_or(Cell::Null, Cell::Int)
            } else if *t == Type::INT4 {
                r.try_get::<_, Option<i32>>(i)?
                    .map_or(Cell::Null, |n| Cell::Int(i64::from(n)))
            } else if *t == Type::INT2 {
                r.try_get::<_, Option<i16>>(i)?
                    .map_or(Cell::Null, |n| Cell::Int(i64::from(n)))
            } else if *t == Type::BOOL {
                r.try_get::<_, Option<bool>>(i)?
                    .map_or(Cell::Null, Cell::Bool)
            } else {
                r.try_get::<_, Option<String>>(i)?
                    .map_or(Cell::Null, Cell::Text)
            };
            row.push(cell);
        }
        out.push(row);
    }
    Ok(out)
}

impl Cell {
    /// The text in this cell, if it holds text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer in this cell (a boolean as 0/1), if any.
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}
