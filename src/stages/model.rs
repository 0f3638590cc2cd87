//! Stage 4: the sales-velocity model. L2-regularised logistic regression
//! (linfa-logistic), penalty chosen by time-ordered cross-validation,
//! evaluated on a time-based holdout, then refitted on all labelled deals.

use std::collections::BTreeMap;

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, ArrayView2};
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{HoldoutBy, NumericShape, Solver, ValidConfig};
use crate::error::{IcpError, Result};
use crate::io::load::{ColumnKind, Dataset, InputFile};
use crate::stages::features::{self, Encoded, FeatureSpec, Rows};
use crate::stages::label::{self, Labels, Window};
use crate::util::metrics::{self, CalibrationBin};
use crate::util::progress::Stages;

mod newton;

pub const ARTIFACT_FORMAT: &str = "icp-model/1";
/// A holdout AUC whose 95% interval reaches down to this is "near chance".
pub const MIN_RELIABLE_AUC_LOWER: f64 = 0.55;

pub use crate::stages::features::linear::{LinearModel, logit_from_groups};

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Fit one logistic regression. `lambda` is the L2 penalty per row.
fn fit_logistic(
    x: Rows<'_>,
    y: &[bool],
    lambda: f64,
    max_iterations: u64,
    solver: Solver,
) -> Result<(Vec<f64>, f64)> {
    fit_logistic_from(x, y, lambda, max_iterations, solver, None)
}

/// [`fit_logistic`] starting from `start` (coefficients, intercept), e.g. the
/// solution for a neighbouring penalty: fewer iterations.
fn fit_logistic_from(
    x: Rows<'_>,
    y: &[bool],
    lambda: f64,
    max_iterations: u64,
    solver: Solver,
    start: Option<(&[f64], f64)>,
) -> Result<(Vec<f64>, f64)> {
    let n = x.nrows();
    debug_assert_eq!(n, y.len());
    let pos = y.iter().filter(|&&b| b).count();
    if pos == 0 || pos == n {
        return Err(IcpError::NotEnoughEvidence(format!(
            "all {n} training deals have the same label ({}); the model needs both velocity wins and other outcomes",
            if pos == 0 {
                "no velocity win"
            } else {
                "all velocity wins"
            }
        )));
    }
    let alpha = lambda * n as f64;
    let (coef, b) = match solver {
        Solver::Newton => {
            let sol = newton::fit(x, y, alpha, max_iterations, start);
            if !sol.converged {
                return Err(IcpError::Fit(format!(
                    "the logistic regression on {n} deals did not converge in {} Newton steps; raise [model] max_iterations",
                    sol.iterations
                )));
            }
            (sol.coef, sol.intercept)
        }
        Solver::Lbfgs => fit_lbfgs(x.to_dense().view(), y, pos, alpha, max_iterations, start)?,
    };
    if !(b.is_finite() && coef.iter().all(|c| c.is_finite())) {
        return Err(IcpError::Fit(format!(
            "the logistic regression on {n} deals did not reach finite coefficients"
        )));
    }
    Ok((coef, b))
}

/// linfa-logistic's L-BFGS on the same loss.
/// `pos` is the number of wins in `y`.
fn fit_lbfgs(
    x: ArrayView2<f64>,
    y: &[bool],
    pos: usize,
    alpha: f64,
    max_iterations: u64,
    start: Option<(&[f64], f64)>,
) -> Result<(Vec<f64>, f64)> {
    let n = x.nrows();
    let targets = Array1::from(y.to_vec());
    let ds = linfa::DatasetBase::new(x, targets);
    let mut params = LogisticRegression::default()
        .alpha(alpha)
        .gradient_tolerance(1e-6 * n as f64)
        .max_iterations(max_iterations);
    if let Some((coef, b)) = start {
        // linfa's own orientation: its positive class is the more frequent
        // one (on a tie, the first one seen); parameters are [w..., intercept].
        let linfa_pos_is_win = if 2 * pos != n { 2 * pos > n } else { y[0] };
        let sign = if linfa_pos_is_win { 1.0 } else { -1.0 };
        let init: Array1<f64> = coef
            .iter()
            .chain(std::iter::once(&b))
            .map(|v| sign * v)
            .collect();
        params = params.initial_params(init);
    }
    let model = params.fit(&ds).map_err(|e| IcpError::Fit(e.to_string()))?;
    // linfa calls the more frequent class "positive": make it ours.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    let coef = model.params().iter().map(|w| sign * w).collect();
    Ok((coef, sign * model.intercept()))
}

