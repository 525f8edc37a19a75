//! One Envoy process, stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Envoy {
    child: Child,
    pub admin_port: u16,
    dir: tempfile::TempDir,
}

static NEXT_BASE_ID: AtomicU32 = AtomicU32::new(0);

impl Envoy {
    /// Start Envoy on `config` (YAML) from directory `cwd` and wait until its admin says LIVE.
    pub fn start(
        envoy: &Path,
        config: &str,
        admin_port: u16,
        cwd: &Path,
        concurrency: u32,
    ) -> Result<Envoy, String> {
        Envoy::start_under(&[], envoy, config, admin_port, cwd, concurrency)
    }

    /// Like [`Envoy::start`], with `envoy` run by `launcher` (e.g. `valgrind --tool=callgrind`),
    /// which may make it slow to start.
    pub fn start_under(
        launcher: &[String],
        envoy: &Path,
        config: &str,
        admin_port: u16,
        cwd: &Path,
        concurrency: u32,
    ) -> Result<Envoy, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("envoy.log")).map_err(|e| e.to_string())?;
        // Distinct base ids keep concurrent Envoys (tests run in parallel) out of each other's
        // shared memory; hot restart is not used at all.
        let base_id = std::process::id() * 64 + NEXT_BASE_ID.fetch_add(1, Ordering::Relaxed) % 64;
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(envoy);
                c
            }
            None => Command::new(envoy),
        };
        let child = command
            .current_dir(cwd)
            .arg("-c")
            .arg(&config_path)
            .args(["--base-id", &base_id.to_string(), "--disable-hot-restart"])
            .args(["--concurrency", &concurrency.to_string(), "-l", "info"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", envoy.display()))?;
        let mut envoy = Envoy {
            child,
            admin_port,
            dir,
        };
        let patience = if launcher.is_empty() { 30 } else { 300 };
        envoy.wait_live(Duration::from_secs(patience))?;
        Ok(envoy)
    }

    fn wait_live(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "Envoy exited ({status}) while starting:\n{}",
                    self.problems()
                ));
            }
            if self.admin("/ready").is_ok_and(|body| body.trim() == "LIVE") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "Envoy was not LIVE within {patience:?}:\n{}",
            self.log_tail(40)
        ))
    }

    /// Ask the process to stop (SIGTERM, as Envoy expects) and wait until it has.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus, String> {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map_err(|e| e.to_string())
    }

    /// GET a path on the admin interface.
    pub fn admin(&self, path: &str) -> Result<String, String> {
        ureq::get(&format!("http://127.0.0.1:{}{path}", self.admin_port))
            .timeout(Duration::from_secs(5))
            .call()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())
    }

    /// POST to the admin interface (e.g. `/quitquitquit`).
    pub fn admin_post(&self, path: &str) -> Result<String, String> {
        ureq::post(&format!("http://127.0.0.1:{}{path}", self.admin_port))
            .call()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())
    }

    /// The process id, for the kernel's accounts (`/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Envoy's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// Envoy's warnings, errors and the filter's log lines: what explains a failure.
    pub fn problems(&self) -> String {
        let log = self.log();
        let keep = |l: &&str| {
            ["][warning]", "][error]", "][critical]", "wasm log"]
                .iter()
                .any(|k| l.contains(k))
        };
        log.lines().filter(keep).collect::<Vec<_>>().join("\n")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
