//! Running commands, with the command line echoed so a CI log shows what happened.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo build ARGS` in the workspace, into `<root>/target` whatever `CARGO_TARGET_DIR` says,
/// so that the caller knows where to find what it built; returns that directory.
pub fn cargo_build(root: &Path, args: &[&str]) -> Result<PathBuf, String> {
    let target_dir = root.join("target");
    run(cargo()
        .current_dir(root)
        .arg("build")
        .args(args)
        .env("CARGO_TARGET_DIR", &target_dir))?;
    Ok(target_dir)
}

pub fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("+ {}", display(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {status}", display(cmd)))
    }
}

/// Run and capture stdout; `None` when the program is missing or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// `apt-get install` (after one `apt-get update`), through sudo when not root.
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    let as_root = |args: &[&str]| {
        let is_root = output(Command::new("id").arg("-u")).as_deref() == Some("0");
        let mut cmd = if is_root {
            Command::new(args[0])
        } else {
            Command::new("sudo")
        };
        if !is_root {
            cmd.arg(args[0]);
        }
        cmd.args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut as_root(&["apt-get", "update", "-q"]))?;
    let mut install = vec!["apt-get", "install", "-y", "-q"];
    install.extend_from_slice(packages);
    run(&mut as_root(&install))
}
