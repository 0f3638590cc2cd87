//! The run configuration: parsed from TOML once, checked into a [`ValidConfig`]
//! and passed inward already valid (the linfa `Params` -> `ValidParams` idea).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::Outcome;
use crate::error::{IcpError, Result};

/// The account columns the contract names; all others are extra features.
pub const ACCOUNT_COLUMNS: &[&str] = &[
    "account_id",
    "account_name",
    "domain",
    "industry",
    "country",
    "employees",
    "annual_revenue",
    "founded_year",
];

/// The `[files] encoding` value for Excel's default on Windows.
pub const WINDOWS_1252: &str = "windows-1252";

/// What a user writes in the TOML file. Every field is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub files: Files,
    #[serde(default)]
    pub columns: Columns,
    /// CRM stage name -> canonical outcome (won, lost, churned, open).
    #[serde(default)]
    pub outcomes: BTreeMap<String, String>,
    /// canonical numeric column -> factor applied on load (e.g. revenue in millions).
    #[serde(default)]
    pub scale: BTreeMap<String, f64>,
    /// chrono format of dates when they are not ISO 8601 (e.g. "%m/%d/%Y").
    pub date_format: Option<String>,
    #[serde(default)]
    pub features: FeaturesToml,
    #[serde(default)]
    pub label: LabelToml,
    #[serde(default)]
    pub model: ModelToml,
    #[serde(default)]
    pub score: ScoreToml,
    #[serde(default)]
    pub evidence: EvidenceToml,
    #[serde(default)]
    pub signals: SignalsToml,
    /// what makes a finding a criterion of the refined ICP
    #[serde(default)]
    pub icp: IcpToml,
    #[serde(default)]
    pub brief: BriefToml,
    #[serde(default)]
    pub publish: PublishToml,
    /// the header names of `crm_import.csv` (the CRM's import file)
    #[serde(default)]
    pub crm_import: Option<CrmImportNames>,
}

/// `[crm_import]`: what the CRM calls the record id and the score fields
/// `icp score` writes back. Unset names take [`CrmImport`]'s defaults.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrmImportNames {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The resolved header names of `crm_import.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmImport {
    /// the record id column: by default the CRM's own name for the
    /// account id (the `[columns.accounts] account_id` mapping)
    pub id: String,
    pub score: String,
    pub band: String,
    pub reasons: String,
    pub model: String,
}

impl CrmImport {
    /// The header names in file order.
    pub fn headers(&self) -> [&str; 5] {
        [
            &self.id,
            &self.score,
            &self.band,
            &self.reasons,
            &self.model,
        ]
    }

    /// A name given to two columns, if any.
    pub fn repeated(&self) -> Option<&str> {
        let all = self.headers();
        (1..all.len())
            .find(|&i| all[..i].contains(&all[i]))
            .map(|i| all[i])
    }
}
/// `[publish]`: what the published targeting segments hold.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishToml {
    /// "prospects" (prospects and open opportunities; the default) or "all"
    pub audience: Option<String>,
    /// share of each band's targeting accounts withheld as a control group
    pub control_share: Option<f64>,
}

/// Share of each band withheld as a control unless `[publish]
/// control_share` says otherwise: without one, a quarter's results cannot
/// be told apart from the market.
pub const DEFAULT_CONTROL_SHARE: f64 = 0.10;

/// `[publish]`, checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PublishParams {
    pub audience: crate::domain::Audience,
    /// 0 (off) to 0.5
    #[serde(default)]
    pub control_share: f64,
}

/// `[brief]`: who the brief is for and who decides.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BriefToml {
    /// shown in the title; default: the data directory's name
    pub company: Option<String>,
    #[serde(default)]
    pub owners: Owners,
    /// days from the run to the review's due date (default 14)
    pub review_days: Option<i64>,
    /// days the pilot runs before the next brief measures it (default 45)
    pub pilot_days: Option<i64>,
}

/// The people who decide, by role (`[brief.owners]` or `[brief] owners = {..}`).
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Owners {
    /// approves the model and the include criteria with the field's view
    pub sales: Option<String>,
    /// confirms the delivery-fit and margin evidence behind exclusions
    pub delivery: Option<String>,
    /// founder / revenue leader: approves the ICP and the exclusions
    pub revenue_leader: Option<String>,
}

/// `[brief]`, checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BriefParams {
    pub company: Option<String>,
    pub owners: Owners,
    pub review_days: i64,
    #[serde(default = "default_pilot_days")]
    pub pilot_days: i64,
}

fn default_pilot_days() -> i64 {
    45
}

impl Default for BriefParams {
    fn default() -> Self {
        BriefParams {
            company: None,
            owners: Owners::default(),
            review_days: 14,
            pilot_days: default_pilot_days(),
        }
    }
}