fn predict(x: Rows<'_>, coef: &[f64], b: f64) -> Vec<f64> {
    (0..x.nrows())
        .into_par_iter()
        .map(|i| sigmoid(x.linear(i, coef, b)))
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CvResult {
    /// how numeric columns entered the design (artifacts from before the
    /// choice used bands)
    #[serde(default = "bands")]
    pub numeric_shape: NumericShape,
    pub lambda: f64,
    pub folds: usize,
    pub mean_log_loss: f64,
    pub mean_auc: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BandStats {
    pub band: String,
    pub deals: usize,
    pub win_rate: f64,
    pub velocity_win_share: f64,
    pub median_cycle_days_won: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OracleComparison {
    pub deals: usize,
    pub model_auc: f64,
    pub oracle_auc: f64,
    pub unseen_deals: usize,
    pub unseen_model_auc: Option<f64>,
    pub unseen_oracle_auc: Option<f64>,
}

/// How well the model did on deals it never saw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub train_deals: usize,
    pub train_velocity_wins: usize,
    pub holdout_deals: usize,
    pub holdout_velocity_wins: usize,
    pub holdout_from: String,
    /// which date `holdout_from` is (older artifacts: the close date)
    #[serde(default)]
    pub holdout_by: HoldoutBy,
    /// open deals created in the holdout period, left out (creation cohorts)
    #[serde(default)]
    pub holdout_left_open: usize,
    /// creation cohorts: the holdout's last creation date (later deals had
    /// no time to close and are in neither part)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_to: Option<String>,
    /// closed deals created after `holdout_to`, left out
    #[serde(default)]
    pub holdout_left_recent: usize,
    pub train_accounts: usize,
    pub holdout_accounts_unseen: usize,
    pub lambda: f64,
    /// how numeric columns enter the model, chosen with the penalty
    #[serde(default = "bands")]
    pub numeric_shape: NumericShape,
    pub cross_validation: Vec<CvResult>,
    pub auc: f64,
    pub auc_ci95: (f64, f64),
    pub unseen_accounts_auc: Option<f64>,
    pub brier: f64,
    pub brier_base_rate: f64,
    pub base_rate: f64,
    pub calibration: Vec<CalibrationBin>,
    pub bands: Vec<BandStats>,
    pub reliable: bool,
    pub verdict: String,
    pub oracle: Option<OracleComparison>,
}

fn bands() -> NumericShape {
    NumericShape::Bands
}

/// Everything `icp score` needs, and the evidence of how it was made. Made
/// by training or by [`ModelArtifact::read`], which checks a file once;
/// never deserialised unchecked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelArtifact {
    pub format: String,
    pub model_id: String,
    pub program_version: String,
    pub training_fingerprint: String,
    pub inputs: Vec<InputFile>,
    pub velocity_window: Window,
    pub model: LinearModel,
    pub extra_column_kinds: BTreeMap<String, ColumnKind>,
    /// logit cut points at the 1st..100th percentile of the accounts scored at training
    pub reference: Vec<f64>,
    pub min_feature_coverage: f64,
    pub evaluation: Evaluation,
    /// column and stage mapping used at training; `icp score` reuses it
    pub config: ValidConfig,
}

/// A model file as read, before its checks: the only form of the artifact
/// that is deserialised.
#[derive(Deserialize)]
struct RawArtifact {
    format: String,
    model_id: String,
    program_version: String,
    training_fingerprint: String,
    inputs: Vec<InputFile>,
    velocity_window: Window,
    model: LinearModel,
    extra_column_kinds: BTreeMap<String, ColumnKind>,
    /// logit cut points at the 1st..100th percentile of the accounts scored at training
    reference: Vec<f64>,
    min_feature_coverage: f64,
    evaluation: Evaluation,
    /// column and stage mapping used at training; `icp score` reuses it
    config: crate::config::RawValidConfig,
}

impl ModelArtifact {
    pub fn read(path: &std::path::Path) -> Result<ModelArtifact> {
        let text = std::fs::read_to_string(path).map_err(|e| IcpError::Artifact {
            path: path.into(),
            message: format!("cannot read: {e}"),
        })?;
        let raw: RawArtifact = serde_json::from_str(&text).map_err(|e| IcpError::Artifact {
            path: path.into(),
            message: format!("not a model artifact of this program: {e}"),
        })?;
        raw.check(path)
    }
}

impl RawArtifact {
    /// The one way from a file to an artifact scoring trusts: the format,
    /// every index, kind and number ([`ModelArtifact::check`]) and the
    /// embedded config.
    fn check(self, path: &std::path::Path) -> Result<ModelArtifact> {
        let RawArtifact {
            format,
            model_id,
            program_version,
            training_fingerprint,
            inputs,
            velocity_window,
            model,
            extra_column_kinds,
            reference,
            min_feature_coverage,
            evaluation,
            config,
        } = self;
        if format != ARTIFACT_FORMAT {
            return Err(IcpError::Artifact {
                path: path.into(),
                message: format!("format {format} is not {ARTIFACT_FORMAT}"),
            });
        }
        let a = ModelArtifact {
            format,
            model_id,
            program_version,
            training_fingerprint,
            inputs,
            velocity_window,
            model,
            extra_column_kinds,
            reference,
            min_feature_coverage,
            evaluation,
            config: config.check(path)?,
        };
        a.check().map_err(|message| IcpError::Artifact {
            path: path.into(),
            message: format!("{message} (the file was edited by hand, damaged, or written by another version: retrain with `icp run`)"),
        })?;
        Ok(a)
    }
}

impl ModelArtifact {
    /// Every index, kind and number scoring relies on, checked once on read:
    /// what passes cannot panic in the feature and scoring code.
    fn check(&self) -> std::result::Result<(), String> {
        let spec = &self.model.spec;
        check_numeric_variables(spec)?;
        check_interactions(spec)?;
        check_features(spec)?;
        let p = spec.features.len();
        if self.model.coefficients.len() != p || spec.means.len() != p {
            return Err(format!(
                "model.coefficients has {} values and model.spec.means {} for {p} features",
                self.model.coefficients.len(),
                spec.means.len()
            ));
        }
        check_finite("model.coefficients", &self.model.coefficients)?;
        check_finite("model.spec.means", &spec.means)?;
        check_finite("model.intercept", &[self.model.intercept])?;
        if self.reference.is_empty() {
            return Err("reference has no cut points".into());
        }
        check_finite("reference", &self.reference)?;
        if self.reference.windows(2).any(|w| w[0] > w[1]) {
            return Err("reference cut points are not in order".into());
        }
        if !(0.0..=1.0).contains(&self.min_feature_coverage) {
            return Err(format!(
                "min_feature_coverage is {} (expected 0 to 1)",
                self.min_feature_coverage
            ));
        }
        if self.velocity_window.days < 1 {
            return Err(format!(
                "velocity_window.days is {} (expected 1 or more)",
                self.velocity_window.days
            ));
        }
        Ok(())
    }
}

/// `v` holds only finite numbers; the error names the first that is not.
fn check_finite(what: &str, v: &[f64]) -> std::result::Result<(), String> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(format!(
            "{what}[{i}] is {} (expected a finite number)",
            v[i]
        )),
        None => Ok(()),
    }
}

