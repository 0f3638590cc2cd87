//! Stage 5: score every account with a frozen model.
//!
//! The score is the account's percentile within the reference distribution
//! frozen in the model artifact (the logits of the accounts scored when the
//! model was trained), so re-scoring the same account with the same model
//! always gives the same score, whatever else is in today's file.

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::Result;
use crate::features::{Cell, Variable, format_quantity};
use crate::model::{ModelArtifact, band, logit_from_groups, percentile_score, sigmoid};

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
    let text = |c: &str| {
        if accounts.column(c).is_ok() {
            col(c).cast(DataType::String)
        } else {
            lit(NULL).cast(DataType::String)
        }
    };
    let coverage = if inputs.is_empty() {
        lit(1.0)
    } else {
        inputs
            .iter()
            .map(|c| col(c.as_str()).is_not_null().cast(DataType::Float64))
            .reduce(|a, b| a + b)
            .expect("non-empty")
            / lit(inputs.len() as f64)
    };
    let mut sel = vec![
        col("account_id"),
        text("account_name").alias("account_name"),
        text("domain").alias("domain"),
        coverage.alias("__coverage"),
    ];
    sel.extend(model.group_exprs());
    // raw inputs, to put each reason in plain words
    sel.extend(
        spec.variables
            .iter()
            .enumerate()
            .map(|(i, v)| col(v.column()).alias(format!("__v{i}"))),
    );
    let mut cell_cols = Vec::new();
    for (k, it) in spec.interactions.iter().enumerate() {
        cell_cols.push(
            spec.cell_expr(&it.a)
                .and(spec.cell_expr(&it.b))
                .alias(format!("__i{k}")),
        );
    }
    sel.extend(cell_cols);
    let mut df = accounts
        .clone()
        .lazy()
        .select(sel)
        .with_column(logit_from_groups(model.base(), n_groups).alias("__logit"))
        .collect()?;
    df.rechunk_mut_par();

    let n = df.height();
    let logit: Vec<f64> = df.column("__logit")?.f64()?.into_no_null_iter().collect();
    let cover: Vec<f64> = df
        .column("__coverage")?
        .f64()?
        .into_no_null_iter()
        .collect();
    let groups: Vec<Vec<f64>> = (0..n_groups)
        .map(|g| {
            Ok(df
                .column(&format!("g{g}"))?
                .f64()?
                .into_no_null_iter()
                .collect())
        })
        .collect::<Result<_>>()?;
    let values: Vec<Column> = (0..spec.variables.len())
        .map(|i| Ok(df.column(&format!("__v{i}"))?.clone()))
        .collect::<Result<_>>()?;
    let cells: Vec<Vec<bool>> = (0..spec.interactions.len())
        .map(|k| {
            Ok(df
                .column(&format!("__i{k}"))?
                .bool()?
                .iter()
                .map(|b| b.unwrap_or(false))
                .collect())
        })
        .collect::<Result<_>>()?;

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
        .map(|i| {
            if cover[i] < min_cov {
                let known = (cover[i] * inputs.len() as f64).round() as usize;
                return (
                    None,
                    None,
                    BAND_UNSCORED,
                    format!(
                        "insufficient_data: {known} of {} model inputs known",
                        inputs.len()
                    )
                    .into(),
                    String::new(),
                );
            }
            let z = logit[i];
            let p = sigmoid(z);
            let s = percentile_score(z, &artifact.reference);
            // each group's effect in percentage points of p, against a typical account
            let mut effects: Vec<(f64, usize)> = (0..n_groups)
                .map(|g| (100.0 * (p - sigmoid(z - groups[g][i])), g))
                .collect();
            effects.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&b.1)));
            let reasons: Vec<String> = effects
                .iter()
                .take(3)
                .map(|&(pts, g)| {
                    let what = describe(artifact, g, i, &values, &cells);
                    if pts.abs() >= 1.0 {
                        format!("{what}, {pts:+.0}")
                    } else {
                        format!("{what}, {pts:+.1}")
                    }
                })
                .collect();
            (
                Some(s as i64),
                Some((p * 1e6).round() / 1e6),
                band(s),
                STATUS_SCORED.into(),
                reasons.join("; "),
            )
        })
        .collect();
    let score: Vec<Option<i64>> = per_row.iter().map(|r| r.0).collect();
    let prob: Vec<Option<f64>> = per_row.iter().map(|r| r.1).collect();
    let bands: Vec<&str> = per_row.iter().map(|r| r.2).collect();
    let status: Vec<&str> = per_row.iter().map(|r| r.3.as_ref()).collect();
    let reasons: Vec<&str> = per_row.iter().map(|r| r.4.as_str()).collect();
    let out = DataFrame::new(
        n,
        vec![
            df.column("account_id")?.clone(),
            df.column("account_name")?.clone(),
            df.column("domain")?.clone(),
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

/// Plain words for an account's value of reason group `g`.
fn describe(
    a: &ModelArtifact,
    g: usize,
    i: usize,
    values: &[Column],
    cells: &[Vec<bool>],
) -> String {
    let spec = &a.model.spec;
    let nv = spec.variables.len();
    if g < nv {
        return describe_value(a, g, i, values);
    }
    let k = g - nv;
    let it = &spec.interactions[k];
    let both = format!(
        "{} and {}",
        spec.describe_cell(&it.a),
        spec.describe_cell(&it.b)
    );
    if cells[k][i] {
        both
    } else {
        format!("not ({both})")
    }
}

fn describe_value(a: &ModelArtifact, var: usize, i: usize, values: &[Column]) -> String {
    let v = &a.model.spec.variables[var];
    let name = v.display_name();
    let cell = values[var].get(i).unwrap_or(AnyValue::Null);
    if cell.is_null() {
        return format!("{name} unknown");
    }
    match v {
        Variable::Categorical { levels, .. } => {
            let s = cell.str_value().to_string();
            if levels.contains(&s) {
                format!("{name} = {s}")
            } else {
                format!("{name} = {s} (rare)")
            }
        }
        Variable::Numeric {
            derived_age,
            column,
            ..
        } => {
            let x = cell.extract::<f64>().unwrap_or(f64::NAN);
            if *derived_age {
                let age = (a.model.spec.reference_year as f64 - x).max(0.0);
                format!("{name} = {}", format_quantity("founded_year", age))
            } else {
                format!("{name} = {}", format_quantity(column, x))
            }
        }
    }
}

/// Plain words for a cell, used by signals (re-exported for the brief).
pub fn describe_cell(a: &ModelArtifact, c: &Cell) -> String {
    a.model.spec.describe_cell(c)
}
