//! Stage 5: score every account with a frozen model.
//!
//! The score is the account's percentile within the reference distribution
//! frozen in the model artifact (the logits of the accounts scored when the
//! model was trained), so re-scoring the same account with the same model
//! always gives the same score, whatever else is in today's file.

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::Result;
use std::fmt::Write as _;

use crate::features::{Cell, Encoded, Scorer, Variable, format_quantity};
use crate::model::{ModelArtifact, band, percentile_score, sigmoid};

pub const STATUS_SCORED: &str = "scored";
pub const BAND_UNSCORED: &str = "unscored";

/// Score `accounts` (canonical columns). Returns one row per account, sorted
/// by score (desc) then account_id, unscored accounts last.
pub fn score(artifact: &ModelArtifact, accounts: &DataFrame) -> Result<DataFrame> {
    let model = &artifact.model;
    let spec = &model.spec;
    let n_groups = spec.n_groups();
    let inputs = spec.input_columns();
    let missing: Vec<&str> = inputs
        .iter()
        .map(String::as_str)
        .filter(|c| accounts.column(c).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(crate::IcpError::Invalid(format!(
            "the accounts lack the column(s) `{}` that model {} uses as features (map them in the config, or score with a model trained without them)",
            missing.join("`, `"),
            artifact.model_id
        )));
    }
    let text = |c: &str| -> Result<Column> {
        Ok(match accounts.column(c) {
            Ok(v) => v.cast(&DataType::String)?,
            Err(_) => Column::full_null(c.into(), accounts.height(), &DataType::String),
        })
    };
    let n = accounts.height();
    // share of the model's inputs known, per account (0/1 sums are exact)
    let known: Vec<u32> = {
        let mut k = vec![0u32; n];
        for c in &inputs {
            let col = accounts.column(c)?.as_materialized_series().rechunk();
            if col.null_count() == 0 {
                k.iter_mut().for_each(|k| *k += 1);
            } else {
                for (k, v) in k.iter_mut().zip(col.is_not_null().iter()) {
                    *k += v.unwrap_or(false) as u32;
                }
            }
        }
        k
    };
    // as polars divides by a scalar: times its reciprocal (same bits as before)
    let inv = 1.0 / inputs.len() as f64;
    let cover: Vec<f64> = known
        .iter()
        .map(|&k| if inputs.is_empty() { 1.0 } else { k as f64 * inv })
        .collect();
    let codes = Encoded::of(spec, accounts)?;
    let scorer = Scorer::new(model, &codes);
    // raw inputs, to put each reason in plain words
    let values: Vec<Raw> = spec
        .variables
        .iter()
        .map(|v| {
            let s = accounts.column(v.column())?.as_materialized_series().rechunk();
            Ok(match v {
                Variable::Categorical { .. } => Raw::Text(s.cast(&DataType::String)?.str()?.clone()),
                Variable::Numeric { .. } => Raw::Number(s.cast(&DataType::Float64)?.f64()?.clone()),
            })
        })
        .collect::<Result<_>>()?;
    let ctx = Describe {
        artifact,
        codes: &codes,
        values: &values,
    };

    let min_cov = artifact.min_feature_coverage;
    type Row = (
        Option<i64>,
        Option<f64>,
        &'static str,
        std::borrow::Cow<'static, str>,
        String,
    );
    let per_row: Vec<Row> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0.0; n_groups], vec![false; n_groups]),
            |(groups, seen), i| {
                if cover[i] < min_cov {
                    return (
                        None,
                        None,
                        BAND_UNSCORED,
                        format!(
                            "insufficient_data: {} of {} model inputs known",
                            known[i],
                            inputs.len()
                        )
                        .into(),
                        String::new(),
                    );
                }
                let z = scorer.row(i, groups, seen);
                let p = sigmoid(z);
                let s = percentile_score(z, &artifact.reference);
                // each group's effect in percentage points of p, against a
                // typical account; the three largest, ties to the first group
                let mut top: [(f64, usize); 3] = [(f64::NAN, usize::MAX); 3];
                let mut len = 0;
                for (g, gv) in groups.iter().enumerate() {
                    let e = 100.0 * (p - sigmoid(z - gv));
                    let before = |a: &(f64, usize)| {
                        e.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&g)).is_gt()
                    };
                    let at = top[..len].iter().position(before).unwrap_or(len);
                    if at < 3 {
                        let end = len.min(2);
                        top.copy_within(at..end, at + 1);
                        top[at] = (e, g);
                        len = (len + 1).min(3);
                    }
                }
                let mut reasons = String::new();
                for &(pts, g) in &top[..len] {
                    if !reasons.is_empty() {
                        reasons.push_str("; ");
                    }
                    let what = ctx.describe(g, i);
                    if pts.abs() >= 1.0 {
                        let _ = write!(reasons, "{what}, {pts:+.0}");
                    } else {
                        let _ = write!(reasons, "{what}, {pts:+.1}");
                    }
                }
                (
                    Some(s as i64),
                    Some((p * 1e6).round() / 1e6),
                    band(s),
                    STATUS_SCORED.into(),
                    reasons,
                )
            },
        )
        .collect();
    let score: Vec<Option<i64>> = per_row.iter().map(|r| r.0).collect();
    let prob: Vec<Option<f64>> = per_row.iter().map(|r| r.1).collect();
    let bands: Vec<&str> = per_row.iter().map(|r| r.2).collect();
    let status: Vec<&str> = per_row.iter().map(|r| r.3.as_ref()).collect();
    let reasons: Vec<&str> = per_row.iter().map(|r| r.4.as_str()).collect();
    let out = DataFrame::new(
        n,
        vec![
            accounts.column("account_id")?.clone(),
            text("account_name")?,
            text("domain")?,
            Column::new("score".into(), score),
            Column::new("p_velocity_win".into(), prob),
            Column::new("band".into(), bands),
            Column::new("reasons".into(), reasons),
            Column::new("model_id".into(), vec![artifact.model_id.as_str(); n]),
            Column::new("status".into(), status),
            Column::new(
                "feature_coverage".into(),
                cover
                    .iter()
                    .map(|c| (c * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>(),
            ),
        ],
    )?;
    Ok(out
        .lazy()
        .sort_by_exprs(
            [col("score").is_null(), col("score"), col("account_id")],
            SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
        )
        .collect()?)
}

/// An input column as its variable reads it.
enum Raw {
    Text(StringChunked),
    Number(Float64Chunked),
}

/// What the reasons are written from.
struct Describe<'a> {
    artifact: &'a ModelArtifact,
    codes: &'a Encoded,
    values: &'a [Raw],
}

