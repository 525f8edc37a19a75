//! The demo's plot: canary share and canary error rate over time, the fault and the rollback
//! marked. A few lines of SVG by hand: a plotting library would be the demo's heaviest
//! dependency for two polylines.

use std::fmt::Write;

use crate::demo::Second;

const W: f64 = 720.0;
const H: f64 = 320.0;
const PAD: f64 = 48.0;

pub fn rollout_svg(rows: &[Second], fault_at: Option<f64>) -> String {
    let t_max = rows.last().map_or(1.0, |r| r.at).max(1.0);
    let y_max = rows
        .iter()
        .map(|r| r.canary_share.max(r.canary_error_rate))
        .fold(10.0_f64, f64::max)
        .ceil();
    let x = |t: f64| PAD + (W - 2.0 * PAD) * t / t_max;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * v / y_max;
    let line = |f: &dyn Fn(&Second) -> f64| {
        rows.iter()
            .map(|r| format!("{:.1},{:.1}", x(r.at), y(f(r))))
            .collect::<Vec<_>>()
            .join(" ")
    };

    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{PAD}" y="20" font-size="14">serin demo: canary share and canary error rate per second (%)</text>
<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="black"/>
<text x="{r}" y="{tb}" text-anchor="end">time (s)</text><text x="8" y="{PAD}">{y_max}%</text><text x="24" y="{b}">0</text>
"#,
        b = H - PAD,
        r = W - PAD,
        tb = H - PAD + 30.0,
    );
    if let Some(t) = fault_at {
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{PAD}" x2="{0:.1}" y2="{1}" stroke="orange" stroke-dasharray="4"/><text x="{0:.1}" y="{2}" fill="orange">fault injected</text>"#,
            x(t),
            H - PAD,
            PAD - 6.0
        );
    }
    if let Some(r) = rows.iter().find(|r| r.state == 4.0) {
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{PAD}" x2="{0:.1}" y2="{1}" stroke="red" stroke-dasharray="4"/><text x="{2:.1}" y="{3}" fill="red">rolled back</text>"#,
            x(r.at),
            H - PAD,
            x(r.at) + 4.0,
            PAD + 12.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="steelblue" stroke-width="2" points="{}"/>"#,
        line(&|r| r.canary_share)
    );
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="crimson" stroke-width="2" points="{}"/>"#,
        line(&|r| r.canary_error_rate)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{0}" y="{1}" fill="steelblue">canary share</text><text x="{0}" y="{2}" fill="crimson">canary error rate</text>"#,
        PAD + 8.0,
        PAD + 12.0,
        PAD + 28.0
    );
    svg.push_str("</svg>\n");
    svg
}
