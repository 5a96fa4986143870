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
//! refresh their copies ([`listen`]).

use super::backend::{
    chains, change_line, pending, Backend, Guard, Op, Outcome, Refusal, Rejection, HELD_SQL,
    LEASE_SQL, POSTGRES_MIGRATIONS, RELEASE_SQL,
};
use super::schema::{Cell, Kind, Ty};
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
fn connect(url: &str) -> Result<Client, postgres::Error> {
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
fn forget_prepared() {
    PREPARED.with(|p| p.borrow_mut().clear());
}

fn query(
    c: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let st = prepared(c, sql)?;
    c.query(&st, params)
}

fn exec(
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

    fn commit(&mut self, ops: &[&Op]) -> Result<Vec<Outcome>, String> {
        let rows = chains(ops);
        // The advisory locks the guards need, taken first and in one order
        // (so two processes' batches cannot deadlock on them).
        let mut locks: Vec<String> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Put {
                    guard: Some(Guard::Quota { project, .. }),
                    ..
                } => Some(format!("rova-quota/{project}")),
                Op::Put {
                    guard: Some(Guard::Capacity { node, .. }),
                    ..
                } => Some(format!("rova-node/{node}")),
                _ => None,
            })
            .collect();
        locks.sort();
        locks.dedup();
        let (alone, bulk): (Vec<_>, Vec<_>) = rows
            .iter()
            .partition(|chain| chain.iter().any(|(_, op)| op.alone()));
        let plan = BulkPlan::of(&bulk);
        let all: Vec<&Vec<(usize, &Op)>> = rows.iter().collect();
        let together = BulkPlan::of(&all);
        let owner = self.owner.clone();
        self.with_retry(|client| {
            let mut out: Vec<Outcome> = vec![Ok(()); ops.len()];
            let mut tx = client.transaction()?;
            for key in &locks {
                exec(
                    &mut tx,
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[key],
                )?;
            }
            // With guarded or port writes in the batch, first everything
            // together, in a savepoint: all writes in bulk, then the ports'
            // addresses and the guards checked in a few statements. Only
            // when an address is taken or a guard fails (other processes'
            // doing) is it taken back, and the guarded and port writes
            // made one by one, each deciding for itself.
            let together_ok = !alone.is_empty() && {
                let mut sp = tx.savepoint("together")?;
                let mut trial = out.clone();
                together.run(&mut sp, &mut trial)?;
                if children_and_guards_hold(&mut sp, &alone, &trial)? {
                    sp.commit()?;
                    out = trial;
                    true
                } else {
                    false
                }
            };
            if !together_ok {
                plan.run(&mut tx, &mut out)?;
                for chain in &alone {
                    for (i, op) in chain.iter() {
                        out[*i] = apply_alone(&mut tx, op)?;
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

/// What a batch's plain writes (rows with no guard and no unique child
/// rows) come to, row by row: each row's chain of writes in the batch
/// collapses to at most a delete of what was there and an insert or an
/// update of what is left.
struct BulkPlan<'a> {
    /// `(kind, id, expected token, ops of the chain)`.
    deletes: Vec<(&'static Kind, &'a str, i64, Vec<usize>)>,
    /// The final put, and every op of the chain.
    inserts: Vec<(&'a Op, Vec<usize>)>,
    updates: Vec<(&'a Op, i64, Vec<usize>)>,
    /// Writes refused outright: the tail of a chain that does not follow on.
    broken: Vec<(&'static Kind, &'a str, Vec<usize>)>,
}

/// The token a write leaves its row with (0: no row).
fn produced(op: &Op) -> i64 {
    match op {
        Op::Put { gen, .. } => *gen,
        Op::Delete { .. } => 0,
    }
}

impl<'a> BulkPlan<'a> {
    fn of(chains: &[&Vec<(usize, &'a Op)>]) -> BulkPlan<'a> {
        let mut plan = BulkPlan {
            deletes: Vec::new(),
            inserts: Vec::new(),
            updates: Vec::new(),
            broken: Vec::new(),
        };
        for chain in chains {
            // A write that does not follow on from the one before it was
            // made from a copy that never was stored: it and the rest of
            // the row's writes are refused (the prefix stands).
            let whole = chain.len();
            let upto = (1..whole)
                .find(|&n| chain[n].1.expect() != produced(chain[n - 1].1))
                .unwrap_or(whole);
            if upto < whole {
                plan.broken.push((
                    chain[upto].1.kind(),
                    chain[upto].1.id(),
                    chain[upto..].iter().map(|(i, _)| *i).collect(),
                ));
            }
            let chain = &chain[..upto];
            let (Some((_, first)), Some((_, last))) = (chain.first(), chain.last()) else {
                continue;
            };
            let idx: Vec<usize> = chain.iter().map(|(i, _)| *i).collect();
            let expect = first.expect();
            let deleted = chain.iter().any(|(_, op)| matches!(op, Op::Delete { .. }));
            if deleted && expect != 0 {
                plan.deletes
                    .push((first.kind(), first.id(), expect, idx.clone()));
            }
            match last {
                Op::Put { .. } if deleted || expect == 0 => plan.inserts.push((last, idx)),
                Op::Put { .. } => plan.updates.push((last, expect, idx)),
                Op::Delete { .. } => {}
            }
        }
        plan
    }

    fn run(
        &self,
        tx: &mut postgres::Transaction<'_>,
        out: &mut [Outcome],
    ) -> Result<(), postgres::Error> {
        // Deletes first: a chain whose delete is refused writes nothing.
        let mut refused: Vec<(&'static Kind, &str, &[usize])> = Vec::new();
        for kind in kinds_of(self.deletes.iter().map(|d| d.0)) {
            let mine: Vec<_> = self
                .deletes
                .iter()
                .filter(|d| d.0.table == kind.table)
                .collect();
            let ids: Vec<&str> = mine.iter().map(|d| d.1).collect();
            let gens: Vec<i64> = mine.iter().map(|d| d.2).collect();
            let gone = returned_ids(query(
                tx,
                &format!(
                    "DELETE FROM {t} USING UNNEST($1::text[], $2::bigint[]) AS d(id, gen) \
                     WHERE {t}.id = d.id AND {t}.gen = d.gen RETURNING {t}.id",
                    t = kind.table
                ),
                &[&ids, &gens],
            )?);
            for d in &mine {
                if !gone.contains(d.1) {
                    // Not there at all is what a delete wants.
                    refused.push((kind, d.1, &d.3));
                }
            }
        }
        let mut changed: Vec<(&'static Kind, &str, &[usize])> = Vec::new();
        if !refused.is_empty() {
            for (kind, id, idx) in refused {
                if fetch(tx, kind, &[id])?.contains_key(id) {
                    changed.push((kind, id, idx));
                }
            }
        }
        let refused_deletes: std::collections::HashSet<(&str, &str)> =
            changed.iter().map(|(k, id, _)| (k.table, *id)).collect();
        for kind in kinds_of(self.inserts.iter().map(|(op, _)| op.kind())) {
            let mine: Vec<_> = self
                .inserts
                .iter()
                .filter(|(op, _)| {
                    op.kind().table == kind.table
                        && !refused_deletes.contains(&(op.kind().table, op.id()))
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let puts: Vec<&Op> = mine.iter().map(|(op, _)| *op).collect();
            let made = returned_ids(bulk_write(tx, kind, &puts, None)?);
            for (op, idx) in &mine {
                if !made.contains(op.id()) {
                    changed.push((kind, op.id(), idx));
                }
            }
        }
        for kind in kinds_of(self.updates.iter().map(|(op, _, _)| op.kind())) {
            let mine: Vec<_> = self
                .updates
                .iter()
                .filter(|(op, _, _)| op.kind().table == kind.table)
                .collect();
            let puts: Vec<&Op> = mine.iter().map(|(op, _, _)| *op).collect();
            let expects: Vec<i64> = mine.iter().map(|(_, e, _)| *e).collect();
            let made = returned_ids(bulk_write(tx, kind, &puts, Some(&expects))?);
            for (op, _, idx) in &mine {
                if !made.contains(op.id()) {
                    changed.push((kind, op.id(), idx));
                }
            }
        }
        for (kind, id, idx) in &self.broken {
            changed.push((kind, id, idx));
        }
        for kind in kinds_of(changed.iter().map(|c| c.0)) {
            let ids: Vec<&str> = changed
                .iter()
                .filter(|c| c.0.table == kind.table)
                .map(|c| c.1)
                .collect();
            let mut now = fetch(tx, kind, &ids)?;
            for (_, id, idx) in changed.iter().filter(|c| c.0.table == kind.table) {
                let current = now.remove(*id);
                for i in idx.iter() {
                    out[*i] = Err(Rejection {
                        refusal: Refusal::Changed,
                        current: current.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The distinct kinds of an iterator, in first-seen order.
fn kinds_of(all: impl Iterator<Item = &'static Kind>) -> Vec<&'static Kind> {
    let mut out: Vec<&'static Kind> = Vec::new();
    for k in all {
        if !out.iter().any(|o| o.table == k.table) {
            out.push(k);
        }
    }
    out
}

fn returned_ids(rows: Vec<postgres::Row>) -> std::collections::HashSet<String> {
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

/// The rows `ids` of `kind` as stored: id → `(gen, body)`.
fn fetch(
    tx: &mut impl postgres::GenericClient,
    kind: &Kind,
    ids: &[&str],
) -> Result<HashMap<String, (i64, String)>, postgres::Error> {
    let rows = query(
        tx,
        &format!(
            "SELECT id, gen, body::text FROM {} WHERE id = ANY($1)",
            kind.table
        ),
        &[&ids],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

/// After the guarded and port chains of a batch were written together
/// (`out` says which were made): rewrites the made ports' `ip_allocations`
/// and checks the made writes' guards, in bulk. False when an address is
/// taken or a guard fails: the caller takes it all back and goes one by
/// one.
fn children_and_guards_hold(
    tx: &mut postgres::Transaction<'_>,
    chains: &[&Vec<(usize, &Op)>],
    out: &[Outcome],
) -> Result<bool, postgres::Error> {
    let made = |chain: &Vec<(usize, &Op)>| chain.iter().all(|(i, _)| out[*i].is_ok());
    let mut port_ids: Vec<&str> = Vec::new();
    let (mut subnets, mut ips, mut owners): (Vec<String>, Vec<String>, Vec<&str>) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut nodes: Vec<(&str, i64, i64)> = Vec::new();
    let mut projects: Vec<(&str, i64, i64, i64)> = Vec::new();
    for chain in chains.iter().filter(|c| made(c)) {
        let Some((_, last)) = chain.last() else {
            continue;
        };
        if last.kind().table == "ports" {
            // A port new in this batch has no allocations to replace.
            if chain.first().is_some_and(|(_, first)| first.expect() != 0) {
                port_ids.push(last.id());
            }
            if let Op::Put { body, id, .. } = last {
                for (subnet, ip) in super::schema::fixed_ips(body) {
                    subnets.push(subnet);
                    ips.push(ip);
                    owners.push(id);
                }
            }
        }
        for (_, op) in chain.iter() {
            match op {
                Op::Put {
                    guard: Some(Guard::Capacity { node, vcpus, ram }),
                    ..
                } => nodes.push((node, *vcpus, *ram)),
                Op::Put {
                    guard:
                        Some(Guard::Quota {
                            project,
                            instances,
                            cores,
                            ram,
                        }),
                    ..
                } => projects.push((project, *instances, *cores, *ram)),
                _ => {}
            }
        }
    }
    if !port_ids.is_empty() {
        exec(
            tx,
            "DELETE FROM ip_allocations WHERE port_id = ANY($1)",
            &[&port_ids],
        )?;
    }
    if !ips.is_empty() {
        let added = exec(
            tx,
            "INSERT INTO ip_allocations (subnet_id, ip_address, port_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT DO NOTHING",
            &[&subnets, &ips, &owners],
        )?;
        if added != ips.len() as u64 {
            return Ok(false);
        }
    }
    if !nodes.is_empty() {
        let names: Vec<&str> = nodes.iter().map(|n| n.0).collect();
        let rows = query(
            tx,
            "SELECT node, vcpus, ram FROM node_usage WHERE node = ANY($1)",
            &[&names],
        )?;
        for r in &rows {
            let (node, vcpus, ram): (&str, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let over = nodes
                .iter()
                .filter(|n| n.0 == node)
                .any(|n| (n.1 >= 0 && vcpus > n.1) || (n.2 >= 0 && ram > n.2));
            if over {
                return Ok(false);
            }
        }
    }
    if !projects.is_empty() {
        let names: Vec<&str> = projects.iter().map(|p| p.0).collect();
        let rows = query(
            tx,
            "SELECT project_id, count(*), \
             coalesce(sum((body->'flavor'->>'vcpus')::bigint), 0)::bigint, \
             coalesce(sum((body->'flavor'->>'ram')::bigint), 0)::bigint \
             FROM instances WHERE project_id = ANY($1) AND deleted = false GROUP BY project_id",
            &[&names],
        )?;
        for r in &rows {
            let (project, n, cores, ram): (&str, i64, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let over = projects.iter().filter(|p| p.0 == project).any(|p| {
                (p.1 >= 0 && n > p.1) || (p.2 >= 0 && cores > p.2) || (p.3 >= 0 && ram > p.3)
            });
            if over {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// One guarded write or port write, in a savepoint.
fn apply_alone(tx: &mut postgres::Transaction<'_>, op: &Op) -> Result<Outcome, postgres::Error> {
    let verdict = {
        let mut sp = tx.savepoint("w")?;
        let verdict = write_checked(&mut sp, op)?;
        if verdict.is_ok() {
            sp.commit()?;
        }
        // Dropped uncommitted: rolled back to the savepoint.
        verdict
    };
    match verdict {
        Ok(()) => Ok(Ok(())),
        Err(refusal) => Ok(Err(Rejection {
            refusal,
            current: fetch(tx, op.kind(), &[op.id()])?.remove(op.id()),
        })),
    }
}

fn write_checked(
    tx: &mut postgres::Transaction<'_>,
    op: &Op,
) -> Result<Result<(), Refusal>, postgres::Error> {
    match op {
        Op::Put {
            kind, id, guard, ..
        } => {
            let expects = [op.expect()];
            let made = if op.expect() == 0 {
                bulk_write(tx, kind, &[op], None)?
            } else {
                bulk_write(tx, kind, &[op], Some(&expects))?
            };
            if made.is_empty() {
                return Ok(Err(Refusal::Changed));
            }
            if kind.table == "ports" {
                if let Op::Put { body, .. } = op {
                    exec(tx, "DELETE FROM ip_allocations WHERE port_id = $1", &[id])?;
                    for (subnet, ip) in super::schema::fixed_ips(body) {
                        let added = exec(
                            tx,
                            "INSERT INTO ip_allocations (subnet_id, ip_address, port_id) \
                             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            &[&subnet, &ip, id],
                        )?;
                        if added == 0 {
                            return Ok(Err(Refusal::Taken { subnet, ip }));
                        }
                    }
                }
            }
            let Some(g) = guard else {
                return Ok(Ok(()));
            };
            let own = tx.query_one(
                "SELECT coalesce((body->'flavor'->>'vcpus')::bigint, 0), \
                 coalesce((body->'flavor'->>'ram')::bigint, 0) FROM instances WHERE id = $1",
                &[id],
            )?;
            let own: (i64, i64) = (own.get(0), own.get(1));
            Ok(match g {
                Guard::Quota { project, .. } => {
                    let r = tx.query_one(
                        "SELECT count(*), coalesce(sum((body->'flavor'->>'vcpus')::bigint), 0)::bigint, \
                         coalesce(sum((body->'flavor'->>'ram')::bigint), 0)::bigint \
                         FROM instances WHERE project_id = $1 AND deleted = false",
                        &[project],
                    )?;
                    super::schema::quota_verdict(g, own, (r.get(0), r.get(1), r.get(2)))
                }
                Guard::Capacity { node, .. } => {
                    // Kept by a trigger on instances (migration 4): one row.
                    let r =
                        tx.query_opt("SELECT vcpus, ram FROM node_usage WHERE node = $1", &[node])?;
                    let used = r.map_or((0, 0), |r| (r.get(0), r.get(1)));
                    super::schema::quota_verdict(g, own, (0, used.0, used.1))
                }
            })
        }
        Op::Delete { kind, id, expect } => {
            let gone = exec(
                tx,
                &format!("DELETE FROM {} WHERE id = $1 AND gen = $2", kind.table),
                &[id, expect],
            )?;
            if gone == 0 && !fetch(tx, kind, &[id.as_str()])?.is_empty() {
                return Ok(Err(Refusal::Changed));
            }
            if kind.table == "ports" {
                exec(tx, "DELETE FROM ip_allocations WHERE port_id = $1", &[id])?;
            }
            Ok(Ok(()))
        }
    }
}

/// Tells the other processes which rows this commit wrote or deleted:
/// `pg_notify` on [`CHANNEL`], delivered when the transaction commits. A
/// payload is the writer's owner name on its first line, then one
/// `kind-index id` line per row (split to stay under PostgreSQL's 8000
/// bytes).
fn announce(
    tx: &mut postgres::Transaction<'_>,
    owner: &str,
    ops: &[&Op],
    out: &[Outcome],
) -> Result<(), postgres::Error> {
    let mut seen = std::collections::HashSet::new();
    let mut payloads: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (op, outcome) in ops.iter().zip(out) {
        if outcome.is_err() {
            continue;
        }
        let line = change_line(op);
        if !seen.insert(line.clone()) {
            continue;
        }
        if cur.len() + line.len() + 1 > 7000 {
            payloads.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur.push_str(owner);
        }
        cur.push('\n');
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        payloads.push(cur);
    }
    if !payloads.is_empty() {
        exec(
            tx,
            &format!("SELECT pg_notify('{CHANNEL}', p) FROM unnest($1::text[]) AS p"),
            &[&payloads],
        )?;
    }
    Ok(())
}

/// What [`listen`] hands each changed row to: its kind, id and the row as
/// stored (`None`: deleted); false stops the feed.
pub type Apply<'a> = dyn FnMut(&'static Kind, &str, Option<(i64, String)>) -> bool + 'a;

/// Every row of every table, as stored: table → id → `(gen, body)`.
pub type Everything = HashMap<&'static str, HashMap<String, (i64, String)>>;

/// Follows the other processes' commits: on a connection of its own,
/// `LISTEN`s on [`CHANNEL`] and hands `apply` every row another owner
/// wrote, as it is now (`None`: deleted), after calling `mark` for its
/// kind just before reading it. When the connection drops it reconnects,
/// reads every table whole and hands that to `resync` (with the `epoch()`
/// taken before the read): what was announced meanwhile is lost. Returns
/// when `apply` returns false or `epoch` returns `None` (the store is
/// gone).
pub fn listen(
    url: &str,
    shown: &str,
    owner: &str,
    mark: &mut dyn FnMut(&'static Kind),
    apply: &mut Apply<'_>,
    resync: &mut dyn FnMut(&Everything, u64),
    epoch: &dyn Fn() -> Option<u64>,
) {
    use postgres::fallible_iterator::FallibleIterator;
    let mut first = true;
    loop {
        if epoch().is_none() {
            return;
        }
        forget_prepared();
        let mut client = match connect(url) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("change feed: connecting to {shown}: {e}");
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!("change feed: LISTEN on {shown}: {e}");
            std::thread::sleep(std::time::Duration::from_secs(1));
            continue;
        }
        if !first {
            let Some(since) = epoch() else {
                return;
            };
            match read_everything(&mut client) {
                Ok(all) => resync(&all, since),
                Err(e) => {
                    tracing::warn!("change feed: re-reading {shown}: {e}");
                    continue;
                }
            }
        }
        first = false;
        loop {
            let mut batch: Vec<String> = Vec::new();
            let first = {
                let mut notes = client.notifications();
                // Wakes up now and then to notice a store that is gone.
                let mut it = notes.timeout_iter(std::time::Duration::from_secs(2));
                it.next()
            };
            match first {
                Ok(Some(n)) => batch.push(n.payload().to_string()),
                Ok(None) if !client.is_closed() => {
                    if epoch().is_none() {
                        return;
                    }
                    continue;
                }
                Ok(None) | Err(_) => break,
            }
            {
                // Whatever else has arrived goes in the same round.
                let mut notes = client.notifications();
                let mut more = notes.iter();
                while let Ok(Some(n)) = more.next() {
                    batch.push(n.payload().to_string());
                }
            }
            let mut wanted: Vec<(&'static Kind, Vec<String>)> = Vec::new();
            for payload in &batch {
                let mut lines = payload.lines();
                if lines.next() == Some(owner) {
                    continue;
                }
                for line in lines {
                    let Some((k, id)) = line.split_once(' ') else {
                        continue;
                    };
                    let Some(kind) = k
                        .parse::<usize>()
                        .ok()
                        .and_then(|k| super::schema::KINDS.get(k))
                    else {
                        continue;
                    };
                    match wanted.iter_mut().find(|(w, _)| w.table == kind.table) {
                        Some((_, ids)) => ids.push(id.to_string()),
                        None => wanted.push((kind, vec![id.to_string()])),
                    }
                }
            }
            for (kind, ids) in wanted {
                mark(kind);
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let now = match fetch(&mut client, kind, &refs) {
                    Ok(now) => now,
                    Err(e) => {
                        tracing::warn!("change feed: reading {}: {e}", kind.table);
                        break;
                    }
                };
                // An id announced twice is in `ids` twice: read, not taken.
                for id in &ids {
                    if !apply(kind, id, now.get(id).cloned()) {
                        return;
                    }
                }
            }
            if client.is_closed() {
                break;
            }
        }
        tracing::warn!("change feed: the connection to {shown} closed; reconnecting");
    }
}

fn read_everything(client: &mut Client) -> Result<Everything, postgres::Error> {
    let mut all = Everything::new();
    for kind in super::schema::KINDS {
        let rows = client.query(
            &format!("SELECT id, gen, body::text FROM {}", kind.table),
            &[],
        )?;
        all.insert(
            kind.table,
            rows.iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect(),
        );
    }
    Ok(all)
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

/// One statement writing every put of `puts` (all of `kind`): inserts
/// when `expects` is `None` (a row that exists is left alone), else
/// updates of the rows whose token is the expected one. Returns the ids
/// written.
fn bulk_write(
    tx: &mut impl postgres::GenericClient,
    kind: &Kind,
    puts: &[&Op],
    expects: Option<&[i64]>,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let mut ids: Vec<&str> = Vec::with_capacity(puts.len());
    let mut gens: Vec<i64> = Vec::with_capacity(puts.len());
    let mut bodies: Vec<&str> = Vec::with_capacity(puts.len());
    let mut columns: Vec<Column> = kind
        .cols
        .iter()
        .map(|c| match c.ty {
            Ty::Text => Column::Text(Vec::with_capacity(puts.len())),
            Ty::Int => Column::Int(Vec::with_capacity(puts.len())),
            Ty::Bool => Column::Bool(Vec::with_capacity(puts.len())),
        })
        .collect();
    for op in puts {
        let Op::Put {
            id,
            cells,
            body,
            gen,
            ..
        } = op
        else {
            continue;
        };
        ids.push(id);
        gens.push(*gen);
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
    let expected: Vec<i64> = expects.map(<[i64]>::to_vec).unwrap_or_default();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids];
    params.extend(columns.iter().map(Column::param));
    params.push(&bodies);
    params.push(&gens);
    let sql = if expects.is_some() {
        params.push(&expected);
        update_sql(kind)
    } else {
        insert_sql(kind)
    };
    query(tx, &sql, &params)
}

/// The `UNNEST` of a bulk write's array parameters: id, the key columns,
/// body, gen (and, for an update, the expected token), and the column
/// names they take.
fn unnest(kind: &Kind, update: bool) -> (String, Vec<String>) {
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
    let mut names = cols.clone();
    if update {
        arrays.push(format!("${}::bigint[]", kind.cols.len() + 4));
        names.push("expect".into());
    }
    (
        format!("UNNEST({}) AS u({})", arrays.join(", "), names.join(", ")),
        cols,
    )
}

fn insert_sql(kind: &Kind) -> String {
    let (from, cols) = unnest(kind, false);
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            "body" => "u.body::json".to_string(),
            c => format!("u.{c}"),
        })
        .collect();
    format!(
        "INSERT INTO {t} ({cols}) SELECT {select} FROM {from} ON CONFLICT (id) DO NOTHING RETURNING id",
        t = kind.table,
        cols = cols.join(", "),
        select = select.join(", "),
    )
}

fn update_sql(kind: &Kind) -> String {
    let (from, cols) = unnest(kind, true);
    let sets: Vec<String> = cols[1..]
        .iter()
        .map(|c| match c.as_str() {
            "body" => "body = u.body::json".to_string(),
            c => format!("{c} = u.{c}"),
        })
        .collect();
    format!(
        "UPDATE {t} SET {sets} FROM {from} WHERE {t}.id = u.id AND {t}.gen = u.expect RETURNING {t}.id",
        t = kind.table,
        sets = sets.join(", "),
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
