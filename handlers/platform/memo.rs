//! Values derived from cached `Arc`s, kept as long as the `Arc` is the same one.
//!
//! Services already cache hot values in `Arc`s (today's quiz, a board page); rendering the same
//! value to JSON on every request was the largest piece of handler work left on those reads
//! (profiled with `perf`, see BENCHMARKS.md). A [`Derived`] remembers, per key, the `Arc` it
//! derived from and the result: while the service hands out the same `Arc`, the result is
//! reused; a new `Arc` (a refreshed cache entry, a new generation) derives again. Identity, not
//! equality, decides, so nothing stale can be served: the result always belongs to the very
//! value the service returned for this request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// At most this many keys are kept; one more clears the map (keys are days, pages: few).
const MAX_KEYS: usize = 256;

/// Per key: the value last derived from (kept alive, so its address cannot be reused) and the
/// result.
pub struct Derived<K, T, D> {
    slots: Mutex<HashMap<K, (Arc<T>, D)>>,
}

impl<K: Hash + Eq, T, D> Default for Derived<K, T, D> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, T, D: Clone> Derived<K, T, D> {
    /// What `derive` makes of `value` under `key`: reused if `value` is the `Arc` derived from
    /// last time, otherwise derived (outside the lock) and remembered.
    pub fn get_or_derive(&self, key: K, value: &Arc<T>, derive: impl FnOnce(&T) -> D) -> D {
        if let Some((kept, result)) = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && Arc::ptr_eq(kept, value)
        {
            return result.clone();
        }
        let result = derive(value);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
            slots.clear();
        }
        slots.insert(key, (value.clone(), result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::cell::Cell;

    #[test]
    fn the_same_arc_reuses_its_bytes_and_a_new_arc_renders_again() {
        let cache: Derived<&str, String, Bytes> = Derived::default();
        let renders = Cell::new(0);
        let render = |s: &String| {
            renders.set(renders.get() + 1);
            Bytes::from(s.clone())
        };
        let a = Arc::new("a".to_owned());
        assert_eq!(cache.get_or_derive("k", &a, render), "a");
        assert_eq!(cache.get_or_derive("k", &a, render), "a");
        assert_eq!(renders.get(), 1, "same Arc: rendered once");
        // An equal value in a new Arc (a refreshed cache entry) is rendered again.
        let a2 = Arc::new("a".to_owned());
        cache.get_or_derive("k", &a2, render);
        assert_eq!(renders.get(), 2);
        let b = Arc::new("b".to_owned());
        assert_eq!(cache.get_or_derive("k", &b, render), "b");
        assert_eq!(cache.get_or_derive("other", &a, render), "a");
        assert_eq!(renders.get(), 4, "keys are independent");
    }

    #[test]
    fn the_map_is_bounded() {
        let cache: Derived<usize, u8, ()> = Derived::default();
        let v = Arc::new(1u8);
        for k in 0..(MAX_KEYS * 3) {
            cache.get_or_derive(k, &v, |_| ());
        }
        assert!(cache.slots.lock().unwrap().len() <= MAX_KEYS);
    }
}