/// `[signals]`: support, false discovery rate and thresholds of the findings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsToml {
    pub min_accounts: Option<usize>,
    pub min_wins: Option<usize>,
    pub fdr: Option<f64>,
    pub min_lift: Option<f64>,
    pub pairs: Option<bool>,
    pub min_fit_gap: Option<f64>,
    pub min_margin_gap: Option<f64>,
    pub trigger_window_days: Option<i64>,
    pub painful_slow_factor: Option<f64>,
    pub painful_fit_max: Option<f64>,
    pub painful_margin_below: Option<f64>,
    pub painful_revenue_quantile: Option<f64>,
    pub min_won: Option<usize>,
    pub min_lost: Option<usize>,
    pub max_generic_loss_share: Option<f64>,
    pub max_criteria: Option<usize>,
    pub criterion_fwer: Option<f64>,
    /// loss reasons that name no specifics (replaces the built-in list)
    pub generic_reasons: Option<Vec<String>>,
}

/// `[icp]`: when a finding is worth acting on as a criterion.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcpToml {
    pub min_include_lift: Option<f64>,
    pub max_exclude_lift: Option<f64>,
    pub max_exclude_upper_lift: Option<f64>,
    pub cost_per_prospect: Option<f64>,
    pub max_excluded_value: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub accounts: Option<String>,
    pub opportunities: Option<String>,
    pub customers: Option<String>,
    pub triggers: Option<String>,
    #[serde(default)]
    pub interviews: Option<String>,
    /// "utf-8" (the default) or "windows-1252" (Excel's CSV on Windows);
    /// left out of artifacts when unset, so model ids do not change
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// the field delimiter of the CSV files: "," (the default), ";" (Excel
    /// in much of Europe), "\t" or "|"; left out of artifacts when unset
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// the decimal mark of the numbers: "." (the default) or "," (much of
    /// Europe: then "." groups thousands); left out of artifacts when unset
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal: Option<String>,
}

impl Files {
    /// The delimiter byte (checked by [`Config::check`]).
    pub fn delimiter_byte(&self) -> u8 {
        match self.delimiter.as_deref() {
            Some(";") => b';',
            Some("\t") | Some("tab") => b'\t',
            Some("|") => b'|',
            _ => b',',
        }
    }

    /// The decimal mark (checked by [`Config::check`]).
    pub fn decimal_mark(&self) -> crate::util::DecimalMark {
        match self.decimal.as_deref() {
            Some(",") => crate::util::DecimalMark::Comma,
            _ => crate::util::DecimalMark::Point,
        }
    }
}

/// Per table: canonical column name -> the CRM's column name.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
    #[serde(default)]
    pub opportunities: BTreeMap<String, String>,
    #[serde(default)]
    pub customers: BTreeMap<String, String>,
    #[serde(default)]
    pub triggers: BTreeMap<String, String>,
    #[serde(default)]
    pub interviews: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesToml {
    pub exclude: Option<Vec<String>>,
    /// columns the leak guard must keep: the user vouches they are known
    /// before a sale and not written by it
    pub allow: Option<Vec<String>>,
    pub min_level_count: Option<usize>,
    pub max_levels: Option<usize>,
    pub numeric_bins: Option<usize>,
    pub numeric_shape: Option<NumericShape>,
    pub interactions: Option<bool>,
    pub min_interaction_count: Option<usize>,
    pub max_features: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelToml {
    pub velocity_window_days: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelToml {
    pub holdout_fraction: Option<f64>,
    pub holdout_by: Option<HoldoutBy>,
    pub cv_folds: Option<usize>,
    pub lambdas: Option<Vec<f64>>,
    pub max_iterations: Option<u64>,
    pub solver: Option<Solver>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreToml {
    pub min_feature_coverage: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceToml {
    pub min_train_positives: Option<usize>,
    pub min_train_negatives: Option<usize>,
    pub min_holdout_per_class: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureParams {
    /// account columns never used as features (in addition to the identifiers).
    pub exclude: Vec<String>,
    /// account columns the leak guard keeps (left out of artifacts when
    /// empty, so model ids do not change)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// a category level needs this many training rows, else it joins "(other)".
    pub min_level_count: usize,
    /// at most this many levels per categorical column (the most frequent).
    pub max_levels: usize,
    pub numeric_bins: usize,
    /// Absent from artifacts written before the choice existed: those
    /// entered numeric columns as bands.
    #[serde(default = "NumericShape::before_the_choice")]
    pub numeric_shape: NumericShape,
    pub interactions: bool,
    pub min_interaction_count: usize,
    pub max_features: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelParams {
    pub holdout_fraction: f64,
    /// which date puts a deal in the holdout (artifacts from before the
    /// choice split by close date); left out of artifacts at the default,
    /// so model ids do not change
    #[serde(default, skip_serializing_if = "HoldoutBy::is_default")]
    pub holdout_by: HoldoutBy,
    pub cv_folds: usize,
    /// L2 penalty per training row; alpha given to linfa is lambda * n.
    pub lambdas: Vec<f64>,
    pub max_iterations: u64,
    /// Absent from artifacts written before the choice existed: those were
    /// fitted with L-BFGS.
    #[serde(default = "Solver::before_the_choice")]
    pub solver: Solver,
}

/// Which date splits the closed deals into training and holdout.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HoldoutBy {
    /// The most recently closed deals are held out: right when a deal's
    /// close date is when its outcome became known.
    #[default]
    ClosedDate,
    /// The most recently created deals (a creation cohort) are held out and
    /// the model trains on the earlier cohorts: for lead-cohort data where
    /// losses are closed later by a rule, so the latest closes are all
    /// losses.
    CreatedDate,
}

impl HoldoutBy {
    fn is_default(&self) -> bool {
        *self == HoldoutBy::ClosedDate
    }
    /// The opportunities' column whose date splits the deals.
    pub fn column(self) -> &'static str {
        match self {
            HoldoutBy::ClosedDate => "closed_date",
            HoldoutBy::CreatedDate => "created_date",
        }
    }

    /// "closed" or "created": how the holdout is said in messages.
    pub fn verb(self) -> &'static str {
        match self {
            HoldoutBy::ClosedDate => "closed",
            HoldoutBy::CreatedDate => "created",
        }
    }
}

/// How a numeric column's curve enters the model, beside its linear term.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NumericShape {
    /// Time-ordered cross-validation chooses between bands and splines.
    #[default]
    Auto,
    /// One indicator per quantile band: fits a step (a best-fit band).
    Bands,
    /// A restricted cubic spline (knots at training quantiles): fits a
    /// smooth or peaked curve with fewer terms.
    Splines,
}

impl NumericShape {
    fn before_the_choice() -> NumericShape {
        NumericShape::Bands
    }
    pub fn name(self) -> &'static str {
        match self {
            NumericShape::Auto => "auto",
            NumericShape::Bands => "bands",
            NumericShape::Splines => "splines",
        }
    }
}

/// How the logistic regression is solved; both minimise the same loss.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Newton's method (IRLS): a few passes over the deals.
    #[default]
    Newton,
    /// linfa-logistic's L-BFGS: thousands of passes on weakly penalised,
    /// nearly collinear designs; kept as the reference implementation.
    Lbfgs,
}

