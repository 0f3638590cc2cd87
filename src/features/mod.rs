//! Stage 3: the feature transformation, learned from training rows and frozen
//! into the model artifact so that scoring applies exactly the same one.
//!
//! Each input column becomes a *variable*: a categorical one gets an indicator
//! per frequent level plus "(other)" and "(missing)"; a numeric one gets a
//! standardised value, quantile-bin indicators (the best-fit size is often a
//! band) and a missing indicator. Interactions between a category level and a
//! numeric band are screened on the training rows with a score test against
//! the main-effects model, so only combinations the data support get a term.
//!
//! Every feature is defined as a polars expression ([`FeatureSpec::exprs`]),
//! which `icp export-sql` shows as SQL. Training and scoring apply the same
//! definition through integer cell codes ([`Encoded`]), tested to give the
//! expressions' values bit for bit.

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array2, ShapeBuilder};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::FeatureParams;
use crate::error::{IcpError, Result};
use crate::load::ColumnKind;

pub mod encoded;
pub mod sparse;
pub use encoded::{Encoded, Scorer};
pub use sparse::{Rows, Sparse};

pub const MISSING: &str = "(missing)";
pub const OTHER: &str = "(other)";

/// One input column and how it is encoded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Variable {
    Categorical {
        column: String,
        /// kept levels, most frequent first
        levels: Vec<String>,
        has_other: bool,
        has_missing: bool,
    },
    Numeric {
        column: String,
        /// "age" variables are derived from a year: reference_year - value
        derived_age: bool,
        log: bool,
        /// imputation value on the transformed scale (training median)
        median: f64,
        mean: f64,
        sd: f64,
        /// inner bin edges on the transformed scale
        edges: Vec<f64>,
        has_missing: bool,
    },
}

impl Variable {
    pub fn column(&self) -> &str {
        match self {
            Variable::Categorical { column, .. } | Variable::Numeric { column, .. } => column,
        }
    }
    /// The name people read: founded_year is shown as company age.
    pub fn display_name(&self) -> String {
        match self {
            Variable::Numeric {
                derived_age: true, ..
            } => "company age".into(),
            v => v.column().replace('_', " "),
        }
    }
}

/// A single indicator cell of a variable (used by interactions and signals).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Cell {
    Level { var: usize, level: String },
    Bin { var: usize, bin: usize },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Interaction {
    pub a: Cell,
    pub b: Cell,
    /// training accounts in the cell
    pub support: usize,
    /// score-test statistic against the main-effects model
    pub chi2: f64,
}

/// What one design-matrix column is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Feature {
    Level { var: usize, level: String },
    Other { var: usize },
    Missing { var: usize },
    Linear { var: usize },
    Bin { var: usize, bin: usize },
    Interaction { index: usize },
}

