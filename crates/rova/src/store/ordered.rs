//! Ordered secondary indexes of a table: the ids of its rows kept in the
//! order of a sort key, so that a list in that order can start anywhere
//! (a marker) and stop after a page without reading or sorting every row.
//!
//! An index is added with [`super::Table::ordered`] and walked with
//! [`super::Table::walk`]; [`super::Rows`] keeps it in step with every
//! write through the [`OrderedIndex`] trait, which hides the key type.

use std::any::Any;
use std::collections::BTreeMap;
use std::ops::Bound;

/// What a table needs of an ordered index, whatever its key type.
pub(super) trait OrderedIndex<T>: Send + Sync {
    fn name(&self) -> &'static str;
    /// Row `id` changed from `old` to `new` (`None`: absent before/after).
    fn replace(&mut self, id: &str, old: Option<&T>, new: Option<&T>);
    /// For [`Ordered::of`].
    fn as_any(&self) -> &dyn Any;
}

/// The rows whose `key` is `Some`, by key; rows with equal keys in
/// ascending id order.
pub(super) struct Ordered<T, K> {
    name: &'static str,
    key: fn(&T) -> Option<K>,
    ids: BTreeMap<K, Vec<String>>,
}

impl<T, K: Ord> Ordered<T, K> {
    pub(super) fn new(name: &'static str, key: fn(&T) -> Option<K>) -> Self {
        Ordered {
            name,
            key,
            ids: BTreeMap::new(),
        }
    }

    fn add(&mut self, id: &str, k: K) {
        let ids = self.ids.entry(k).or_default();
        if let Err(at) = ids.binary_search_by(|x| x.as_str().cmp(id)) {
            ids.insert(at, id.to_string());
        }
    }

    fn drop_id(&mut self, id: &str, k: &K) {
        if let Some(ids) = self.ids.get_mut(k) {
            if let Ok(at) = ids.binary_search_by(|x| x.as_str().cmp(id)) {
                ids.remove(at);
            }
            if ids.is_empty() {
                self.ids.remove(k);
            }
        }
    }

    /// The ids whose key lies in `range`, ascending (descending when
    /// `reverse`); ties in id order (reversed too). A range whose start
    /// lies after its end is empty.
    pub(super) fn walk<'a>(
        &'a self,
        range: &'a (Bound<K>, Bound<K>),
        reverse: bool,
    ) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        if is_empty(range) {
            return Box::new(std::iter::empty());
        }
        let bounds = (range.0.as_ref(), range.1.as_ref());
        let found = self.ids.range::<K, _>(bounds);
        if reverse {
            Box::new(
                found
                    .rev()
                    .flat_map(|(_, ids)| ids.iter().rev().map(String::as_str)),
            )
        } else {
            Box::new(found.flat_map(|(_, ids)| ids.iter().map(String::as_str)))
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

impl<T: 'static, K: Ord + Send + Sync + 'static> OrderedIndex<T> for Ordered<T, K> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn replace(&mut self, id: &str, old: Option<&T>, new: Option<&T>) {
        let old = old.and_then(self.key);
        let new = new.and_then(self.key);
        if old == new {
            return;
        }
        if let Some(k) = old {
            self.drop_id(id, &k);
        }
        if let Some(k) = new {
            self.add(id, k);
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

    fn ix(rows: &[(&str, i32)]) -> Ordered<(String, i32), i32> {
        let mut o = Ordered::new("n", |r: &(String, i32)| (r.1 >= 0).then_some(r.1));
        for (id, n) in rows {
            o.replace(id, None, Some(&(id.to_string(), *n)));
        }
        o
    }

    fn walk(o: &Ordered<(String, i32), i32>, range: (Bound<i32>, Bound<i32>), rev: bool) -> String {
        o.walk(&range, rev).collect::<Vec<_>>().join(",")
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
        let a1 = ("a".to_string(), 1);
        let a5 = ("a".to_string(), 5);
        o.replace("a", Some(&a1), Some(&a5));
        assert_eq!(walk(&o, (Unbounded, Unbounded), false), "b,a");
        o.replace("a", Some(&a5), None);
        assert_eq!(walk(&o, (Unbounded, Unbounded), false), "b");
        // A key that becomes None takes the row out; nothing empty lingers.
        let b2 = ("b".to_string(), 2);
        o.replace("b", Some(&b2), Some(&("b".to_string(), -1)));
        assert!(o.ids.is_empty());
    }
}
