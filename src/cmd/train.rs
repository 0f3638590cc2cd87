//! `icp train`: fit and evaluate; write the model artifact.

use std::path::PathBuf;

use crate::cmd::common::{DataArgs, input_lines};
use crate::io::load::{self, Need};
use crate::io::publish::RunWriter;
use crate::io::synth::read_truth;
use crate::stages::model;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory to write model.json, evaluation.json, rejects.csv and manifest.json to.
    #[arg(long, default_value = "reports/model")]
    pub out: PathBuf,
    /// Generator truth file, to report the oracle AUC (synthetic data only).
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.data.config()?;
    let data = load::load_dir(&args.data.data, &cfg, Need::Training)?;
    let truth = args.truth.as_deref().map(read_truth).transpose()?;
    let trained = model::train(&data, &cfg, truth.as_ref())?;
    let a = &trained.artifact;
    let mut w = RunWriter::create(&args.out)?;
    w.json("model.json", a)?;
    w.json("evaluation.json", &a.evaluation)?;
    w.csv_for_people("rejects.csv", &data.rejects)?;
    let dir = w.finish(
        "train",
        Some(a.model_id.clone()),
        data.inputs(),
        vec![("rejects".into(), load::rejected_rows(&data.rejects))],
    )?;
    if !args.data.quiet {
        println!("icp train: model {}", a.model_id);
        for l in input_lines(&data.inputs()) {
            println!("{l}");
        }
        println!("verdict: {}", a.evaluation.verdict);
        println!("model: {}", dir.join("model.json").display());
    }
    Ok(())
}