impl Solver {
    fn before_the_choice() -> Solver {
        Solver::Lbfgs
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvidenceParams {
    pub min_train_positives: usize,
    pub min_train_negatives: usize,
    pub min_holdout_per_class: usize,
}

/// A configuration whose every value has been checked: made by
/// [`Config::check`] from a TOML file, or by [`RawValidConfig::check`] from
/// a model artifact; never deserialised unchecked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ValidConfig {
    pub files: Files,
    pub columns: Columns,
    /// lower-cased CRM value -> outcome
    pub outcomes: BTreeMap<String, Outcome>,
    pub scale: BTreeMap<String, f64>,
    pub date_format: Option<String>,
    pub features: FeatureParams,
    pub velocity_window_days: Option<i64>,
    pub model: ModelParams,
    pub min_feature_coverage: f64,
    pub evidence: EvidenceParams,
    #[serde(default)]
    pub signals: SignalParams,
    #[serde(default)]
    pub brief: BriefParams,
    #[serde(default)]
    pub publish: PublishParams,
    /// left out of artifacts when unset, so model ids do not change
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_import: Option<CrmImportNames>,
}

/// A checked configuration as a model artifact holds it, read back before
/// its checks: the only form of it that is deserialised.
#[derive(Deserialize)]
pub(crate) struct RawValidConfig {
    files: Files,
    columns: Columns,
    /// lower-cased CRM value -> outcome
    outcomes: BTreeMap<String, Outcome>,
    scale: BTreeMap<String, f64>,
    date_format: Option<String>,
    features: FeatureParams,
    velocity_window_days: Option<i64>,
    model: ModelParams,
    min_feature_coverage: f64,
    evidence: EvidenceParams,
    #[serde(default)]
    signals: SignalParams,
    #[serde(default)]
    brief: BriefParams,
    #[serde(default)]
    publish: PublishParams,
    /// left out of artifacts when unset, so model ids do not change
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crm_import: Option<CrmImportNames>,
}

impl RawValidConfig {
    /// The artifact's config checked again as if read from a file: an
    /// artifact edited by hand cannot smuggle in a value `check` refuses.
    pub(crate) fn check(self, path: &Path) -> Result<ValidConfig> {
        let v = ValidConfig {
            files: self.files,
            columns: self.columns,
            outcomes: self.outcomes,
            scale: self.scale,
            date_format: self.date_format,
            features: self.features,
            velocity_window_days: self.velocity_window_days,
            model: self.model,
            min_feature_coverage: self.min_feature_coverage,
            evidence: self.evidence,
            signals: self.signals,
            brief: self.brief,
            publish: self.publish,
            crm_import: self.crm_import,
        };
        v.recheck(path)?;
        Ok(v)
    }
}

impl ValidConfig {
    /// `crm_import.csv`'s header names, defaults filled in.
    pub fn crm_import(&self) -> CrmImport {
        let n = self.crm_import.clone().unwrap_or_default();
        CrmImport {
            id: n.id.unwrap_or_else(|| {
                self.columns
                    .accounts
                    .get("account_id")
                    .cloned()
                    .unwrap_or_else(|| "account_id".into())
            }),
            score: n.score.unwrap_or_else(|| "icp_score".into()),
            band: n.band.unwrap_or_else(|| "icp_band".into()),
            reasons: n.reasons.unwrap_or_else(|| "icp_reasons".into()),
            model: n.model.unwrap_or_else(|| "icp_model".into()),
        }
    }
}

impl Default for ValidConfig {
    fn default() -> Self {
        Config::default()
            .check(Path::new("(defaults)"))
            .expect("the default configuration is valid")
    }
}

/// Canonical names of the opportunity columns that the contract defines.
pub const OPPORTUNITY_COLUMNS: &[&str] = &[
    "opportunity_id",
    "account_id",
    "created_date",
    "closed_date",
    "outcome",
    "amount",
    "loss_reason",
    "product",
    "source",
    "owner",
];
pub const CUSTOMER_COLUMNS: &[&str] = &[
    "account_id",
    "status",
    "churn_date",
    "delivery_fit",
    "gross_margin",
    "notes",
];
pub const TRIGGER_COLUMNS: &[&str] = &["account_id", "trigger", "date"];
pub const INTERVIEW_COLUMNS: &[&str] = &["account_id", "date", "role", "quote"];
pub const NUMERIC_ACCOUNT_COLUMNS: &[&str] = &["employees", "annual_revenue", "founded_year"];

impl Config {
    pub fn from_file(path: &Path) -> Result<ValidConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| IcpError::Config {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        let raw: Config = toml::from_str(&text).map_err(|e| IcpError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        raw.check(path)
    }

    /// Check every value once; inner stages trust a `ValidConfig`.
    pub fn check(self, path: &Path) -> Result<ValidConfig> {
        let bad = |message: String| IcpError::Config {
            path: PathBuf::from(path),
            message,
        };
        let outcomes = check_mappings(&self.outcomes, &self.columns, &self.scale).map_err(bad)?;
        let features = check_features(self.features).map_err(bad)?;
        if let Some(w) = self.label.velocity_window_days
            && w < 1
        {
            return Err(bad(format!(
                "[label] velocity_window_days = {w}: expected a whole number of days >= 1"
            )));
        }
        let (model, min_feature_coverage) = check_model(self.model, &self.score).map_err(bad)?;
        let e = self.evidence;
        let evidence = EvidenceParams {
            min_train_positives: e.min_train_positives.unwrap_or(20),
            min_train_negatives: e.min_train_negatives.unwrap_or(20),
            min_holdout_per_class: e.min_holdout_per_class.unwrap_or(10),
        };
        check_files(&self.files).map_err(bad)?;
        let signals = check_signals(self.signals, self.icp).map_err(bad)?;
        let brief = check_brief(self.brief).map_err(bad)?;
        let publish = check_publish(&self.publish).map_err(bad)?;
        if let Some(n) = &self.crm_import {
            let set = [&n.id, &n.score, &n.band, &n.reasons, &n.model];
            if set
                .iter()
                .any(|v| v.as_deref().is_some_and(|s| s.trim().is_empty()))
            {
                return Err(bad("[crm_import]: a field name must not be empty".into()));
            }
        }
        let valid = ValidConfig {
            crm_import: self.crm_import,
            publish,
            brief,
            signals,
            files: self.files,
            columns: self.columns,
            outcomes,
            scale: self.scale,
            date_format: self.date_format,
            features,
            velocity_window_days: self.label.velocity_window_days,
            model,
            min_feature_coverage,
            evidence,
        };
        // the import file's names must differ: caught here, not when
        // `icp approve` has already made the model active
        if let Some(h) = valid.crm_import().repeated() {
            return Err(bad(format!(
                "[crm_import]: \"{h}\" names two columns of crm_import.csv (the record id defaults to the accounts' account_id mapping)"
            )));
        }
        Ok(valid)
    }
}

/// `[outcomes]`, `[columns.*]` and `[scale]`: how the CRM's names and units
/// map onto the contract; returns the outcomes keyed by lower-cased value.
fn check_mappings(
    raw: &BTreeMap<String, String>,
    columns: &Columns,
    scale: &BTreeMap<String, f64>,
) -> std::result::Result<BTreeMap<String, Outcome>, String> {
    let mut outcomes = BTreeMap::new();
    for (from, to) in raw {
        let o = Outcome::parse(to).ok_or_else(|| {
            format!("[outcomes] \"{from}\" = \"{to}\": expected one of won, lost, churned, open")
        })?;
        outcomes.insert(from.trim().to_lowercase(), o);
    }
    let known = |table: &str, allowed: &[&str], map: &BTreeMap<String, String>| {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "[columns.{table}] `{k}` is not a canonical column; expected one of {}",
                    allowed.join(", ")
                ));
            }
        }
        Ok(())
    };
    known("accounts", ACCOUNT_COLUMNS, &columns.accounts)?;
    known("opportunities", OPPORTUNITY_COLUMNS, &columns.opportunities)?;
    known("customers", CUSTOMER_COLUMNS, &columns.customers)?;
    known("triggers", TRIGGER_COLUMNS, &columns.triggers)?;
    known("interviews", INTERVIEW_COLUMNS, &columns.interviews)?;
    for (col, f) in scale {
        if !(f.is_finite() && *f > 0.0) {
            return Err(format!("[scale] {col} = {f}: expected a positive number"));
        }
    }
    Ok(outcomes)
}

