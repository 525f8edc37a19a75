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
}

/// Parse and lower a policy: the typed model (`--emit ast`).
pub fn parse_str(source: &str, file_name: &str) -> Result<ast::Policy, Diagnostics> {
    let root = syntax::parse(source).map_err(|d| Diagnostics::new(file_name, source, vec![d]))?;
    lower::lower(&root).map_err(|ds| Diagnostics::new(file_name, source, ds))
}

/// Compile a policy through every stage.
pub fn compile_str(source: &str, file_name: &str) -> Result<Compiled, Diagnostics> {
    let policy = parse_str(source, file_name)?;
    let checked =
        validate::validate(&policy).map_err(|ds| Diagnostics::new(file_name, source, ds))?;
    let mut warnings = lint::lint(&policy, &checked);
    warnings.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
    Ok(Compiled {
        plan: plan::build(checked),
        warnings,
    })
}
