//! [`Router`]: a plan prepared for the request path.
//!
//! [`Plan::decide`] asks the request for every name a rule reads, one rule at a time: a ten-rule
//! policy scans the headers ten times and parses the cookie header and the query string once per
//! rule that reads them. A router resolves every name the plan reads to a slot once, when the plan
//! is loaded. Per request it then reads the headers in one pass, the cookie header and the query
//! string at most once each, and evaluates the rules on the slots it filled.
//!
//! It decides exactly as `Plan::decide` does; the tests hold the two equal on arbitrary plans and
//! requests. The filter routes with a router; `Plan::decide` stays the reference, and what one-off
//! callers (`serin explain`, tests) use.

pub(crate) mod bytes;
mod prefix;
mod table;
#[cfg(test)]
mod tests;

use std::ops::ControlFlow;

use crate::cidr::Cidr;
use crate::decide::{Decision, Reason, first_key, has_method, in_networks};
use crate::plan::{Action, KeySource, Matcher, Plan, Test};
use crate::request::{NameEnds, Request, for_each_cookie, for_each_param, split_query};
use prefix::Prefix;
use table::{Slot, StringTable};

/// How many names (headers, cookies and query parameters together) a request's single pass
/// collects. Each slot costs 16 bytes cleared per request; names past the last slot are asked
/// of the request by name, as [`Plan::decide`] does, so a plan that reads more still routes
/// correctly, only more slowly. Real policies read a handful.
const MAX_SLOTS: usize = 16;

/// One bit per slot: which slots a request filled, which a rule needs filled.
type SlotSet = u32;
const _: () = assert!(MAX_SLOTS <= SlotSet::BITS as usize);

/// A plan prepared for routing: built once per plan (and per ramp step) by the filter, then
/// asked for every request.
#[derive(Debug, Clone)]
pub struct Router {
    plan: Plan,
    /// The plan reads at most one value per request (a split on one header, the common percent
    /// canary): asking for it by name, with a scan that stops at the header, costs less than a
    /// pass over every header, so the router decides exactly as [`Plan::decide`] does.
    by_name: bool,
    headers: StringTable,
    /// The slots of `headers`: once the pass has filled them all, the rest of the request's
    /// headers cannot matter.
    header_slots: SlotSet,
    cookies: StringTable,
    /// The slots of `cookies`, as `header_slots` is of `headers`.
    cookie_slots: SlotSet,
    params: StringTable,
    /// The slots of `params`.
    param_slots: SlotSet,
    /// Where the `cookie` header is read, when a cookie is found by slot.
    cookie_header: Option<Read>,
    /// The last bytes of the names in `cookies`, when they tell pairs apart.
    cookie_ends: Option<NameEnds>,
    /// Where the `:path` header is read, when a query parameter or the path is.
    path_header: Option<Read>,
    /// Where the `:method` header is read, when a rule tests the method.
    method_header: Option<Read>,
    override_: Option<OverrideReads>,
    rules: Vec<RouteRule>,
    /// For each of the plan's splits, where each source of its key chain is read.
    keys: Vec<Vec<Read>>,
}

/// Where a header, cookie or query value is found.
#[derive(Debug, Clone)]
enum Read {
    /// In the slot the request's single pass filled.
    Slot(Slot),
    /// By asking the request, as [`Plan::decide`] does: for names past the last slot, and for
    /// cookie or parameter names containing `=`, which the pass does not split out (a name ends
    /// at the first `=` there, while `cookie_value` and `query_value` accept any name).
    ByName(KeySource),
}

#[derive(Debug, Clone)]
struct OverrideReads {
    wanted: Read,
    token: Option<Read>,
}

#[derive(Debug, Clone)]
struct RouteRule {
    /// The slots this rule's checks cannot hold without: a request that lacks one of them
    /// skips the rule with one test, which is what most requests do with most rules (a tester's
    /// header, a beta cookie).
    needs: SlotSet,
    /// The rule's first check, kept in the rule: most rules have one, and reaching it through
    /// a pointer cost as much as testing it.
    first: Check,
    /// The rule's other checks.
    more: Box<[Check]>,
    action: Action,
}

