//! `serin explain`: run one request through a compiled plan and show every step of the decision.

use std::net::IpAddr;

use serde::Serialize;
use serin_policy::{Action, Fallback, HeaderList, KeySource, Plan, Reason, Reduce};

/// A request described on the command line.
#[derive(Debug, Clone, Default)]
pub struct RequestSpec {
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub path: Option<String>,
    pub method: Option<String>,
    pub source_ip: Option<IpAddr>,
}

impl RequestSpec {
    /// The request as Envoy would hand it over: pseudo-headers, a `cookie` header, then the rest.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut path = self.path.clone().unwrap_or_else(|| "/".to_owned());
        if !self.query.is_empty() {
            let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&q.join("&"));
        }
        let mut out = vec![
            (":path".to_owned(), path),
            (
                ":method".to_owned(),
                self.method.clone().unwrap_or_else(|| "GET".to_owned()),
            ),
        ];
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(("cookie".to_owned(), c.join("; ")));
        }
        out.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        out
    }
}

/// Every step of one decision. `arm`, `rule`, `hash` and `bucket` are the stable JSON fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub arm: String,
    /// The routing header's value for the arm.
    pub value: String,
    pub routing_header: String,
    /// `override`, `rule` or `default`.
    pub reason: &'static str,
    /// The name of the rule that matched, if one did.
    pub rule: Option<String>,
    pub split: Option<u16>,
    /// The key source that supplied the key, as `header:NAME`.
    pub key_source: Option<String>,
    pub key: Option<String>,
    /// The exact bytes hashed: the split's prefix, then the key.
    pub hash_input: Option<String>,
    pub seed: Option<u32>,
    pub hash: Option<u32>,
    pub bucket: Option<u32>,
    /// Buckets in the split (`scale` or `modulus`).
    pub buckets: Option<u32>,
    /// The lane the bucket fell in, as `[start, end)`.
    pub lane: Option<[u32; 2]>,
    /// No key: the filter mints a random one and sets this sticky cookie.
    pub mint_cookie: Option<String>,
}

pub fn explain(plan: &Plan, req: &RequestSpec) -> Trace {
    let headers = req.headers();
    let list = HeaderList {
        headers: &headers,
        source_ip: req.source_ip,
    };
    let d = plan.decide(&list);
    let arm = plan.arm(d.arm);
    let (reason, rule) = match d.reason {
        Reason::Override => ("override", None),
        Reason::Rule(i) => (
            "rule",
            plan.rules.get(usize::from(i)).map(|r| r.name.clone()),
        ),
        Reason::Default => ("default", None),
    };
    let split = d.split.and_then(|i| plan.splits.get(usize::from(i)));
    let key_source = match (split, d.key_source) {
        (Some(s), Some(i)) => s.key.get(usize::from(i)),
        _ => None,
    };
    let key = key_source.and_then(|k| {
        use serin_policy::Request;
        let v = match k {
            KeySource::Header(n) => list.header(n),
            KeySource::Cookie(n) => list.cookie(n),
            KeySource::Query(n) => list.query(n),
        }?;
        Some(String::from_utf8_lossy(v).into_owned())
    });
    let lane = match (split, d.bucket) {
        (Some(s), Some(b)) => s
            .lanes
            .iter()
            .find(|l| l.start <= b && b < l.end)
            .map(|l| [l.start, l.end]),
        _ => None,
    };
    let mint_cookie = match (split, d.mint_key) {
        (Some(s), true) => match &s.fallback {
            Fallback::RandomSticky { cookie, .. } => Some(cookie.clone()),
            Fallback::Arm { .. } => None,
        },
        _ => None,
    };
    Trace {
        arm: arm.name.clone(),
        value: arm.value.clone(),
        routing_header: plan.routing_header.clone(),
        reason,
        rule,
        split: d.split,
        key_source: key_source.map(|k| match k {
            KeySource::Header(n) => format!("header:{n}"),
            KeySource::Cookie(n) => format!("cookie:{n}"),
            KeySource::Query(n) => format!("query:{n}"),
        }),
        hash_input: key
            .as_ref()
            .and_then(|k| split.map(|s| format!("{}{k}", s.hash.prefix))),
        key,
        seed: split.filter(|_| d.hash.is_some()).map(|s| s.hash.seed),
        hash: d.hash,
        bucket: d.bucket,
        buckets: split.map(|s| match s.hash.reduce {
            Reduce::MulShift { scale } => scale,
            Reduce::Modulo { modulus } => modulus,
        }),
        lane,
        mint_cookie,
    }
}

/// The trace for people.
pub fn render(plan: &Plan, t: &Trace) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<8} {v}\n"));
    line("policy", format!("{} ({})", plan.policy, plan.digest));
    match t.reason {
        "override" => line("override", "a tester forced the arm".to_owned()),
        "rule" => line(
            "rule",
            format!("`{}` matched", t.rule.as_deref().unwrap_or("?")),
        ),
        _ => line(
            "rule",
            match plan.default {
                Action::Split { .. } if !plan.rules.is_empty() => {
                    "none matched; the default split applies".to_owned()
                }
                Action::Split { .. } => "no rules; the default split applies".to_owned(),
                Action::Pin { .. } => "none matched; the stable arm takes the request".to_owned(),
            },
        ),
    }
    if let Some(s) = t.split {
        line("split", format!("#{s}"));
        match (&t.key_source, &t.key) {
            (Some(src), Some(k)) => line("key", format!("{src} = {k:?}")),
            _ => line("key", "none present".to_owned()),
        }
        if let (Some(input), Some(seed), Some(h)) = (&t.hash_input, t.seed, t.hash) {
            line(
                "hash",
                format!("murmur3_x86_32({input:?}, seed {seed}) = {h} (0x{h:08x})"),
            );
        }
        if let (Some(b), Some(n)) = (t.bucket, t.buckets) {
            let lane = match t.lane {
                Some([s, e]) => format!("in lane [{s}, {e})"),
                None => "in no lane: the stable arm's".to_owned(),
            };
            line("bucket", format!("{b} of {n}, {lane}"));
        }
        if let Some(c) = &t.mint_cookie {
            line(
                "fallback",
                format!("the filter mints a random key, buckets it and sets cookie `{c}`"),
            );
        }
    }
    line(
        "arm",
        format!("{} ({}: {})", t.arm, t.routing_header, t.value),
    );
    out
}
