//! What both halves of stage 3 share: [`validate`](crate::validate) (arms, splits, rules)
//! and [`rollout`](crate::rollout) (segments, outcomes, guards, ramp) report into one [`Ctx`],
//! resolve names through it, and read and print weights the same way. A leaf, so that
//! `validate` calls into `rollout` and `rollout` needs nothing back.

use serin_policy::{ArmId, SERIN_SCALE, is_header_name};

use crate::ast::{Number, Policy, S};
use crate::diag::{Diagnostic, did_you_mean};

/// What one validation pass threads through: the policy, the errors found so far, and the
/// stable arm once it is resolved.
pub(crate) struct Ctx<'p> {
    pub policy: &'p Policy,
    pub errors: Vec<Diagnostic>,
    pub stable: ArmId,
}

impl Ctx<'_> {
    pub fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    pub fn arm_id(&self, name: &str) -> Option<ArmId> {
        self.policy
            .arms
            .iter()
            .position(|a| a.name.v == name)
            .map(|i| i as ArmId)
    }

    /// Resolve an arm name, or report it with a suggestion.
    pub fn resolve_arm(&mut self, name: &S<String>, what: &str) -> Option<ArmId> {
        let id = self.arm_id(&name.v);
        if id.is_none() {
            let names: Vec<&str> = self.policy.arms.iter().map(|a| a.name.v.as_str()).collect();
            let mut d = Diagnostic::error(
                "unknown-arm",
                format!("{what} names arm `{}`, which is not declared", name.v),
                name.span.clone(),
            )
            .with_label("no such arm");
            d = match did_you_mean(&name.v, names.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("declared arms: {}", quoted(&names))),
            };
            self.err(d);
        }
        id
    }

    pub fn header_name(&mut self, name: &S<String>, what: &str) -> bool {
        if is_header_name(&name.v) {
            return true;
        }
        let lower = name.v.to_ascii_lowercase();
        let d = Diagnostic::error(
            "header-name",
            format!("{what} `{}` is not a valid header name", name.v),
            name.span.clone(),
        )
        .with_label("invalid header name");
        self.err(if is_header_name(&lower) {
            d.with_help(format!(
                "header names are matched in lower case: write `{lower}`"
            ))
        } else {
            d.with_help(
                "a header name is a non-empty token of letters, digits and `!#$%&'*+-.^_`|~`",
            )
        });
        false
    }
}

/// A percentage with at most two decimals, in basis points (1/10,000).
pub fn percent_bp(n: &Number) -> Result<u32, String> {
    let t = n.text.as_str();
    if t.contains(['e', 'E']) || t.contains("inf") || t.contains("nan") {
        return Err(format!(
            "`{t}` must be written as a plain decimal percentage"
        ));
    }
    if t.starts_with('-') {
        return Err(format!("`{t}` is negative"));
    }
    let t = t.trim_start_matches('+');
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.trim_end_matches('0').len() > 2 {
        return Err(format!("`{t}` has more than two decimals"));
    }
    let int: u64 = int
        .parse()
        .map_err(|_| format!("`{t}` is not a percentage"))?;
    let mut frac_digits: String = frac.chars().take(2).collect();
    while frac_digits.len() < 2 {
        frac_digits.push('0');
    }
    let frac: u64 = frac_digits.parse().unwrap_or(0);
    let bp = int.saturating_mul(100).saturating_add(frac);
    if bp > u64::from(SERIN_SCALE) {
        return Err(format!("`{t}` is more than 100 percent"));
    }
    Ok(bp as u32)
}

/// Basis points as a percentage for messages, without trailing zeros: 1250 is `12.5`.
pub fn fmt_bp(bp: u32) -> String {
    if bp.is_multiple_of(100) {
        format!("{}", bp / 100)
    } else {
        format!("{}.{:02}", bp / 100, bp % 100)
            .trim_end_matches('0')
            .to_owned()
    }
}

/// Names for a message, each in backticks, comma-separated.
pub fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(t: &str) -> Number {
        Number {
            text: t.into(),
            is_integer: !t.contains('.'),
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(percent_bp(&n("5")), Ok(500));
        assert_eq!(percent_bp(&n("0.01")), Ok(1));
        assert_eq!(percent_bp(&n("12.5")), Ok(1250));
        assert_eq!(percent_bp(&n("100")), Ok(10_000));
        assert_eq!(percent_bp(&n("2.50")), Ok(250));
        assert!(percent_bp(&n("0.005")).is_err());
        assert!(percent_bp(&n("100.01")).is_err());
        assert!(percent_bp(&n("-1")).is_err());
        assert!(percent_bp(&n("1e1")).is_err());
    }

    #[test]
    fn bp_display() {
        assert_eq!(fmt_bp(500), "5");
        assert_eq!(fmt_bp(1250), "12.5");
        assert_eq!(fmt_bp(1), "0.01");
    }
}