/// `[features]`, defaults filled in: how account columns become features.
fn check_features(f: FeaturesToml) -> std::result::Result<FeatureParams, String> {
    let features = FeatureParams {
        exclude: f.exclude.unwrap_or_default(),
        allow: f.allow.unwrap_or_default(),
        min_level_count: f.min_level_count.unwrap_or(30).max(1),
        max_levels: f.max_levels.unwrap_or(30),
        numeric_bins: f.numeric_bins.unwrap_or(6),
        numeric_shape: f.numeric_shape.unwrap_or_default(),
        interactions: f.interactions.unwrap_or(true),
        min_interaction_count: f.min_interaction_count.unwrap_or(100).max(1),
        max_features: f.max_features.unwrap_or(400),
    };
    if !(2..=20).contains(&features.numeric_bins) {
        return Err(format!(
            "[features] numeric_bins = {}: expected 2 to 20",
            features.numeric_bins
        ));
    }
    if features.max_levels < 1 || features.max_features < 4 {
        return Err("[features] max_levels must be >= 1 and max_features >= 4".into());
    }
    Ok(features)
}

/// `[model]` and `[score] min_feature_coverage`, defaults filled in: how the
/// model is fitted and when a row has too few features to score.
fn check_model(m: ModelToml, score: &ScoreToml) -> std::result::Result<(ModelParams, f64), String> {
    let model = ModelParams {
        holdout_fraction: m.holdout_fraction.unwrap_or(0.2),
        holdout_by: m.holdout_by.unwrap_or_default(),
        cv_folds: m.cv_folds.unwrap_or(3),
        lambdas: m
            .lambdas
            .unwrap_or_else(|| vec![1e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
        max_iterations: m.max_iterations.unwrap_or(300),
        solver: m.solver.unwrap_or_default(),
    };
    if !(model.holdout_fraction > 0.0 && model.holdout_fraction < 0.5) {
        return Err(format!(
            "[model] holdout_fraction = {}: expected more than 0 and less than 0.5",
            model.holdout_fraction
        ));
    }
    if !(1..=10).contains(&model.cv_folds) {
        return Err(format!(
            "[model] cv_folds = {}: expected 1 to 10",
            model.cv_folds
        ));
    }
    if model.lambdas.is_empty() || model.lambdas.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
        return Err("[model] lambdas: expected a non-empty list of positive numbers".into());
    }
    let min_feature_coverage = score.min_feature_coverage.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&min_feature_coverage) {
        return Err(format!(
            "[score] min_feature_coverage = {min_feature_coverage}: expected 0 to 1"
        ));
    }
    Ok((model, min_feature_coverage))
}

