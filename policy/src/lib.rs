//! Serin's engine: the compiled [`Plan`], the pure [`Plan::decide`] and the [`Router`] that makes
//! the same decision on the request path.
//!
//! This crate is all that the proxy-wasm filter links. It does no I/O, reads no TOML and
//! never panics on request input, so that it builds for wasm32 and runs at line rate.
//! The plan is the only contract between the compiler and the filter (see ARCHITECTURE.md).
#![forbid(unsafe_code)]

mod bucket;
pub mod catalogue;
mod cidr;
mod decide;
mod decimal;
mod engine;
pub mod fleet;
pub mod guard;
mod json;
mod lane;
mod outcome;
mod plan;
mod request;
mod rollout;
mod router;
pub mod sim;

pub use bucket::{Bucketed, murmur3_x86_32};
pub use cidr::Cidr;
pub use decide::{Decision, Reason};
pub use engine::{
    Book, Edits, Engine, Exchange, FLEET_GUARD, FleetAnswer, InMemory, RampAt, Rewrite, Route,
    Sample, SharedData, Update, ramp_at,
};
pub use outcome::{MAX_OUTCOME_BODY, Reading};
pub use plan::*;
pub use request::{HeaderList, Request, cookie_value, query_value};
pub use rollout::*;
pub use router::Router;
