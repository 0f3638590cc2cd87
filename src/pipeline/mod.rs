//! Layer 9, orchestration: one run ([`run`]) or one scoring ([`score`])
//! from inputs to a published directory, with the run directory written
//! whole or not at all. The `cmd` leaves parse arguments, call in here and
//! print; this layer prints nothing but warnings.

use std::path::{Path, PathBuf};

use crate::util::thousands;

pub mod run;
pub mod score;

/// Stop when no account row survived the checks: there is nothing to score.
/// `lister` is the command that lists the rejects, with the user's own
/// options, when there is one.
pub fn require_accounts(
    data: &crate::io::load::Dataset,
    lister: Option<String>,
) -> anyhow::Result<()> {
    require_rows(&data.accounts.input, lister)
}

pub fn require_rows(a: &crate::io::load::InputFile, lister: Option<String>) -> anyhow::Result<()> {
    if a.used == 0 {
        anyhow::bail!(
            "{}: no usable account rows ({} read, {} rejected){}",
            a.file,
            a.rows,
            a.rejected,
            lister
                .map(|c| format!("; `{c}` lists the rejects"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Exit code of `icp validate` when the data cannot train a model yet
/// (1 is any other error).
pub const EXIT_NOT_READY: u8 = 2;

/// The verdict of `icp validate` and of `icp run` at pilot size when the
/// data is not ready to train (exit status [`EXIT_NOT_READY`]).
#[derive(Debug, thiserror::Error)]
#[error("the data is not ready to train")]
pub struct NotReady;

/// What the loader did beyond using and rejecting rows, read once from the
/// rejects: stages the config does not map and cells read as missing.
pub struct LoadReport {
    /// (stage, deals), most first
    pub unknown_stages: Vec<(String, usize)>,
    /// (file, column, cells, an example value)
    pub cells: Vec<(String, String, usize, String)>,
}

impl LoadReport {
    pub fn of(data: &crate::io::load::Dataset) -> anyhow::Result<LoadReport> {
        Ok(LoadReport {
            unknown_stages: crate::io::load::unknown_stages(&data.rejects)?,
            cells: crate::io::load::notes_by_column(&data.rejects)?,
        })
    }

    /// The summary's lines, where the user looks first: footers skipped,
    /// cells read as missing, unmapped stages (with the lines that map
    /// them), columns the config excludes, and the date the data is as of.
    pub fn lines(
        &self,
        data: &crate::io::load::Dataset,
        as_of: Option<chrono::NaiveDate>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for i in data.inputs() {
            if i.footer_lines > 0 {
                out.push(format!(
                    "  {}: {} report footer lines after the data skipped (not rows)",
                    i.file, i.footer_lines
                ));
            }
        }
        for (file, column, n, example) in &self.cells {
            out.push(format!(
                "  {file}: {} cells of `{column}` read as missing (for example {example:?}; rejects.csv lists each, the rows are used)",
                thousands(*n)
            ));
        }
        if !self.unknown_stages.is_empty() {
            out.push(format!(
                "  {} deals rejected for a stage the config does not map; to use them, add to the config's [outcomes]:",
                thousands(self.unmapped_deals())
            ));
            out.extend(
                crate::io::load::outcome_lines(&self.unknown_stages)
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
        }
        if !data.excluded_columns.is_empty() {
            out.push(format!(
                "  {}: {} columns excluded by the config's [features] exclude, never read: {}",
                data.accounts.input.file,
                data.excluded_columns.len(),
                data.excluded_columns.join(", ")
            ));
        }
        if let Some(d) = as_of {
            out.push(format!(
                "data as of {d} (the newest closed, created, churn or trigger date; open deals' expected close dates are not used)"
            ));
        }
        out
    }

    fn unmapped_deals(&self) -> usize {
        self.unknown_stages.iter().map(|u| u.1).sum()
    }

    /// The brief's words for what was left out or read as missing.
    pub fn caveats(&self) -> Vec<String> {
        // "name: count, name: count"
        let listed = |items: &mut dyn Iterator<Item = (&String, usize)>| {
            items
                .map(|(name, n)| format!("{name}: {}", thousands(n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = Vec::new();
        if !self.unknown_stages.is_empty() {
            out.push(format!(
                "{} deals whose stage the config does not map ({})",
                thousands(self.unmapped_deals()),
                listed(&mut self.unknown_stages.iter().map(|(s, n)| (s, *n)))
            ));
        }
        if !self.cells.is_empty() {
            out.push(format!(
                "{} unreadable or out-of-range number cells, read as missing ({})",
                thousands(self.cells.iter().map(|c| c.2).sum()),
                listed(&mut self.cells.iter().map(|(_, c, n, _)| (c, *n)))
            ));
        }
        out
    }
}

/// Write a run directory with `write`, then move it into place; on any error
/// the temporary directory is removed and nothing is published.
pub fn publish(
    dest: &Path,
    kind: &str,
    model_id: Option<String>,
    inputs: Vec<crate::io::load::InputFile>,
    write: impl FnOnce(&mut crate::io::publish::RunWriter) -> anyhow::Result<Vec<(String, usize)>>,
) -> anyhow::Result<(PathBuf, Vec<(String, usize)>)> {
    publish_with(dest, kind, model_id, |w| Ok((inputs, write(w)?)))
}

/// [`publish`] for writers that learn the input row counts as they go.
pub fn publish_with(
    dest: &Path,
    kind: &str,
    model_id: Option<String>,
    write: impl FnOnce(
        &mut crate::io::publish::RunWriter,
    ) -> anyhow::Result<(Vec<crate::io::load::InputFile>, Vec<(String, usize)>)>,
) -> anyhow::Result<(PathBuf, Vec<(String, usize)>)> {
    let mut trace = crate::util::progress::Trace::start();
    let mut w = crate::io::publish::RunWriter::create(dest)?;
    trace.lap("publish: create");
    match write(&mut w) {
        Ok((inputs, counts)) => {
            trace.lap("publish: files");
            let dir = w.finish(kind, model_id, inputs, counts.clone())?;
            trace.lap("publish: manifest and swap");
            Ok((dir, counts))
        }
        Err(e) => {
            w.abandon();
            Err(e)
        }
    }
}