impl Feature {
    /// The reason group this feature's contribution belongs to.
    pub fn group(&self, n_vars: usize) -> usize {
        match self {
            Feature::Level { var, .. }
            | Feature::Other { var }
            | Feature::Missing { var }
            | Feature::Linear { var }
            | Feature::Bin { var, .. } => *var,
            Feature::Interaction { index } => n_vars + index,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureSpec {
    /// year that company age is measured from (latest closed deal's year)
    pub reference_year: i32,
    pub variables: Vec<Variable>,
    pub interactions: Vec<Interaction>,
    pub features: Vec<Feature>,
    /// feature means over the training rows (contributions are centred on them)
    pub means: Vec<f64>,
    /// columns seen but not used, with the reason
    pub skipped: Vec<(String, String)>,
}

/// Columns that identify an account and are never features.
const IDENTIFIERS: &[&str] = &["account_id", "account_name", "domain"];

fn is_skewed_name(c: &str) -> bool {
    matches!(c, "employees" | "annual_revenue")
}

impl FeatureSpec {
    pub fn n_groups(&self) -> usize {
        self.variables.len() + self.interactions.len()
    }

    /// Cells of a variable: its kept levels, or its bands.
    pub fn n_cells(&self, var: usize) -> usize {
        match &self.variables[var] {
            Variable::Categorical { levels, .. } => levels.len(),
            Variable::Numeric { edges, .. } => edges.len() + 1,
        }
    }

    pub fn level_index(&self, var: usize, level: &str) -> Option<usize> {
        match &self.variables[var] {
            Variable::Categorical { levels, .. } => levels.iter().position(|l| l == level),
            Variable::Numeric { .. } => None,
        }
    }

    /// Columns of the accounts table the model reads.
    pub fn input_columns(&self) -> Vec<String> {
        self.variables
            .iter()
            .map(|v| v.column().to_string())
            .collect()
    }

    /// Expression of a numeric variable on its transformed, imputed scale.
    fn numeric_value(&self, v: &Variable) -> (Expr, Expr) {
        let Variable::Numeric {
            column,
            derived_age,
            log,
            median,
            ..
        } = v
        else {
            unreachable!("numeric_value on a categorical variable")
        };
        let mut x = col(column.as_str()).cast(DataType::Float64);
        if *derived_age {
            x = (lit(self.reference_year as f64) - x).clip(lit(0.0), lit(f64::MAX));
        }
        if *log {
            x = (x.clip(lit(0.0), lit(f64::MAX)) + lit(1.0)).log(lit(std::f64::consts::E));
        }
        (x.clone().fill_null(lit(*median)), x.is_null())
    }

    pub fn cell_expr(&self, cell: &Cell) -> Expr {
        match cell {
            Cell::Level { var, level } => {
                let c = self.variables[*var].column();
                col(c)
                    .cast(DataType::String)
                    .eq(lit(level.clone()))
                    .fill_null(lit(false))
            }
            Cell::Bin { var, bin } => {
                let v = &self.variables[*var];
                let Variable::Numeric { edges, .. } = v else {
                    unreachable!("bin of a categorical variable")
                };
                let (x, _) = self.numeric_value(v);
                bin_expr(x, edges, *bin)
            }
        }
    }

    /// The bin (0-based, as in [`Cell::Bin`]) a numeric variable's value falls
    /// in, or null where the value is missing (findings never impute).
    pub fn bin_index(&self, var: usize) -> Expr {
        let v = &self.variables[var];
        let Variable::Numeric { edges, .. } = v else {
            unreachable!("bin_index of a categorical variable")
        };
        let (x, missing) = self.numeric_value(v);
        let mut idx = lit(0u32);
        for e in edges {
            idx = idx + x.clone().gt_eq(lit(*e)).cast(DataType::UInt32);
        }
        when(missing)
            .then(lit(NULL).cast(DataType::UInt32))
            .otherwise(idx)
    }

    /// One boolean-or-float expression per feature, in design order.
    pub fn exprs(&self) -> Vec<Expr> {
        self.features
            .iter()
            .enumerate()
            .map(|(j, f)| {
                self.feature_expr(f)
                    .cast(DataType::Float64)
                    .alias(format!("f{j}"))
            })
            .collect()
    }

    fn feature_expr(&self, f: &Feature) -> Expr {
        match f {
            Feature::Level { var, level } => self.cell_expr(&Cell::Level {
                var: *var,
                level: level.clone(),
            }),
            Feature::Other { var } => {
                let Variable::Categorical { column, levels, .. } = &self.variables[*var] else {
                    unreachable!()
                };
                let s = col(column.as_str()).cast(DataType::String);
                let mut e = s.clone().is_not_null();
                for l in levels {
                    e = e.and(s.clone().neq(lit(l.clone())));
                }
                e.fill_null(lit(false))
            }
            Feature::Missing { var } => col(self.variables[*var].column()).is_null(),
            Feature::Linear { var } => {
                let v = &self.variables[*var];
                let Variable::Numeric { mean, sd, .. } = v else {
                    unreachable!()
                };
                let (x, _) = self.numeric_value(v);
                (x - lit(*mean)) / lit(*sd)
            }
            Feature::Bin { var, bin } => self.cell_expr(&Cell::Bin {
                var: *var,
                bin: *bin,
            }),
            Feature::Interaction { index } => {
                let it = &self.interactions[*index];
                self.cell_expr(&it.a).and(self.cell_expr(&it.b))
            }
        }
    }

    /// The design matrix (column-major, as linfa's optimiser prefers),
    /// built from the rows' codes.
    pub fn design(&self, df: &DataFrame) -> Result<Array2<f64>> {
        Ok(Encoded::of(self, df)?.design(self))
    }

    /// The design through the polars expressions: the definition that
    /// [`Encoded::design`] must match bit for bit (tests).
    pub fn design_by_exprs(&self, df: &DataFrame) -> Result<Array2<f64>> {
        let out = df.clone().lazy().select(self.exprs()).collect()?;
        frame_to_array(&out)
    }

    /// Plain words for a cell: "industry = Logistics", "employees 50-200".
    pub fn describe_cell(&self, cell: &Cell) -> String {
        match cell {
            Cell::Level { var, level } => {
                format!("{} = {}", self.variables[*var].display_name(), level)
            }
            Cell::Bin { var, bin } => self.describe_bin(*var, *bin),
        }
    }

    /// A bin's range `[from, to)` in the column's own units (None: open end).
    pub fn bin_bounds(&self, var: usize, bin: usize) -> (Option<f64>, Option<f64>) {
        let Variable::Numeric { edges, log, .. } = &self.variables[var] else {
            return (None, None);
        };
        let back = |e: f64| if *log { e.exp_m1() } else { e };
        let lo = if bin == 0 {
            None
        } else {
            edges.get(bin - 1).map(|e| back(*e))
        };
        (lo, edges.get(bin).map(|e| back(*e)))
    }

    pub fn describe_bin(&self, var: usize, bin: usize) -> String {
        let v = &self.variables[var];
        let Variable::Numeric {
            edges, log, column, ..
        } = v
        else {
            return v.display_name();
        };
        let back = |e: f64| if *log { e.exp_m1() } else { e };
        let fmt = |x: f64| format_quantity(column, x);
        let name = v.display_name();
        let lo = if bin == 0 {
            None
        } else {
            Some(back(edges[bin - 1]))
        };
        let hi = edges.get(bin).map(|e| back(*e));
        match (lo, hi) {
            (None, Some(h)) => format!("{name} under {}", fmt(h)),
            (Some(l), None) => format!("{name} {} or more", fmt(l)),
            (Some(l), Some(h)) => format!("{name} {} to under {}", fmt(l), fmt(h)),
            (None, None) => name,
        }
    }

    pub fn describe_feature(&self, j: usize) -> String {
        match &self.features[j] {
            Feature::Level { var, level } => self.describe_cell(&Cell::Level {
                var: *var,
                level: level.clone(),
            }),
            Feature::Other { var } => {
                format!("{} = a rare value", self.variables[*var].display_name())
            }
            Feature::Missing { var } => format!("{} unknown", self.variables[*var].display_name()),
            Feature::Linear { var } => {
                format!("{} (linear trend)", self.variables[*var].display_name())
            }
            Feature::Bin { var, bin } => self.describe_bin(*var, *bin),
            Feature::Interaction { index } => {
                let it = &self.interactions[*index];
                format!(
                    "{} and {}",
                    self.describe_cell(&it.a),
                    self.describe_cell(&it.b)
                )
            }
        }
    }
}

/// Human format of a numeric value of `column`.
pub fn format_quantity(column: &str, x: f64) -> String {
    let r = if x.abs() >= 100.0 {
        x.round()
    } else {
        (x * 10.0).round() / 10.0
    };
    let body = if r.abs() >= 1e9 {
        format!("{:.1}B", r / 1e9)
    } else if r.abs() >= 1e6 {
        format!("{:.1}M", r / 1e6)
    } else if r.abs() >= 1e4 {
        format!("{:.0}k", r / 1e3)
    } else if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    };
    match column {
        "annual_revenue" => format!("${body}"),
        "founded_year" => format!("{body} years"),
        _ => body,
    }
}

/// The log scale of skewed quantities: ln(1 + max(x, 0)).
///
/// Written as ln(1 + x) rather than log1p(x) on purpose: the exported SQL
/// (`icp export-sql`) can only say LN(1 + x), and scores must come out the
/// same to the last bit. Polars' `log(E)` divides by ln(E), which is exactly
/// 1.0 (a unit test holds that).
pub fn log_scale(x: f64) -> f64 {
    (x.max(0.0) + 1.0).ln()
}

fn bin_expr(x: Expr, edges: &[f64], bin: usize) -> Expr {
    let lower = if bin == 0 { None } else { Some(edges[bin - 1]) };
    let upper = edges.get(bin).copied();
    match (lower, upper) {
        (None, Some(u)) => x.lt(lit(u)),
        (Some(l), None) => x.gt_eq(lit(l)),
        (Some(l), Some(u)) => x.clone().gt_eq(lit(l)).and(x.lt(lit(u))),
        (None, None) => lit(true),
    }
}

/// Copy a frame of Float64 columns into a column-major matrix.
pub fn frame_to_array(df: &DataFrame) -> Result<Array2<f64>> {
    let (n, p) = (df.height(), df.width());
    let mut x = Array2::<f64>::zeros((n, p).f());
    for (j, c) in df.columns().iter().enumerate() {
        let s = c.as_materialized_series().rechunk();
        let ca = s.f64()?;
        if ca.null_count() > 0 {
            return Err(IcpError::Fit(format!(
                "feature column {j} has nulls after imputation"
            )));
        }
        let slice = ca
            .cont_slice()
            .map_err(|e| IcpError::Fit(format!("feature column {j}: {e}")))?;
        x.column_mut(j)
            .as_slice_mut()
            .expect("column-major columns are contiguous")
            .copy_from_slice(slice);
    }
    Ok(x)
}

/// Learn the main-effects encoding from the distinct training accounts.
pub fn fit_main_effects(
    accounts: &DataFrame,
    extra: &BTreeMap<String, ColumnKind>,
    params: &FeatureParams,
    reference_year: i32,
) -> Result<FeatureSpec> {
    let mut variables = Vec::new();
    let mut skipped = Vec::new();
    let names: Vec<String> = accounts
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .filter(|s| !s.starts_with("__"))
        .collect();
    for name in &names {
        if IDENTIFIERS.contains(&name.as_str()) {
            continue;
        }
        if params.exclude.iter().any(|x| x == name) {
            skipped.push((name.clone(), "excluded by the config".into()));
            continue;
        }
        let numeric = matches!(
            name.as_str(),
            "employees" | "annual_revenue" | "founded_year"
        ) || extra.get(name) == Some(&ColumnKind::Numeric);
        let s = accounts.column(name)?.as_materialized_series().clone();
        let n_missing = s.null_count();
        if n_missing == s.len() {
            skipped.push((name.clone(), "no values in the training accounts".into()));
            continue;
        }
        if numeric {
            let derived_age = name == "founded_year";
            let raw: Vec<f64> = s
                .cast(&DataType::Float64)?
                .f64()?
                .into_no_null_iter()
                .collect();
            let mut t: Vec<f64> = raw
                .iter()
                .map(|&v| {
                    if derived_age {
                        (reference_year as f64 - v).max(0.0)
                    } else {
                        v
                    }
                })
                .collect();
            let min = t.iter().cloned().fold(f64::INFINITY, f64::min);
            let log = (is_skewed_name(name) || skewed(&t)) && min >= 0.0;
            if log {
                t.iter_mut().for_each(|v| *v = log_scale(*v));
            }
            t.sort_by(f64::total_cmp);
            let median = crate::label::median_sorted(&t);
            let mean = t.iter().sum::<f64>() / t.len() as f64;
            let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t.len() as f64;
            if var <= 0.0 || !var.is_finite() {
                skipped.push((
                    name.clone(),
                    "a single value in the training accounts".into(),
                ));
                continue;
            }
            let mut edges: Vec<f64> = (1..params.numeric_bins)
                .map(|k| quantile_sorted(&t, k as f64 / params.numeric_bins as f64))
                .collect();
            edges.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
            // a lower edge equal to the minimum makes an empty first bin
            edges.retain(|e| *e > t[0]);
            variables.push(Variable::Numeric {
                column: name.clone(),
                derived_age,
                log,
                median,
                mean,
                sd: var.sqrt(),
                edges,
                has_missing: n_missing > 0,
            });
        } else {
            let counts =
                s.cast(&DataType::String)?
                    .value_counts(false, false, "__count".into(), false)?;
            let vals = counts.column(name)?.str()?.clone();
            let ns = counts.column("__count")?.cast(&DataType::UInt64)?;
            // most frequent first, ties by value, so the vocabulary is deterministic
            let mut pairs: Vec<(u64, String)> = vals
                .iter()
                .zip(ns.u64()?.iter())
                .filter_map(|(v, n)| Some((n?, v?.to_string())))
                .collect();
            pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut levels = Vec::new();
            let mut other = 0u64;
            for (n, v) in pairs {
                if n as usize >= params.min_level_count && levels.len() < params.max_levels {
                    levels.push(v);
                } else {
                    other += n;
                }
            }
            if levels.is_empty() && other > 0 && n_missing == 0 {
                skipped.push((
                    name.clone(),
                    format!(
                        "no value reaches {} training accounts",
                        params.min_level_count
                    ),
                ));
                continue;
            }
            if other > 0 && levels.len() >= params.max_levels {
                skipped.push((
                    name.clone(),
                    format!(
                        "capped at its {} most frequent values; the rest count as (other)",
                        params.max_levels
                    ),
                ));
            }
            variables.push(Variable::Categorical {
                column: name.clone(),
                levels,
                has_other: other > 0,
                has_missing: n_missing > 0,
            });
        }
    }
    let mut features = Vec::new();
    for (i, v) in variables.iter().enumerate() {
        match v {
            Variable::Categorical {
                levels,
                has_other,
                has_missing,
                ..
            } => {
                features.extend(levels.iter().map(|l| Feature::Level {
                    var: i,
                    level: l.clone(),
                }));
                if *has_other {
                    features.push(Feature::Other { var: i });
                }
                if *has_missing {
                    features.push(Feature::Missing { var: i });
                }
            }
            Variable::Numeric {
                edges, has_missing, ..
            } => {
                features.push(Feature::Linear { var: i });
                features.extend((0..=edges.len()).map(|b| Feature::Bin { var: i, bin: b }));
                if *has_missing {
                    features.push(Feature::Missing { var: i });
                }
            }
        }
    }
    let mut spec = FeatureSpec {
        reference_year,
        variables,
        interactions: Vec::new(),
        features,
        means: Vec::new(),
        skipped,
    };
    spec.means = Encoded::of(&spec, accounts)?.means(&spec);
    Ok(spec)
}

pub fn column_means(x: &Array2<f64>) -> Vec<f64> {
    let n = x.nrows().max(1) as f64;
    x.columns().into_iter().map(|c| c.sum() / n).collect()
}

fn skewed(sorted_or_not: &[f64]) -> bool {
    let mut v = sorted_or_not.to_vec();
    v.sort_by(f64::total_cmp);
    let med = quantile_sorted(&v, 0.5);
    let p99 = quantile_sorted(&v, 0.99);
    med > 0.0 && p99 / med > 20.0
}

pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Every (category level, numeric band) pair of the spec: the candidate interactions.
pub fn candidate_cells(spec: &FeatureSpec) -> Vec<(Cell, Cell)> {
    let mut out = Vec::new();
    for (i, a) in spec.variables.iter().enumerate() {
        let Variable::Categorical { levels, .. } = a else {
            continue;
        };
        for (k, b) in spec.variables.iter().enumerate() {
            let Variable::Numeric { edges, .. } = b else {
                continue;
            };
            for l in levels {
                for bin in 0..=edges.len() {
                    out.push((
                        Cell::Level {
                            var: i,
                            level: l.clone(),
                        },
                        Cell::Bin { var: k, bin },
                    ));
                }
            }
        }
    }
    out
}

/// Add the interactions that a score test on the training rows supports.
///
/// `rows` are the training examples' codes (one per closed deal, coded with
/// `spec`'s variables), `y` their labels and `p` the main-effects model's
/// probabilities.
/// A cell is kept when it holds at least `min_interaction_count` distinct
/// accounts and its score statistic exceeds `chi2_threshold`. `accounts`
/// must be the accounts `spec`'s main effects were fitted on.
pub fn add_interactions(
    mut spec: FeatureSpec,
    rows: &Encoded,
    accounts: &DataFrame,
    y: &[bool],
    p: &[f64],
    params: &FeatureParams,
    chi2_threshold: f64,
) -> Result<FeatureSpec> {
    if !params.interactions {
        return Ok(spec);
    }
    let cands = candidate_cells(&spec);
    if cands.is_empty() {
        return Ok(spec);
    }
    // Every candidate is a (level, band) cell of two variables, so one code
    // per variable and row (level index, band index) gives all of them: the
    // codes of the deals and of the accounts, then sums per cell, deal by
    // deal in row order.
    let deal_codes = rows;
    let account_codes = Encoded::of(&spec, accounts)?;
    let resid: Vec<f64> = y.iter().zip(p).map(|(&y, &p)| y as u8 as f64 - p).collect();
    let w: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
    let mut stats: HashMap<(usize, usize), Vec<(f64, f64, usize)>> = HashMap::new();
    let mut scored: Vec<(f64, usize, usize)> = Vec::new();
    for (k, (a, b)) in cands.iter().enumerate() {
        let (Cell::Level { var: va, level }, Cell::Bin { var: vb, bin }) = (a, b) else {
            continue;
        };
        let table = stats.entry((*va, *vb)).or_insert_with(|| {
            cell_sums(
                deal_codes,
                &account_codes,
                *va,
                *vb,
                &resid,
                &w,
                spec.n_cells(*va),
                spec.n_cells(*vb),
            )
        });
        let Some(li) = spec.level_index(*va, level) else {
            continue;
        };
        let (u, i, support) = table[li * spec.n_cells(*vb) + bin];
        if support < params.min_interaction_count || i <= 0.0 {
            continue;
        }
        let chi2 = u * u / i;
        if chi2 > chi2_threshold {
            scored.push((chi2, k, support));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // the main effects' means were taken over these same accounts
    let main_means_fit = spec.means.len() == spec.features.len();
    let first_new = spec.interactions.len();
    let budget = params.max_features.saturating_sub(spec.features.len());
    for (chi2, k, support) in scored.into_iter().take(budget) {
        let (a, b) = cands[k].clone();
        spec.features.push(Feature::Interaction {
            index: spec.interactions.len(),
        });
        spec.interactions.push(Interaction {
            a,
            b,
            support,
            chi2,
        });
    }
    // an interaction's mean over the accounts is the share of them in its
    // cell: the support just counted (the same f64 as summing the column)
    if main_means_fit {
        let n = accounts.height().max(1) as f64;
        let added: Vec<f64> = spec.interactions[first_new..]
            .iter()
            .map(|it| it.support as f64 / n)
            .collect();
        spec.means.extend(added);
    } else {
        spec.means = account_codes.means(&spec);
    }
    Ok(spec)
}

/// (sum of residuals, sum of weights, distinct accounts) per cell of the
/// pair (categorical `va`, numeric `vb`), indexed level * bands + band.
#[allow(clippy::too_many_arguments)]
fn cell_sums(
    deals: &Encoded,
    accounts: &Encoded,
    va: usize,
    vb: usize,
    resid: &[f64],
    w: &[f64],
    na: usize,
    nb: usize,
) -> Vec<(f64, f64, usize)> {
    let mut t = vec![(0.0, 0.0, 0usize); na * nb];
    let cell = |a: Option<u32>, b: Option<u32>| match (a, b) {
        (Some(a), Some(b)) if (a as usize) < na && (b as usize) < nb => {
            Some(a as usize * nb + b as usize)
        }
        _ => None,
    };
    for r in 0..deals.n {
        if let Some(c) = cell(deals.cell(va, r), deals.cell(vb, r)) {
            t[c].0 += resid[r];
            t[c].1 += w[r];
        }
    }
    for r in 0..accounts.n {
        if let Some(c) = cell(accounts.cell(va, r), accounts.cell(vb, r)) {
            t[c].2 += 1;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_like_people_write_them() {
        assert_eq!(format_quantity("employees", 240.0), "240");
        assert_eq!(format_quantity("employees", 12_345.0), "12k");
        assert_eq!(format_quantity("annual_revenue", 2_500_000.0), "$2.5M");
        assert_eq!(format_quantity("founded_year", 12.0), "12 years");
        assert_eq!(format_quantity("x", 0.25), "0.3");
    }

    #[test]
    fn bins_are_described_in_original_units() {
        let spec = FeatureSpec {
            reference_year: 2025,
            variables: vec![Variable::Numeric {
                column: "employees".into(),
                derived_age: false,
                log: true,
                median: 50f64.ln_1p(),
                mean: 4.0,
                sd: 1.0,
                edges: vec![49f64.ln_1p(), 499f64.ln_1p()],
                has_missing: false,
            }],
            interactions: vec![],
            features: vec![],
            means: vec![],
            skipped: vec![],
        };
        assert_eq!(spec.describe_bin(0, 0), "employees under 49");
        assert_eq!(spec.describe_bin(0, 1), "employees 49 to under 499");
        assert_eq!(spec.describe_bin(0, 2), "employees 499 or more");
    }

    #[test]
    fn the_log_scale_is_plain_ln_of_one_plus_x() {
        // polars' log(E) is ln(x) / ln(E): exact only because ln(E) == 1.0
        assert_eq!(std::f64::consts::E.ln(), 1.0);
        let df = df!["x" => [0.0, 1.0, 49.0, 2_500_000.0, -3.0]].expect("frame");
        let got = df
            .lazy()
            .select([(col("x").clip(lit(0.0), lit(f64::MAX)) + lit(1.0))
                .log(lit(std::f64::consts::E))
                .alias("y")])
            .collect()
            .expect("collect");
        let y: Vec<f64> = got["y"].f64().expect("f64").no_null_iter().collect();
        let want: Vec<f64> = [0.0, 1.0, 49.0, 2_500_000.0, -3.0]
            .iter()
            .map(|v| log_scale(*v))
            .collect();
        assert_eq!(y, want);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
    }
}