/// A [`Matcher`] with its name resolved. A byte tells the variants apart: with the layout the
/// compiler chose, telling them apart took a subtraction and a conditional move first.
#[derive(Debug, Clone)]
#[repr(u8)]
enum Check {
    /// The first check of a rule with none: it holds for every request.
    Always,
    /// A test of the value in a slot.
    Slot {
        slot: Slot,
        test: ValueTest,
    },
    /// A test of a value asked for by name.
    ByName {
        source: KeySource,
        test: ValueTest,
    },
    PathPrefix(Vec<Prefix>),
    Method(Vec<String>),
    SourceIp(Vec<Cidr>),
}

/// A [`Test`], with its list as a [`StringTable`] when it has one: the plan's sorted list is
/// binary-searched with a `memcmp` per probe, which costs more than the rest of a rule.
#[derive(Debug, Clone)]
enum ValueTest {
    AnyOf(StringTable),
    NoneOf(StringTable),
    Other(Test),
}

impl ValueTest {
    fn new(test: &Test) -> ValueTest {
        let set = |list: &[String]| StringTable::set(list.iter().map(|s| s.as_bytes()));
        match test {
            // `Test::holds` binary-searches, which finds every member only of a sorted list;
            // the compiler sorts and deduplicates, and a hand-written plan that does not keeps
            // its (searched) meaning through `Other`.
            Test::AnyOf(list) if is_set(list) => ValueTest::AnyOf(set(list)),
            Test::NoneOf(list) if is_set(list) => ValueTest::NoneOf(set(list)),
            _ => ValueTest::Other(test.clone()),
        }
    }

    /// Whether the test fails on a missing value.
    fn needs_value(&self) -> bool {
        match self {
            ValueTest::AnyOf(_) => true,
            ValueTest::NoneOf(_) => false,
            ValueTest::Other(test) => !matches!(test, Test::Absent | Test::NoneOf(_)),
        }
    }

    /// Always inlined: called, it cost a rule's whole test again.
    #[inline(always)]
    fn holds(&self, value: Option<&[u8]>) -> bool {
        match self {
            ValueTest::AnyOf(set) => value.is_some_and(|v| set.contains(v)),
            ValueTest::NoneOf(set) => value.is_none_or(|v| !set.contains(v)),
            ValueTest::Other(test) => test.holds(value),
        }
    }
}

/// How many values a request can be asked for at most: every matcher but a source address,
/// every source of a key chain, the override's headers.
fn reads_per_request(plan: &Plan) -> usize {
    let matchers = plan.rules.iter().flat_map(|r| &r.all);
    matchers
        .filter(|m| !matches!(m, Matcher::SourceIp { .. }))
        .count()
        + plan.splits.iter().map(|s| s.key.len()).sum::<usize>()
        + plan
            .override_
            .as_ref()
            .map_or(0, |o| 1 + usize::from(o.token.is_some()))
}

/// Distinct and in byte order: what the compiler makes of a list, and a table is built from.
fn is_set(list: &[String]) -> bool {
    list.is_sorted_by(|a, b| a < b)
}

