//! Records what `ctrack --version` and `ctrack_build_info` report: the git
//! commit the binary was built from and the DPDK version it was built
//! against (pkg-config's `libdpdk`; Debian's shared libraries keep that
//! version at run time). Either may be set from outside (`CTRACK_GIT_COMMIT`,
//! `CTRACK_DPDK_VERSION`) for builds from a source tarball; otherwise a
//! missing git or pkg-config gives `unknown`, never a failed build.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CTRACK_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=CTRACK_DPDK_VERSION");
    let commit = std::env::var("CTRACK_GIT_COMMIT").ok().or_else(|| {
        // Rebuild when HEAD moves: HEAD itself, the branch it names, and
        // packed-refs (paths resolved by git, so worktrees work too).
        let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
        if let Some(r) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(r);
        }
        for w in &watch {
            if let Some(p) = run("git", &["rev-parse", "--git-path", w]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        // The commit only: uncommitted changes are not marked, as this
        // script does not re-run when a source file changes.
        run("git", &["rev-parse", "--short=12", "HEAD"])
    });
    let dpdk = std::env::var("CTRACK_DPDK_VERSION").ok().or_else(|| {
        if std::env::var_os("CARGO_FEATURE_DPDK").is_none() {
            return Some("none".to_string());
        }
        run("pkg-config", &["--modversion", "libdpdk"])
    });
    println!(
        "cargo:rustc-env=CTRACK_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!(
        "cargo:rustc-env=CTRACK_DPDK_VERSION={}",
        dpdk.unwrap_or_else(|| "unknown".into())
    );
}
