//! Stage 3: the feature transformation, learned from training rows and frozen
//! into the model artifact so that scoring applies exactly the same one.
//!
//! Each input column becomes a *variable*: a categorical one gets an indicator
//! per frequent level plus "(other)" and "(missing)"; a numeric one gets a
//! standardised value, quantile-bin indicators (the best-fit size is often a
//! band) and a missing indicator. Interactions between two cells of different
//! variables (level x level, level x band, band x band) are screened on the
//! training rows with a score test against the main-effects model, the bar
//! raised with the number of candidates, so only combinations the data
//! support get a term.
//!
//! Every feature is defined as a polars expression ([`FeatureSpec::exprs`]),
//! which `icp export-sql` shows as SQL. Training and scoring apply the same
//! definition through integer cell codes ([`Encoded`]), tested to give the
//! expressions' values bit for bit.

use std::collections::BTreeMap;

use ndarray::{Array2, ShapeBuilder};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::FeatureParams;
use crate::error::{IcpError, Result};
use crate::io::load::ColumnKind;

pub mod encoded;
pub mod linear;
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
        /// restricted cubic spline knots on the transformed scale (training
        /// quantiles); empty where too few distinct values allow a curve
        #[serde(default)]
        knots: Vec<f64>,
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
/// A finding is identified by its cells, not by their words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    Level {
        var: usize,
        level: String,
    },
    Other {
        var: usize,
    },
    Missing {
        var: usize,
    },
    Linear {
        var: usize,
    },
    Bin {
        var: usize,
        bin: usize,
    },
    /// term `term` (0-based) of a numeric variable's restricted cubic spline
    Spline {
        var: usize,
        term: usize,
    },
    Interaction {
        index: usize,
    },
}

