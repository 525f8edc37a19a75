//! State that Envoy keeps per process and every worker's VM sees: the clock, shared data, shared
//! queues and the stats store. One `Shared` belongs to one [`crate::Host`]; nothing is global.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::abi::{MetricType, Status};

/// The virtual clock. Real time never leaks in: a test moves it with `advance_clock`.
///
/// Wall and monotonic time move together, so one counter of elapsed time holds both, and reading
/// the time (a request does several times) takes no lock.
#[derive(Debug)]
pub(crate) struct Clock {
    /// Wall-clock time at the start, in nanoseconds since the Unix epoch.
    start_wall_ns: u64,
    /// Monotonic time: nanoseconds since the host started.
    elapsed_ns: AtomicU64,
}

impl Clock {
    pub(crate) fn new(start: SystemTime) -> Clock {
        let start_wall_ns = start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Clock {
            start_wall_ns,
            elapsed_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn advance(&self, by: Duration) {
        let ns = by.as_nanos() as u64;
        let _ = self
            .elapsed_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                Some(e.saturating_add(ns))
            });
    }

    /// (wall, monotonic) time now, in nanoseconds.
    pub(crate) fn now(&self) -> (u64, u64) {
        let elapsed = self.elapsed_ns.load(Ordering::Relaxed);
        (self.start_wall_ns.saturating_add(elapsed), elapsed)
    }
}

/// The value of a custom metric, as the stats store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(u64),
    /// Every recorded sample, in order.
    Histogram(Vec<u64>),
}

impl MetricValue {
    /// A counter's or gauge's value; `None` for a histogram.
    pub fn value(&self) -> Option<u64> {
        match self {
            MetricValue::Counter(v) | MetricValue::Gauge(v) => Some(*v),
            MetricValue::Histogram(_) => None,
        }
    }

    /// A histogram's samples; empty for the other kinds.
    pub fn samples(&self) -> &[u64] {
        match self {
            MetricValue::Histogram(s) => s,
            _ => &[],
        }
    }
}

#[derive(Debug)]
pub(crate) struct Queue {
    pub items: VecDeque<Vec<u8>>,
    /// The worker and root context that registered the queue last: they get `on_queue_ready`.
    pub owner: (u32, u32),
}

/// A pending `proxy_on_queue_ready`, posted to a worker as Envoy posts to its dispatcher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueReady {
    pub worker: u32,
    pub context_id: u32,
    pub token: u32,
}

/// Key -> (value, CAS) within one vm_id.
type KeyValues = HashMap<Vec<u8>, (Vec<u8>, u32)>;