/// `v` is finite and strictly increasing (cut points, knots).
fn check_increasing(what: &str, v: &[f64]) -> std::result::Result<(), String> {
    check_finite(what, v)?;
    match v.windows(2).position(|w| w[0] >= w[1]) {
        Some(i) => Err(format!("{what} is not increasing at {}", i + 1)),
        None => Ok(()),
    }
}

/// A numeric variable's centre, scale, bands and knots are usable: the
/// scaling divides by `sd`, the bands and splines search the cut points.
fn check_numeric_variables(spec: &FeatureSpec) -> std::result::Result<(), String> {
    use crate::stages::features::Variable;
    for (i, v) in spec.variables.iter().enumerate() {
        if let Variable::Numeric {
            median,
            mean,
            sd,
            edges,
            knots,
            ..
        } = v
        {
            let at = format!("model.spec.variables[{i}]");
            check_finite(&format!("{at}.median/mean/sd"), &[*median, *mean, *sd])?;
            if *sd <= 0.0 {
                return Err(format!("{at}.sd is {sd} (expected more than 0)"));
            }
            check_increasing(&format!("{at}.edges"), edges)?;
            check_increasing(&format!("{at}.knots"), knots)?;
            if knots.len() == 1 || knots.len() == 2 {
                return Err(format!(
                    "{at}.knots has {} knots (expected none, or 3 or more)",
                    knots.len()
                ));
            }
        }
    }
    Ok(())
}

/// Each interaction's two cells name a level or band its variable has.
fn check_interactions(spec: &FeatureSpec) -> std::result::Result<(), String> {
    use crate::stages::features::{Cell, Variable};
    let cell = |c: &Cell, at: &str| -> std::result::Result<(), String> {
        match c {
            Cell::Level { var, level } => match spec.variables.get(*var) {
                Some(Variable::Categorical { levels, .. }) if levels.contains(level) => Ok(()),
                _ => Err(format!(
                    "{at}: no categorical variable {var} with the level {level:?}"
                )),
            },
            Cell::Bin { var, bin } => match spec.variables.get(*var) {
                Some(Variable::Numeric { edges, .. }) if *bin <= edges.len() => Ok(()),
                _ => Err(format!("{at}: no numeric variable {var} with band {bin}")),
            },
        }
    };
    for (i, x) in spec.interactions.iter().enumerate() {
        cell(&x.a, &format!("model.spec.interactions[{i}].a"))?;
        cell(&x.b, &format!("model.spec.interactions[{i}].b"))?;
    }
    Ok(())
}

/// Each design column refers to a variable (or interaction) that exists and
/// has the level, band, spline term or missing flag it reads.
fn check_features(spec: &FeatureSpec) -> std::result::Result<(), String> {
    use crate::stages::features::{Feature, Variable};
    let n_vars = spec.variables.len();
    for (j, f) in spec.features.iter().enumerate() {
        let at = format!("model.spec.features[{j}]");
        let var = |v: usize| {
            spec.variables
                .get(v)
                .ok_or_else(|| format!("{at}: variable {v} does not exist ({n_vars} variables)"))
        };
        let ok = match f {
            Feature::Level { var: v, level } => {
                matches!(var(*v)?, Variable::Categorical { levels, .. } if levels.contains(level))
            }
            Feature::Other { var: v } => {
                matches!(
                    var(*v)?,
                    Variable::Categorical {
                        has_other: true,
                        ..
                    }
                )
            }
            Feature::Missing { var: v } => match var(*v)? {
                Variable::Categorical { has_missing, .. }
                | Variable::Numeric { has_missing, .. } => *has_missing,
            },
            Feature::Linear { var: v } => matches!(var(*v)?, Variable::Numeric { .. }),
            Feature::Bin { var: v, bin } => {
                matches!(var(*v)?, Variable::Numeric { edges, .. } if *bin <= edges.len())
            }
            Feature::Spline { var: v, term } => {
                matches!(var(*v)?, Variable::Numeric { knots, .. } if knots.len() >= 3 && *term < knots.len() - 2)
            }
            Feature::Interaction { index } => *index < spec.interactions.len(),
        };
        if !ok {
            return Err(format!("{at} ({f:?}) does not fit its variable"));
        }
    }
    Ok(())
}

/// The result of training: the artifact and the labelled deals behind it.
pub struct TrainOutcome {
    pub artifact: ModelArtifact,
    pub labels: Labels,
    /// labelled deals joined with their account columns
    pub rows: DataFrame,
}

/// Labelled deals with their accounts' columns, in time order.
fn training_rows(labels: &Labels, data: &Dataset) -> Result<DataFrame> {
    // each part in the order of the date that splits them, so the CV's
    // expanding folds follow creation cohorts when the holdout does
    let order = labels.holdout_by.column();
    Ok(labels
        .df
        .clone()
        .lazy()
        .join(
            data.accounts.df.clone().lazy(),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner).with_suffix(Some("_account".into())),
        )
        // the training deals first, each part in close-date order: with a
        // close-date holdout that is plain close-date order
        .sort(
            ["holdout", order, "opportunity_id"],
            SortMultipleOptions::default(),
        )
        .collect()?)
}

fn bools(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    Ok(df.column(name)?.bool()?.no_null_iter().collect())
}

fn distinct_accounts(rows: &DataFrame, accounts: &DataFrame) -> Result<DataFrame> {
    let ids = rows
        .clone()
        .lazy()
        .select([col("account_id")])
        .unique_stable(None, UniqueKeepStrategy::First);
    Ok(accounts
        .clone()
        .lazy()
        .join(
            ids,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Semi),
        )
        .sort(["account_id"], SortMultipleOptions::default())
        .collect()?)
}