impl Describe<'_> {
    /// Plain words for account `i`'s value of reason group `g`.
    fn describe(&self, g: usize, i: usize) -> String {
        let spec = &self.artifact.model.spec;
        let nv = spec.variables.len();
        if g < nv {
            return self.describe_value(g, i);
        }
        let k = g - nv;
        let it = &spec.interactions[k];
        let both = format!(
            "{} and {}",
            spec.describe_cell(&it.a),
            spec.describe_cell(&it.b)
        );
        if self.codes.in_cell(spec, &it.a, i) && self.codes.in_cell(spec, &it.b, i) {
            both
        } else {
            format!("not ({both})")
        }
    }

    fn describe_value(&self, var: usize, i: usize) -> String {
        let spec = &self.artifact.model.spec;
        let v = &spec.variables[var];
        let name = v.display_name();
        match (v, &self.values[var]) {
            (Variable::Categorical { levels, .. }, Raw::Text(t)) => match t.get(i) {
                None => format!("{name} unknown"),
                Some(s) => match self.codes.cell(var, i) {
                    Some(l) => format!("{name} = {}", levels[l as usize]),
                    None => format!("{name} = {s} (rare)"),
                },
            },
            (
                Variable::Numeric {
                    derived_age,
                    column,
                    ..
                },
                Raw::Number(x),
            ) => match x.get(i) {
                None => format!("{name} unknown"),
                Some(x) if *derived_age => {
                    let age = (spec.reference_year as f64 - x).max(0.0);
                    format!("{name} = {}", format_quantity("founded_year", age))
                }
                Some(x) => format!("{name} = {}", format_quantity(column, x)),
            },
            _ => format!("{name} unknown"),
        }
    }
}

/// Plain words for a cell, used by signals (re-exported for the brief).
pub fn describe_cell(a: &ModelArtifact, c: &Cell) -> String {
    a.model.spec.describe_cell(c)
}
