//! Traffic from several client threads, each user id new, counting what each arm served.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::Stack;

/// Counters shared by the client threads; read them while the load runs.
#[derive(Default)]
pub struct Load {
    pub stop: AtomicBool,
    pub sent: AtomicU64,
    pub canary: AtomicU64,
    /// 5xx answers and failed requests.
    pub errors: AtomicU64,
    pub canary_errors: AtomicU64,
}

impl Load {
    /// Send until [`Load::stop`] is set. One user in ten is in the `65+` age band, the segment
    /// the fraud example guards.
    pub fn run(&self, stack: &Stack, thread: u64) {
        self.run_paced(stack, thread, std::time::Duration::ZERO);
    }

    /// [`Load::run`] with a pause after each request: a trickle of traffic.
    pub fn run_paced(&self, stack: &Stack, thread: u64, pause: std::time::Duration) {
        let mut i = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            i += 1;
            let user = format!("t{thread}-u{i}");
            let band = if i.is_multiple_of(10) { "65+" } else { "35-64" };
            let reply = stack.send(
                "/v1/models/fraud:predict",
                &[("x-user-id", &user), ("x-age-band", band)],
            );
            self.sent.fetch_add(1, Ordering::Relaxed);
            let (canary, error) = match reply {
                Ok(r) => (r.served_by.as_deref() == Some("canary"), r.status >= 500),
                Err(_) => (false, true),
            };
            if canary {
                self.canary.fetch_add(1, Ordering::Relaxed);
                self.canary_errors
                    .fetch_add(u64::from(error), Ordering::Relaxed);
            }
            self.errors.fetch_add(u64::from(error), Ordering::Relaxed);
        }
    }

    /// Run `threads` clients while `watch` runs on this thread; stop them when it returns.
    pub fn during<T>(&self, stack: &Stack, threads: u64, watch: impl FnOnce() -> T) -> T {
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || self.run(stack, t));
            }
            let _stop = StopOnDrop(vec![self]);
            watch()
        })
    }

    /// A snapshot of the counters: (sent, canary, errors, canary errors).
    pub fn snapshot(&self) -> [u64; 4] {
        [&self.sent, &self.canary, &self.errors, &self.canary_errors]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Uneven traffic over several proxies while `watch` runs: four full-speed clients on the
/// first, twenty requests a second on each other one (too little to judge alone). Stops them
/// when `watch` returns.
pub fn uneven<T>(stacks: &[Stack], watch: impl FnOnce() -> T) -> T {
    let (busy, light) = (Load::default(), Load::default());
    std::thread::scope(|scope| {
        if let Some(first) = stacks.first() {
            for t in 0..4 {
                let busy = &busy;
                scope.spawn(move || busy.run(first, t));
            }
        }
        for (i, stack) in stacks.iter().enumerate().skip(1) {
            let light = &light;
            scope.spawn(move || {
                light.run_paced(stack, 100 + i as u64, std::time::Duration::from_millis(50))
            });
        }
        let _stop = StopOnDrop(vec![&busy, &light]);
        watch()
    })
}

/// Stops these loads when dropped: when the watching code returns, and when it panics (a
/// failed assertion), since a thread scope would otherwise wait for the clients forever.
pub struct StopOnDrop<'a>(pub Vec<&'a Load>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for load in &self.0 {
            load.stop.store(true, Ordering::Relaxed);
        }
    }
}
