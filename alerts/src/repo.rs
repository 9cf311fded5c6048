//! Where the files this crate reads and writes are, relative to the repository root.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::contract::Contract;
use crate::rules;

/// The repository root, found once and asked for each path.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// `explicit` if given, else the workspace this crate was built in (so
    /// `cargo run -p glasshouse-alerts` works from any directory). Fails unless
    /// the root holds `alerts/slos` and `telemetry/METRICS.md`.
    pub fn locate(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        let root = match explicit {
            Some(p) => p,
            None => Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("crate has no parent directory")?.to_path_buf(),
        };
        let repo = Self { root };
        for needed in [repo.slos_dir(), repo.metrics_md()] {
            if !needed.exists() {
                bail!("{} does not look like the Glasshouse repository: {} is missing", repo.root.display(), needed.display());
            }
        }
        Ok(repo)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn slos_dir(&self) -> PathBuf {
        self.root.join("alerts/slos")
    }

    /// What the local Prometheus loads (`rule_files: [<repo>/alerts/rules/*.yaml]`).
    pub fn rules_dir(&self) -> PathBuf {
        self.root.join("alerts/rules")
    }

    pub fn runbooks_dir(&self) -> PathBuf {
        self.root.join("alerts/runbooks")
    }

    /// promtool unit-test files (`promtool test rules`).
    pub fn promtool_tests_dir(&self) -> PathBuf {
        self.root.join("alerts/tests/promtool")
    }

    pub fn metrics_md(&self) -> PathBuf {
        self.root.join("telemetry/METRICS.md")
    }

    pub fn proposed_metrics_md(&self) -> PathBuf {
        self.root.join("alerts/PROPOSED_METRICS.md")
    }

    /// The infrastructure exporters' series that rules and dashboards may read.
    pub fn infra_metrics_md(&self) -> PathBuf {
        self.root.join("alerts/INFRA_METRICS.md")
    }

    pub fn alertmanager_config(&self) -> PathBuf {
        self.root.join("deploy/local/config/alertmanager.yml")
    }

    /// The naming contract: METRICS.md, the proposals, the exporter series, and every name recorded
    /// by a rule in `alerts/rules/`.
    pub fn contract(&self) -> anyhow::Result<Contract> {
        let md = std::fs::read_to_string(self.metrics_md()).with_context(|| format!("read {}", self.metrics_md().display()))?;
        let mut c = Contract::from_metrics_md(&md)?;
        let proposed = self.proposed_metrics_md();
        if proposed.exists() {
            let text = std::fs::read_to_string(&proposed).with_context(|| format!("read {}", proposed.display()))?;
            c.add_proposed(&text)?;
        }
        let infra =
            std::fs::read_to_string(self.infra_metrics_md()).with_context(|| format!("read {}", self.infra_metrics_md().display()))?;
        c.add_infra(&infra)?;
        let files = rules::load_dir(&self.rules_dir())?;
        c.add_recorded(&rules::recorded_names(&files));
        Ok(c)
    }

    /// `path` relative to the root, for messages.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }
}
