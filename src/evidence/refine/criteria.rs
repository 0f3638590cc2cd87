//! What a criterion of the refined ICP is: the parameters that choose one,
//! what it adds and how it checks on later deals, and the refined ICP as
//! written to icp.json and read by the brief.

use serde::{Deserialize, Serialize};

use crate::config::IcpRules;
use crate::evidence::signals::Finding;
use crate::evidence::signals::rows::Bits;
use crate::util::metrics::wilson;

/// How many criteria, and what evidence makes one.
#[derive(Debug, Clone)]
pub struct IcpParams {
    pub max_criteria: usize,
    pub min_accounts: usize,
    /// a criterion's test on the deals that chose it must pass a Bonferroni
    /// correction at this family-wise error rate over the tests of its kind
    /// (single conditions, or the far more numerous pairs): criteria are
    /// acted on, so even one false criterion is guarded against
    pub fwer: f64,
    /// tests on single conditions and on pairs in the screen
    pub single_tests: usize,
    pub pair_tests: usize,
    pub rules: IcpRules,
}

impl IcpParams {
    /// Strong enough evidence to act on (see `fwer`), for a p-value of a
    /// condition of `n_cells` cells.
    pub(super) fn passes(&self, p_value: f64, n_cells: usize) -> bool {
        let m = if n_cells > 1 {
            self.pair_tests
        } else {
            self.single_tests
        };
        p_value * m.max(1) as f64 <= self.fwer
    }
}

/// What a criterion adds beyond the criteria chosen before it, on the deals
/// that chose it (the deals before the holdout).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Added {
    pub deals: usize,
    pub accounts: usize,
    pub velocity_wins: usize,
    pub velocity_win_rate: f64,
    pub velocity_win_rate_ci95: (f64, f64),
    pub lift: f64,
    /// velocity wins above (include) or below (exclude) the baseline rate
    pub excess_velocity_wins: f64,
}

/// A condition's velocity-win rate on one set of deals, against that set's
/// baseline.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RateCheck {
    pub deals: usize,
    pub velocity_wins: usize,
    pub velocity_win_rate: Option<f64>,
    pub velocity_win_rate_ci95: (f64, f64),
    /// the velocity-win rate of all deals of the set
    pub baseline: f64,
    pub lift: Option<f64>,
}

impl RateCheck {
    pub(super) fn of(mask: &Bits, set: &Bits, wins: &Bits, baseline: f64) -> RateCheck {
        let m = mask.and(set);
        let n = m.count();
        let w = m.and_count(wins);
        let rate = (n > 0).then(|| w as f64 / n as f64);
        RateCheck {
            deals: n,
            velocity_wins: w,
            velocity_win_rate: rate,
            velocity_win_rate_ci95: wilson(w, n),
            baseline,
            lift: rate.filter(|_| baseline > 0.0).map(|r| r / baseline),
        }
    }
}

/// Fewer later deals than this and a criterion is "too few later deals to check".
pub const MIN_LATER_DEALS: usize = 10;

/// Does a criterion hold up on the later (holdout) deals?
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LaterVerdict {
    /// same direction, and the later deals' interval is clear of their baseline
    Holds,
    /// same direction, but the later deals alone cannot tell it from the baseline
    Consistent,
    /// the later deals went the other way: not recommended
    Fails,
    /// fewer than [`MIN_LATER_DEALS`] later deals
    #[default]
    TooFew,
}

impl LaterVerdict {
    pub(super) fn judge(c: &RateCheck, up: bool) -> LaterVerdict {
        let (Some(rate), true) = (c.velocity_win_rate, c.deals >= MIN_LATER_DEALS) else {
            return LaterVerdict::TooFew;
        };
        let (lo, hi) = c.velocity_win_rate_ci95;
        let b = c.baseline;
        match up {
            true if rate <= b => LaterVerdict::Fails,
            false if rate >= b => LaterVerdict::Fails,
            true if lo > b => LaterVerdict::Holds,
            false if hi < b => LaterVerdict::Holds,
            _ => LaterVerdict::Consistent,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            LaterVerdict::Holds => "holds up on later deals",
            LaterVerdict::Consistent => "same direction on later deals, not yet confirmed",
            LaterVerdict::Fails => "did not hold up on later deals",
            LaterVerdict::TooFew => "too few later deals to check",
        }
    }
}

/// What the pipeline recommends a person decides.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    Keep,
    Reject,
    #[default]
    Hold,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Keep => "keep",
            Recommendation::Reject => "reject",
            Recommendation::Hold => "hold",
        }
    }
}

