//! A parallel map over a fixed number of worker threads (configurations are independent
//! simulations; the planner and the calibration spread them over the cores).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Worker threads to use: `requested`, or the machine's available parallelism.
pub fn workers(requested: Option<usize>) -> usize {
    requested
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` applied to every item on `threads` threads; results in input order. `on_done` is
/// called (from the workers) after each item, for progress reporting.
pub fn map<T, R, F, P>(items: &[T], threads: usize, f: F, on_done: P) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    P: Fn() + Sync,
{
    let threads = threads.max(1).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(r);
                }
                on_done();
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_counts() {
        let items: Vec<u64> = (0..100).collect();
        let done = AtomicUsize::new(0);
        let out = map(
            &items,
            3,
            |x| x * x,
            || {
                done.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(done.load(Ordering::Relaxed), 100);
        assert!(map(&Vec::<u8>::new(), 2, |x| *x, || {}).is_empty());
        assert!(workers(None) >= 1);
        assert_eq!(workers(Some(3)), 3);
    }
}
