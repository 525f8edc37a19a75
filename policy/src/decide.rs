//! The per-request decision. Pure, allocation-free and panic-free for every input: the plan's
//! indices were checked by [`Plan::check`] when it was loaded.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use crate::bucket::Bucketed;
use crate::cidr::Cidr;
use crate::plan::{
    Action, ArmId, Fallback, KeySource, Matcher, Override, OverrideToken, Plan, SERIN_SCALE,
    Shadow, Split, Test,
};
use crate::request::Request;

/// Why an arm was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A tester forced the arm with a valid override.
    Override,
    /// Rule `n` (index into [`Plan::rules`]) matched.
    Rule(u16),
    /// No rule matched; the plan's default action applied.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub arm: ArmId,
    pub reason: Reason,
    /// The split that bucketed the request, if one did or should have.
    pub split: Option<u16>,
    /// Index into the split's key chain of the source that supplied the key.
    pub key_source: Option<u8>,
    pub hash: Option<u32>,
    pub bucket: Option<u32>,
    /// No key was present and the split mints one: the caller should generate a random key,
    /// bucket it with [`Plan::assign`], and set the split's sticky cookie.
    pub mint_key: bool,
    /// A stable-arm request chosen for mirroring to the canary ([`Plan::shadow`]).
    pub shadow: bool,
}

impl Plan {
    /// Choose the arm for a request. Reads each name by asking the request; [`crate::Router`]
    /// makes the same decision from one pass over the request, for the request path.
    pub fn decide(&self, req: &impl Request) -> Decision {
        if let Some(arm) = self.override_.as_ref().and_then(|o| {
            self.forced_arm(
                o,
                req.header(&o.header),
                |token| req.header(&token.header),
                || req.source_ip(),
            )
        }) {
            return Decision::fixed(arm, Reason::Override);
        }
        let (action, reason) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.all.iter().all(|m| m.holds(req)))
            .map_or((self.default, Reason::Default), |(i, rule)| {
                (rule.action, Reason::Rule(i as u16))
            });
        self.act(action, reason, |split| {
            self.splits.get(usize::from(split))?.key_of(req)
        })
    }

    /// Bucket a key with split `split` (for a minted key, or for `serin explain`).
    pub fn assign(&self, split: u16, key: &[u8]) -> Option<Bucketed> {
        self.splits.get(usize::from(split)).map(|s| s.assign(key))
    }

    /// Carry out the chosen action; `key_of` finds the bucketing key of a split's key chain.
    #[inline]
    pub(crate) fn act<'r>(
        &self,
        action: Action,
        reason: Reason,
        key_of: impl FnOnce(u16) -> Option<(u8, &'r [u8])>,
    ) -> Decision {
        let (mut decision, key) = match action {
            Action::Pin { arm } => (Decision::fixed(arm, reason), None),
            Action::Split { split } => self.split_request(split, reason, key_of(split)),
        };
        if let (Some(shadow), Some(key)) = (&self.shadow, key) {
            // Mirroring is sticky per key too, and only copies stable traffic.
            decision.shadow = decision.arm == self.stable && shadow.mirrors(key);
        }
        decision
    }

    #[inline]
    fn split_request<'r>(
        &self,
        index: u16,
        reason: Reason,
        key: Option<(u8, &'r [u8])>,
    ) -> (Decision, Option<&'r [u8]>) {
        let split: &Split = &self.splits[usize::from(index)];
        let mut decision = Decision {
            split: Some(index),
            ..Decision::fixed(self.stable, reason)
        };
        match key {
            Some((source, key)) => {
                let b = split.assign(key);
                decision.arm = b.arm;
                decision.key_source = Some(source);
                decision.hash = Some(b.hash);
                decision.bucket = Some(b.bucket);
            }
            None => match split.fallback {
                Fallback::Arm { arm } => decision.arm = arm,
                Fallback::RandomSticky { .. } => decision.mint_key = true,
            },
        }
        (decision, key.map(|(_, k)| k))
    }

    /// The arm a request forces with the override header's value `wanted`, if it proves itself
    /// with the token (read only when the plan has one) or its source address.
    pub(crate) fn forced_arm<'r>(
        &self,
        o: &Override,
        wanted: Option<&[u8]>,
        token: impl FnOnce(&OverrideToken) -> Option<&'r [u8]>,
        source_ip: impl FnOnce() -> Option<IpAddr>,
    ) -> Option<ArmId> {
        let wanted = wanted?;
        let arm = self.arms.iter().position(|a| a.name.as_bytes() == wanted)? as ArmId;
        let by_token = o.token.as_ref().is_some_and(|t| {
            token(t).is_some_and(|given| bool::from(given.ct_eq(t.value.as_bytes())))
        });
        let by_source =
            !o.trusted_sources.is_empty() && in_networks(&o.trusted_sources, source_ip());
        (by_token || by_source).then_some(arm)
    }
}