/// Learn the encoding (main effects, then screened interactions) from
/// `rows`: one spec per numeric shape `shape` asks to try (bands, splines or
/// both, bands first). Also returns the rows' codes: they depend only on
/// the variables, which neither the screen nor the shape changes, so every
/// candidate's design reuses them.
///
/// The interaction screen runs once, against the main effects with bands;
/// the spline candidate keeps the same interactions.
#[allow(clippy::too_many_arguments)]
fn fit_spec(
    rows: &DataFrame,
    y: &[bool],
    data: &Dataset,
    cfg: &ValidConfig,
    reference_year: i32,
    shape: NumericShape,
    guarded: &[crate::stages::guard::Dropped],
) -> Result<(Vec<FeatureSpec>, Encoded)> {
    let accounts = distinct_accounts(rows, &data.accounts.df)?;
    // the leak guard's columns are left out like the config's, under
    // their own reason
    let mut params = cfg.features.clone();
    params
        .exclude
        .extend(guarded.iter().map(|d| d.column.clone()));
    let mut spec =
        features::fit_main_effects(&accounts, &data.extra_columns, &params, reference_year)?;
    for (name, reason) in spec.skipped.iter_mut() {
        if let Some(d) = guarded.iter().find(|d| &d.column == name) {
            *reason = d.reason.clone();
        }
    }
    let codes = Encoded::of(&spec, rows)?;
    if cfg.features.interactions {
        let x = codes.sparse(&spec);
        let x = x.rows();
        // the score test needs the residuals of a model fitted on these same
        // deals: fitted on a subset, older deals' misfit reads as interactions
        let (coef, b) = fit_logistic(x, y, 1e-3, cfg.model.max_iterations, cfg.model.solver)?;
        let p = predict(x, &coef, b);
        spec = features::add_interactions(spec, &codes, &accounts, y, &p, &cfg.features)?;
    }
    let curves = spec.has_curves();
    let specs = match shape {
        NumericShape::Bands => vec![spec],
        NumericShape::Splines if curves => vec![features::with_splines(&spec, &accounts)?],
        NumericShape::Auto if curves => {
            let splines = features::with_splines(&spec, &accounts)?;
            vec![spec, splines]
        }
        NumericShape::Splines | NumericShape::Auto => vec![spec],
    };
    Ok((specs, codes))
}

/// Reference cut points: the 1st..100th percentiles of `logits`.
fn reference_cutpoints(logits: &[f64]) -> Vec<f64> {
    let mut v = logits.to_vec();
    v.sort_by(f64::total_cmp);
    (1..=100)
        .map(|k| features::quantile_sorted(&v, k as f64 / 100.0))
        .collect()
}

/// A logit within this distance below a cut point reaches it. Cut points are
/// quantiles of the accounts' own logits, so some accounts sit exactly on one
/// (the top account on the 100th); the tolerance keeps their score the same in
/// an engine whose LN or EXP differs from ours in the last bit (`icp export-sql`).
pub const CUT_TOLERANCE: f64 = 1e-9;

/// Percentile score 0-100: how many reference cut points the logit reaches.
pub fn percentile_score(logit: f64, reference: &[f64]) -> u8 {
    reference.partition_point(|&c| c - CUT_TOLERANCE <= logit) as u8
}

pub fn band(score: u8) -> &'static str {
    crate::domain::Band::of(score).as_str()
}

/// Train, evaluate on the time-based holdout, refit on everything.
pub fn train(data: &Dataset, cfg: &ValidConfig, truth: Option<&DataFrame>) -> Result<TrainOutcome> {
    train_staged(data, cfg, truth, &Stages::silent())
}

/// [`train`], marking its stages (label, features, fit) on `stages`.
pub fn train_staged(
    data: &Dataset,
    cfg: &ValidConfig,
    truth: Option<&DataFrame>,
    stages: &Stages,
) -> Result<TrainOutcome> {
    stages.start("label");
    let labels = label::label(data, cfg)?;
    let rows = training_rows(&labels, data)?;
    stages.rows(data.opportunities.as_ref().map_or(0, |t| t.df.height()));
    let holdout = bools(&rows, "holdout")?;
    let y_all = bools(&rows, "label")?;
    let n_train = holdout.iter().filter(|h| !**h).count();
    check_evidence(&labels, &y_all, n_train, cfg)?;
    let reference_year = {
        let last = labels.df.column("closed_date")?.cast(&DataType::Int32)?;
        let d = last.i32()?.max().unwrap_or(0);
        chrono::Datelike::year(&label::epoch_days_to_date(d))
    };

    // the leak guard: columns judged against every closed deal's outcome
    // (a column the sale writes holds the latest one; dropping a column on
    // the holdout's evidence can only make the holdout look worse)
    let guarded = match &data.opportunities {
        Some(o) => crate::stages::guard::screen(
            &data.accounts.df,
            &o.df,
            &labels.df,
            &cfg.features,
            cfg.date_format.as_deref(),
        )?,
        None => Vec::new(),
    };

    // --- fit on the training part only, choose the penalty by time-ordered CV
    let train_rows = rows.slice(0, n_train);
    let test_rows = rows.slice(n_train as i64, rows.height() - n_train);
    let (y_train, y_test) = (&y_all[..n_train], &y_all[n_train..]);
    stages.start("features");
    stages.rows(rows.height());
    let (specs_train, codes_train) = fit_spec(
        &train_rows,
        y_train,
        data,
        cfg,
        reference_year,
        cfg.features.numeric_shape,
        &guarded,
    )?;
    stages.start("fit");
    stages.rows(rows.height());
    let (train_model, best, cv) = fit_training_part(specs_train, codes_train, y_train, cfg)?;
    let shape = train_model.spec.numeric_shape();
    let z_test = train_model.logits(&test_rows)?;
    let p_test: Vec<f64> = z_test.iter().copied().map(sigmoid).collect();
    let universe_train = train_model.logits(&data.accounts.df)?;
    let ref_train = reference_cutpoints(&universe_train);
    let evaluation = evaluate(
        &rows, n_train, y_test, &z_test, &p_test, &ref_train, best, cv, &labels, truth,
    )?;
    let evaluation = Evaluation {
        numeric_shape: shape,
        ..evaluation
    };

    // --- refit on every labelled deal for scoring
    stages.start("features");
    let (specs_all, codes_all) =
        fit_spec(&rows, &y_all, data, cfg, reference_year, shape, &guarded)?;
    let model = refit_all(specs_all, codes_all, &y_all, best, cfg, stages)?;
    let artifact = build_artifact(data, cfg, &labels, model, evaluation)?;
    Ok(TrainOutcome {
        artifact,
        labels,
        rows,
    })
}

