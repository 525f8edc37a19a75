//! State shared by every worker of a proxy: the merged window and the rollout state, as bytes
//! under a key. Each backend implements [`SharedData`] over what its proxy offers.

use std::collections::HashMap;

/// A read-modify-write step: the current bytes (if any) to the new ones, or `None` to keep them.
pub type Rewrite<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

/// A process-wide key-value store with atomic read-modify-write.
pub trait SharedData {
    /// Replace the bytes under `key` with `f(current)` atomically: when another worker wrote in
    /// between, call `f` again on the new bytes. `f` returning `None` leaves them as they are.
    /// Returns whether `f`'s last answer was stored (false too when it was `None`, or when the
    /// store gave up).
    fn update(&mut self, key: &str, f: &mut Rewrite<'_>) -> bool;

    fn read(&mut self, key: &str) -> Option<Vec<u8>>;
}

/// Shared data in one process without concurrency: the simulator's workers and tests.
#[derive(Debug, Default, Clone)]
pub struct InMemory(pub HashMap<String, Vec<u8>>);

impl SharedData for InMemory {
    fn update(&mut self, key: &str, f: &mut Rewrite<'_>) -> bool {
        match f(self.0.get(key).map(Vec::as_slice)) {
            Some(bytes) => {
                self.0.insert(key.to_owned(), bytes);
                true
            }
            None => false,
        }
    }

    fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
}
