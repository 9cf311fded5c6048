//! Helpers shared by the alerts crate's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use glasshouse_alerts::repo::Repo;

/// The real repository (the workspace this crate is built in).
pub fn repo() -> Repo {
    Repo::locate(None).expect("locate the repository")
}

/// A scratch directory unique to this test, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the parts of the repository the alerts checks read (`alerts/`
/// without Rust sources, `telemetry/METRICS.md`, the Alertmanager config), so a
/// test can break one file and see the check catch it without touching the tree.
pub fn scratch_repo() -> (TempDir, Repo) {
    let real = repo();
    let tmp = TempDir::new("glasshouse-alerts-repo");
    for dir in ["alerts/slos", "alerts/rules", "alerts/runbooks", "alerts/tests/promtool"] {
        copy_dir(&real.root().join(dir), &tmp.path().join(dir));
    }
    for file in ["telemetry/METRICS.md", "alerts/PROPOSED_METRICS.md", "alerts/INFRA_METRICS.md", "deploy/local/config/alertmanager.yml"] {
        // The proposals file is optional (absent when every proposal was adopted).
        if !real.root().join(file).exists() {
            continue;
        }
        let target = tmp.path().join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(real.root().join(file), &target).unwrap();
    }
    let repo = Repo::locate(Some(tmp.path().to_path_buf())).expect("scratch repo");
    (tmp, repo)
}

/// Replaces `from` by `to` in `path`, failing the test if `from` is absent
/// (so a test never silently breaks nothing).
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} does not contain {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}
