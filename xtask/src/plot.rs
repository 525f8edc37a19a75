//! The demo's plot: the canary's weight as the ramp sets it (a step line, each step labelled),
//! the canary's measured share and error rate, a band of the rollout state under the time axis,
//! and the fault and the rollback marked. SVG written by hand: a plotting library would be the
//! demo's heaviest dependency for three lines and a band.

use std::fmt::Write;

use crate::demo::{ROLLED_BACK, Second, state_name};

const W: f64 = 760.0;
const H: f64 = 372.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = W - 24.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 300.0;
const BAND_TOP: f64 = 332.0;
const BAND_H: f64 = 20.0;

const ROLLBACK_LABEL: &str = "rolled back: all traffic to stable";

const WEIGHT: &str = "#2a9d3f";
const SHARE: &str = "steelblue";
const ERRORS: &str = "crimson";
const FAULT: &str = "darkorange";
const ROLLBACK: &str = "#d62728";

fn state_color(state: f64) -> &'static str {
    match state as u8 {
        1 => "#9ecae1",
        2 => "#fdae6b",
        3 => "#a1d99b",
        4 => "#fc9272",
        _ => "#e0e0e0",
    }
}

/// `5%`, `12.5%`.
fn pct(v: f64) -> String {
    format!("{}%", (v * 100.0).round() / 100.0)
}