impl Router {
    /// Prepare a plan for routing. The plan must be one [`Plan::from_json`] accepted (or that
    /// passes [`Plan::check`]): like `Plan::decide`, routing relies on its indices.
    pub fn new(plan: Plan) -> Router {
        let mut layout = Layout::default();
        let override_ = plan.override_.as_ref().map(|o| OverrideReads {
            wanted: layout.header(&o.header),
            token: o.token.as_ref().map(|t| layout.header(&t.header)),
        });
        let rules = plan
            .rules
            .iter()
            .map(|rule| {
                let mut checks = rule.all.iter().map(|m| layout.check(m));
                let first = checks.next().unwrap_or(Check::Always);
                let more: Box<[Check]> = checks.collect();
                RouteRule {
                    needs: more.iter().fold(first.needs(), |set, c| set | c.needs()),
                    first,
                    more,
                    action: rule.action,
                }
            })
            .collect();
        let keys = plan
            .splits
            .iter()
            .map(|split| split.key.iter().map(|s| layout.source(s)).collect())
            .collect();
        let reads_path = plan
            .rules
            .iter()
            .flat_map(|r| &r.all)
            .any(|m| matches!(m, Matcher::PathPrefix { .. }));
        let reads_method = plan
            .rules
            .iter()
            .flat_map(|r| &r.all)
            .any(|m| matches!(m, Matcher::Method { .. }));
        // After every other name, so these find the slots the cookies and parameters took.
        let cookie_header = (!layout.cookies.is_empty()).then(|| layout.header("cookie"));
        let path_header = (reads_path || !layout.params.is_empty()).then(|| layout.header(":path"));
        let method_header = reads_method.then(|| layout.header(":method"));
        Router {
            by_name: reads_per_request(&plan) <= 1,
            header_slots: layout.slots(Kind::Header),
            headers: layout.table(Kind::Header),
            cookie_slots: layout.slots(Kind::Cookie),
            cookies: layout.table(Kind::Cookie),
            param_slots: layout.slots(Kind::Param),
            params: layout.table(Kind::Param),
            cookie_header,
            cookie_ends: NameEnds::new(layout.cookies.iter().map(|(name, _)| name.as_bytes())),
            path_header,
            method_header,
            override_,
            rules,
            keys,
            plan,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Choose the arm for a request: the same decision as [`Plan::decide`].
    pub fn decide(&self, req: &impl Request) -> Decision {
        if self.by_name {
            return self.plan.decide(req);
        }
        // Filled in place: returning the values (a few hundred bytes) from a function copied them.
        let mut values = Values {
            req,
            slots: [None; MAX_SLOTS],
            filled: 0,
            path: b"",
            method: b"",
        };
        self.read(&mut values);
        let plan = &self.plan;
        if let (Some(o), Some(reads)) = (&plan.override_, &self.override_) {
            let forced = plan.forced_arm(
                o,
                values.get(&reads.wanted),
                |_| reads.token.as_ref().and_then(|r| values.get(r)),
                || req.source_ip(),
            );
            if let Some(arm) = forced {
                return Decision::fixed(arm, Reason::Override);
            }
        }
        // Read once, not once per rule (the closure's borrow of `values` kept it in memory).
        let filled = values.filled;
        // The matching rule's index from its place: counting the rules as they were skipped took
        // a register, and the loop, short of them, kept the count in memory.
        let (action, reason) = self
            .rules
            .iter()
            .find(|rule| {
                filled & rule.needs == rule.needs
                    && rule.first.holds(&values)
                    && (rule.more.is_empty() || Check::all_hold(&rule.more, &values))
            })
            .map_or((plan.default, Reason::Default), |rule| {
                let i = self.rules.element_offset(rule).unwrap_or_default();
                (rule.action, Reason::Rule(i as u16))
            });
        plan.act(action, reason, |split| {
            let reads = self.keys.get(usize::from(split))?;
            first_key(reads.iter().map(|r| values.get(r)))
        })
    }

    /// The single pass: every header once, then the cookie header and the query string once
    /// each, and only when the plan reads a cookie or a parameter.
    fn read<'r, R: Request>(&self, values: &mut Values<'r, R>) {
        if !self.headers.is_empty() {
            let mut filled = values.filled;
            for (name, value) in values.req.headers() {
                if let Some(slot) = self.headers.get(name.as_bytes()) {
                    values.fill_with(&mut filled, slot, value);
                    if filled & self.header_slots == self.header_slots {
                        break;
                    }
                }
            }
            values.filled = filled;
        }
        let header =
            |read: &Option<Read>, values: &Values<'r, R>| read.as_ref().and_then(|r| values.get(r));
        // The pairs before the first that can hold a name the plan reads are not walked.
        let cookie =
            header(&self.cookie_header, values).and_then(|cookie| match &self.cookie_ends {
                Some(ends) => cookie.get(ends.skip(cookie)?..),
                None => Some(cookie),
            });
        if let Some(cookie) = cookie {
            for_each_cookie(cookie, |name, value| {
                values.fill_named(&self.cookies, self.cookie_slots, name, value)
            });
        }
        if let Some(target) = header(&self.path_header, values) {
            values.path = if self.params.is_empty() {
                // Path prefixes are tested on the whole target (see `Layout::check`): no
                // search for the `?`.
                target
            } else {
                let (path, query) = split_query(target);
                if let Some(query) = query {
                    for_each_param(query, |name, value| {
                        values.fill_named(&self.params, self.param_slots, name, value)
                    });
                }
                path
            };
        }
        values.method = header(&self.method_header, values).unwrap_or(b"");
    }
}

/// What one request's pass found, and the request for whatever is asked by name.
struct Values<'r, R> {
    req: &'r R,
    slots: [Option<&'r [u8]>; MAX_SLOTS],
    filled: SlotSet,
    /// The path without its query string, when the plan reads it.
    path: &'r [u8],
    method: &'r [u8],
}

impl<'r, R: Request> Values<'r, R> {
    #[inline(always)]
    fn fill(&mut self, slot: Slot, value: &'r [u8]) {
        let mut filled = self.filled;
        self.fill_with(&mut filled, slot, value);
        self.filled = filled;
    }

