//! What the store's writer thread needs of a database, and the database
//! URL `rova serve --database` takes. The two backends (`sqlite`,
//! `postgres`) apply the same versioned migrations (kept per backend under
//! `crates/rova/migrations/`), load a kind's rows and commit a batch of
//! writes in one transaction.
//!
//! Until control processes share a database (many-hosts support), a
//! database is served by one process: each backend takes a lock that a
//! second process cannot get (an advisory lock on PostgreSQL, `flock` on
//! the SQLite file's `.lock` beside it) and refuses to start without it.

use super::schema::{Cell, Kind};
use std::path::{Path, PathBuf};

/// One write, as the writer thread commits it.
pub enum Op {
    Put {
        kind: &'static Kind,
        id: String,
        cells: Vec<Cell>,
        body: String,
    },
    Delete {
        kind: &'static Kind,
        id: String,
    },
}

impl Op {
    /// A write of record `id` of `kind` given as its JSON text, with its key
    /// columns read from that text.
    pub fn put(kind: &'static Kind, id: String, body: String) -> Result<Op, String> {
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
        })
    }
}

/// A database the store can keep its tables in.
pub trait Backend: Send {
    /// Hands every stored `(id, body)` of one kind to `sink`, as the rows
    /// are read (never all of them at once); stops early when `sink`
    /// returns false.
    fn load(
        &mut self,
        kind: &Kind,
        sink: &mut dyn FnMut(String, String) -> bool,
    ) -> Result<(), String>;
    /// Applies `ops` in order, all or nothing.
    fn commit(&mut self, ops: &[&Op]) -> Result<(), String>;
    /// Runs [`LEASE_SQL`]: whether `owner` now holds lease `name`.
    fn lease(&mut self, name: &str, owner: &str, now_ms: i64, ttl_ms: i64) -> Result<bool, String>;
    /// Runs [`RELEASE_SQL`].
    fn release(&mut self, name: &str, owner: &str) -> Result<(), String>;
    /// Every unexpired lease at `now_ms` whose name starts with `prefix`:
    /// `(name, owner)`.
    fn leases_held(&mut self, prefix: &str, now_ms: i64) -> Result<Vec<(String, String)>, String>;
}

/// A migration: its version, name and SQL.
pub type Migration = (i64, &'static str, &'static str);

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