/// `[files]`: the encoding, delimiter and decimal mark the loader accepts.
fn check_files(files: &Files) -> std::result::Result<(), String> {
    match files.encoding.as_deref() {
        None | Some("utf-8") | Some(WINDOWS_1252) => {}
        Some(other) => {
            return Err(format!(
                "[files] encoding = \"{other}\": expected \"utf-8\" or \"windows-1252\""
            ));
        }
    }
    match files.delimiter.as_deref() {
        None | Some(",") | Some(";") | Some("\t") | Some("tab") | Some("|") => {}
        Some(other) => {
            return Err(format!(
                "[files] delimiter = \"{}\": expected \",\", \";\", \"\\t\" (a tab) or \"|\"",
                other.escape_default()
            ));
        }
    }
    match files.decimal.as_deref() {
        None | Some(".") | Some(",") => {}
        Some(other) => {
            return Err(format!(
                "[files] decimal = \"{other}\": expected \".\" (1,234.56) or \",\" (1.234,56)"
            ));
        }
    }
    Ok(())
}

/// `[brief]`, defaults filled in: the review and pilot spans; blank names
/// count as unset.
fn check_brief(b: BriefToml) -> std::result::Result<BriefParams, String> {
    let review_days = b.review_days.unwrap_or(14);
    if !(1..=365).contains(&review_days) {
        return Err(format!(
            "[brief] review_days = {review_days}: expected 1 to 365"
        ));
    }
    let pilot_days = b.pilot_days.unwrap_or(default_pilot_days());
    if !(7..=365).contains(&pilot_days) {
        return Err(format!(
            "[brief] pilot_days = {pilot_days}: expected 7 to 365"
        ));
    }
    let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Ok(BriefParams {
        company: clean(b.company),
        owners: Owners {
            sales: clean(b.owners.sales),
            delivery: clean(b.owners.delivery),
            revenue_leader: clean(b.owners.revenue_leader),
        },
        review_days,
        pilot_days,
    })
}

