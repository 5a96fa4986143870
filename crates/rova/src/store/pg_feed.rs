//! The change feed of a PostgreSQL store: a connection of its own that
//! `LISTEN`s for the other processes' commits and hands the rows they
//! wrote, as stored now, to the store's tables.

use super::pg_batch::fetch;
use super::postgres::{connect, forget_prepared, CHANNEL};
use super::schema::Kind;
use postgres::Client;
use std::collections::HashMap;

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
/// taken before the read; only the tables `whole` names, the others'
/// cached copies are emptied): what was announced meanwhile is lost. `url`
/// comes with the form of it shown in messages. Returns
/// when `apply` returns false or `epoch` returns `None` (the store is
/// gone).
pub fn listen(
    (url, shown): (&str, &str),
    owner: &str,
    mark: &mut dyn FnMut(&'static Kind),
    apply: &mut Apply<'_>,
    resync: &mut dyn FnMut(&Everything, u64),
    epoch: &dyn Fn() -> Option<u64>,
    whole: &dyn Fn(&str) -> bool,
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
            match read_everything(&mut client, whole) {
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

/// Every row of the tables `whole` names (the tables kept whole in
/// memory; a cached table's copy is emptied instead and reads on).
fn read_everything(
    client: &mut Client,
    whole: &dyn Fn(&str) -> bool,
) -> Result<Everything, postgres::Error> {
    let mut all = Everything::new();
    for kind in super::schema::KINDS.iter().filter(|k| whole(k.table)) {
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
