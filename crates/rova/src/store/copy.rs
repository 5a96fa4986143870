//! Copying a whole database to another one (`rova db copy --from URL --to
//! URL`): how an embedded SQLite cloud moves to PostgreSQL, or back. Every
//! kind's rows are read from the source as stored and written to the
//! destination's table of that kind (its key columns computed there as on
//! any write), a chunk per commit, each row keeping its version token. An
//! SQLite file is locked as a serving process locks it; a PostgreSQL
//! database that a live process serves (it holds a `process/` lease) is
//! refused. The destination must hold no records.

use super::backend::Op;
use super::schema::{self, Kind};
use super::{Chunk, Store};

/// How many records of each kind were copied.
pub type Copied = Vec<(&'static str, usize)>;

/// Copies every record of `from` into `to` (which must be empty).
pub fn copy_all(from: &Store, to: &Store) -> Result<Copied, String> {
    // (An SQLite file is already locked against its serving process.)
    for (store, which) in [(from, "source"), (to, "destination")] {
        if !matches!(store.database(), super::Database::Postgres(_)) {
            continue;
        }
        if let Some((_, owner)) = store.leases_held_blocking("process/")?.first() {
            return Err(format!(
                "the {which} {} is being served (process {owner} holds its lease, which lapses within seconds of the process stopping); stop every process serving it first",
                store.database().redacted()
            ));
        }
    }
    for kind in schema::KINDS {
        if !is_empty(to, kind)? {
            return Err(format!(
                "the destination already holds {} records; copy into an empty database",
                kind.table
            ));
        }
    }
    let mut copied = Vec::new();
    for kind in schema::KINDS {
        let chunks = from.load_kind(kind)?;
        let mut n = 0usize;
        for chunk in chunks {
            match chunk {
                Chunk::Rows(rows) => {
                    let mut acks = Vec::with_capacity(rows.len());
                    for (id, gen, body) in rows {
                        acks.push(to.enqueue(Op::put(kind, id, body, 0, gen)?, Box::new(|_| {})));
                    }
                    n += acks.len();
                    for ack in acks {
                        ack.blocking_recv()
                            .map_err(|_| "the destination's writer stopped".to_string())?
                            .map_err(|e| format!("writing {}: {e}", kind.table))?
                            .map_err(|r| format!("writing {}: {:?}", kind.table, r.refusal))?;
                    }
                }
                Chunk::End(read) => read.map_err(|e| format!("reading {}: {e}", kind.table))?,
            }
        }
        copied.push((kind.table, n));
    }
    Ok(copied)
}

/// Whether `store` holds no record of `kind`. Only the first chunk is
/// read: dropping the receiver stops the writer's read there.
fn is_empty(store: &Store, kind: &'static Kind) -> Result<bool, String> {
    match store.load_kind(kind)?.recv() {
        Ok(Chunk::Rows(rows)) => Ok(rows.is_empty()),
        Ok(Chunk::End(read)) => read.map(|()| true),
        Err(_) => Err("storage writer stopped".to_string()),
    }
}