    /// `fill`, with the filled set kept by the caller (in a register, through a loop).
    #[inline(always)]
    fn fill_with(&mut self, filled: &mut SlotSet, slot: Slot, value: &'r [u8]) {
        // A repeated name: the first one counts, as in `Request::header`, `cookie_value` and
        // `query_value`. Every slot is below `MAX_SLOTS`: the remainder spares a bounds check.
        let bit = 1 << slot;
        if *filled & bit == 0 {
            self.slots[usize::from(slot) % MAX_SLOTS] = Some(value);
            *filled |= bit;
        }
    }

    /// Fill the slot of `name` in `table`, if it has one. Once every slot of the table
    /// (`slots`) is filled, the rest of the cookie header or query string cannot matter (the
    /// first occurrence of a name counts), and the walk over it stops.
    #[inline(always)]
    fn fill_named(
        &mut self,
        table: &StringTable,
        slots: SlotSet,
        name: &[u8],
        value: &'r [u8],
    ) -> ControlFlow<()> {
        if let Some(slot) = table.get(name) {
            self.fill(slot, value);
            if self.filled & slots == slots {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// The value in a slot, without a bounds check, as in `fill`.
    #[inline(always)]
    fn slot(&self, slot: Slot) -> Option<&'r [u8]> {
        self.slots[usize::from(slot) % MAX_SLOTS]
    }

    fn get(&self, read: &Read) -> Option<&'r [u8]> {
        match read {
            Read::Slot(slot) => self.slot(*slot),
            Read::ByName(source) => source.read(self.req),
        }
    }
}

impl Check {
    /// The slot this check cannot hold without, if any.
    fn needs(&self) -> SlotSet {
        match self {
            Check::Slot { slot, test } if test.needs_value() => 1 << slot,
            _ => 0,
        }
    }

    /// Called rather than inlined: a name read by name is rare, and with its test inlined here
    /// too, the compiler called the test in both places.
    #[inline(never)]
    fn holds_by_name<R: Request>(source: &KeySource, test: &ValueTest, req: &R) -> bool {
        test.holds(source.read(req))
    }

    /// Whether a rule's checks past its first hold. Called: for the rules with more than one,
    /// so that the one inlined copy of `holds` is the first check's.
    #[inline(never)]
    fn all_hold<R: Request>(checks: &[Check], values: &Values<'_, R>) -> bool {
        checks.iter().all(|c| c.holds(values))
    }

