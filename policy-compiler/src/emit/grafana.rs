//! `serin emit grafana`: a dashboard (JSON, Grafana's schema 39) for one policy: traffic share
//! per arm, error rate, latency quantiles, outcome rate per segment value, rollout state and
//! the ramped weight, with the guards' absolute thresholds drawn as lines, and each
//! distribution guard's PSI against stable.

use serde_json::{Value, json};
use serin_policy::{GuardMetric, Plan};

use serin_policy::catalogue::guard_label;

use super::metrics::{
    self, CANARY_WEIGHT, CLASS_5XX, DURATION, OUTCOMES, OUTCOMES_POSITIVE, REQUESTS, RESETS,
    RESPONSES, ROLLOUT_STATE, STATES, ppm, slug, trim,
};

const DS: &str = "${datasource}";
const W: &str = "$__rate_interval";

fn target(expr: String, legend: &str, ref_id: usize) -> Value {
    json!({
        "datasource": { "type": "prometheus", "uid": DS },
        "expr": expr,
        "legendFormat": legend,
        "refId": char::from(b'A' + (ref_id % 26) as u8).to_string(),
    })
}

/// The legend and tooltip options Grafana's panel schemas require (`VizLegendOptions`,
/// `VizTooltipOptions`), for the time series and the state timeline alike.
fn legend() -> Value {
    json!({ "displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": [] })
}

fn tooltip() -> Value {
    json!({ "mode": "multi", "sort": "none" })
}

fn panel(
    id: usize,
    title: &str,
    unit: &str,
    x: u32,
    y: u32,
    targets: Vec<Value>,
    thresholds: &[f64],
) -> Value {
    let mut steps = vec![json!({ "color": "green", "value": null })];
    steps.extend(
        thresholds
            .iter()
            .map(|t| json!({ "color": "red", "value": t })),
    );
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "datasource": { "type": "prometheus", "uid": DS },
        "gridPos": { "h": 8, "w": 12, "x": x, "y": y },
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "thresholdsStyle": { "mode": if thresholds.is_empty() { "off" } else { "line" } }
                },
                "thresholds": { "mode": "absolute", "steps": steps },
            },
            "overrides": [],
        },
        "options": { "legend": legend(), "tooltip": tooltip() },
        "targets": targets,
    })
}

