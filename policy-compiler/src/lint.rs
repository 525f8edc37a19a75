//! Stage 4, lint: warnings about policies that compile but probably do not do what was meant.
//! Lint never fails; it reports.

use crate::ast::Policy;
use crate::diag::Diagnostic;
use crate::validate::{Checked, percent_bp};

/// One lint rule: a code, a name, a doc string and a check.
pub struct Lint {
    pub code: &'static str,
    pub doc: &'static str,
    pub check: fn(&Policy, &Checked, &mut Vec<Diagnostic>),
}

pub const LINTS: &[Lint] = &[Lint {
    code: "weights-do-not-sum",
    doc: "A split lists the stable arm's weight, and all weights do not add up to 100 percent.",
    check: weights_do_not_sum,
}];

/// Run every lint.
pub fn lint(policy: &Policy, checked: &Checked) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for l in LINTS {
        (l.check)(policy, checked, &mut out);
    }
    out
}

fn weights_do_not_sum(p: &Policy, c: &Checked, out: &mut Vec<Diagnostic>) {
    for s in p.split.iter().chain(&p.splits) {
        if !matches!(s.bucketing.v, crate::ast::Bucketing::Serin) {
            continue;
        }
        let stable = &c.arms[usize::from(c.stable)].name;
        if !s.weights.v.iter().any(|w| &w.arm.v == stable) {
            continue;
        }
        let total: u32 = s
            .weights
            .v
            .iter()
            .filter_map(|w| percent_bp(&w.value.v).ok())
            .sum();
        if total != 10_000 {
            out.push(
                Diagnostic::warning(
                    "weights-do-not-sum",
                    format!("the weights of split `{}` add up to {} percent, not 100", s.name.v, crate::validate::fmt_bp(total)),
                    s.weights.span.clone(),
                )
                .with_label("does not add up to 100")
                .with_help(format!("the stable arm `{stable}` takes whatever the other arms leave, whatever its weight says; fix its weight or leave it out")),
            );
        }
    }
}
