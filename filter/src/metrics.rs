//! The filter's Envoy metrics. Envoy has no label API: labels are embedded in the metric name
//! (`serin_requests_total_arm=.=canary;.;`) and the bootstrap's `stats_tags` turn them into
//! Prometheus labels (see envoy-config/envoy.yaml). Counters are tallied in the worker and
//! flushed on each tick, so a request costs no metric host call but the latency histogram's.

use std::cell::RefCell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use serin_policy::guard::{Class, Phase};
use serin_policy::{ArmId, Plan};

const CLASSES: [(Class, &str); 4] = [
    (Class::Success, "2xx"),
    (Class::ClientError, "4xx"),
    (Class::ServerError, "5xx"),
    (Class::Other, "other"),
];

pub struct Metrics {
    /// Per arm.
    requests: Vec<u32>,
    /// Per arm × class.
    responses: Vec<u32>,
    resets: Vec<u32>,
    latency_ms: Vec<u32>,
    /// Per arm × outcome × segment value (the first segment's values plus "other", or one
    /// column when the plan has no segment), positive and all.
    outcomes_positive: Vec<u32>,
    outcomes_total: Vec<u32>,
    segment_columns: usize,
    outcomes: usize,
    state: u32,
    canary_weight: u32,
    tallies: RefCell<Vec<u64>>,
    /// Tally slots: requests, responses, resets, outcomes positive, outcomes total.
    offsets: [usize; 5],
}

fn tag(label: &str, value: &str) -> String {
    format!("_{label}=.={value};.;")
}

fn define(kind: MetricType, name: &str) -> u32 {
    hostcalls::define_metric(kind, name).unwrap_or_else(|e| {
        log::warn!("serin: cannot define metric `{name}`: {e:?}");
        u32::MAX
    })
}

impl Metrics {
    pub fn define(plan: &Plan) -> Metrics {
        let arms: Vec<String> = plan.arms.iter().map(|a| tag("arm", &a.name)).collect();
        let counter = |base: &str, suffix: &str| -> Vec<u32> {
            arms.iter()
                .map(|arm| define(MetricType::Counter, &format!("{base}{arm}{suffix}")))
                .collect()
        };
        let requests = counter("serin_requests_total", "");
        let resets = counter("serin_resets_total", "");
        let responses = CLASSES
            .iter()
            .flat_map(|(_, c)| counter("serin_responses_total", &tag("class", c)))
            .collect();
        let latency_ms = arms
            .iter()
            .map(|arm| {
                define(
                    MetricType::Histogram,
                    &format!("serin_request_duration_milliseconds{arm}"),
                )
            })
            .collect();
        let segment_values: Vec<String> = match plan.segments.first() {
            Some(s) => s
                .values
                .iter()
                .cloned()
                .chain(["other".to_string()])
                .collect(),
            None => vec![String::new()],
        };
        let (mut outcomes_positive, mut outcomes_total) = (Vec::new(), Vec::new());
        for arm in &arms {
            for outcome in &plan.outcomes {
                for value in &segment_values {
                    let segment = match plan.segments.first() {
                        Some(s) => {
                            format!("{}{}", tag("segment", &s.name), tag("segment_value", value))
                        }
                        None => String::new(),
                    };
                    let labels = format!("{arm}{}{segment}", tag("outcome", &outcome.name));
                    outcomes_positive.push(define(
                        MetricType::Counter,
                        &format!("serin_outcomes_positive_total{labels}"),
                    ));
                    outcomes_total.push(define(
                        MetricType::Counter,
                        &format!("serin_outcomes_total{labels}"),
                    ));
                }
            }
        }
        let n = [
            arms.len(),
            arms.len() * CLASSES.len(),
            arms.len(),
            outcomes_positive.len(),
            outcomes_total.len(),
        ];
        let offsets = [
            0,
            n[0],
            n[0] + n[1],
            n[0] + n[1] + n[2],
            n[0] + n[1] + n[2] + n[3],
        ];
        Metrics {
            requests,
            responses,
            resets,
            latency_ms,
            segment_columns: segment_values.len(),
            outcomes: plan.outcomes.len(),
            outcomes_positive,
            outcomes_total,
            state: define(MetricType::Gauge, "serin_rollout_state"),
            canary_weight: define(MetricType::Gauge, "serin_canary_weight_bp"),
            tallies: RefCell::new(vec![0; n.iter().sum()]),
            offsets,
        }
    }

    fn bump(&self, slot: usize) {
        if let Some(t) = self.tallies.borrow_mut().get_mut(slot) {
            *t += 1;
        }
    }

    pub fn request(&self, arm: ArmId) {
        self.bump(self.offsets[0] + usize::from(arm));
    }

    pub fn response(&self, arm: ArmId, status: u16, latency_ms: u64) {
        let class = Class::of(status) as usize;
        self.bump(self.offsets[1] + class * self.requests.len() + usize::from(arm));
        if let Some(&id) = self.latency_ms.get(usize::from(arm)) {
            let _ = hostcalls::record_metric(id, latency_ms);
        }
    }

    pub fn reset(&self, arm: ArmId) {
        self.bump(self.offsets[2] + usize::from(arm));
    }

    /// `column`: the request's value index in the plan's first segment.
    pub fn outcome(&self, arm: ArmId, outcome: usize, column: usize, positive: bool) {
        let cell = (usize::from(arm) * self.outcomes + outcome) * self.segment_columns
            + column.min(self.segment_columns - 1);
        if positive {
            self.bump(self.offsets[3] + cell);
        }
        self.bump(self.offsets[4] + cell);
    }

    /// Add the tallies to Envoy's counters and set the rollout gauges.
    pub fn flush(&self, phase: Phase, canary_weight: Option<u32>) {
        let ids = self
            .requests
            .iter()
            .chain(&self.responses)
            .chain(&self.resets)
            .chain(&self.outcomes_positive)
            .chain(&self.outcomes_total);
        for (id, tally) in ids.zip(self.tallies.borrow_mut().iter_mut()) {
            if *tally > 0 {
                let _ = hostcalls::increment_metric(*id, *tally as i64);
                *tally = 0;
            }
        }
        let _ = hostcalls::record_metric(self.state, u64::from(phase.code()));
        if let Some(w) = canary_weight {
            let _ = hostcalls::record_metric(self.canary_weight, u64::from(w));
        }
    }
}
