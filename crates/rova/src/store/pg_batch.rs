//! How the PostgreSQL backend writes a batch: each row's chain of writes
//! collapsed and sent as one bulk statement per table and shape
//! (compare-and-swap inserts, updates and deletes on the version token),
//! the guarded and port writes checked in bulk in a savepoint or, when
//! that fails, one by one, and the commit's announcement to the other
//! processes.

use super::backend::{change_line, Guard, Op, Outcome, Refusal, Rejection};
use super::postgres::{exec, query, CHANNEL};
use super::schema::{Cell, Kind, Ty};
use postgres::types::ToSql;
use std::collections::HashMap;

/// What a batch's plain writes (rows with no guard and no unique child
/// rows) come to, row by row: each row's chain of writes in the batch
/// collapses to at most a delete of what was there and an insert or an
/// update of what is left.
pub(super) struct BulkPlan<'a> {
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
    pub(super) fn of(chains: &[&Vec<(usize, &'a Op)>]) -> BulkPlan<'a> {
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

    pub(super) fn run(
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
pub(super) fn fetch(
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
pub(super) fn children_and_guards_hold(
    tx: &mut postgres::Transaction<'_>,
    chains: &[&Vec<(usize, &Op)>],
    out: &[Outcome],
) -> Result<bool, postgres::Error> {
    let made = |chain: &Vec<(usize, &Op)>| chain.iter().all(|(i, _)| out[*i].is_ok());
    // A counted guard (rare writes: key pairs, server groups) is checked
    // write by write.
    let counted = |op: &&Op| {
        matches!(
            op,
            Op::Put {
                guard: Some(Guard::Count { .. } | Guard::Rows { .. } | Guard::Storage { .. }),
                ..
            }
        )
    };
    if chains.iter().any(|c| c.iter().any(|(_, op)| counted(op))) {
        return Ok(false);
    }
    let mut port_ids: Vec<&str> = Vec::new();
    let (mut subnets, mut ips, mut owners): (Vec<String>, Vec<String>, Vec<&str>) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut nodes: Vec<&str> = Vec::new();
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
                    guard: Some(Guard::Capacity { node }),
                    ..
                } => nodes.push(node),
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
        let rows = query(
            tx,
            "SELECT n.name, coalesce(u.vcpus, 0), coalesce(u.ram, 0), p.vcpu_capacity, p.memory_capacity \
             FROM unnest($1::text[]) AS n(name) \
             LEFT JOIN node_usage u ON u.node = n.name \
             LEFT JOIN resource_providers p ON p.name = n.name",
            &[&nodes],
        )?;
        for r in &rows {
            let capacity = match (r.get::<_, Option<i64>>(3), r.get::<_, Option<i64>>(4)) {
                (Some(v), Some(m)) => Some((v, m)),
                _ => None,
            };
            if super::schema::capacity_verdict(r.get(0), (r.get(1), r.get(2)), capacity).is_err() {
                return Ok(false);
            }
        }
    }
    if !projects.is_empty() {
        let names: Vec<&str> = projects.iter().map(|p| p.0).collect();
        let rows = query(
            tx,
            "SELECT project_id, count(*), \
             coalesce(sum(coalesce((body->'resize_hold'->>'vcpus')::bigint, (body->'flavor'->>'vcpus')::bigint)), 0)::bigint, \
             coalesce(sum(coalesce((body->'resize_hold'->>'ram')::bigint, (body->'flavor'->>'ram')::bigint)), 0)::bigint \
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
pub(super) fn apply_alone(
    tx: &mut postgres::Transaction<'_>,
    op: &Op,
) -> Result<Outcome, postgres::Error> {
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
            Ok(match g {
                Guard::Quota { project, .. } => {
                    let own = tx.query_one(
                        "SELECT coalesce((body->'resize_hold'->>'vcpus')::bigint, (body->'flavor'->>'vcpus')::bigint, 0), \
                         coalesce((body->'resize_hold'->>'ram')::bigint, (body->'flavor'->>'ram')::bigint, 0) FROM instances WHERE id = $1",
                        &[id],
                    )?;
                    let own: (i64, i64) = (own.get(0), own.get(1));
                    let r = tx.query_one(
                        "SELECT count(*), coalesce(sum(coalesce((body->'resize_hold'->>'vcpus')::bigint, (body->'flavor'->>'vcpus')::bigint)), 0)::bigint, \
                         coalesce(sum(coalesce((body->'resize_hold'->>'ram')::bigint, (body->'flavor'->>'ram')::bigint)), 0)::bigint \
                         FROM instances WHERE project_id = $1 AND deleted = false",
                        &[project],
                    )?;
                    super::schema::quota_verdict(g, own, (r.get(0), r.get(1), r.get(2)))
                }
                Guard::Count { column, value, .. } => {
                    let sql = format!("SELECT count(*) FROM {} WHERE {column} = $1", kind.table);
                    let n: i64 = tx.query_one(sql.as_str(), &[value])?.get(0);
                    super::schema::quota_verdict(g, (0, 0), (n, 0, 0))
                }
                Guard::Rows {
                    table,
                    column,
                    value,
                    ..
                } => {
                    let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
                    let n: i64 = tx.query_one(sql.as_str(), &[value])?.get(0);
                    super::schema::quota_verdict(g, (0, 0), (n, 0, 0))
                }
                Guard::Storage { project, .. } => {
                    let sql = format!("SELECT count(*) FROM {} WHERE project_id = $1", kind.table);
                    let n: i64 = tx.query_one(sql.as_str(), &[project])?.get(0);
                    let gb: i64 = tx
                        .query_one(super::backend::STORAGE_GB_POSTGRES, &[project])?
                        .get(0);
                    super::schema::storage_verdict(g, n, gb)
                }
                Guard::Capacity { node } => {
                    // Kept by a trigger on allocations (migration 6): one row.
                    let r =
                        tx.query_opt("SELECT vcpus, ram FROM node_usage WHERE node = $1", &[node])?;
                    let used = r.map_or((0, 0), |r| (r.get(0), r.get(1)));
                    let capacity = tx
                        .query_opt(
                            "SELECT vcpu_capacity, memory_capacity FROM resource_providers WHERE name = $1",
                            &[node],
                        )?
                        .map(|r| (r.get(0), r.get(1)));
                    super::schema::capacity_verdict(node, used, capacity)
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
pub(super) fn announce(
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
            Ty::Text | Ty::Members(_) => Column::Text(Vec::with_capacity(puts.len())),
            Ty::Int | Ty::Nanos => Column::Int(Vec::with_capacity(puts.len())),
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
            Ty::Text | Ty::Members(_) => "text",
            Ty::Int | Ty::Nanos => "bigint",
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