#[derive(Debug)]
pub(crate) struct Shared {
    /// vm_id -> key -> (value, cas).
    data: HashMap<String, KeyValues>,
    next_cas: u32,
    queues: HashMap<u32, Queue>,
    queue_tokens: HashMap<(String, Vec<u8>), u32>,
    next_queue_token: u32,
    pub queue_ready: Vec<QueueReady>,
    /// The stats store: (type, name) -> slot in `stats`. Workers defining the same name share
    /// the stat. A VM keeps the slot, so an update is an index, not a lookup by name.
    metrics: BTreeMap<(MetricType, String), usize>,
    stats: Vec<MetricValue>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            data: HashMap::new(),
            next_cas: 1,
            queues: HashMap::new(),
            queue_tokens: HashMap::new(),
            next_queue_token: 1,
            queue_ready: Vec::new(),
            metrics: BTreeMap::new(),
            stats: Vec::new(),
        }
    }

    fn take_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    /// `proxy_get_shared_data`: the value and its CAS token, or `NotFound`.
    pub(crate) fn get_data(&self, vm_id: &str, key: &[u8]) -> Result<(Vec<u8>, u32), Status> {
        self.data
            .get(vm_id)
            .and_then(|m| m.get(key))
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// `proxy_set_shared_data`: a non-zero `cas` must match the stored one; a missing key is
    /// created whatever `cas` says (as Envoy does).
    pub(crate) fn set_data(
        &mut self,
        vm_id: &str,
        key: &[u8],
        value: &[u8],
        cas: u32,
    ) -> Result<(), Status> {
        let exists = self
            .data
            .get(vm_id)
            .and_then(|m| m.get(key))
            .map(|(_, c)| *c);
        if let Some(current) = exists
            && cas != 0
            && cas != current
        {
            return Err(Status::CasMismatch);
        }
        let new_cas = self.take_cas();
        self.data
            .entry(vm_id.to_owned())
            .or_default()
            .insert(key.to_vec(), (value.to_vec(), new_cas));
        Ok(())
    }

    pub(crate) fn register_queue(&mut self, vm_id: &str, name: &[u8], owner: (u32, u32)) -> u32 {
        let key = (vm_id.to_owned(), name.to_vec());
        let token = match self.queue_tokens.get(&key) {
            Some(t) => *t,
            None => {
                let mut t = self.next_queue_token;
                while t == 0 || self.queues.contains_key(&t) {
                    t = t.wrapping_add(1);
                }
                self.next_queue_token = t.wrapping_add(1);
                self.queue_tokens.insert(key, t);
                t
            }
        };
        let q = self.queues.entry(token).or_insert_with(|| Queue {
            items: VecDeque::new(),
            owner,
        });
        q.owner = owner;
        token
    }

    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &[u8]) -> Option<u32> {
        self.queue_tokens
            .get(&(vm_id.to_owned(), name.to_vec()))
            .copied()
    }

    pub(crate) fn enqueue(&mut self, token: u32, value: &[u8]) -> Result<(), Status> {
        let q = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        q.items.push_back(value.to_vec());
        let (worker, context_id) = q.owner;
        self.queue_ready.push(QueueReady {
            worker,
            context_id,
            token,
        });
        Ok(())
    }

    pub(crate) fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let q = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        q.items.pop_front().ok_or(Status::Empty)
    }

    pub(crate) fn take_queue_ready(&mut self, worker: u32) -> Vec<QueueReady> {
        let (mine, rest) = self.queue_ready.drain(..).partition(|r| r.worker == worker);
        self.queue_ready = rest;
        mine
    }

    /// The stat `(ty, name)`, created at zero if new: its slot for [`Shared::stat_mut`].
    pub(crate) fn define_metric(&mut self, ty: MetricType, name: &str) -> usize {
        if let Some(&slot) = self.metrics.get(&(ty, name.to_owned())) {
            return slot;
        }
        let slot = self.stats.len();
        self.stats.push(match ty {
            MetricType::Counter => MetricValue::Counter(0),
            MetricType::Gauge => MetricValue::Gauge(0),
            MetricType::Histogram => MetricValue::Histogram(Vec::new()),
        });
        self.metrics.insert((ty, name.to_owned()), slot);
        slot
    }

    pub(crate) fn stat_mut(&mut self, slot: usize) -> &mut MetricValue {
        &mut self.stats[slot]
    }

    /// Every stat by name (a name defined with two types shows the later type's).
    pub(crate) fn metrics_by_name(&self) -> BTreeMap<String, MetricValue> {
        self.metrics
            .iter()
            .map(|((_, name), &slot)| (name.clone(), self.stats[slot].clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics() {
        let mut s = Shared::new();
        assert_eq!(s.get_data("vm", b"k"), Err(Status::NotFound));
        // A missing key is created even with a made-up CAS.
        s.set_data("vm", b"k", b"1", 77).unwrap();
        let (v, cas) = s.get_data("vm", b"k").unwrap();
        assert_eq!(v, b"1");
        assert_eq!(
            s.set_data("vm", b"k", b"2", cas + 1),
            Err(Status::CasMismatch)
        );
        s.set_data("vm", b"k", b"2", cas).unwrap();
        assert_eq!(
            s.set_data("vm", b"k", b"3", cas),
            Err(Status::CasMismatch),
            "stale CAS"
        );
        s.set_data("vm", b"k", b"4", 0).unwrap();
        assert_eq!(s.get_data("vm", b"k").unwrap().0, b"4");
        assert_eq!(
            s.get_data("other-vm", b"k"),
            Err(Status::NotFound),
            "scoped per vm_id"
        );
    }

    #[test]
    fn queues() {
        let mut s = Shared::new();
        let t = s.register_queue("vm", b"q", (0, 1));
        assert_ne!(t, 0);
        assert_eq!(
            s.register_queue("vm", b"q", (1, 1)),
            t,
            "re-registering keeps the token"
        );
        assert_eq!(s.resolve_queue("vm", b"q"), Some(t));
        assert_eq!(s.resolve_queue("vm", b"nope"), None);
        assert_eq!(s.dequeue(t), Err(Status::Empty));
        assert_eq!(s.dequeue(t + 100), Err(Status::NotFound));
        assert_eq!(s.enqueue(t + 100, b"x"), Err(Status::NotFound));
        s.enqueue(t, b"a").unwrap();
        s.enqueue(t, b"b").unwrap();
        assert_eq!(s.take_queue_ready(0).len(), 0);
        assert_eq!(
            s.take_queue_ready(1).len(),
            2,
            "the last registrant is notified"
        );
        assert_eq!(s.dequeue(t).unwrap(), b"a");
        assert_eq!(s.dequeue(t).unwrap(), b"b");
    }
}