pub fn rollout_svg(policy: &str, rows: &[Second], fault_at: Option<f64>) -> String {
    let t_max = rows.last().map_or(1.0, |r| r.at).max(1.0);
    let top_value = rows
        .iter()
        .map(|r| {
            r.canary_share
                .max(r.canary_error_rate)
                .max(r.weight.unwrap_or(0.0))
        })
        .fold(10.0_f64, f64::max)
        * 1.15; // headroom for the markers' labels
    let y_step = if top_value <= 20.0 { 5.0 } else { 10.0 };
    let y_max = (top_value / y_step).ceil() * y_step;
    let x = |t: f64| LEFT + (RIGHT - LEFT) * t / t_max;
    let y = |v: f64| BOTTOM - (BOTTOM - TOP) * v / y_max;

    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="22" font-size="15">serin demo: {policy}: ramp, fault, rollback</text>
<line x1="{LEFT}" y1="40" x2="{l1}" y2="40" stroke="{WEIGHT}" stroke-width="2.5"/><text x="{lt1}" y="44">canary weight (ramp step)</text>
<line x1="{l2}" y1="40" x2="{l2e}" y2="40" stroke="{SHARE}" stroke-width="2"/><text x="{lt2}" y="44">canary share of requests</text>
<line x1="{l3}" y1="40" x2="{l3e}" y2="40" stroke="{ERRORS}" stroke-width="2"/><text x="{lt3}" y="44">canary error rate</text>
"##,
        l1 = LEFT + 24.0,
        lt1 = LEFT + 30.0,
        l2 = LEFT + 210.0,
        l2e = LEFT + 234.0,
        lt2 = LEFT + 240.0,
        l3 = LEFT + 420.0,
        l3e = LEFT + 444.0,
        lt3 = LEFT + 450.0,
    );

    // Axes, grid and ticks.
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{RIGHT}" y2="{0:.1}" stroke="#e6e6e6"/><text x="{1}" y="{2:.1}" text-anchor="end">{3}</text>"##,
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            pct(v)
        );
        v += y_step;
    }
    let t_step = if t_max <= 30.0 { 2.0 } else { 5.0 };
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{BOTTOM}" x2="{0:.1}" y2="{1}" stroke="black"/><text x="{0:.1}" y="{2}" text-anchor="middle">{t}</text>"##,
            x(t),
            BOTTOM + 4.0,
            BOTTOM + 17.0
        );
        t += t_step;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="black"/><text x="{RIGHT}" y="{0}" text-anchor="end">time (s)</text>"##,
        BOTTOM + 17.0 + 12.0
    );

    // The state band: one segment per run of equal (state, weight), from the sample that first
    // shows it to the next run's (the first from 0), as the weight's step line.
    let _ = writeln!(
        svg,
        r##"<text x="{0}" y="{1}" text-anchor="end">state</text>"##,
        LEFT - 6.0,
        BAND_TOP + 14.0
    );
    let mut i = 0;
    while i < rows.len() {
        let key = (rows[i].state, rows[i].weight);
        let mut j = i;
        while j + 1 < rows.len() && (rows[j + 1].state, rows[j + 1].weight) == key {
            j += 1;
        }
        let from = if i == 0 { 0.0 } else { rows[i].at };
        let to = rows.get(j + 1).map_or(t_max, |r| r.at);
        let (x0, x1) = (x(from), x(to));
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{BAND_TOP}" width="{0:.1}" height="{BAND_H}" fill="{1}" stroke="white"/>"##,
            (x1 - x0).max(0.0),
            state_color(key.0)
        );
        let label = match (key.0 as u8, key.1) {
            (1 | 2, Some(w)) => format!("{} {}", state_name(key.0), pct(w)),
            _ => state_name(key.0).to_lowercase(),
        };
        if x1 - x0 >= 7.0 * label.len() as f64 {
            let _ = writeln!(
                svg,
                r##"<text x="{0:.1}" y="{1}" text-anchor="middle">{label}</text>"##,
                (x0 + x1) / 2.0,
                BAND_TOP + 14.0
            );
        }
        i = j + 1;
    }

    // The fault and the rollback.
    if let Some(t) = fault_at {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1}" stroke="{FAULT}" stroke-dasharray="4"/><text x="{2:.1}" y="{3}" fill="{FAULT}" text-anchor="end">fault injected</text>"##,
            x(t),
            BAND_TOP + BAND_H,
            x(t) - 4.0,
            TOP + 12.0
        );
    }
    if let Some(r) = rows.iter().find(|r| r.state == ROLLED_BACK) {
        let room = x(r.at) + 4.0 + 6.5 * ROLLBACK_LABEL.len() as f64 <= RIGHT;
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1}" stroke="{ROLLBACK}" stroke-width="1.5" stroke-dasharray="4"/><text x="{2:.1}" y="{3}" fill="{ROLLBACK}" text-anchor="{4}">{5}</text>"##,
            x(r.at),
            BAND_TOP + BAND_H,
            x(r.at) + if room { 4.0 } else { -4.0 },
            TOP + 28.0,
            if room { "start" } else { "end" },
            ROLLBACK_LABEL
        );
    }

    // The ramp's weight as a step line, each step labelled where it starts.
    let mut path = String::new();
    let mut previous: Option<f64> = None;
    for r in rows {
        let Some(w) = r.weight else { continue };
        match previous {
            None => {
                let _ = write!(path, "M{:.1},{:.1} H{:.1}", x(0.0), y(w), x(r.at));
                label_step(&mut svg, x(0.0) + 4.0, y(w), w);
            }
            Some(p) if p != w => {
                let _ = write!(path, " H{:.1} V{:.1}", x(r.at), y(w));
                if r.state != ROLLED_BACK {
                    label_step(&mut svg, x(r.at) + 4.0, y(w), w);
                }
            }
            Some(_) => {
                let _ = write!(path, " H{:.1}", x(r.at));
            }
        }
        previous = Some(w);
    }
    let _ = writeln!(
        svg,
        r##"<path d="{path}" fill="none" stroke="{WEIGHT}" stroke-width="2.5" stroke-linejoin="round"/>"##
    );

    // A row's share and error rate are measured over the second before it: drawn at its middle.
    let line = |f: &dyn Fn(&Second) -> f64| {
        let mut before = 0.0;
        rows.iter()
            .map(|r| {
                let point = format!("{:.1},{:.1}", x((before + r.at) / 2.0), y(f(r)));
                before = r.at;
                point
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="{SHARE}" stroke-width="2" points="{}"/>"##,
        line(&|r| r.canary_share)
    );
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="{ERRORS}" stroke-width="2" points="{}"/>"##,
        line(&|r| r.canary_error_rate)
    );
    svg.push_str("</svg>\n");
    svg
}

