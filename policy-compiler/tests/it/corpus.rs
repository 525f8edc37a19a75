//! Malformed and suspicious policies, each pinned to the diagnostic it must produce. The first
//! line of every `tests/corpus/*.toml` reads
//!
//! ```text
//! # expect: error[unknown-key] 7:1-7:8 unknown key `wieghts` in `split`
//! ```
//!
//! that is severity, code, start and end (line:column) of the span, and the message. Run with
//! `SERIN_BLESS=1` to rewrite those lines from the compiler's current output, then review the diff.

use std::path::PathBuf;

use serin_compiler::diag::line_col;
use serin_compiler::{Diagnostic, Diagnostics, compile_str};

fn describe(d: &Diagnostic, source: &str) -> String {
    let span = d.span.clone().unwrap_or(0..0);
    let (l1, c1) = line_col(source, span.start);
    let (l2, c2) = line_col(source, span.end);
    format!(
        "{}[{}] {l1}:{c1}-{l2}:{c2} {}",
        d.severity, d.code, d.message
    )
}

fn findings(source: &str, name: &str) -> (bool, Vec<Diagnostic>) {
    match compile_str(source, name) {
        Ok(c) => (true, c.warnings),
        Err(Diagnostics { items, .. }) => (false, items),
    }
}

#[test]
fn corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let bless = std::env::var_os("SERIN_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 50, "the corpus has {} cases", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(path).unwrap();
        let (first, _) = source.split_once('\n').unwrap_or((&source, ""));
        let expected = first
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
        let (compiled, found) = findings(&source, &name);
        let described: Vec<String> = found.iter().map(|d| describe(d, &source)).collect();
        if bless {
            let Some(d) = described.first() else {
                panic!("{name}: no diagnostic to bless")
            };
            let rest = source.split_once('\n').map_or("", |(_, r)| r);
            std::fs::write(path, format!("# expect: {d}\n{rest}")).unwrap();
            continue;
        }
        if !described.iter().any(|d| d == expected) {
            failures.push(format!(
                "{name}:\n  expected {expected}\n  found    {}",
                described.join("\n           ")
            ));
        }
        // A warning must not stop compilation; an error must.
        if expected.starts_with("warning") != compiled {
            failures.push(format!(
                "{name}: compiled = {compiled}, but the expected finding is `{expected}`"
            ));
        }
        // Style: lowercase start, no trailing period.
        for d in &found {
            let first = d.message.chars().next().unwrap_or('a');
            if first.is_uppercase() || d.message.ends_with('.') {
                failures.push(format!(
                    "{name}: message breaks the style guide: {}",
                    d.message
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