/// `[publish]`, defaults filled in: who the segments hold and the control share.
fn check_publish(p: &PublishToml) -> std::result::Result<PublishParams, String> {
    let audience = match p.audience.as_deref().map(str::trim) {
        None | Some("prospects") => crate::domain::Audience::Prospects,
        Some("all") => crate::domain::Audience::All,
        Some(other) => {
            return Err(format!(
                "[publish] audience = \"{other}\": expected \"prospects\" (prospects and open opportunities) or \"all\" (customers too)"
            ));
        }
    };
    let control_share = p.control_share.unwrap_or(DEFAULT_CONTROL_SHARE);
    if !(0.0..=0.5).contains(&control_share) {
        return Err(format!(
            "[publish] control_share = {control_share}: expected 0 (off) to 0.5"
        ));
    }
    Ok(PublishParams {
        audience,
        control_share,
    })
}

fn check_icp(t: IcpToml) -> std::result::Result<IcpRules, String> {
    let d = IcpRules::default();
    let r = IcpRules {
        min_include_lift: t.min_include_lift.unwrap_or(d.min_include_lift),
        max_exclude_lift: t.max_exclude_lift.unwrap_or(d.max_exclude_lift),
        max_exclude_upper_lift: t.max_exclude_upper_lift.unwrap_or(d.max_exclude_upper_lift),
        cost_per_prospect: t.cost_per_prospect,
        max_excluded_value: t.max_excluded_value.unwrap_or(d.max_excluded_value),
    };
    if !(r.min_include_lift.is_finite() && r.min_include_lift >= 1.0) {
        return Err(format!(
            "[icp] min_include_lift = {}: expected 1 or more",
            r.min_include_lift
        ));
    }
    if !(r.max_exclude_lift > 0.0 && r.max_exclude_lift < 1.0) {
        return Err(format!(
            "[icp] max_exclude_lift = {}: expected more than 0 and less than 1",
            r.max_exclude_lift
        ));
    }
    if !(r.max_exclude_upper_lift >= r.max_exclude_lift && r.max_exclude_upper_lift <= 1.0) {
        return Err(format!(
            "[icp] max_exclude_upper_lift = {}: expected from max_exclude_lift ({}) to 1",
            r.max_exclude_upper_lift, r.max_exclude_lift
        ));
    }
    if let Some(c) = r.cost_per_prospect
        && !(c.is_finite() && c > 0.0)
    {
        return Err(format!(
            "[icp] cost_per_prospect = {c}: expected an amount above 0 (the cost of working one prospect)"
        ));
    }
    if !(0.0..=1.0).contains(&r.max_excluded_value) {
        return Err(format!(
            "[icp] max_excluded_value = {}: expected a share from 0 to 1 (0.15 is 15%)",
            r.max_excluded_value
        ));
    }
    Ok(r)
}

fn check_signals(t: SignalsToml, icp: IcpToml) -> std::result::Result<SignalParams, String> {
    let d = SignalParams::default();
    let p = SignalParams {
        min_accounts: t.min_accounts.unwrap_or(d.min_accounts),
        min_wins: t.min_wins.unwrap_or(d.min_wins),
        fdr: t.fdr.unwrap_or(d.fdr),
        min_lift: t.min_lift.unwrap_or(d.min_lift),
        pairs: t.pairs.unwrap_or(d.pairs),
        min_fit_gap: t.min_fit_gap.unwrap_or(d.min_fit_gap),
        min_margin_gap: t.min_margin_gap.unwrap_or(d.min_margin_gap),
        trigger_window_days: t.trigger_window_days.unwrap_or(d.trigger_window_days),
        painful_slow_factor: t.painful_slow_factor.unwrap_or(d.painful_slow_factor),
        painful_fit_max: t.painful_fit_max.unwrap_or(d.painful_fit_max),
        painful_margin_below: t.painful_margin_below.unwrap_or(d.painful_margin_below),
        painful_revenue_quantile: t
            .painful_revenue_quantile
            .unwrap_or(d.painful_revenue_quantile),
        min_won: t.min_won.unwrap_or(d.min_won),
        min_lost: t.min_lost.unwrap_or(d.min_lost),
        max_generic_loss_share: t.max_generic_loss_share.unwrap_or(d.max_generic_loss_share),
        max_criteria: t.max_criteria.unwrap_or(d.max_criteria),
        criterion_fwer: t.criterion_fwer.unwrap_or(d.criterion_fwer),
        generic_reasons: match t.generic_reasons {
            Some(v) => {
                let v: Vec<String> = v
                    .iter()
                    .map(|r| crate::domain::reason_key(r))
                    .filter(|r| !r.is_empty())
                    .collect();
                if v.is_empty() {
                    return Err("[signals] generic_reasons: expected at least one reason (leave it out for the built-in list)".into());
                }
                v
            }
            None => d.generic_reasons,
        },
        icp: check_icp(icp)?,
    };
    if !(p.criterion_fwer > 0.0 && p.criterion_fwer < 1.0) {
        return Err(format!(
            "[signals] criterion_fwer = {}: expected more than 0 and less than 1",
            p.criterion_fwer
        ));
    }
    if !(1..=50).contains(&p.max_criteria) {
        return Err(format!(
            "[signals] max_criteria = {}: expected 1 to 50 (a leader approves a handful)",
            p.max_criteria
        ));
    }
    if p.min_accounts < 2 {
        return Err(format!(
            "[signals] min_accounts = {}: expected at least 2 (a signal from one account is an anecdote)",
            p.min_accounts
        ));
    }
    if !(p.fdr > 0.0 && p.fdr < 1.0) {
        return Err(format!(
            "[signals] fdr = {}: expected more than 0 and less than 1",
            p.fdr
        ));
    }
    if !(p.min_lift.is_finite() && p.min_lift >= 1.0) {
        return Err(format!(
            "[signals] min_lift = {}: expected 1 or more",
            p.min_lift
        ));
    }
    if p.trigger_window_days < 1 {
        return Err(format!(
            "[signals] trigger_window_days = {}: expected 1 or more",
            p.trigger_window_days
        ));
    }
    if !(p.painful_revenue_quantile > 0.0 && p.painful_revenue_quantile < 1.0) {
        return Err(format!(
            "[signals] painful_revenue_quantile = {}: expected between 0 and 1",
            p.painful_revenue_quantile
        ));
    }
    if !(0.0..=1.0).contains(&p.max_generic_loss_share) {
        return Err(format!(
            "[signals] max_generic_loss_share = {}: expected 0 to 1",
            p.max_generic_loss_share
        ));
    }
    for (name, v) in [
        ("min_fit_gap", p.min_fit_gap),
        ("min_margin_gap", p.min_margin_gap),
        ("painful_slow_factor", p.painful_slow_factor),
        ("painful_fit_max", p.painful_fit_max),
        ("painful_margin_below", p.painful_margin_below),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("[signals] {name} = {v}: expected a number >= 0"));
        }
    }
    Ok(p)
}