/// Refuses to train on too few deals of either class before the holdout, or
/// too few in it: the fit and the holdout's verdict would mean nothing.
fn check_evidence(
    labels: &Labels,
    y_all: &[bool],
    n_train: usize,
    cfg: &ValidConfig,
) -> Result<()> {
    let ev = &cfg.evidence;
    let (train_pos, test_pos) = (
        y_all[..n_train].iter().filter(|b| **b).count(),
        y_all[n_train..].iter().filter(|b| **b).count(),
    );
    let (train_neg, test_neg) = (n_train - train_pos, y_all.len() - n_train - test_pos);
    let mut short = Vec::new();
    if train_pos < ev.min_train_positives {
        short.push(format!(
            "{train_pos} velocity wins before the holdout (need {})",
            ev.min_train_positives
        ));
    }
    if train_neg < ev.min_train_negatives {
        short.push(format!(
            "{train_neg} other closed deals before the holdout (need {})",
            ev.min_train_negatives
        ));
    }
    if test_pos < ev.min_holdout_per_class || test_neg < ev.min_holdout_per_class {
        short.push(format!(
            "the holdout ({}) has {test_pos} velocity wins and {test_neg} other deals (need {} of each)",
            labels.holdout_words(),
            ev.min_holdout_per_class
        ));
    }
    if !short.is_empty() {
        let holdout_short =
            test_pos < ev.min_holdout_per_class || test_neg < ev.min_holdout_per_class;
        let hint = match labels.holdout_by {
            HoldoutBy::ClosedDate if holdout_short => format!(" {}", label::HOLDOUT_BY_HINT),
            _ => String::new(),
        };
        return Err(IcpError::NotEnoughEvidence(format!(
            "{} (velocity window {} days). Add more closed deals, or lower the limits in the config's [evidence] section.{hint}",
            short.join("; "),
            labels.window.days
        )));
    }
    Ok(())
}

/// Chooses the penalty and numeric shape by CV on the training part, then
/// fits the model the holdout judges. Returns it with the penalty and the CV.
fn fit_training_part(
    specs_train: Vec<FeatureSpec>,
    codes_train: Encoded,
    y_train: &[bool],
    cfg: &ValidConfig,
) -> Result<(LinearModel, f64, Vec<CvResult>)> {
    // the penalty and the numeric shape (bands or splines) are chosen
    // together, by the same time-ordered CV; a tie keeps bands (tried first)
    let mut cv = Vec::new();
    let mut chosen: Option<(FeatureSpec, features::Sparse, f64, (usize, f64))> = None;
    for spec in specs_train {
        let x = codes_train.sparse(&spec);
        let shape = spec.numeric_shape();
        let mut results = cross_validate(x.rows(), y_train, cfg)?;
        results.iter_mut().for_each(|r| r.numeric_shape = shape);
        // a fold whose fit failed is left out of a penalty's mean: compare
        // on the most folds first, so a shape cannot win on easier folds
        let best = results
            .iter()
            .min_by(|a, b| {
                b.folds
                    .cmp(&a.folds)
                    .then(a.mean_log_loss.total_cmp(&b.mean_log_loss))
            })
            .map(|c| (c.lambda, (c.folds, c.mean_log_loss)))
            .unwrap_or((cfg.model.lambdas[0], (0, f64::INFINITY)));
        cv.extend(results);
        let better = |c: &(usize, f64)| best.1.0 > c.0 || (best.1.0 == c.0 && best.1.1 < c.1);
        if chosen.as_ref().is_none_or(|c| better(&c.3)) {
            chosen = Some((spec, x, best.0, best.1));
        }
    }
    drop(codes_train);
    let (spec_train, x_train, best, _) = chosen.expect("fit_spec gives at least one spec");
    let (coef, b) = fit_logistic(
        x_train.rows(),
        y_train,
        best,
        cfg.model.max_iterations,
        cfg.model.solver,
    )?;
    drop(x_train);
    let train_model = LinearModel {
        spec: spec_train,
        coefficients: coef,
        intercept: b,
    };
    Ok((train_model, best, cv))
}

/// The refit on every labelled deal with the chosen shape and penalty: the
/// model that scores. Marks the fit stage once the design is built.
fn refit_all(
    specs_all: Vec<FeatureSpec>,
    codes_all: Encoded,
    y_all: &[bool],
    best: f64,
    cfg: &ValidConfig,
    stages: &Stages,
) -> Result<LinearModel> {
    let spec_all = specs_all
        .into_iter()
        .next()
        .expect("fit_spec gives at least one spec");
    let x_all = codes_all.sparse(&spec_all);
    drop(codes_all);
    stages.start("fit");
    let (coef, b) = fit_logistic(
        x_all.rows(),
        y_all,
        best,
        cfg.model.max_iterations,
        cfg.model.solver,
    )?;
    Ok(LinearModel {
        spec: spec_all,
        coefficients: coef,
        intercept: b,
    })
}

