//! The response side of one request: what its stream keeps between callbacks, and how the
//! engine measures the response (status class, latency, local replies, resets, outcomes).

use crate::guard::drift::Source;
use crate::guard::{Class, Role};
use crate::outcome::Reading;
use crate::plan::ArmId;
use crate::rollout::OutcomeSource;
use crate::{Engine, MAX_OUTCOME_BODY};

/// One request's life after routing; its stream holds it and hands it back on every callback.
#[derive(Debug)]
pub struct Exchange {
    arm: ArmId,
    role: Option<Role>,
    started_ms: u64,
    /// The request's value index in each of the plan's segments.
    segment_values: Vec<u16>,
    /// A sticky-key cookie minted for a client that had no key, to set on the response.
    set_cookie: Option<String>,
    /// When the response headers came, once they have.
    responded_ms: Option<u64>,
    /// A response whose headers arrived but whose end has not: it enters the rollout window only
    /// once it completes, so that an upstream reset mid-body counts as a reset, not as the status
    /// it began with.
    unfinished: Option<Unfinished>,
    /// The response body so far, kept (up to a bound) only when an outcome is read from it.
    body: Vec<u8>,
    body_too_long: bool,
}

#[derive(Debug)]
struct Unfinished {
    role: Role,
    at_ms: u64,
    status: u16,
    latency_us: u64,
    local: bool,
}

/// A value for a histogram series of the catalogue, to record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub series: usize,
    pub value: u64,
}

impl Exchange {
    pub(super) fn new(
        arm: ArmId,
        role: Option<Role>,
        started_ms: u64,
        segment_values: Vec<u16>,
        set_cookie: Option<String>,
    ) -> Exchange {
        Exchange {
            arm,
            role,
            started_ms,
            segment_values,
            set_cookie,
            responded_ms: None,
            unfinished: None,
            body: Vec::new(),
            body_too_long: false,
        }
    }

    /// The arm the request was routed to.
    pub fn arm(&self) -> ArmId {
        self.arm
    }

    /// The `set-cookie` value to add to the response, once.
    pub fn take_set_cookie(&mut self) -> Option<String> {
        self.set_cookie.take()
    }
}

impl Engine {
    /// The response headers came. `local_reply` tells whether the proxy made the response
    /// itself (no upstream answered); it is asked only of a 5xx, since in most proxies it costs
    /// a host call. `header` reads a response header, for outcomes read from one. Returns the
    /// latency sample to record in the catalogue's histogram.
    pub fn response_headers(
        &mut self,
        ex: &mut Exchange,
        now_ms: u64,
        status: u16,
        end_of_stream: bool,
        local_reply: impl FnOnce() -> bool,
        mut header: impl FnMut(&str) -> Option<Vec<u8>>,
    ) -> Sample {
        ex.responded_ms = Some(now_ms);
        let latency_ms = now_ms.saturating_sub(ex.started_ms);
        let class = Class::of(status);
        super::bump(&mut self.tallies, self.catalogue.responses(ex.arm, class));
        if let Some(role) = ex.role {
            // Whether the proxy made a 5xx itself tells an arm that is down from one that
            // answers errors.
            let local = status >= 500 && local_reply();
            ex.unfinished = Some(Unfinished {
                role,
                at_ms: now_ms,
                status,
                latency_us: latency_ms * 1000,
                local,
            });
            if end_of_stream {
                self.finish_response(ex);
            }
        }
        for i in 0..self.plan.outcomes.len() {
            let outcome = &self.plan.outcomes[i];
            if let OutcomeSource::Header { name } = &outcome.source {
                let value = header(name);
                let reading = outcome.read_header(value.as_deref(), self.numeric_outcomes[i]);
                if let Some(reading) = reading {
                    self.record_reading(ex, i, reading, now_ms);
                }
            }
        }
        Sample {
            series: self.catalogue.duration(ex.arm),
            value: latency_ms,
        }
    }

    /// Whether the backend should copy response body chunks into [`Engine::response_body`].
    pub fn wants_body(&self, ex: &Exchange) -> bool {
        self.reads_bodies && !ex.body_too_long
    }

