//! `serin import nginx-ingress`: ingress-nginx canary annotations to a Serin policy.
//!
//! ingress-nginx sends a request to the canary Ingress's backend when, in this order:
//! `canary-by-header` (the header is `always`, or equals `canary-by-header-value`, or matches
//! `canary-by-header-pattern`; `never` keeps it on the main backend), `canary-by-cookie` (the
//! cookie is `always`; `never` keeps it), and `canary-weight` out of `canary-weight-total`
//! (100 by default), chosen at random per request. Serin's rules are tried in order, then the
//! default split, so each annotation becomes a rule or the split, in the same order.
//!
//! What cannot be carried over exactly is said in [`Imported::notes`]: a header pattern that is
//! a real regular expression (Serin v1 has no regex matcher), a weight with more than two
//! decimals, and the stickiness (Serin keeps a client on its arm; nginx draws every request).

use serde::Deserialize;
use serde_norway::Value;

use super::{toml_key, toml_string};

pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// A policy, and what did not map exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub toml: String,
    /// Each: something the policy does differently from the Ingress, or leaves out.
    pub notes: Vec<String>,
}

/// The sticky cookie Serin mints for weighted traffic without a key.
pub const STICKY_COOKIE: &str = "serin-id";

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// Every Ingress in the documents (`kind: List` items included).
fn ingresses(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| format!("not YAML: {e}"))?;
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match str_at(&v, &["kind"]) {
                Some("Ingress") => out.push(v),
                Some("List") => {
                    if let Some(items) = get(&v, &["items"]).and_then(Value::as_sequence) {
                        stack.extend(items.iter().rev().cloned());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn annotation<'a>(ing: &'a Value, name: &str) -> Option<&'a str> {
    get(ing, &["metadata", "annotations"])?
        .get(format!("{PREFIX}{name}").as_str())?
        .as_str()
}

fn is_canary(ing: &Value) -> bool {
    annotation(ing, "canary").is_some_and(|v| v.trim() == "true")
}

/// The backend service of an Ingress: the first path's, else the default backend's.
fn service(ing: &Value) -> Option<String> {
    let rules = get(ing, &["spec", "rules"]).and_then(Value::as_sequence);
    let first_path = rules
        .and_then(|r| r.first())
        .and_then(|r| get(r, &["http", "paths"]))
        .and_then(Value::as_sequence)
        .and_then(|p| p.first());
    let from_backend = |b: &Value| {
        str_at(b, &["service", "name"])
            .or_else(|| str_at(b, &["serviceName"]))
            .map(str::to_owned)
    };
    first_path
        .and_then(|p| get(p, &["backend"]))
        .and_then(from_backend)
        .or_else(|| get(ing, &["spec", "defaultBackend"]).and_then(from_backend))
        .or_else(|| get(ing, &["spec", "backend"]).and_then(from_backend))
}

fn hosts(ing: &Value) -> Vec<String> {
    get(ing, &["spec", "rules"])
        .and_then(Value::as_sequence)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| str_at(r, &["host"]).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What a header pattern means in Serin's tests, when it is not really a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternTest {
    Exact(String),
    Prefix(String),
    Suffix(String),
    OneOf(Vec<String>),
}

fn literal(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next()?;
                if next.is_ascii_alphanumeric() {
                    return None; // \d, \w, \b...: a class, not a character
                }
                out.push(next);
            }
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => {
                return None;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// The pattern as a Serin test, when it is one: `^lit$`, `^lit`, `lit$`, `^(a|b)$`. ingress-nginx
/// matches unanchored, so a bare `lit` means "contains", which Serin cannot say.
pub fn pattern_test(p: &str) -> Option<PatternTest> {
    let (start, rest) = match p.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, p),
    };
    let (end, body) = match rest.strip_suffix('$').filter(|b| !b.ends_with('\\')) {
        Some(b) => (true, b),
        None => (false, rest),
    };
    if start && end {
        let inner = body
            .strip_prefix("(?:")
            .or_else(|| body.strip_prefix('('))
            .and_then(|b| b.strip_suffix(')'));
        if let Some(inner) = inner {
            let alts: Option<Vec<String>> = inner.split('|').map(literal).collect();
            if let Some(mut alts) = alts {
                alts.sort();
                alts.dedup();
                return Some(PatternTest::OneOf(alts));
            }
        }
        if body.contains('|') {
            // `^a|b$` is `^a` or `b$`: not a one-of.
            return None;
        }
        return literal(body).map(PatternTest::Exact);
    }
    match (start, end) {
        (true, false) => literal(body).map(PatternTest::Prefix),
        (false, true) => literal(body).map(PatternTest::Suffix),
        _ => None,
    }
}