impl Decision {
    pub(crate) fn fixed(arm: ArmId, reason: Reason) -> Self {
        Decision {
            arm,
            reason,
            split: None,
            key_source: None,
            hash: None,
            bucket: None,
            mint_key: false,
            shadow: false,
        }
    }
}

impl Split {
    /// The first key source present with a non-empty value.
    pub fn key_of<'r>(&self, req: &'r impl Request) -> Option<(u8, &'r [u8])> {
        first_key(self.key.iter().map(|source| source.read(req)))
    }
}

/// The first present, non-empty value of a key chain, with its index in the chain.
pub(crate) fn first_key<'r>(
    chain: impl Iterator<Item = Option<&'r [u8]>>,
) -> Option<(u8, &'r [u8])> {
    chain
        .enumerate()
        .find_map(|(i, value)| value.filter(|v| !v.is_empty()).map(|v| (i as u8, v)))
}

impl KeySource {
    /// This source's value in a request.
    pub fn read<'r>(&self, req: &'r impl Request) -> Option<&'r [u8]> {
        match self {
            KeySource::Header(name) => req.header(name),
            KeySource::Cookie(name) => req.cookie(name),
            KeySource::Query(name) => req.query(name),
        }
    }
}

impl Matcher {
    pub fn holds(&self, req: &impl Request) -> bool {
        match self {
            Matcher::Header { name, test } => test.holds(req.header(name)),
            Matcher::Cookie { name, test } => test.holds(req.cookie(name)),
            Matcher::Query { name, test } => test.holds(req.query(name)),
            Matcher::PathPrefix { any_of } => has_path_prefix(any_of, req.path()),
            Matcher::Method { any_of } => has_method(any_of, req.method()),
            Matcher::SourceIp { any_of } => in_networks(any_of, req.source_ip()),
        }
    }
}

#[inline]
pub(crate) fn has_path_prefix(any_of: &[String], path: &[u8]) -> bool {
    any_of.iter().any(|p| path.starts_with(p.as_bytes()))
}

#[inline]
pub(crate) fn has_method(any_of: &[String], method: &[u8]) -> bool {
    any_of.iter().any(|m| m.as_bytes() == method)
}

#[inline]
pub(crate) fn in_networks(any_of: &[Cidr], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| any_of.iter().any(|n| n.contains(ip)))
}

impl Test {
    #[inline]
    pub fn holds(&self, value: Option<&[u8]>) -> bool {
        let sorted_contains = |list: &[String], v: &[u8]| {
            list.binary_search_by(|item| item.as_bytes().cmp(v)).is_ok()
        };
        match (self, value) {
            (Test::Absent, v) => v.is_none(),
            (Test::NoneOf(list), v) => v.is_none_or(|v| !sorted_contains(list, v)),
            (_, None) => false,
            (Test::Present, Some(_)) => true,
            (Test::Exact(s), Some(v)) => v == s.as_bytes(),
            (Test::Prefix(s), Some(v)) => v.starts_with(s.as_bytes()),
            (Test::Suffix(s), Some(v)) => v.ends_with(s.as_bytes()),
            (Test::AnyOf(list), Some(v)) => sorted_contains(list, v),
        }
    }
}

impl Shadow {
    pub fn mirrors(&self, key: &[u8]) -> bool {
        let h = crate::bucket::murmur3_x86_32(&[], key, self.seed);
        (((u64::from(h) * u64::from(SERIN_SCALE)) >> 32) as u32) < self.share
    }
}

#[cfg(test)]
mod tests;