    /// A chunk of `size` bytes of the response body arrived; `read` copies it (called only when
    /// the body is wanted and within bound). The client is never held back: a body over the
    /// bound is simply not parsed. `now_ms` reads the clock, called only when an outcome is read
    /// before the response headers came (which a proxy does not do): a body's outcome counts
    /// when its response began, and a clock read is a host call in most proxies.
    pub fn response_body(
        &mut self,
        ex: &mut Exchange,
        now_ms: impl FnOnce() -> u64,
        size: usize,
        end_of_stream: bool,
        read: impl FnOnce() -> Option<Vec<u8>>,
    ) {
        if end_of_stream {
            self.finish_response(ex);
        }
        if !self.reads_bodies {
            return;
        }
        if ex.body.len() + size > MAX_OUTCOME_BODY {
            ex.body_too_long = true;
            ex.body = Vec::new();
        } else if !ex.body_too_long
            && let Some(chunk) = read()
        {
            ex.body.extend_from_slice(&chunk);
        }
        if end_of_stream && !ex.body_too_long {
            let body = std::mem::take(&mut ex.body);
            let now_ms = ex.responded_ms.unwrap_or_else(now_ms);
            for i in 0..self.plan.outcomes.len() {
                let numeric = self.numeric_outcomes[i];
                if let Some(reading) = self.plan.outcomes[i].read_json_body(&body, numeric) {
                    self.record_reading(ex, i, reading, now_ms);
                }
            }
        }
    }

    /// Trailers came: they end a response.
    pub fn response_trailers(&mut self, ex: &mut Exchange) {
        self.finish_response(ex);
    }

    /// The stream is over. One that ended before its response did was reset (by the client,
    /// the upstream or a timeout): either no response headers came, or the body stopped short.
    /// `now_ms` reads the clock, called only to date a reset in the window.
    pub fn stream_done(&mut self, mut ex: Exchange, now_ms: impl FnOnce() -> u64) {
        let cut_short = ex.unfinished.take();
        if ex.responded_ms.is_none() || cut_short.is_some() {
            super::bump(&mut self.tallies, self.catalogue.resets(ex.arm));
            if let Some(role) = ex.role {
                self.window.record_reset(now_ms(), role);
            }
        }
    }

    /// Record a model outcome of `ex`'s response directly (a backend or a simulator that
    /// reads outcomes its own way).
    pub fn record_outcome(&mut self, ex: &Exchange, outcome: usize, positive: bool, now_ms: u64) {
        let column = ex.segment_values.first().copied().unwrap_or(0);
        for p in [false, true] {
            if !p || positive {
                let series = self.catalogue.outcomes(ex.arm, outcome, column, p);
                super::bump(&mut self.tallies, series);
            }
        }
        if let Some(role) = ex.role {
            let value_of = |segment: u8| {
                let values = &ex.segment_values;
                values
                    .get(usize::from(segment))
                    .copied()
                    .unwrap_or(u16::MAX)
            };
            // The outcome belongs to the response: it counts when the response began.
            let at = ex.responded_ms.unwrap_or(now_ms);
            let cells = self.rollout.layout.cells_for(outcome as u8, value_of);
            for cell in cells {
                self.window.record_outcome(at, role, cell, positive);
            }
        }
    }

    /// What a response said of outcome `outcome`: its binary outcome and its value.
    fn record_reading(&mut self, ex: &Exchange, outcome: usize, reading: Reading, now_ms: u64) {
        if let Some(positive) = reading.positive {
            self.record_outcome(ex, outcome, positive, now_ms);
        }
        if let Some(value) = reading.number {
            self.record_value(ex, outcome, value, now_ms);
        }
    }

    /// Record a numeric outcome's value of `ex`'s response directly (a backend or a simulator
    /// that reads outcomes its own way): every distribution guard over that outcome buckets
    /// it, in the metrics and, for the arms a rollout compares, in the window.
    pub fn record_value(&mut self, ex: &Exchange, outcome: usize, value: f64, now_ms: u64) {
        let at = ex.responded_ms.unwrap_or(now_ms);
        for d in &self.rollout.distributions {
            if !matches!(d.source, Source::Outcome { outcome: o, .. } if usize::from(o) == outcome)
            {
                continue;
            }
            let Some(bucket) = d.bucket_of_value(value) else {
                continue;
            };
            super::bump(
                &mut self.tallies,
                self.catalogue.distribution(ex.arm, d.guard, bucket),
            );
            if let (Some(role), Some(first)) = (ex.role, d.first_cell) {
                self.window
                    .record_bucket(at, role, first, d.buckets, bucket);
            }
        }
    }

    /// The response reached its end: it enters the rollout window.
    fn finish_response(&mut self, ex: &mut Exchange) {
        if let Some(r) = ex.unfinished.take() {
            self.window
                .record_response(r.at_ms, r.role, r.status, r.latency_us, r.local);
        }
    }
}