impl Feature {
    /// The reason group this feature's contribution belongs to.
    pub fn group(&self, n_vars: usize) -> usize {
        match self {
            Feature::Level { var, .. }
            | Feature::Other { var }
            | Feature::Missing { var }
            | Feature::Linear { var }
            | Feature::Bin { var, .. }
            | Feature::Spline { var, .. } => *var,
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
pub const IDENTIFIERS: &[&str] = &["account_id", "account_name", "domain"];

fn is_skewed_name(c: &str) -> bool {
    matches!(c, "employees" | "annual_revenue")
}

impl FeatureSpec {
    pub fn n_groups(&self) -> usize {
        self.variables.len() + self.interactions.len()
    }

    /// Whether some numeric variable has spline knots (a curve to offer).
    pub fn has_curves(&self) -> bool {
        self.variables
            .iter()
            .any(|v| matches!(v, Variable::Numeric { knots, .. } if !knots.is_empty()))
    }

    /// How the numeric variables enter: splines where any spline term is in
    /// the design, else bands.
    pub fn numeric_shape(&self) -> crate::config::NumericShape {
        if self
            .features
            .iter()
            .any(|f| matches!(f, Feature::Spline { .. }))
        {
            crate::config::NumericShape::Splines
        } else {
            crate::config::NumericShape::Bands
        }
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
            Feature::Spline { var, term } => {
                let v = &self.variables[*var];
                let Variable::Numeric { knots, .. } = v else {
                    unreachable!()
                };
                let (x, _) = self.numeric_value(v);
                let cube = |t: f64| {
                    let d = (x.clone() - lit(t)).clip(lit(0.0), lit(f64::MAX));
                    d.clone() * d.clone() * d
                };
                let [(t0, c0), (t1, c1), (t2, c2)] = spline_term(knots, *term);
                lit(c0) * cube(t0) + lit(c1) * cube(t1) + lit(c2) * cube(t2)
            }
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

    fn describe_bin(&self, var: usize, bin: usize) -> String {
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
            Feature::Spline { var, term } => format!(
                "{} (curve, term {})",
                self.variables[*var].display_name(),
                term + 1
            ),
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
    // the digits as `format!("{:.1}")` and `{:.0}` give them, without its
    // slow path on ties (a reason per account is written with this)
    let mut out = String::with_capacity(16);
    if column == "annual_revenue" {
        out.push('$');
    }
    let fixed = crate::util::push_fixed;
    if r.abs() >= 1e9 {
        fixed(&mut out, r / 1e9, 1, false);
        out.push('B');
    } else if r.abs() >= 1e6 {
        fixed(&mut out, r / 1e6, 1, false);
        out.push('M');
    } else if r.abs() >= 1e4 {
        fixed(&mut out, r / 1e3, 0, false);
        out.push('k');
    } else if r.fract() == 0.0 {
        fixed(&mut out, r, 0, false);
    } else {
        fixed(&mut out, r, 1, false);
    }
    if column == "founded_year" {
        out.push_str(" years");
    }
    out
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

/// Knots of a restricted cubic spline, as training quantiles (Harrell's
/// placement for five knots).
const KNOT_QUANTILES: [f64; 5] = [0.05, 0.275, 0.5, 0.725, 0.95];

/// The knots of a sorted sample: its [`KNOT_QUANTILES`], repeated values
/// merged; none when fewer than three distinct knots remain (no curve).
fn spline_knots(sorted: &[f64]) -> Vec<f64> {
    let mut k: Vec<f64> = KNOT_QUANTILES
        .iter()
        .map(|q| quantile_sorted(sorted, *q))
        .collect();
    // knots closer than a millionth of the sample's range would make the
    // basis' weights (1 / gap) huge and its values cancellations of cubes
    let range = sorted.last().copied().unwrap_or(0.0) - sorted.first().copied().unwrap_or(0.0);
    let tol = (range * 1e-6).max(1e-12);
    k.dedup_by(|a, b| (*a - *b).abs() < tol);
    if k.len() < 3 { Vec::new() } else { k }
}

/// Term `j` of the restricted cubic spline on `knots` t_0..t_{K-1} (linear
/// beyond the outer knots), as three (knot, weight) pairs:
/// `sum weight * max(x - knot, 0)^3`. This is Harrell's basis, divided by
/// `(t_{K-1}-t_0)^2` so its values stay near the linear term's scale:
///
/// ```text
/// (x-t_j)+^3 - (x-t_{K-2})+^3 (t_{K-1}-t_j)/(t_{K-1}-t_{K-2})
///            + (x-t_{K-1})+^3 (t_{K-2}-t_j)/(t_{K-1}-t_{K-2})
/// ```
///
/// The
/// weights are computed here once, so the expressions, the codes and the
/// SQL export multiply by the same numbers.
pub fn spline_term(knots: &[f64], j: usize) -> [(f64, f64); 3] {
    let k = knots.len();
    let (first, penult, last) = (knots[0], knots[k - 2], knots[k - 1]);
    let s = 1.0 / ((last - first) * (last - first));
    let gap = last - penult;
    [
        (knots[j], s),
        (penult, -s * (last - knots[j]) / gap),
        (last, s * (penult - knots[j]) / gap),
    ]
}

/// `max(x - t, 0)^3` as polars computes `clip(x - t, 0, MAX)` cubed by two
/// products.
#[inline]
pub fn cube_above(x: f64, t: f64) -> f64 {
    let d = x - t;
    let d = if d < 0.0 { 0.0 } else { d };
    d * d * d
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
fn frame_to_array(df: &DataFrame) -> Result<Array2<f64>> {
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
        let variable = if numeric {
            fit_numeric(name, &s, n_missing, params, reference_year, &mut skipped)?
        } else {
            fit_categorical(name, &s, n_missing, params, &mut skipped)?
        };
        if let Some(v) = variable {
            variables.push(v);
        }
    }
    let features = main_features(&variables);
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

/// A numeric column's variable: its scale, centre, spread, bands and knots
/// (None, and the reason in `skipped`, when the accounts hold one value).
fn fit_numeric(
    name: &str,
    s: &Series,
    n_missing: usize,
    params: &FeatureParams,
    reference_year: i32,
    skipped: &mut Vec<(String, String)>,
) -> Result<Option<Variable>> {
    let derived_age = name == "founded_year";
    // blanks are missing, never zero: only the values enter the
    // median, mean, band edges and knots
    let raw: Vec<f64> = s
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .flatten()
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
    let median = crate::util::median_sorted(&t);
    let mean = t.iter().sum::<f64>() / t.len() as f64;
    let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t.len() as f64;
    if var <= 0.0 || !var.is_finite() {
        skipped.push((
            name.to_string(),
            "a single value in the training accounts".into(),
        ));
        return Ok(None);
    }
    let mut edges: Vec<f64> = (1..params.numeric_bins)
        .map(|k| quantile_sorted(&t, k as f64 / params.numeric_bins as f64))
        .collect();
    edges.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    // a lower edge equal to the minimum makes an empty first bin
    edges.retain(|e| *e > t[0]);
    let knots = spline_knots(&t);
    Ok(Some(Variable::Numeric {
        column: name.to_string(),
        derived_age,
        log,
        median,
        mean,
        sd: var.sqrt(),
        edges,
        knots,
        has_missing: n_missing > 0,
    }))
}

/// A categorical column's variable: its most frequent values as levels, the
/// rest as (other) (None, and the reason in `skipped`, when no value is kept).
fn fit_categorical(
    name: &str,
    s: &Series,
    n_missing: usize,
    params: &FeatureParams,
    skipped: &mut Vec<(String, String)>,
) -> Result<Option<Variable>> {
    let counts = s
        .cast(&DataType::String)?
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
            name.to_string(),
            format!(
                "no value reaches {} training accounts",
                params.min_level_count
            ),
        ));
        return Ok(None);
    }
    if other > 0 && levels.len() >= params.max_levels {
        skipped.push((
            name.to_string(),
            format!(
                "capped at its {} most frequent values; the rest count as (other)",
                params.max_levels
            ),
        ));
    }
    Ok(Some(Variable::Categorical {
        column: name.to_string(),
        levels,
        has_other: other > 0,
        has_missing: n_missing > 0,
    }))
}

/// The main-effects features of the variables, in variable order: each
/// level, (other) and (missing), or each numeric's linear term and bands.
fn main_features(variables: &[Variable]) -> Vec<Feature> {
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
    features
}

/// The same spec with each numeric variable's band indicators replaced by
/// its spline terms (where it has knots), the means taken again over
/// `accounts` (the accounts the spec was fitted on). Interactions keep
/// their bands: a band is a cell people can read and target.
pub fn with_splines(spec: &FeatureSpec, accounts: &DataFrame) -> Result<FeatureSpec> {
    let mut out = spec.clone();
    out.features.clear();
    let mut done = vec![false; spec.variables.len()];
    for f in &spec.features {
        match f {
            Feature::Bin { var, .. } => {
                let Variable::Numeric { knots, .. } = &spec.variables[*var] else {
                    unreachable!("bin of a categorical variable")
                };
                if knots.is_empty() {
                    out.features.push(f.clone());
                } else if !done[*var] {
                    done[*var] = true;
                    out.features.extend(
                        (0..knots.len() - 2).map(|term| Feature::Spline { var: *var, term }),
                    );
                }
            }
            f => out.features.push(f.clone()),
        }
    }
    out.means = Encoded::of(&out, accounts)?.means(&out);
    Ok(out)
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

/// The variables of a spec in screening order: categorical ones first, so
/// that a (level, band) pair reads "level and band" as it always has.
fn screen_order(spec: &FeatureSpec) -> Vec<usize> {
    let cat = |v: &Variable| matches!(v, Variable::Categorical { .. });
    let mut order: Vec<usize> = (0..spec.variables.len())
        .filter(|&i| cat(&spec.variables[i]))
        .collect();
    order.extend((0..spec.variables.len()).filter(|&i| !cat(&spec.variables[i])));
    order
}

/// The cell of variable `var` with code `c` (a kept level's index or a band).
fn cell_of(spec: &FeatureSpec, var: usize, c: usize) -> Cell {
    match &spec.variables[var] {
        Variable::Categorical { levels, .. } => Cell::Level {
            var,
            level: levels[c].clone(),
        },
        Variable::Numeric { .. } => Cell::Bin { var, bin: c },
    }
}

/// Every pair of cells of two different variables: level x level,
/// level x band and band x band, in screening order. These are the
/// candidate interactions.
pub fn candidate_cells(spec: &FeatureSpec) -> Vec<(Cell, Cell)> {
    let order = screen_order(spec);
    let mut out = Vec::new();
    for (x, &va) in order.iter().enumerate() {
        for &vb in &order[x + 1..] {
            for ca in 0..spec.n_cells(va) {
                for cb in 0..spec.n_cells(vb) {
                    out.push((cell_of(spec, va, ca), cell_of(spec, vb, cb)));
                }
            }
        }
    }
    out
}

/// The floor of the screen's threshold: chi2 = 16 (p about 6e-5), which is
/// what a Bonferroni bar of 5% gives for about 750 candidates, the number a
/// typical CRM's accounts table (three categorical and three numeric
/// columns) makes.
pub const INTERACTION_CHI2_FLOOR: f64 = 16.0;

/// Family-wise error rate of the interaction screen.
const SCREEN_ALPHA: f64 = 0.05;

/// The score statistic (chi2, 1 df) a candidate must exceed when `tested`
/// candidates were tried: the Bonferroni bar `SCREEN_ALPHA / tested`, never
/// below [`INTERACTION_CHI2_FLOOR`]. More columns mean more candidates and a
/// higher bar, so a wide accounts table does not let chance pairs in.
fn interaction_threshold(tested: usize) -> f64 {
    let target = SCREEN_ALPHA / tested.max(1) as f64;
    // the two-sided normal tail is decreasing in z: bisect for z
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if crate::util::stats::normal_two_sided(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (hi * hi).max(INTERACTION_CHI2_FLOOR)
}

/// Add the interactions that a score test on the training rows supports.
///
/// `rows` are the training examples' codes (one per closed deal, coded with
/// `spec`'s variables), `y` their labels and `p` the main-effects model's
/// probabilities. Every pair of cells of two variables is a candidate
/// ([`candidate_cells`]); one that holds at least `min_interaction_count`
/// distinct accounts is tested, and kept when its score statistic exceeds
/// [`interaction_threshold`] of the number tested. `accounts` must be the
/// accounts `spec`'s main effects were fitted on.
pub fn add_interactions(
    mut spec: FeatureSpec,
    rows: &Encoded,
    accounts: &DataFrame,
    y: &[bool],
    p: &[f64],
    params: &FeatureParams,
) -> Result<FeatureSpec> {
    if !params.interactions {
        return Ok(spec);
    }
    // One code per variable and row (level index, band index) gives every
    // candidate: sums per pair of variables, deal by deal in row order.
    let account_codes = Encoded::of(&spec, accounts)?;
    let resid: Vec<f64> = y.iter().zip(p).map(|(&y, &p)| y as u8 as f64 - p).collect();
    let w: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
    let order = screen_order(&spec);
    let pairs: Vec<(usize, usize)> = order
        .iter()
        .enumerate()
        .flat_map(|(x, &va)| order[x + 1..].iter().map(move |&vb| (va, vb)))
        .collect();
    let tables: Vec<Vec<(f64, f64, usize)>> = {
        use rayon::prelude::*;
        pairs
            .par_iter()
            .map(|&(va, vb)| {
                cell_sums(
                    rows,
                    &account_codes,
                    va,
                    vb,
                    &resid,
                    &w,
                    spec.n_cells(va),
                    spec.n_cells(vb),
                )
            })
            .collect()
    };
    // (chi2, candidate index, support, pair, cell index) of every tested cell
    let mut tested = Vec::new();
    let mut k = 0usize;
    for (pi, (&(_, vb), table)) in pairs.iter().zip(&tables).enumerate() {
        let nb = spec.n_cells(vb);
        for (c, &(u, i, support)) in table.iter().enumerate() {
            if support >= params.min_interaction_count && i > 0.0 {
                tested.push((u * u / i, k + c, support, pi, c, nb));
            }
        }
        k += table.len();
    }
    let threshold = interaction_threshold(tested.len());
    let mut scored: Vec<_> = tested.into_iter().filter(|t| t.0 > threshold).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let first_new = spec.interactions.len();
    let budget = params.max_features.saturating_sub(spec.features.len());
    for (chi2, _, support, pi, c, nb) in scored.into_iter().take(budget) {
        let (va, vb) = pairs[pi];
        let (a, b) = (cell_of(&spec, va, c / nb), cell_of(&spec, vb, c % nb));
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
    let n = accounts.height().max(1) as f64;
    let added: Vec<f64> = spec.interactions[first_new..]
        .iter()
        .map(|it| it.support as f64 / n)
        .collect();
    spec.means.extend(added);
    Ok(spec)
}

/// (sum of residuals, sum of weights, distinct accounts) per cell of the
/// pair of variables (`va`, `vb`), indexed cell_a * cells_b + cell_b.
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

    /// Blanks are missing, never zero: a column of 2, 4, 6, 8, 10 and five
    /// blanks has median 6 (not 3), mean 6, and its company age and knots
    /// come from the five values alone.
    #[test]
    fn blank_numbers_stay_out_of_medians_means_edges_and_knots() {
        let v = |x: f64| Some(x);
        let revenue: Vec<Option<f64>> = vec![
            v(2.0),
            None,
            v(4.0),
            None,
            v(6.0),
            None,
            v(8.0),
            None,
            v(10.0),
            None,
        ];
        let founded: Vec<Option<f64>> = vec![
            v(2000.0),
            None,
            None,
            v(2010.0),
            None,
            None,
            v(2020.0),
            None,
            None,
            None,
        ];
        let df = DataFrame::new_infer_height(vec![
            Column::new(
                "account_id".into(),
                (0..10).map(|i| format!("A{i}")).collect::<Vec<_>>(),
            ),
            Column::new("rev".into(), revenue),
            Column::new("founded_year".into(), founded),
        ])
        .expect("frame");
        let mut extra = BTreeMap::new();
        extra.insert("rev".to_string(), ColumnKind::Numeric);
        let params = FeatureParams {
            numeric_bins: 2,
            ..crate::config::ValidConfig::default().features
        };
        let spec = fit_main_effects(&df, &extra, &params, 2025).expect("spec");
        let var = |name: &str| {
            spec.variables
                .iter()
                .find(|v| v.column() == name)
                .cloned()
                .expect("variable")
        };
        let Variable::Numeric {
            median,
            mean,
            edges,
            knots,
            log,
            has_missing,
            ..
        } = var("rev")
        else {
            panic!("rev is numeric")
        };
        assert!(!log && has_missing);
        assert_eq!((median, mean), (6.0, 6.0));
        // one inner edge at the median of 2..10; knots at the 5/27.5/50/72.5/95%
        // quantiles of the five values (2.4, 4.2, 6, 7.8, 9.6)
        assert_eq!(edges, vec![6.0]);
        let want = [2.4, 4.2, 6.0, 7.8, 9.6];
        assert_eq!(knots.len(), want.len(), "{knots:?}");
        for (k, w) in knots.iter().zip(want) {
            assert!((k - w).abs() < 1e-9, "{knots:?}");
        }
        // ages 25, 15, 5: median 15 years, not 2025 (a blank read as year 0)
        let Variable::Numeric { median, .. } = var("founded_year") else {
            panic!("founded_year is numeric")
        };
        assert_eq!(median, 15.0);
    }

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
                knots: vec![],
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

    #[test]
    fn the_screens_bar_is_bonferronis_above_a_floor_of_16() {
        // few candidates: 5% / 10 is chi2 7.9, below the floor
        assert_eq!(interaction_threshold(10), INTERACTION_CHI2_FLOOR);
        assert_eq!(interaction_threshold(0), INTERACTION_CHI2_FLOOR);
        // a million candidates: two-sided p = 5e-8 is z = 5.4513, chi2 29.72
        assert!((interaction_threshold(1_000_000) - 29.717).abs() < 0.01);
        // ten thousand: p = 5e-6, z = 4.5648, chi2 20.84
        assert!((interaction_threshold(10_000) - 20.837).abs() < 0.01);
        assert!(interaction_threshold(20_000) > interaction_threshold(10_000));
    }

    #[test]
    fn spline_terms_are_harrells_basis_and_linear_past_the_last_knot() {
        let knots = [0.0, 1.0, 2.0, 3.0];
        // term 0 by hand: ((x)+^3 - 3 (x-2)+^3 + 2 (x-3)+^3) / 9
        let at = |x: f64| {
            let [(t0, c0), (t1, c1), (t2, c2)] = spline_term(&knots, 0);
            c0 * cube_above(x, t0) + c1 * cube_above(x, t1) + c2 * cube_above(x, t2)
        };
        assert_eq!(at(-1.0), 0.0);
        assert!((at(1.0) - 1.0 / 9.0).abs() < 1e-15);
        assert!((at(4.0) - 42.0 / 9.0).abs() < 1e-12);
        assert!((at(5.0) - 60.0 / 9.0).abs() < 1e-12);
        assert!((at(6.0) - 78.0 / 9.0).abs() < 1e-12);
        // beyond the last knot the second difference vanishes (linear tail)
        let d2 = at(7.0) - 2.0 * at(8.0) + at(9.0);
        assert!(d2.abs() < 1e-9, "{d2}");
        // knots: repeated quantiles merge; under three distinct, no curve
        let many: Vec<f64> = (0..=100).map(f64::from).collect();
        let k = spline_knots(&many);
        assert_eq!(k.len(), 5);
        for (got, want) in k.iter().zip([5.0, 27.5, 50.0, 72.5, 95.0]) {
            assert!((got - want).abs() < 1e-9, "{k:?}");
        }
        let few = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0];
        assert!(spline_knots(&few).is_empty());
    }
}
