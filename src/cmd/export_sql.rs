//! `icp export-sql`: the frozen score as one SQL SELECT for a warehouse.

use std::path::PathBuf;

use crate::report::sql::{self, Dialect, SqlOptions};
use crate::stages::model::ModelArtifact;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model artifact (model.json of a run). Default: the active model, i.e.
    /// the last run approved with `icp approve`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// SQL dialect to write.
    #[arg(long, value_enum, default_value_t = Dialect::Duckdb)]
    pub dialect: Dialect,
    /// The accounts table to read, inserted as written (e.g. crm.accounts).
    /// Its columns carry the names the model was trained with (the config's mapping).
    #[arg(long, default_value = "accounts")]
    pub table: String,
    /// Write the query to this file (replaced whole) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the active model is recorded.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = crate::cmd::common::model_path(args.model.as_deref(), &args.reports)?;
    let artifact = ModelArtifact::read(&path)?;
    let q = sql::export(
        &artifact,
        &SqlOptions {
            dialect: args.dialect,
            table: args.table.clone(),
        },
    )?;
    match &args.out {
        Some(p) => crate::io::publish::write_atomic(p, q.as_bytes())?,
        None => print!("{q}"),
    }
    Ok(())
}
