//! The entry points: a data directory or explicit files loaded into a
//! [`Dataset`], each table checked and fingerprinted, the rejects gathered.

use std::collections::BTreeMap;
use std::path::Path;

use super::accounts::{excluded_by_config, load_accounts};
use super::discover::{expected_file, locate, mapping_hint};
use super::hash::sha256_file;
use super::opportunities::{load_opportunities, newest_year};
use super::raw::read_raw;
use super::rejects::concat_rejects;
use super::side_tables::{load_customers, load_interviews, load_triggers};
use super::{ColumnKind, Dataset, Need, Table};
use crate::config::ValidConfig;
use crate::error::{IcpError, Result};

/// Load and check a data directory.
pub fn load_dir(dir: &Path, cfg: &ValidConfig, need: Need) -> Result<Dataset> {
    load_dir_with(dir, cfg, need, None)
}

/// [`load_dir`] reading extra account columns as a model was trained on them.
pub fn load_dir_with(
    dir: &Path,
    cfg: &ValidConfig,
    need: Need,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(IcpError::read(
            dir,
            "not a directory (expected a data directory holding accounts.csv and opportunities.csv, or .parquet)",
        ));
    }
    // a missing file names the shipped mapping the folder fits, if any
    let hinted = |e: IcpError| match e {
        IcpError::MissingInput {
            dir,
            what,
            expected,
            hint,
        } if hint.is_empty() => IcpError::MissingInput {
            hint: mapping_hint(&dir, cfg),
            dir,
            what,
            expected,
        },
        e => e,
    };
    let acc_path = locate(dir, "accounts", cfg.files.accounts.as_deref())
        .map_err(hinted)?
        .ok_or_else(|| IcpError::MissingInput {
            dir: dir.into(),
            what: "accounts".into(),
            expected: expected_file("accounts", cfg.files.accounts.as_deref()),
            hint: mapping_hint(dir, cfg),
        })?;
    let opp_path =
        locate(dir, "opportunities", cfg.files.opportunities.as_deref()).map_err(hinted)?;
    if need == Need::Training && opp_path.is_none() {
        return Err(IcpError::MissingInput {
            dir: dir.into(),
            what: "opportunities".into(),
            expected: expected_file("opportunities", cfg.files.opportunities.as_deref()),
            hint: mapping_hint(dir, cfg),
        });
    }
    let cust_path = locate(dir, "customers", cfg.files.customers.as_deref())?;
    let trig_path = locate(dir, "triggers", cfg.files.triggers.as_deref())?;
    let int_path = locate(dir, "interviews", cfg.files.interviews.as_deref())?;
    let mut data = load_files(
        &acc_path,
        opp_path.as_deref(),
        cust_path.as_deref(),
        trig_path.as_deref(),
        cfg,
        kind_hints,
    )?;
    if let Some(p) = int_path {
        let ids = data.accounts.df.select(["account_id"])?;
        let mut rejects = vec![data.rejects];
        data.interviews = Some(fingerprinted(
            load_interviews(&p, cfg, &ids, &mut rejects)?,
            &p,
        )?);
        data.rejects = concat_rejects(rejects)?;
    }
    Ok(data)
}

/// Load explicit files. `numeric_hints` forces extra account columns to a
/// kind (scoring with a model must read them as the model was trained).
pub fn load_files(
    accounts_path: &Path,
    opportunities: Option<&Path>,
    customers: Option<&Path>,
    triggers: Option<&Path>,
    cfg: &ValidConfig,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
) -> Result<Dataset> {
    let mut rejects = Vec::new();
    let mut trace = crate::util::progress::Trace::start();
    let raw = read_raw(accounts_path, cfg)?;
    trace.lap("read accounts");
    // the opportunities first: their newest date bounds the founded years
    let opp_raw = opportunities.map(|p| read_raw(p, cfg)).transpose()?;
    let newest = match &opp_raw {
        Some(r) => newest_year(r, cfg)?,
        None => None,
    };
    let excluded_columns = excluded_by_config(&raw, cfg);
    let (accounts, extra_columns) = load_accounts(
        raw,
        accounts_path,
        cfg,
        kind_hints,
        None,
        newest,
        &mut rejects,
    )?;
    trace.lap("check accounts");
    let accounts = fingerprinted(accounts, accounts_path)?;
    trace.lap("fingerprint accounts");
    let ids = accounts.df.select(["account_id"])?;
    let opportunities = match (opportunities, opp_raw) {
        (Some(p), Some(raw)) => Some(fingerprinted(
            load_opportunities(raw, p, cfg, &ids, &mut rejects)?,
            p,
        )?),
        _ => None,
    };
    trace.lap("opportunities");
    let customers = customers
        .map(|p| fingerprinted(load_customers(p, cfg, &ids, &mut rejects)?, p))
        .transpose()?;
    trace.lap("customers");
    let triggers = triggers
        .map(|p| fingerprinted(load_triggers(p, cfg, &ids, &mut rejects)?, p))
        .transpose()?;
    trace.lap("triggers");
    let rejects = concat_rejects(rejects)?;
    trace.lap("rejects");
    Ok(Dataset {
        accounts,
        opportunities,
        customers,
        triggers,
        interviews: None,
        rejects,
        extra_columns,
        excluded_columns,
    })
}

fn fingerprinted(mut t: Table, path: &Path) -> Result<Table> {
    t.input.sha256 = sha256_file(path)?;
    Ok(t)
}
