//! A fitted linear predictor: the frozen features and their weights, and
//! the logit as polars expressions (what `icp export-sql` repeats) and as
//! arithmetic on codes.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::FeatureSpec;
use crate::error::Result;

/// A fitted linear predictor: the frozen features and their weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinearModel {
    pub spec: FeatureSpec,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

impl LinearModel {
    /// Intercept of the centred form: logit = base + sum of group contributions.
    pub fn base(&self) -> f64 {
        self.intercept
            + self
                .coefficients
                .iter()
                .zip(&self.spec.means)
                .map(|(w, m)| w * m)
                .sum::<f64>()
    }

    /// One expression per reason group (`g0`, `g1`, ...): the group's
    /// contribution to the logit relative to the typical training account.
    pub fn group_exprs(&self) -> Vec<Expr> {
        let feats = self.spec.exprs();
        let n_vars = self.spec.variables.len();
        let mut groups: Vec<Option<Expr>> = vec![None; self.spec.n_groups()];
        for (j, f) in self.spec.features.iter().enumerate() {
            let w = self.coefficients[j];
            let term = (feats[j].clone() - lit(self.spec.means[j])) * lit(w);
            let g = f.group(n_vars);
            groups[g] = Some(match groups[g].take() {
                Some(e) => e + term,
                None => term,
            });
        }
        groups
            .into_iter()
            .enumerate()
            .map(|(g, e)| e.unwrap_or(lit(0.0)).alias(format!("g{g}")))
            .collect()
    }

    /// Logits of every row of `df`, from the rows' codes: the same bits as
    /// [`LinearModel::logits_by_exprs`].
    pub fn logits(&self, df: &DataFrame) -> Result<Vec<f64>> {
        let codes = super::Encoded::of(&self.spec, df)?;
        Ok(super::Scorer::new(self, &codes).logits())
    }

    /// Logits through the polars expressions that `icp export-sql` repeats
    /// (the definition; tests compare the codes' arithmetic with it).
    pub fn logits_by_exprs(&self, df: &DataFrame) -> Result<Vec<f64>> {
        let n = self.spec.n_groups();
        let out = df
            .clone()
            .lazy()
            .select(self.group_exprs())
            .select([logit_from_groups(self.base(), n).alias("logit")])
            .collect()?;
        Ok(out.column("logit")?.f64()?.into_no_null_iter().collect())
    }
}

/// base + g0 + g1 + ..., summed in a fixed order.
pub fn logit_from_groups(base: f64, n_groups: usize) -> Expr {
    (0..n_groups).fold(lit(base), |acc, g| acc + col(format!("g{g}")))
}