impl ValidConfig {
    /// Check a configuration read back from an artifact through the same
    /// checks as a TOML file: a hand-edited or version-skewed model.json
    /// is an error naming the value, never a panic further in.
    fn recheck(&self, path: &Path) -> Result<()> {
        let s = &self.signals;
        let f = &self.features;
        let m = &self.model;
        let raw = Config {
            files: self.files.clone(),
            columns: self.columns.clone(),
            outcomes: self
                .outcomes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_string()))
                .collect(),
            scale: self.scale.clone(),
            date_format: self.date_format.clone(),
            features: FeaturesToml {
                exclude: Some(f.exclude.clone()),
                allow: Some(f.allow.clone()),
                min_level_count: Some(f.min_level_count),
                max_levels: Some(f.max_levels),
                numeric_bins: Some(f.numeric_bins),
                numeric_shape: Some(f.numeric_shape),
                interactions: Some(f.interactions),
                min_interaction_count: Some(f.min_interaction_count),
                max_features: Some(f.max_features),
            },
            label: LabelToml {
                velocity_window_days: self.velocity_window_days,
            },
            model: ModelToml {
                holdout_fraction: Some(m.holdout_fraction),
                holdout_by: Some(m.holdout_by),
                cv_folds: Some(m.cv_folds),
                lambdas: Some(m.lambdas.clone()),
                max_iterations: Some(m.max_iterations),
                solver: Some(m.solver),
            },
            score: ScoreToml {
                min_feature_coverage: Some(self.min_feature_coverage),
            },
            evidence: EvidenceToml {
                min_train_positives: Some(self.evidence.min_train_positives),
                min_train_negatives: Some(self.evidence.min_train_negatives),
                min_holdout_per_class: Some(self.evidence.min_holdout_per_class),
            },
            signals: SignalsToml {
                min_accounts: Some(s.min_accounts),
                min_wins: Some(s.min_wins),
                fdr: Some(s.fdr),
                min_lift: Some(s.min_lift),
                pairs: Some(s.pairs),
                min_fit_gap: Some(s.min_fit_gap),
                min_margin_gap: Some(s.min_margin_gap),
                trigger_window_days: Some(s.trigger_window_days),
                painful_slow_factor: Some(s.painful_slow_factor),
                painful_fit_max: Some(s.painful_fit_max),
                painful_margin_below: Some(s.painful_margin_below),
                painful_revenue_quantile: Some(s.painful_revenue_quantile),
                min_won: Some(s.min_won),
                min_lost: Some(s.min_lost),
                max_generic_loss_share: Some(s.max_generic_loss_share),
                max_criteria: Some(s.max_criteria),
                criterion_fwer: Some(s.criterion_fwer),
                generic_reasons: Some(s.generic_reasons.clone()),
            },
            icp: IcpToml {
                min_include_lift: Some(s.icp.min_include_lift),
                max_exclude_lift: Some(s.icp.max_exclude_lift),
                max_exclude_upper_lift: Some(s.icp.max_exclude_upper_lift),
                cost_per_prospect: s.icp.cost_per_prospect,
                max_excluded_value: Some(s.icp.max_excluded_value),
            },
            brief: BriefToml {
                company: self.brief.company.clone(),
                owners: self.brief.owners.clone(),
                review_days: Some(self.brief.review_days),
                pilot_days: Some(self.brief.pilot_days),
            },
            publish: PublishToml {
                audience: Some(
                    match self.publish.audience {
                        crate::domain::Audience::Prospects => "prospects",
                        crate::domain::Audience::All => "all",
                    }
                    .to_string(),
                ),
                control_share: Some(self.publish.control_share),
            },
            crm_import: self.crm_import.clone(),
        };
        raw.check(path).map(|_| ())
    }

    pub fn load(path: Option<&Path>) -> Result<ValidConfig> {
        match path {
            Some(p) => Config::from_file(p),
            None => Ok(ValidConfig::default()),
        }
    }

    /// The CRM's name for a canonical column of `table`.
    pub fn source<'a>(&'a self, table: &str, canonical: &'a str) -> &'a str {
        let map = match table {
            "accounts" => &self.columns.accounts,
            "opportunities" => &self.columns.opportunities,
            "customers" => &self.columns.customers,
            "interviews" => &self.columns.interviews,
            _ => &self.columns.triggers,
        };
        map.get(canonical).map(String::as_str).unwrap_or(canonical)
    }

    pub fn outcome(&self, raw: &str) -> Option<Outcome> {
        self.outcomes
            .get(&raw.trim().to_lowercase())
            .copied()
            .or_else(|| Outcome::parse(raw))
    }
}
/// The knobs of the findings (`[signals]` in the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignalParams {
    /// a condition needs this many accounts with a closed deal to be tested
    pub min_accounts: usize,
    /// and a best-fit signal this many velocity wins
    pub min_wins: usize,
    /// Benjamini-Hochberg false discovery rate
    pub fdr: f64,
    /// a signal's rate must be at least this multiple of the baseline
    /// (an exclusion's at most its inverse)
    pub min_lift: f64,
    /// also test pairs of conditions
    pub pairs: bool,
    /// delivery fit (1-5) this far below the baseline makes a segment hard to serve
    pub min_fit_gap: f64,
    /// gross margin this far below the baseline is a low-margin segment
    pub min_margin_gap: f64,
    pub trigger_window_days: i64,
    /// painful: a cycle longer than this multiple of the velocity window
    pub painful_slow_factor: f64,
    pub painful_fit_max: f64,
    pub painful_margin_below: f64,
    /// high revenue: at or above this quantile of won revenue per account
    pub painful_revenue_quantile: f64,
    pub min_won: usize,
    pub min_lost: usize,
    pub max_generic_loss_share: f64,
    /// the refined ICP keeps at most this many include (and exclude) criteria
    #[serde(default = "default_max_criteria")]
    pub max_criteria: usize,
    /// a refined-ICP criterion's own p-value times the number of tests of
    /// its kind, single or pair (Bonferroni), must be at most this
    #[serde(default = "default_criterion_fwer")]
    pub criterion_fwer: f64,
    /// loss reasons that say nothing specific, as [`crate::domain::reason_key`]s
    #[serde(default = "crate::domain::default_generic_reasons")]
    pub generic_reasons: Vec<String>,
    /// when a finding becomes a criterion of the refined ICP (`[icp]`)
    #[serde(default)]
    pub icp: IcpRules,
}