    #[inline(always)]
    fn holds<R: Request>(&self, values: &Values<'_, R>) -> bool {
        match self {
            Check::Always => true,
            Check::Slot { slot, test } => test.holds(values.slot(*slot)),
            Check::ByName { source, test } => Check::holds_by_name(source, test, values.req),
            Check::PathPrefix(any_of) => any_of.iter().any(|p| p.starts(values.path)),
            Check::Method(any_of) => has_method(any_of, values.method),
            Check::SourceIp(any_of) => in_networks(any_of, values.req.source_ip()),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Header,
    Cookie,
    Param,
}

/// Gives each distinct name the plan reads a slot, while slots last.
#[derive(Default)]
struct Layout {
    headers: Vec<(String, Slot)>,
    cookies: Vec<(String, Slot)>,
    params: Vec<(String, Slot)>,
    used: usize,
}

impl Layout {
    fn check(&mut self, matcher: &Matcher) -> Check {
        let value = |read, test: &Test| {
            let test = ValueTest::new(test);
            match read {
                Read::Slot(slot) => Check::Slot { slot, test },
                Read::ByName(source) => Check::ByName { source, test },
            }
        };
        match matcher {
            Matcher::Header { name, test } => value(self.header(name), test),
            Matcher::Cookie { name, test } => value(self.cookie(name), test),
            Matcher::Query { name, test } => value(self.param(name), test),
            // Tested on the whole `:path` when the plan reads no query parameter, which spares
            // a search for the `?`: a path (the target before its first `?`) starts with a
            // prefix exactly when the target does and the prefix holds no `?`. A prefix with a
            // `?` never matches, with or without a query.
            Matcher::PathPrefix { any_of } => Check::PathPrefix(
                any_of
                    .iter()
                    .filter(|p| !p.contains('?'))
                    .map(|p| Prefix::new(p.as_bytes()))
                    .collect(),
            ),
            Matcher::Method { any_of } => Check::Method(any_of.clone()),
            Matcher::SourceIp { any_of } => Check::SourceIp(any_of.clone()),
        }
    }

    fn source(&mut self, source: &KeySource) -> Read {
        match source {
            KeySource::Header(name) => self.header(name),
            KeySource::Cookie(name) => self.cookie(name),
            KeySource::Query(name) => self.param(name),
        }
    }

    fn header(&mut self, name: &str) -> Read {
        self.slot(Kind::Header, name)
            .map_or_else(|| Read::ByName(KeySource::Header(name.into())), Read::Slot)
    }

    fn cookie(&mut self, name: &str) -> Read {
        // Cookies come out of the cookie header's slot, so they can have slots only if it has one.
        let indexed = !name.contains('=') && matches!(self.header("cookie"), Read::Slot(_));
        indexed
            .then(|| self.slot(Kind::Cookie, name))
            .flatten()
            .map_or_else(|| Read::ByName(KeySource::Cookie(name.into())), Read::Slot)
    }

    fn param(&mut self, name: &str) -> Read {
        let indexed = !name.contains('=') && matches!(self.header(":path"), Read::Slot(_));
        indexed
            .then(|| self.slot(Kind::Param, name))
            .flatten()
            .map_or_else(|| Read::ByName(KeySource::Query(name.into())), Read::Slot)
    }

    /// The slot of a name, given one while slots last. Names are kept in byte order, which is
    /// what a [`StringTable`] is built from.
    fn slot(&mut self, kind: Kind, name: &str) -> Option<Slot> {
        let used = self.used;
        let names = self.names(kind);
        match names.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(found) => Some(names[found].1),
            Err(_) if used == MAX_SLOTS => None,
            Err(at) => {
                names.insert(at, (name.into(), used as Slot));
                self.used += 1;
                Some(used as Slot)
            }
        }
    }

    fn names(&mut self, kind: Kind) -> &mut Vec<(String, Slot)> {
        match kind {
            Kind::Header => &mut self.headers,
            Kind::Cookie => &mut self.cookies,
            Kind::Param => &mut self.params,
        }
    }

    fn slots(&mut self, kind: Kind) -> SlotSet {
        self.names(kind)
            .iter()
            .fold(0, |set, (_, slot)| set | 1 << slot)
    }

    fn table(&mut self, kind: Kind) -> StringTable {
        let names: Vec<(&[u8], Slot)> = self
            .names(kind)
            .iter()
            .map(|(name, slot)| (name.as_bytes(), *slot))
            .collect();
        StringTable::new(&names)
    }
}
