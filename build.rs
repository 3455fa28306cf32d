//! Build script: records the git commit the binary is built from, for
//! `faultline --version` and the `faultline_build_info` metric.
//!
//! `FAULTLINE_COMMIT` set at build time wins (a container build or a source
//! tarball has no `.git`); else `git rev-parse`; else "unknown". It never
//! fails the build: a missing git is not a reason to refuse to compile.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=FAULTLINE_COMMIT");
    let commit = std::env::var("FAULTLINE_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself (a checkout), the branch
            // it points at (a commit) and packed refs (a gc).
            // Only files that exist: cargo takes a missing one as changed
            // and would rerun this script (and rebuild) every time.
            let watch = |path: String| {
                if std::path::Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            };
            for p in ["HEAD", "packed-refs"] {
                if let Some(path) = git(&["rev-parse", "--git-path", p]) {
                    watch(path);
                }
            }
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(path) = git(&["rev-parse", "--git-path", &r])
            {
                watch(path);
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FAULTLINE_GIT_COMMIT={commit}");
}