fn test_toml(t: &PatternTest) -> String {
    match t {
        PatternTest::Exact(s) => format!("{{ exact = {} }}", toml_string(s)),
        PatternTest::Prefix(s) => format!("{{ prefix = {} }}", toml_string(s)),
        PatternTest::Suffix(s) => format!("{{ suffix = {} }}", toml_string(s)),
        PatternTest::OneOf(v) => format!(
            "{{ one_of = [{}] }}",
            v.iter()
                .map(|s| toml_string(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Percent with at most two decimals, and whether rounding changed it.
fn percent(weight: f64, total: f64) -> (f64, bool) {
    let exact = weight * 100.0 / total;
    let rounded = (exact * 100.0).round() / 100.0;
    (rounded, (rounded - exact).abs() > 1e-9)
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

const KNOWN: &[&str] = &[
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
];

/// Import the canary Ingress in `text` (YAML, one or more documents). With several canary
/// Ingresses, `name` picks one by `metadata.name`.
pub fn import(text: &str, name: Option<&str>) -> Result<Imported, String> {
    let all = ingresses(text)?;
    let canaries: Vec<&Value> = all
        .iter()
        .filter(|i| is_canary(i))
        .filter(|i| name.is_none_or(|n| str_at(i, &["metadata", "name"]) == Some(n)))
        .collect();
    let canary = match canaries.as_slice() {
        [] => {
            return Err(match name {
                Some(n) => format!(
                    "no canary Ingress named `{n}` (one annotated `{PREFIX}canary: \"true\"`)"
                ),
                None => format!("no canary Ingress: none is annotated `{PREFIX}canary: \"true\"`"),
            });
        }
        [one] => *one,
        many => {
            let names: Vec<&str> = many
                .iter()
                .filter_map(|i| str_at(i, &["metadata", "name"]))
                .collect();
            return Err(format!(
                "several canary Ingresses ({}): pick one with `--name`",
                names.join(", ")
            ));
        }
    };
    let mut notes = Vec::new();
    let ing_name = str_at(canary, &["metadata", "name"]).unwrap_or("canary");
    let canary_hosts = hosts(canary);
    let main = all.iter().find(|i| {
        !is_canary(i) && {
            let h = hosts(i);
            h == canary_hosts || h.iter().any(|x| canary_hosts.contains(x))
        }
    });
    let canary_value = service(canary).unwrap_or_else(|| "canary".into());
    let mut stable_value = main.and_then(service).unwrap_or_else(|| {
        notes.push("no main (non-canary) Ingress for the same host in the file: the stable arm's value is `stable`; set it to the routing value of the current backend".into());
        "stable".into()
    });
    if stable_value == canary_value {
        stable_value.push_str("-stable");
    }

    let mut t = String::new();
    t.push_str(&format!(
        "# Imported from ingress-nginx canary Ingress `{ing_name}` by `serin import nginx-ingress`.\n"
    ));
    t.push_str(&format!(
        "# The stable arm is the main Ingress's backend, the canary arm the canary Ingress's ({}).\n",
        toml_string(&canary_value)
    ));
    t.push_str("# Route on the routing header (`serin emit envoy` or `serin emit istio`) instead of two Ingresses.\n\n");
    t.push_str(&format!("[policy]\nname = {}\n", toml_string(ing_name)));
    t.push_str(&format!(
        "\n[arms.stable]\nvalue = {}\n\n[arms.canary]\nvalue = {}\n",
        toml_string(&stable_value),
        toml_string(&canary_value)
    ));

    let rule = |t: &mut String, name: &str, arm: &str, kind: &str, key: &str, test: &str| {
        t.push_str(&format!(
            "\n[[rules]]\nname = {}\narm = \"{arm}\"\nwhen.{kind}.{} = {test}\n",
            toml_string(name),
            toml_key(key)
        ));
    };

    if let Some(h) = annotation(canary, "canary-by-header")
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        let header = h.to_ascii_lowercase();
        let value = annotation(canary, "canary-by-header-value").filter(|v| !v.is_empty());
        let pattern = annotation(canary, "canary-by-header-pattern").filter(|v| !v.is_empty());
        match (value, pattern) {
            (Some(v), p) => {
                if p.is_some() {
                    notes.push("canary-by-header-pattern is ignored: canary-by-header-value takes precedence, as in ingress-nginx".into());
                }
                rule(&mut t, &format!("header {header}"), "canary", "header", &header, &toml_string(v));
            }
            (None, Some(p)) => match pattern_test(p) {
                Some(test) => rule(&mut t, &format!("header {header}"), "canary", "header", &header, &test_toml(&test)),
                None => notes.push(format!(
                    "canary-by-header-pattern `{p}` is not mapped: Serin v1 has no regular-expression matcher (an anchored literal, prefix, suffix or `^(a|b)$` would map); requests are routed as if the header were absent. Write a `[[rules]]` with `exact`, `prefix`, `suffix` or `one_of` for `{header}`"
                )),
            },
            (None, None) => {
                rule(&mut t, &format!("header {header} always"), "canary", "header", &header, "\"always\"");
                rule(&mut t, &format!("header {header} never"), "stable", "header", &header, "\"never\"");
            }
        }
    }
    if let Some(c) = annotation(canary, "canary-by-cookie")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        rule(
            &mut t,
            &format!("cookie {c} always"),
            "canary",
            "cookie",
            c,
            "\"always\"",
        );
        rule(
            &mut t,
            &format!("cookie {c} never"),
            "stable",
            "cookie",
            c,
            "\"never\"",
        );
    }

    let num = |n: &str| -> Result<Option<f64>, String> {
        match annotation(canary, n)
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(Some)
                .ok_or_else(|| format!("`{PREFIX}{n}: {v}` is not a non-negative number")),
        }
    };
    let weight = num("canary-weight")?.unwrap_or(0.0);
    let total = num("canary-weight-total")?.unwrap_or(100.0);
    if total <= 0.0 {
        return Err(format!("`{PREFIX}canary-weight-total` must be positive"));
    }
    if weight > 0.0 {
        let (pct, rounded) = percent(weight.min(total), total);
        if weight > total {
            notes.push(format!("canary-weight {weight} is over canary-weight-total {total}: all weighted traffic goes to the canary"));
        }
        if rounded {
            notes.push(format!(
                "canary-weight {weight}/{total} is {}% with Serin's resolution of 0.01%",
                fmt_num(pct)
            ));
        }
        notes.push(format!(
            "weighted traffic is sticky in Serin: each client keeps its arm through the `{STICKY_COOKIE}` cookie (ingress-nginx draws every request at random); add a user-id header in front of the key to bucket by user"
        ));
        t.push_str(&format!(
            "\n[split]\nkey = [\"cookie:{STICKY_COOKIE}\"]\nsalt = {}\nweights = {{ canary = {} }}\nfallback = {{ random = true, cookie = \"{STICKY_COOKIE}\" }}\n",
            toml_string(ing_name),
            fmt_num(pct)
        ));
    }

    if let Some(anns) = get(canary, &["metadata", "annotations"]).and_then(Value::as_mapping) {
        for (k, _) in anns {
            if let Some(n) = k.as_str().and_then(|k| k.strip_prefix(PREFIX))
                && n.starts_with("canary")
                && !KNOWN.contains(&n)
            {
                notes.push(format!("`{PREFIX}{n}` is not mapped"));
            }
        }
    }
    Ok(Imported { toml: t, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            pattern_test("^beta$"),
            Some(PatternTest::Exact("beta".into()))
        );
        assert_eq!(
            pattern_test("^beta"),
            Some(PatternTest::Prefix("beta".into()))
        );
        assert_eq!(pattern_test("v2$"), Some(PatternTest::Suffix("v2".into())));
        assert_eq!(
            pattern_test("^(b|a)$"),
            Some(PatternTest::OneOf(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            pattern_test("^a\\.b$"),
            Some(PatternTest::Exact("a.b".into()))
        );
        assert_eq!(pattern_test("beta"), None);
        assert_eq!(pattern_test("^a|b$"), None);
        assert_eq!(pattern_test("^user-\\d+$"), None);
        assert_eq!(pattern_test("^.*$"), None);
    }
}