/// The artifact around the final model: its reference cut points, the
/// inputs' fingerprint, and the content id over all of it.
fn build_artifact(
    data: &Dataset,
    cfg: &ValidConfig,
    labels: &Labels,
    model: LinearModel,
    evaluation: Evaluation,
) -> Result<ModelArtifact> {
    let reference = reference_cutpoints(&model.logits(&data.accounts.df)?);
    let inputs = data.inputs();
    let training_fingerprint = {
        let mut h = Sha256::new();
        for i in &inputs {
            h.update(i.table.as_bytes());
            h.update(i.sha256.as_bytes());
        }
        h.update(fingerprint_bytes(cfg)?);
        crate::util::ids::hex(&h.finalize())
    };
    let mut artifact = ModelArtifact {
        format: ARTIFACT_FORMAT.into(),
        model_id: String::new(),
        program_version: env!("CARGO_PKG_VERSION").into(),
        training_fingerprint,
        inputs,
        velocity_window: labels.window.clone(),
        model,
        extra_column_kinds: data.extra_columns.clone(),
        reference,
        min_feature_coverage: cfg.min_feature_coverage,
        evaluation,
        config: cfg.clone(),
    };
    artifact.model_id = model_id(&artifact)?;
    Ok(artifact)
}

/// The bytes a fingerprint hashes. A value that cannot be serialised is an
/// error: hashing nothing in its place would give different models one id.
fn fingerprint_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| IcpError::Internal(format!("fingerprinting the model: {e}")))
}

/// A content id: the same training inputs and settings give the same id.
fn model_id(a: &ModelArtifact) -> Result<String> {
    let mut h = Sha256::new();
    h.update(fingerprint_bytes(&a.model)?);
    h.update(fingerprint_bytes(&a.reference)?);
    h.update(a.training_fingerprint.as_bytes());
    h.update(a.program_version.as_bytes());
    Ok(format!("m-{}", &crate::util::ids::hex(&h.finalize())[..12]))
}

/// Penalty selection looks at most at this many of the latest training
/// deals: with more, the per-row penalty barely moves the fit, and the
/// fifteen fits of a full cross-validation would dominate a large run.
pub const CV_MAX_ROWS: usize = 100_000;

/// Expanding-window CV in time order: fold k trains on blocks 0..k and
/// validates on block k, so no fold ever sees its future. Within a fold the
/// penalties are fitted strongest first, each starting from the previous
/// solution.
fn cross_validate(x: Rows<'_>, y: &[bool], cfg: &ValidConfig) -> Result<Vec<CvResult>> {
    let start = x.nrows().saturating_sub(CV_MAX_ROWS);
    let (x, y) = (x.slice(start, x.nrows()), &y[start..]);
    let n = x.nrows();
    let k = cfg.model.cv_folds;
    let bounds: Vec<usize> = (0..=k + 1).map(|i| i * n / (k + 1)).collect();
    let mut order: Vec<usize> = (0..cfg.model.lambdas.len()).collect();
    order.sort_by(|a, b| cfg.model.lambdas[*b].total_cmp(&cfg.model.lambdas[*a]));
    let folds: Vec<usize> = (1..=k).collect();
    let results: Vec<Option<(usize, f64, Option<f64>)>> = folds
        .par_iter()
        .flat_map_iter(|&f| {
            let (end, stop) = (bounds[f], bounds[f + 1]);
            let (yt, yv) = (&y[..end], &y[end..stop]);
            let pos = yt.iter().filter(|b| **b).count();
            let usable = end > 0 && stop > end && pos > 0 && pos < yt.len();
            let mut warm: Option<(Vec<f64>, f64)> = None;
            let mut out = Vec::new();
            for &l in &order {
                if !usable {
                    out.push(None);
                    continue;
                }
                let fit = fit_logistic_from(
                    x.slice(0, end),
                    yt,
                    cfg.model.lambdas[l],
                    cfg.model.max_iterations,
                    cfg.model.solver,
                    warm.as_ref().map(|(c, b)| (c.as_slice(), *b)),
                );
                let Ok((coef, b)) = fit else {
                    out.push(None);
                    continue;
                };
                let p = predict(x.slice(end, stop), &coef, b);
                out.push(Some((l, metrics::log_loss(&p, yv), metrics::auc(&p, yv))));
                warm = Some((coef, b));
            }
            out
        })
        .collect();
    let mut out = Vec::new();
    for (l, &lambda) in cfg.model.lambdas.iter().enumerate() {
        let mine: Vec<_> = results.iter().flatten().filter(|r| r.0 == l).collect();
        if mine.is_empty() {
            continue;
        }
        let aucs: Vec<f64> = mine.iter().filter_map(|r| r.2).collect();
        out.push(CvResult {
            numeric_shape: NumericShape::Bands,
            lambda,
            folds: mine.len(),
            mean_log_loss: mine.iter().map(|r| r.1).sum::<f64>() / mine.len() as f64,
            mean_auc: if aucs.is_empty() {
                f64::NAN
            } else {
                aucs.iter().sum::<f64>() / aucs.len() as f64
            },
        });
    }
    Ok(out)
}