/// The guards' absolute bounds for one metric kind.
fn bounds(plan: &Plan, pick: impl Fn(&GuardMetric) -> Option<f64>) -> Vec<f64> {
    let mut v: Vec<f64> = plan.guards.iter().filter_map(|g| pick(&g.metric)).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

pub fn dashboard(plan: &Plan) -> Value {
    let mut panels = Vec::new();
    let share =
        format!("sum by (arm) (rate({REQUESTS}[{W}])) / scalar(sum(rate({REQUESTS}[{W}])))");
    panels.push(panel(
        1,
        "Traffic share per arm",
        "percentunit",
        0,
        0,
        vec![target(share, "{{arm}}", 0)],
        &[],
    ));
    let errors = format!(
        "(sum by (arm) (rate({RESPONSES}{{class=\"{CLASS_5XX}\"}}[{W}])) + (sum by (arm) (rate({RESETS}[{W}])) or sum by (arm) (rate({RESPONSES}[{W}])) * 0)) / (sum by (arm) (rate({RESPONSES}[{W}])) + (sum by (arm) (rate({RESETS}[{W}])) or sum by (arm) (rate({RESPONSES}[{W}])) * 0))"
    );
    let error_max = bounds(plan, |m| match m {
        GuardMetric::ErrorRate {
            max_ppm: Some(p), ..
        } => ppm(*p).parse().ok(),
        _ => None,
    });
    panels.push(panel(
        2,
        "Error rate (5xx and resets) per arm",
        "percentunit",
        12,
        0,
        vec![target(errors, "{{arm}}", 0)],
        &error_max,
    ));
    let mut quantiles: Vec<u32> = vec![500_000, 950_000, 990_000];
    quantiles.extend(plan.guards.iter().filter_map(|g| match g.metric {
        GuardMetric::Latency { quantile_ppm, .. } => Some(quantile_ppm),
        _ => None,
    }));
    quantiles.sort_unstable();
    quantiles.dedup();
    let latency_targets = quantiles
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let p = trim(f64::from(*q) / 10_000.0);
            target(
                format!(
                    "histogram_quantile({}, sum by (le, arm) (rate({DURATION}_bucket[{W}])))",
                    ppm(*q)
                ),
                &format!("{{{{arm}}}} p{p}"),
                i,
            )
        })
        .collect();
    let latency_max = bounds(plan, |m| match m {
        GuardMetric::Latency {
            max_ms: Some(ms), ..
        } => Some(f64::from(*ms)),
        _ => None,
    });
    panels.push(panel(
        3,
        "Latency quantiles per arm",
        "ms",
        0,
        8,
        latency_targets,
        &latency_max,
    ));
    let outcome_targets: Vec<Value> = plan
        .outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let by = if plan.segments.is_empty() { "arm" } else { "arm, segment_value" };
            let legend = if plan.segments.is_empty() {
                format!("{{{{arm}}}} {}", o.name)
            } else {
                format!("{{{{arm}}}} {} {}={{{{segment_value}}}}", o.name, plan.segments[0].name)
            };
            let sel = format!("{{outcome=\"{}\"}}", o.name.replace('\\', "\\\\").replace('"', "\\\""));
            target(
                format!(
                    "sum by ({by}) (rate({OUTCOMES_POSITIVE}{sel}[{W}])) / sum by ({by}) (rate({OUTCOMES}{sel}[{W}]))"
                ),
                &legend,
                i,
            )
        })
        .collect();
    if !outcome_targets.is_empty() {
        let title = match plan.segments.first() {
            Some(s) => format!("Outcome rate per arm and `{}`", s.name),
            None => "Outcome rate per arm".into(),
        };
        panels.push(panel(4, &title, "percentunit", 12, 8, outcome_targets, &[]));
    }
    let mappings: serde_json::Map<String, Value> = STATES
        .iter()
        .map(|(code, name)| (code.to_string(), json!({ "text": name, "index": code })))
        .collect();
    panels.push(json!({
        "id": 5,
        "type": "state-timeline",
        "title": "Rollout state",
        "datasource": { "type": "prometheus", "uid": DS },
        "gridPos": { "h": 6, "w": 12, "x": 0, "y": 16 },
        "fieldConfig": {
            "defaults": {
                "mappings": [ { "type": "value", "options": mappings } ],
                "color": { "mode": "thresholds" },
                "thresholds": { "mode": "absolute", "steps": [
                    { "color": "blue", "value": null },
                    { "color": "orange", "value": 2 },
                    { "color": "green", "value": 3 },
                    { "color": "red", "value": 4 }
                ] }
            },
            "overrides": []
        },
        "options": {
            "showValue": "auto",
            "mergeValues": true,
            "rowHeight": 0.9,
            "legend": legend(),
            "tooltip": tooltip(),
        },
        "targets": [ target(format!("max({ROLLOUT_STATE})"), "state", 0) ],
    }));
    panels.push(panel(
        6,
        "Canary weight",
        "percent",
        12,
        16,
        vec![target(format!("max({CANARY_WEIGHT}) / 100"), "weight", 0)],
        &[],
    ));
    // One panel per distribution guard: the PSI of each watched arm's histogram against
    // stable's, what ML teams read for drift, with the conventional lines at 0.1 (moderate)
    // and 0.25 (major) for reading only: the rollback is the proxies' sequential test.
    let stable = &plan.arm(plan.stable).name;
    for (i, g) in plan
        .guards
        .iter()
        .filter(|g| matches!(g.metric, GuardMetric::Distribution { .. }))
        .enumerate()
    {
        let label = guard_label(&g.name);
        let targets = g
            .arms
            .iter()
            .enumerate()
            .map(|(r, a)| {
                let arm = &plan.arm(*a).name;
                target(metrics::q::psi(arm, stable, &label, W), arm, r)
            })
            .collect();
        panels.push(panel(
            7 + i,
            &format!("`{}`: PSI against {stable}'s distribution", g.name),
            "none",
            if i % 2 == 0 { 0 } else { 12 },
            22 + 8 * (i as u32 / 2),
            targets,
            &[0.1, 0.25],
        ));
    }
    json!({
        "uid": format!("serin-{}", slug(&plan.policy)).chars().take(40).collect::<String>(),
        "title": format!("Serin: {}", plan.policy),
        "description": format!("Canary rollout of policy `{}` as Serin's filter measures it. Generated by {}.", plan.policy, super::GENERATOR),
        "tags": ["serin", "canary"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "10s",
        "time": { "from": "now-1h", "to": "now" },
        "timezone": "",
        "templating": { "list": [ {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "hide": 0,
        } ] },
        "annotations": { "list": [] },
        "links": [],
        "panels": panels,
    })
}