/// When a finding is worth acting on (`[icp]` in the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IcpRules {
    /// an include criterion's deals become velocity wins at least this
    /// multiple of the baseline
    pub min_include_lift: f64,
    /// an exclusion: a segment where working a prospect does not pay; its
    /// velocity-win rate at most this multiple of the baseline ...
    pub max_exclude_lift: f64,
    /// ... and the upper end of its 95% interval below this multiple
    pub max_exclude_upper_lift: f64,
    /// the cost of working one prospect: when set, exclude where a
    /// prospect's expected value is below it (the rule in dollars)
    #[serde(default)]
    pub cost_per_prospect: Option<f64>,
    /// the exclusions together give up at most this share of all
    /// prospects' expected value
    pub max_excluded_value: f64,
}

impl Default for IcpRules {
    fn default() -> Self {
        IcpRules {
            min_include_lift: 1.5,
            max_exclude_lift: 0.5,
            max_exclude_upper_lift: 0.8,
            cost_per_prospect: None,
            max_excluded_value: 0.15,
        }
    }
}

fn default_criterion_fwer() -> f64 {
    0.01
}

fn default_max_criteria() -> usize {
    7
}

impl Default for SignalParams {
    fn default() -> Self {
        SignalParams {
            min_accounts: 20,
            min_wins: 5,
            fdr: 0.05,
            min_lift: 1.25,
            pairs: true,
            min_fit_gap: 0.5,
            min_margin_gap: 0.05,
            trigger_window_days: 90,
            painful_slow_factor: 2.0,
            painful_fit_max: 2.0,
            painful_margin_below: 0.45,
            painful_revenue_quantile: 0.75,
            min_won: 50,
            min_lost: 50,
            max_generic_loss_share: 0.6,
            max_criteria: default_max_criteria(),
            criterion_fwer: default_criterion_fwer(),
            generic_reasons: crate::domain::default_generic_reasons(),
            icp: IcpRules::default(),
        }
    }
}