/// The elements of `v` where `mask` is true.
fn masked<T: Copy>(v: &[T], mask: &[bool]) -> Vec<T> {
    v.iter().zip(mask).filter(|x| *x.1).map(|x| *x.0).collect()
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    rows: &DataFrame,
    n_train: usize,
    y: &[bool],
    z: &[f64],
    p: &[f64],
    reference: &[f64],
    lambda: f64,
    cv: Vec<CvResult>,
    labels: &Labels,
    truth: Option<&DataFrame>,
) -> Result<Evaluation> {
    let test = rows.slice(n_train as i64, rows.height() - n_train);
    let n_pos = y.iter().filter(|b| **b).count();
    let auc = metrics::auc(p, y).unwrap_or(f64::NAN);
    let ci = metrics::auc_ci(auc, n_pos, y.len() - n_pos);
    let base_rate = n_pos as f64 / y.len() as f64;
    let brier_base = metrics::brier(&vec![base_rate; y.len()], y);

    // accounts of holdout deals that had no deal in the training part
    let train_ids: rustc_hash::FxHashSet<&str> = rows
        .column("account_id")?
        .str()?
        .no_null_iter()
        .take(n_train)
        .collect();
    let test_ids: Vec<String> = test
        .column("account_id")?
        .str()?
        .no_null_iter()
        .map(str::to_string)
        .collect();
    let unseen: Vec<bool> = test_ids
        .iter()
        .map(|a| !train_ids.contains(a.as_str()))
        .collect();
    let unseen_auc = metrics::auc(&masked(p, &unseen), &masked(y, &unseen));
    let unseen_accounts: std::collections::BTreeSet<&String> = test_ids
        .iter()
        .zip(&unseen)
        .filter(|x| *x.1)
        .map(|x| x.0)
        .collect();

    let bands = holdout_bands(&test, y, z, reference)?;
    let oracle = match truth {
        None => None,
        Some(t) => Some(oracle_comparison(&test, t, y, p, &unseen)?),
    };
    let reliable = ci.0 > MIN_RELIABLE_AUC_LOWER;
    let verdict = verdict_words(reliable, auc, ci, y.len());
    Ok(Evaluation {
        train_deals: n_train,
        train_velocity_wins: labels
            .df
            .column("label")?
            .bool()?
            .no_null_iter()
            .filter(|b| *b)
            .count()
            - n_pos,
        holdout_deals: y.len(),
        holdout_velocity_wins: n_pos,
        holdout_from: labels.cutoff.to_string(),
        holdout_by: labels.holdout_by,
        holdout_left_open: labels.left_open,
        holdout_to: labels.holdout_to.map(|d| d.to_string()),
        holdout_left_recent: labels.left_recent,
        train_accounts: train_ids.len(),
        holdout_accounts_unseen: unseen_accounts.len(),
        lambda,
        numeric_shape: NumericShape::Bands,
        cross_validation: cv,
        auc,
        auc_ci95: ci,
        unseen_accounts_auc: unseen_auc,
        brier: metrics::brier(p, y),
        brier_base_rate: brier_base,
        base_rate,
        calibration: metrics::calibration(p, y),
        bands,
        reliable,
        verdict,
        oracle,
    })
}

/// Band statistics on the holdout `test`, scored like accounts are: each
/// deal's band from its logit `z` against the `reference` cut points.
fn holdout_bands(
    test: &DataFrame,
    y: &[bool],
    z: &[f64],
    reference: &[f64],
) -> Result<Vec<BandStats>> {
    let outcome: Vec<String> = test
        .column("outcome")?
        .str()?
        .no_null_iter()
        .map(str::to_string)
        .collect();
    let cycle: Vec<i64> = test
        .column("cycle_days")?
        .i64()?
        .into_no_null_iter()
        .collect();
    let mut bands = Vec::new();
    for name in crate::domain::Band::NAMES {
        let idx: Vec<usize> = (0..y.len())
            .filter(|&i| band(percentile_score(z[i], reference)) == name)
            .collect();
        let won: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| outcome[i] != crate::domain::Outcome::Lost.as_str())
            .collect();
        let mut cyc: Vec<f64> = won.iter().map(|&i| cycle[i] as f64).collect();
        cyc.sort_by(f64::total_cmp);
        let n = idx.len().max(1) as f64;
        bands.push(BandStats {
            band: name.into(),
            deals: idx.len(),
            win_rate: won.len() as f64 / n,
            velocity_win_share: idx.iter().filter(|&&i| y[i]).count() as f64 / n,
            median_cycle_days_won: (!cyc.is_empty()).then(|| crate::util::median_sorted(&cyc)),
        });
    }
    Ok(bands)
}

