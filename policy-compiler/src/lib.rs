//! Serin's policy compiler: one TOML policy in, one plan out.
//!
//! The stages, each with its own errors: [`syntax`] (TOML with spans) → [`lower`] (typed model,
//! [`ast`]) → [`validate`] (types, ranges, references) → [`lint`] (warnings, never fails) →
//! [`plan`] (the versioned plan and its digest).
#![forbid(unsafe_code)]

pub mod ast;
mod ctx;
pub mod diag;
pub mod emit;
pub mod explain;
pub mod format;
pub mod import;
pub mod lint;
pub mod lower;
pub mod plan;
pub mod rollout;
pub mod schema;
pub mod syntax;
pub mod validate;

pub use diag::{Diagnostic, Diagnostics, Severity};

use serin_policy::Plan;

/// A compiled policy and the lint warnings about it.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub plan: Plan,
    pub warnings: Vec<Diagnostic>,
    /// The ramp's `expected_rps`: the requests per second one proxy expects, which the plan
    /// does not carry (only the lints and `serin explain --guards` read it).
    pub expected_rps: Option<f64>,
}

/// Parse and lower a policy: the typed model (`--emit ast`).
pub fn parse_str(source: &str, file_name: &str) -> Result<ast::Policy, Diagnostics> {
    let root = syntax::parse(source).map_err(|d| Diagnostics::new(file_name, source, vec![d]))?;
    lower::lower(&root).map_err(|ds| Diagnostics::new(file_name, source, ds))
}

/// What the user tells the compiler beyond the policy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Requests per second at one proxy, for the lints that judge sample sizes and power
    /// (`--expect-rps`); overrides the ramp's `expected_rps`.
    pub expect_rps: Option<f64>,
}

/// Compile a policy through every stage.
pub fn compile_str(source: &str, file_name: &str) -> Result<Compiled, Diagnostics> {
    compile_with(source, file_name, &Options::default())
}

/// Compile a policy through every stage, with options.
pub fn compile_with(
    source: &str,
    file_name: &str,
    options: &Options,
) -> Result<Compiled, Diagnostics> {
    let policy = parse_str(source, file_name)?;
    let checked =
        validate::validate(&policy).map_err(|ds| Diagnostics::new(file_name, source, ds))?;
    let plan = plan::build(checked.clone());
    // The window's cells are laid out by the engine from the plan itself; a policy whose
    // guards need more is refused here rather than silently unwatched in the proxy.
    let overflow = rollout::cells_fit(&policy, &plan);
    if !overflow.is_empty() {
        return Err(Diagnostics::new(file_name, source, overflow));
    }
    let stated = policy.ramp.as_ref().and_then(|r| r.expected_rps.as_ref());
    let expected_rps = match options.expect_rps {
        Some(rps) => Some((rps, None)),
        None => stated.map(|r| (r.v, Some(r.span.clone()))),
    };
    let mut warnings = lint::lint(&lint::Cx {
        policy: &policy,
        checked: &checked,
        plan: &plan,
        expected_rps,
    });
    warnings.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
    Ok(Compiled {
        plan,
        warnings,
        expected_rps: stated.map(|r| r.v),
    })
}