/// A current customer shown as evidence for a criterion.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NamedAccount {
    pub account_id: String,
    pub name: String,
    pub won_revenue: f64,
}

/// One criterion of the refined ICP, with the finding it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Criterion {
    #[serde(flatten)]
    pub finding: Finding,
    /// include, exclude or review
    pub kind: String,
    pub adds: Added,
    /// ids of findings (signals.csv / exclusions.csv) mostly on the same deals
    pub supporting: Vec<String>,
    /// prospects matching, and of them, matching no other exclude criterion
    pub prospects_matching: usize,
    pub prospects_only_this: usize,
    /// matching prospects x [`Criterion::value_per_prospect`]
    pub expected_pipeline: f64,
    /// current customers matching and their won revenue
    pub customers_matching: usize,
    pub customer_revenue: f64,
    /// most common loss reasons of its lost deals: (reason, lost deals)
    pub loss_reasons: Vec<(String, usize)>,
    pub lost_deals: usize,
    /// the velocity-win rate on the deals that chose it (before the holdout)
    #[serde(default)]
    pub chose: RateCheck,
    /// and on the later deals (the holdout), which played no part in the choice
    #[serde(default)]
    pub later: RateCheck,
    #[serde(default)]
    pub later_verdict: LaterVerdict,
    /// keep, reject or hold, and why in one clause
    #[serde(default)]
    pub recommendation: Recommendation,
    #[serde(default)]
    pub because: String,
    /// what working one prospect of it is expected to bring: its
    /// velocity-win rate x its average deal (the segment's own deals)
    #[serde(default)]
    pub value_per_prospect: f64,
    /// up to three current customers it matches, by won revenue
    #[serde(default)]
    pub best_customers: Vec<NamedAccount>,
    /// the rows of `best_customers` and their won revenue, named by the caller
    #[serde(skip)]
    pub best_rows: Vec<(usize, f64)>,
}

/// How the ICP as a whole does on the closed deals it was chosen from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Coverage {
    pub deals: usize,
    pub velocity_wins: usize,
    /// None when no deal matches (no include criterion)
    pub velocity_win_rate: Option<f64>,
    pub velocity_win_rate_ci95: (f64, f64),
    pub other_deals: usize,
    pub other_velocity_win_rate: Option<f64>,
}

/// An exclusion the evidence supports that the value cap held back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HeldByCap {
    pub id: String,
    pub condition: String,
    pub prospects: usize,
    pub expected_value: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RefinedIcp {
    pub format: String,
    pub rule: String,
    pub include: Vec<Criterion>,
    pub exclude: Vec<Criterion>,
    pub review: Vec<Criterion>,
    pub baseline_velocity_win_rate: f64,
    /// deals matching at least one include criterion, against the rest
    pub include_coverage: Coverage,
    /// the ICP as a whole on the later (holdout) deals
    #[serde(default)]
    pub include_later: RateCheck,
    pub prospects: usize,
    /// prospects matching an include criterion and no exclude criterion
    pub prospects_fitting: usize,
    /// and of them, in the High band
    #[serde(default)]
    pub prospects_fitting_high: usize,
    /// prospects matching at least one exclude criterion (counted once)
    pub prospects_excluded: usize,
    /// what working the average prospect is expected to bring: the
    /// baseline velocity-win rate x the average deal
    #[serde(default)]
    pub value_per_prospect: f64,
    /// all prospects x `value_per_prospect`
    pub expected_pipeline_all: f64,
    /// the prospects the exclusions match, each at its first exclusion's
    /// value per prospect
    pub expected_pipeline_excluded: f64,
    /// the fitting prospects, each at its first include criterion's value
    #[serde(default)]
    pub expected_pipeline_fitting: f64,
    pub customers: usize,
    pub customer_revenue_all: f64,
    /// current customers matching an exclusion, and their won revenue
    pub customers_excluded: usize,
    pub customer_revenue_excluded: f64,
    /// the rules the criteria met
    #[serde(default)]
    pub rules: IcpRules,
    /// deals that chose the criteria (before the holdout) and later deals
    #[serde(default)]
    pub deals_choosing: usize,
    #[serde(default)]
    pub deals_later: usize,
    /// exclusions the evidence supports beyond `rules.max_excluded_value`
    #[serde(default)]
    pub held_by_cap: Vec<HeldByCap>,
}