/// The model's holdout AUC beside the true probabilities' (`truth`, known
/// for generated data), on the holdout deals whose account `truth` has.
fn oracle_comparison(
    test: &DataFrame,
    t: &DataFrame,
    y: &[bool],
    p: &[f64],
    unseen: &[bool],
) -> Result<OracleComparison> {
    let joined = test
        .clone()
        .lazy()
        .select([col("account_id")])
        .with_row_index("__i", None)
        .join(
            t.clone().lazy().select([
                col("account_id"),
                col("p_velocity_win_true").cast(DataType::Float64),
            ]),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .sort(["__i"], SortMultipleOptions::default())
        .collect()?;
    let idx: Vec<usize> = joined
        .column("__i")?
        .idx()?
        .into_no_null_iter()
        .map(|i| i as usize)
        .collect();
    let pt: Vec<f64> = joined
        .column("p_velocity_win_true")?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let ys: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
    let pm: Vec<f64> = idx.iter().map(|&i| p[i]).collect();
    let un: Vec<bool> = idx.iter().map(|&i| unseen[i]).collect();
    Ok(OracleComparison {
        deals: idx.len(),
        model_auc: metrics::auc(&pm, &ys).unwrap_or(f64::NAN),
        oracle_auc: metrics::auc(&pt, &ys).unwrap_or(f64::NAN),
        unseen_deals: un.iter().filter(|b| **b).count(),
        unseen_model_auc: metrics::auc(&masked(&pm, &un), &masked(&ys, &un)),
        unseen_oracle_auc: metrics::auc(&masked(&pt, &un), &masked(&ys, &un)),
    })
}

/// The holdout's verdict in words: whether its AUC interval clears chance.
fn verdict_words(reliable: bool, auc: f64, ci: (f64, f64), deals: usize) -> String {
    if reliable {
        format!(
            "signal: holdout AUC {auc:.3} (95% CI {:.3}-{:.3}) on {deals} deals the model never saw",
            ci.0, ci.1
        )
    } else {
        format!(
            "no reliable signal: holdout AUC {auc:.3} (95% CI {:.3}-{:.3}) is near chance (0.5); \
             the firmographics in this data do not tell velocity wins apart, so do not target on these scores",
            ci.0, ci.1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::features::Sparse;
    use ndarray::Array2;

    fn sp(x: &Array2<f64>) -> Sparse {
        Sparse::from_dense(x.view())
    }

    /// linfa calls the more frequent class positive; wins are usually the
    /// minority, so the sign must be flipped back. A feature that marks wins
    /// must get a positive weight whichever class is more frequent.
    #[test]
    fn coefficients_point_towards_wins_whatever_the_class_balance() {
        for (win_share, solver) in [0.2, 0.8]
            .into_iter()
            .flat_map(|w| [(w, Solver::Newton), (w, Solver::Lbfgs)])
        {
            let n = 400;
            let y: Vec<bool> = (0..n).map(|i| (i as f64) < win_share * n as f64).collect();
            // the feature is 1 for 90% of wins and 10% of the others
            let x = Array2::from_shape_fn((n, 1), |(i, _)| {
                let k = i % 10;
                if y[i] {
                    (k != 0) as u8 as f64
                } else {
                    (k == 0) as u8 as f64
                }
            });
            let (coef, b) = fit_logistic(sp(&x).rows(), &y, 1e-3, 200, solver).expect("fits");
            assert!(coef[0] > 1.0, "win share {win_share}: weight {}", coef[0]);
            // and the probabilities are of a win, not of the majority class
            let p = predict(sp(&x).rows(), &coef, b);
            let mean_p = p.iter().sum::<f64>() / n as f64;
            assert!(
                (mean_p - win_share).abs() < 0.05,
                "mean p {mean_p} vs {win_share}"
            );
        }
    }

    /// A warm start (given in our orientation, wins positive) lands on the
    /// cold fit's solution whichever class linfa calls positive.
    #[test]
    fn warm_starts_reach_the_cold_solution() {
        for (win_share, solver) in [0.2, 0.8]
            .into_iter()
            .flat_map(|w| [(w, Solver::Newton), (w, Solver::Lbfgs)])
        {
            let n = 400;
            let y: Vec<bool> = (0..n).map(|i| (i as f64) < win_share * n as f64).collect();
            let x = Array2::from_shape_fn((n, 2), |(i, j)| {
                let k = (i * 7 + j * 3) % 10;
                if y[i] {
                    (k < 7) as u8 as f64
                } else {
                    (k < 3) as u8 as f64
                }
            });
            let (c0, b0) = fit_logistic(sp(&x).rows(), &y, 1e-2, 300, solver).expect("cold");
            let (c1, b1) = fit_logistic_from(sp(&x).rows(), &y, 1e-3, 300, solver, Some((&c0, b0)))
                .expect("warm");
            let (c2, b2) = fit_logistic(sp(&x).rows(), &y, 1e-3, 300, solver).expect("cold");
            for (a, b) in c1.iter().zip(&c2) {
                assert!((a - b).abs() < 1e-2, "{win_share}: {c1:?} vs {c2:?}");
            }
            assert!((b1 - b2).abs() < 1e-2, "{win_share}: {b1} vs {b2}");
        }
    }

    #[test]
    fn single_class_is_a_clear_error() {
        let x = Array2::from_elem((10, 1), 1.0);
        for solver in [Solver::Newton, Solver::Lbfgs] {
            let e =
                fit_logistic(sp(&x).rows(), &[false; 10], 1e-3, 50, solver).expect_err("one class");
            assert!(e.to_string().contains("same label"), "{e}");
        }
    }

    /// The penalised loss both solvers minimise (linfa-logistic's objective).
    fn objective(x: Rows<'_>, y: &[bool], lambda: f64, coef: &[f64], b: f64) -> f64 {
        let p = predict(x, coef, b);
        let ll: f64 = p
            .iter()
            .zip(y)
            .map(|(p, &y)| -(if y { p.ln() } else { (1.0 - p).ln() }))
            .sum();
        ll + 0.5 * lambda * y.len() as f64 * coef.iter().map(|c| c * c).sum::<f64>()
    }

    /// Newton's method lands where linfa-logistic's L-BFGS does, on a design
    /// like ours (a linear term beside one-hot levels that sum to one), and
    /// its loss is no higher.
    #[test]
    fn newton_agrees_with_linfa_lbfgs() {
        let n = 3000;
        let mut y = vec![false; n];
        let x = Array2::from_shape_fn((n, 4), |(i, j)| {
            let a = ((i * 37) % 101) as f64 / 100.0 - 0.5;
            let level = (i * 13) % 3;
            match j {
                0 => a,
                1..=3 => (level == j - 1) as u8 as f64,
                _ => unreachable!(),
            }
        });
        for i in 0..n {
            // a deterministic, noisy label
            let z = 2.0 * x[[i, 0]] + 0.7 * x[[i, 1]] - 0.5 * x[[i, 3]];
            let u = ((i * 7919) % 1000) as f64 / 1000.0;
            y[i] = u < sigmoid(z);
        }
        for lambda in [1e-4, 1e-2] {
            let (cn, bn) =
                fit_logistic(sp(&x).rows(), &y, lambda, 300, Solver::Newton).expect("newton");
            let (cl, bl) =
                fit_logistic(sp(&x).rows(), &y, lambda, 3000, Solver::Lbfgs).expect("lbfgs");
            let (on, ol) = (
                objective(sp(&x).rows(), &y, lambda, &cn, bn),
                objective(sp(&x).rows(), &y, lambda, &cl, bl),
            );
            assert!(
                on <= ol + 1e-9 * n as f64,
                "{lambda}: newton {on} vs lbfgs {ol}"
            );
            assert!((on - ol).abs() < 1e-4 * n as f64, "{lambda}: {on} vs {ol}");
            let pn = predict(sp(&x).rows(), &cn, bn);
            let pl = predict(sp(&x).rows(), &cl, bl);
            let worst = pn
                .iter()
                .zip(&pl)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-3, "{lambda}: probabilities differ by {worst}");
        }
    }

    #[test]
    fn percentile_scores_and_bands() {
        let logits: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let r = reference_cutpoints(&logits);
        assert_eq!(r.len(), 100);
        assert_eq!(percentile_score(-1.0, &r), 0);
        assert_eq!(percentile_score(999.0, &r), 100);
        assert_eq!(percentile_score(500.0, &r), 50);
        assert_eq!(band(70), "high");
        assert_eq!(band(69), "medium");
        assert_eq!(band(40), "medium");
        assert_eq!(band(39), "low");
    }
}
