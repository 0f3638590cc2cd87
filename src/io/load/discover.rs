//! Finding the input files in a data directory (`stem.csv`, `stem.parquet` or
//! the config's `[files]` names), and the hint naming a shipped mapping when
//! a required file is missing.

use std::path::{Path, PathBuf};

use crate::config::ValidConfig;
use crate::error::{IcpError, Result};

/// The mappings shipped in `data/examples/`, built in so that a folder
/// exported from one of those CRMs is recognised wherever the binary runs.
const SHIPPED_MAPPINGS: &[(&str, &str)] = &[
    (
        "data/examples/salesforce.toml",
        include_str!("../../../data/examples/salesforce.toml"),
    ),
    (
        "data/examples/hubspot.toml",
        include_str!("../../../data/examples/hubspot.toml"),
    ),
    (
        "data/examples/maven-crm.toml",
        include_str!("../../../data/examples/maven-crm.toml"),
    ),
];

/// What a missing accounts or opportunities file is called.
pub(super) fn expected_file(stem: &str, configured: Option<&str>) -> String {
    match configured {
        Some(name) => format!("{name} (named in the config's [files])"),
        None => format!("{stem}.csv or {stem}.parquet"),
    }
}

/// "; the folder holds accounts_report.csv and opportunities_report.csv,
/// the files of data/examples/salesforce.toml: ..." when the folder has the
/// files another shipped mapping names (and this config's files are not
/// there), else empty.
pub(super) fn mapping_hint(dir: &Path, cfg: &ValidConfig) -> String {
    for (name, text) in SHIPPED_MAPPINGS {
        let Ok(m) = toml::from_str::<crate::config::Config>(text) else {
            continue;
        };
        if m.files.accounts == cfg.files.accounts
            && m.files.opportunities == cfg.files.opportunities
        {
            continue; // the mapping in use
        }
        let (Some(a), Some(o)) = (
            m.files.accounts.as_deref(),
            m.files.opportunities.as_deref(),
        ) else {
            continue;
        };
        if dir.join(a).is_file() && dir.join(o).is_file() {
            return format!(
                "; the folder holds {a} and {o}, the files {name} maps: run with --config {name} (or a copy of it)"
            );
        }
    }
    String::new()
}

/// Find `stem.csv` / `stem.parquet` in `dir`, or the file the config names.
pub(super) fn locate(dir: &Path, stem: &str, configured: Option<&str>) -> Result<Option<PathBuf>> {
    if let Some(name) = configured {
        let p = dir.join(name);
        if !p.is_file() {
            return Err(IcpError::MissingInput {
                dir: dir.into(),
                what: stem.into(),
                expected: format!("{name} (named in the config's [files])"),
                hint: String::new(),
            });
        }
        return Ok(Some(p));
    }
    let csv = dir.join(format!("{stem}.csv"));
    let pq = dir.join(format!("{stem}.parquet"));
    match (csv.is_file(), pq.is_file()) {
        (true, true) => Err(IcpError::read(
            dir,
            format!(
                "both {stem}.csv and {stem}.parquet exist; keep one, or name it in the config's [files]"
            ),
        )),
        (true, false) => Ok(Some(csv)),
        (false, true) => Ok(Some(pq)),
        (false, false) => Ok(None),
    }
}