fn label_step(svg: &mut String, x: f64, y: f64, weight: f64) {
    let _ = writeln!(
        svg,
        r##"<text x="{x:.1}" y="{0:.1}" fill="{WEIGHT}" font-weight="bold">step {1}</text>"##,
        y - 6.0,
        pct(weight)
    );
}

/// `cargo xtask demo --fleet`'s plot: one band per proxy, coloured by its rollout state over
/// time, and the fault marked.
pub fn fleet_svg(policy: &str, rows: &[(f64, Vec<f64>)], fault_at: Option<f64>) -> String {
    let end = rows.last().map_or(1.0, |(t, _)| t.max(1.0));
    let x = |t: f64| LEFT + (RIGHT - LEFT) * t / end;
    let proxies = rows.first().map_or(0, |(_, s)| s.len());
    let height = TOP + 40.0 * proxies as f64 + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15">{policy}: each proxy's rollout state, fleet mode</text>"#
    );
    for p in 0..proxies {
        let y = TOP + 40.0 * p as f64;
        let _ = writeln!(
            out,
            r#"<text x="8" y="{}">proxy {}</text>"#,
            y + 14.0,
            p + 1
        );
        for w in rows.windows(2) {
            let (t0, s0) = (&w[0].0, &w[0].1);
            let t1 = w[1].0;
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{y}" width="{:.1}" height="{BAND_H}" fill="{}"/>"#,
                x(*t0),
                (x(t1) - x(*t0)).max(0.5),
                state_color(s0[p])
            );
        }
    }
    let axis = TOP + 40.0 * proxies as f64 + 4.0;
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{axis}" x2="{RIGHT}" y2="{axis}" stroke="black"/><text x="{RIGHT}" y="{}" text-anchor="end">{end:.0} s</text>"#,
        axis + 16.0
    );
    if let Some(f) = fault_at {
        let _ = writeln!(
            out,
            r#"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{axis}" stroke="{FAULT}" stroke-dasharray="4 3"/><text x="{0:.1}" y="{1}" fill="{FAULT}">canary fails</text>"#,
            x(f),
            TOP - 8.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" fill="{ROLLBACK}">red: {ROLLBACK_LABEL}</text>"#,
        axis + 36.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(at: f64, weight: f64, state: f64, share: f64, errors: f64) -> Second {
        Second {
            at,
            requests: 1000,
            canary_share: share,
            canary_error_rate: errors,
            weight: Some(weight),
            state,
        }
    }

    #[test]
    fn the_plot_shows_the_ramp_steps_the_state_and_the_rollback() {
        let rows = vec![
            second(1.0, 5.0, 1.0, 5.0, 0.0),
            second(2.0, 10.0, 1.0, 7.0, 0.0),
            second(3.0, 25.0, 1.0, 12.0, 0.0),
            second(4.0, 25.0, 1.0, 25.0, 12.0),
            second(5.0, 0.0, ROLLED_BACK, 10.0, 14.0),
            second(6.0, 0.0, ROLLED_BACK, 0.0, 0.0),
        ];
        let svg = rollout_svg("p.toml", &rows, Some(3.5));
        for want in [
            "step 5%",
            "step 10%",
            "step 25%",
            "fault injected",
            "rolled back: all traffic to stable",
        ] {
            assert!(svg.contains(want), "no `{want}` in\n{svg}");
        }
        // Two steps up and the drop to 0% at the rollback.
        let path = svg.split("<path d=\"").nth(1).unwrap();
        let path = &path[..path.find('"').unwrap()];
        assert_eq!(path.matches(" V").count(), 3, "{path}");
        assert!(!svg.contains("step 0%"), "the rollback is no ramp step");
        // One band segment per (state, weight): 5%, 10%, 25%, rolled back.
        assert_eq!(svg.matches(r#"height="20""#).count(), 4, "{svg}");
        assert_eq!(svg.matches(state_color(ROLLED_BACK)).count(), 1);
    }
}
