//! What a failure stops. `doctor`'s checks and `init`'s steps each name what they need; when one
//! fails, everything that needs it, directly or not, is not run (or not reported), and names the
//! failure at the root rather than the link next to it.
//!
//! It lives here, apart from both, because it knows nothing of either: the doctor applies it after
//! every check has run (they all start at once), `init` before each step (they run one by one).

use std::collections::BTreeMap;

/// How one item came out, as what needs it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State<T> {
    /// Passed, or never stood in the way (skipped on purpose, not run yet).
    Passed,
    Failed,
    /// Stopped by the failure of this root.
    Blocked(T),
}

/// The failure that stops an item needing `needs`: the first of them that failed, or the root that
/// stopped it.
pub fn blocker<T: Copy>(needs: &[T], state: impl Fn(T) -> State<T>) -> Option<T> {
    needs.iter().find_map(|&dep| match state(dep) {
        State::Passed => None,
        State::Failed => Some(dep),
        State::Blocked(root) => Some(root),
    })
}

/// Every item of `order` that a failure stops, with the failure at its root. `order` lists each
/// item after what it needs; an item that is itself stopped counts as stopped, not as failed,
/// whatever it found.
pub fn blocked<'n, T: Copy + Ord + 'n>(
    order: impl IntoIterator<Item = T>,
    needs: impl Fn(T) -> &'n [T],
    failed: impl Fn(T) -> bool,
) -> BTreeMap<T, T> {
    let mut blocked = BTreeMap::new();
    for item in order {
        let state = |dep| match blocked.get(&dep) {
            Some(root) => State::Blocked(*root),
            None if failed(dep) => State::Failed,
            None => State::Passed,
        };
        if let Some(root) = blocker(needs(item), state) {
            blocked.insert(item, root);
        }
    }
    blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    // a ← b ← c, and d needs both a and c.
    fn needs(item: char) -> &'static [char] {
        match item {
            'b' => &['a'],
            'c' => &['b'],
            'd' => &['a', 'c'],
            _ => &[],
        }
    }

    #[test]
    fn a_failure_stops_everything_downstream_naming_itself() {
        let blocked = blocked(['a', 'b', 'c', 'd'], needs, |item| item == 'a');
        assert_eq!(blocked, BTreeMap::from([('b', 'a'), ('c', 'a'), ('d', 'a')]));
    }

    #[test]
    fn a_stopped_item_passes_on_the_root_not_its_own_finding() {
        // b failed too, but a failed first: c and d name a.
        let blocked = blocked(['a', 'b', 'c', 'd'], needs, |item| item == 'a' || item == 'b');
        assert_eq!(blocked.get(&'c'), Some(&'a'));
        // With a fine, b's failure is the root.
        let blocked = super::blocked(['a', 'b', 'c', 'd'], needs, |item| item == 'b');
        assert_eq!(blocked, BTreeMap::from([('c', 'b'), ('d', 'b')]));
    }

    #[test]
    fn nothing_failed_nothing_stopped() {
        assert!(blocked(['a', 'b', 'c', 'd'], needs, |_| false).is_empty());
    }

    #[test]
    fn the_first_dependency_that_stands_in_the_way_is_named() {
        let state = |dep| match dep {
            'a' => State::Passed,
            'b' => State::Blocked('x'),
            _ => State::Failed,
        };
        assert_eq!(blocker(&['a', 'b', 'c'], state), Some('x'));
        assert_eq!(blocker(&['a', 'c', 'b'], state), Some('c'));
        assert_eq!(blocker(&['a'], state), None);
        assert_eq!(blocker::<char>(&[], state), None);
    }
}
