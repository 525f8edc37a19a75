//! `docs/policy.md` lists every lint from the lint definitions. `SERIN_BLESS=1` rewrites it.

use std::path::PathBuf;

const START: &str = "<!-- lints:start -->\n";
const END: &str = "<!-- lints:end -->";

#[test]
fn lint_reference_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = doc
        .split_once(START)
        .expect("docs/policy.md has the lints:start marker");
    let (current, tail) = rest
        .split_once(END)
        .expect("docs/policy.md has the lints:end marker");
    let want = serin_compiler::lint::docs_markdown();
    if current != want {
        if std::env::var_os("SERIN_BLESS").is_some() {
            std::fs::write(&path, format!("{head}{START}{want}{END}{tail}")).unwrap();
        } else {
            panic!(
                "docs/policy.md's lint list is stale; run `SERIN_BLESS=1 cargo test -p serin-policy-compiler`"
            );
        }
    }
}

#[test]
fn every_example_in_the_docs_compiles() {
    // Every ```toml block that starts with `[policy]` and declares arms is a complete policy.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut n = 0;
    for block in doc.split("```toml\n").skip(1) {
        let body = block.split("```").next().unwrap();
        if body.starts_with("[policy]") && body.contains("[arms.") {
            if let Err(e) = serin_compiler::compile_str(body, "docs/policy.md") {
                panic!(
                    "a policy in docs/policy.md does not compile:\n{}\n{body}",
                    e.render_short()
                );
            }
            n += 1;
        }
    }
    assert!(n >= 2, "only {n} complete policies in docs/policy.md");
}
