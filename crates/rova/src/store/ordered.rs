//! Ordered secondary indexes of a table: the ids of its rows kept in the
//! order of a sort key, so that a list in that order can start anywhere
//! (a marker) and stop after a page without reading or sorting every row.
//!
//! An index is added with [`super::Table::ordered`] and walked with
//! [`super::Table::walk`]; [`super::Rows`] keeps it in step with every
//! write through the [`OrderedIndex`] trait, which hides the key type. It
//! holds the rows themselves in key order, so a walk is a sequential read
//! of the B-tree (no lookup per row in the table's map).

use std::any::Any;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// What a table needs of an ordered index, whatever its key type.
pub(super) trait OrderedIndex<T>: Send + Sync {
    fn name(&self) -> &'static str;
    /// Row `id` changed from `old` to `new` (`None`: absent before/after).
    fn replace(&mut self, id: &str, old: Option<&T>, new: Option<&Arc<T>>);
    /// For [`Ordered::of`].
    fn as_any(&self) -> &dyn Any;
}

/// Where a row lies among the rows with the same key: by id, between two
/// sentinels that let a range on the key alone be a range on the map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Tie {
    First,
    Id(String),
    Last,
}

/// The rows whose `key` is `Some`, by key, then id. The rows themselves
/// are held (not just their ids), so a walk reads no other map.
pub(super) struct Ordered<T, K> {
    name: &'static str,
    key: fn(&T) -> Option<K>,
    rows: BTreeMap<(K, Tie), Arc<T>>,
}

impl<T, K: Ord> Ordered<T, K> {
    pub(super) fn new(name: &'static str, key: fn(&T) -> Option<K>) -> Self {
        Ordered {
            name,
            key,
            rows: BTreeMap::new(),
        }
    }

    /// The rows whose key lies in `range`, ascending (descending when
    /// `reverse`); rows with equal keys in id order (reversed too). A range
    /// whose start lies after its end is empty.
    pub(super) fn walk(
        &self,
        range: (Bound<K>, Bound<K>),
        reverse: bool,
    ) -> Box<dyn Iterator<Item = &Arc<T>> + '_> {
        use Bound::{Excluded, Included, Unbounded};
        if is_empty(&range) {
            return Box::new(std::iter::empty());
        }
        let start = match range.0 {
            Included(k) => Included((k, Tie::First)),
            Excluded(k) => Excluded((k, Tie::Last)),
            Unbounded => Unbounded,
        };
        let end = match range.1 {
            Included(k) => Included((k, Tie::Last)),
            Excluded(k) => Excluded((k, Tie::First)),
            Unbounded => Unbounded,
        };
        let found = self.rows.range((start, end)).map(|(_, row)| row);
        if reverse {
            Box::new(found.rev())
        } else {
            Box::new(found)
        }
    }
}

impl<T: 'static, K: Ord + Send + Sync + 'static> Ordered<T, K> {
    /// `ix` as an index keyed by `K`, if it is one.
    pub(super) fn of(ix: &dyn OrderedIndex<T>) -> Option<&Self> {
        ix.as_any().downcast_ref::<Self>()
    }
}

/// True when no key can lie in `range` (where `BTreeMap::range` would
/// panic: start after end, or equal and not both included).
fn is_empty<K: Ord>(range: &(Bound<K>, Bound<K>)) -> bool {
    use Bound::{Excluded, Included};
    match range {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

impl<T, K> OrderedIndex<T> for Ordered<T, K>
where
    T: Send + Sync + 'static,
    K: Ord + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn replace(&mut self, id: &str, old: Option<&T>, new: Option<&Arc<T>>) {
        if let Some(k) = old.and_then(self.key) {
            self.rows.remove(&(k, Tie::Id(id.to_string())));
        }
        if let Some(row) = new {
            if let Some(k) = (self.key)(row) {
                self.rows.insert((k, Tie::Id(id.to_string())), row.clone());
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Bound::{Excluded, Included, Unbounded};

    type Row = (String, i32);

    fn row(id: &str, n: i32) -> Arc<Row> {
        Arc::new((id.to_string(), n))
    }

    fn ix(rows: &[(&str, i32)]) -> Ordered<Row, i32> {
        let mut o = Ordered::new("n", |r: &Row| (r.1 >= 0).then_some(r.1));
        for (id, n) in rows {
            o.replace(id, None, Some(&row(id, *n)));
        }
        o
    }

    fn walk(o: &Ordered<Row, i32>, range: (Bound<i32>, Bound<i32>), rev: bool) -> String {
        let ids: Vec<&str> = o.walk(range, rev).map(|r| r.0.as_str()).collect();
        ids.join(",")
    }

    #[test]
    fn walks_in_key_then_id_order_both_ways_from_any_bound() {
        let o = ix(&[("c", 2), ("a", 1), ("b", 2), ("d", 3), ("x", -1)]);
        assert_eq!(walk(&o, (Unbounded, Unbounded), false), "a,b,c,d");
        assert_eq!(walk(&o, (Unbounded, Unbounded), true), "d,c,b,a");
        assert_eq!(walk(&o, (Excluded(1), Unbounded), false), "b,c,d");
        assert_eq!(walk(&o, (Unbounded, Excluded(3)), true), "c,b,a");
        assert_eq!(walk(&o, (Included(2), Included(2)), true), "c,b");
        // Inverted or empty ranges are empty, not a panic.
        assert_eq!(walk(&o, (Included(3), Included(1)), false), "");
        assert_eq!(walk(&o, (Excluded(2), Excluded(2)), false), "");
    }

    #[test]
    fn a_changed_key_moves_the_row_and_a_removed_row_leaves() {
        let mut o = ix(&[("a", 1), ("b", 2)]);
        o.replace("a", Some(&row("a", 1)), Some(&row("a", 5)));
        assert_eq!(walk(&o, (Unbounded, Unbounded), false), "b,a");
        o.replace("a", Some(&row("a", 5)), None);
        assert_eq!(walk(&o, (Unbounded, Unbounded), false), "b");
        // A new value under the same key is what the walk hands out.
        let b = Arc::new(("b".to_string(), 2));
        o.replace("b", Some(&row("b", 2)), Some(&b));
        assert!(o
            .walk((Unbounded, Unbounded), false)
            .all(|r| Arc::ptr_eq(r, &b)));
        // A key that becomes None takes the row out.
        o.replace("b", Some(&row("b", 2)), Some(&row("b", -1)));
        assert!(o.rows.is_empty());
    }
}
