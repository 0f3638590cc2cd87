//! What the subcommands share: the data options, and the lines they print
//! about inputs, bands and publications.

use std::path::{Path, PathBuf};

use crate::util::thousands;

/// Options shared by the commands that read a data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data directory with accounts and opportunities (.csv or .parquet),
    /// optionally customers and triggers.
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// TOML config mapping the CRM's column and stage names onto the contract
    /// and setting the knobs (see data/examples/). Defaults apply without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

impl DataArgs {
    pub fn config(&self) -> anyhow::Result<crate::config::ValidConfig> {
        Ok(crate::config::ValidConfig::load(self.config.as_deref())?)
    }

    /// `icp SUB --data D --config C`: a command the tool suggests, with the
    /// user's own data and config, so it runs as printed.
    pub fn command(&self, sub: &str) -> String {
        let mut c = format!("icp {sub} --data {}", shell_quoted(&self.data));
        if let Some(cfg) = &self.config {
            c.push_str(&format!(" --config {}", shell_quoted(cfg)));
        }
        c
    }
}

/// A path as a POSIX shell reads it back: as it is when it holds only
/// characters no shell treats specially, else in single quotes.
pub fn shell_quoted(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:@%+=,".contains(c));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The model file: the one given, or the active model's.
pub fn model_path(given: Option<&Path>, reports: &Path) -> anyhow::Result<PathBuf> {
    match given {
        Some(m) => Ok(m.to_path_buf()),
        None => match crate::review::active_model(reports)? {
            Some(p) => Ok(p),
            None => anyhow::bail!(
                "no active model in {}: approve a run first (icp approve RUN --by NAME), \
                 or pass an explicit model file with --model",
                reports.display()
            ),
        },
    }
}

/// Lines saying how many rows each input had, used and rejected.
pub fn input_lines(inputs: &[crate::io::load::InputFile]) -> Vec<String> {
    inputs
        .iter()
        .map(|i| {
            format!(
                "  {:<14} {:>10} rows read, {:>10} used, {:>8} rejected  ({})",
                i.table,
                thousands(i.rows),
                thousands(i.used),
                thousands(i.rejected),
                i.file
            )
        })
        .collect()
}

/// "accounts: 1,234 high, ..." from the manifest counts.
pub fn band_line(counts: &[(String, usize)]) -> String {
    let c = |k: &str| counts.iter().find(|x| x.0 == k).map(|x| x.1).unwrap_or(0);
    let [high, medium, low] = crate::domain::Band::NAMES;
    let unscored = crate::domain::Band::UNSCORED;
    let key = crate::stages::segments::band_count_key;
    format!(
        "accounts: {} {high}, {} {medium}, {} {low}, {} {unscored} (too little data)",
        thousands(c(&key(high))),
        thousands(c(&key(medium))),
        thousands(c(&key(low))),
        thousands(c(&key(unscored)))
    )
}

/// One line on what a publication did.
pub fn publication_line(p: &crate::feed::Published) -> String {
    let counts: Vec<String> = p
        .counts
        .iter()
        .map(|(s, n)| format!("{s} {}", crate::util::thousands(*n)))
        .collect();
    let actions: Vec<String> = p
        .actions
        .iter()
        .map(|(a, n)| format!("{} {a}", crate::util::thousands(*n)))
        .collect();
    format!(
        "published: {} (publication {}{}; a copy in {})\n  changes: {}\n  segments: {}",
        p.dir.display(),
        p.id,
        p.previous
            .as_ref()
            .map(|x| format!(", replacing {x}"))
            .unwrap_or_else(|| ", the first".into()),
        p.kept.display(),
        actions.join(", "),
        counts.join(", ")
    )
}
