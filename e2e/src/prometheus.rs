//! A real Prometheus (Debian's `prometheus`, installed by `cargo xtask tools`) as a process:
//! it scrapes the front Envoys' admin `/stats/prometheus` and answers fleet mode's queries.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Start scraping `targets` (admin ports) every `scrape_ms`, listening on `port`; returns
    /// once Prometheus says it is ready.
    pub fn start(port: u16, targets: &[u16], scrape_ms: u32) -> Result<Prometheus, String> {
        Prometheus::start_with_rules(port, targets, scrape_ms, None)
    }

    /// [`Prometheus::start`], with a rules file's text loaded (what `serin emit prometheus`
    /// writes: the alerts, and the fleet's recording rules for `query = "recorded"`).
    pub fn start_with_rules(
        port: u16,
        targets: &[u16],
        scrape_ms: u32,
        rules: Option<&str>,
    ) -> Result<Prometheus, String> {
        let program = std::env::var_os("SERIN_PROMETHEUS").unwrap_or_else(|| "prometheus".into());
        let dir =
            std::env::temp_dir().join(format!("serin-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let targets: Vec<String> = targets
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        // The native backend's names renamed to the proxy-wasm filter's, as the observability
        // guide tells users to (a no-op for filter.wasm).
        let (regex, replacement) = serin_policy::catalogue::NATIVE_RELABEL;
        let rule_files = match rules {
            Some(text) => {
                let path = dir.join("rules.yaml");
                std::fs::write(&path, text).map_err(|e| e.to_string())?;
                format!("rule_files: [\"{}\"]\n", path.display())
            }
            None => String::new(),
        };
        let config = format!(
            "{rule_files}global:\n  scrape_interval: {scrape_ms}ms\n  evaluation_interval: {scrape_ms}ms\n\
             scrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  \
             metric_relabel_configs:\n  - {{ source_labels: [__name__], regex: \"{regex}\", \
             target_label: __name__, replacement: \"{replacement}\" }}\n  \
             static_configs:\n  - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let child = Command::new(&program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.to_string_lossy()))?;
        let p = Prometheus { child, port, dir };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let ready = ureq::get(&format!("http://127.0.0.1:{port}/-/ready"))
                .timeout(Duration::from_secs(1))
                .call()
                .is_ok();
            if ready {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err("Prometheus did not become ready within 30 s".into())
    }

    /// Wait until a query for `series` returns one series per target, at most `within`: the
    /// first scrapes land a few seconds after Prometheus is ready, and a test that times how
    /// fast fleet evidence travels starts its clock once it can travel.
    pub fn wait_for_series(&self, series: &str, targets: usize, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            let answer = ureq::get(&format!("http://127.0.0.1:{}/api/v1/query", self.port))
                .query("query", &format!("count({series})"))
                .timeout(Duration::from_secs(1))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .unwrap_or_default();
            if answer.contains(&format!(",\"{targets}\"]")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Stop it (a test of an outage).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
