//! The refined ICP: a handful of include and exclude criteria that each
//! matter, chosen from the findings that passed the tests.
//!
//! With enough deals nearly every condition is significant, and many
//! findings are the same accounts seen twice (a band and the band beside it,
//! a pair and its parts, small revenue and few employees). So criteria are
//! chosen greedily: each next one is the finding whose deals *not already
//! covered* by the chosen ones carry the most velocity wins above (include)
//! or below (exclude) the baseline, and that uncovered part must still be
//! clearly better (worse) than the baseline by a practical margin, not only
//! significant. Everything else stays as supporting evidence, pointed at the
//! criterion it overlaps most. Conditions with mixed evidence (wins faster
//! but churns more) go to a `review` list for people to weigh.
//!
//! An account fits the refined ICP when it matches at least one include
//! criterion and no approved exclude criterion.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config::IcpRules;
use crate::error::Result;
use crate::evidence::signals::Finding;
use crate::evidence::signals::rows::{AccountRows, Bits, DealRows};
use crate::util::metrics::wilson;
use crate::util::stats::two_proportions;

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
    fn passes(&self, p_value: f64, n_cells: usize) -> bool {
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
    fn of(mask: &Bits, set: &Bits, wins: &Bits, baseline: f64) -> RateCheck {
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
    fn judge(c: &RateCheck, up: bool) -> LaterVerdict {
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

struct Cand<'a> {
    /// index into the finding list
    at: usize,
    mask: &'a Bits,
}

/// The deals the selection reads: the training part, its wins and baseline.
struct Choosing<'a> {
    deals: &'a DealRows,
    train: Bits,
    wins: usize,
    n: usize,
    base: f64,
}

impl Choosing<'_> {
    /// What `mask` (already limited to uncovered rows) adds on the training deals.
    fn added(&self, mask: &Bits, up: bool, stamp: &mut [u32], generation: &mut u32) -> Added {
        let m = mask.and(&self.train);
        let n = m.count();
        let w = m.and_count(&self.deals.velocity_win);
        *generation += 1;
        let mut accounts = 0;
        for r in m.ones() {
            let a = self.deals.account[r] as usize;
            if stamp[a] != *generation {
                stamp[a] = *generation;
                accounts += 1;
            }
        }
        let rate = if n > 0 { w as f64 / n as f64 } else { f64::NAN };
        let expected = n as f64 * self.base;
        Added {
            deals: n,
            accounts,
            velocity_wins: w,
            velocity_win_rate: rate,
            velocity_win_rate_ci95: wilson(w, n),
            lift: rate / self.base,
            excess_velocity_wins: if up {
                w as f64 - expected
            } else {
                expected - w as f64
            },
        }
    }

    /// Two-sided p-value of `a` against the other training deals.
    fn p_value(&self, a: &Added) -> f64 {
        two_proportions(
            a.velocity_wins as u64,
            a.deals as u64,
            (self.wins - a.velocity_wins) as u64,
            (self.n - a.deals) as u64,
        )
    }
}

fn candidates<'a>(
    list: &[Finding],
    masks: &'a [Bits],
    keep: impl Fn(&Finding) -> bool,
) -> Vec<Cand<'a>> {
    list.iter()
        .enumerate()
        .filter(|(_, f)| keep(f))
        .map(|(i, _)| Cand {
            at: i,
            mask: &masks[i],
        })
        .collect()
}

/// Include criteria, greedily on the deals that chose them: the next is the
/// one whose uncovered deals add the most value (velocity wins beyond the
/// baseline x its average deal), provided that part has the support, a
/// material lift, an interval clear of the baseline and a test that passes
/// the correction. Returns (candidate position, what it adds), in order.
fn greedy_include(
    cands: &[Cand],
    list: &[Finding],
    ch: &Choosing,
    base_avg: f64,
    p: &IcpParams,
) -> Vec<(usize, Added)> {
    let mut covered = Bits::new(ch.deals.cells.rows());
    let mut chosen: Vec<(usize, Added)> = Vec::new();
    let mut stamp = vec![0u32; ch.deals.n_accounts];
    let mut generation = 0u32;
    while chosen.len() < p.max_criteria {
        let mut best: Option<(usize, Added, f64)> = None;
        for (ci, c) in cands.iter().enumerate() {
            if chosen.iter().any(|(k, _)| *k == ci) {
                continue;
            }
            let rest = c.mask.and_not(&covered);
            let a = ch.added(&rest, true, &mut stamp, &mut generation);
            if a.deals == 0 {
                continue;
            }
            let practical = a.velocity_win_rate >= p.rules.min_include_lift * ch.base
                && a.velocity_win_rate_ci95.0 > ch.base;
            if !practical || a.accounts < p.min_accounts {
                continue;
            }
            let f = &list[c.at];
            if !p.passes(ch.p_value(&a), f.cells.len()) {
                continue;
            }
            let value = a.excess_velocity_wins * f.average_deal.unwrap_or(base_avg);
            if best.as_ref().is_some_and(|(_, _, v)| *v >= value) {
                continue;
            }
            best = Some((ci, a, value));
        }
        let Some((ci, a, _)) = best else { break };
        covered.or_with(cands[ci].mask);
        chosen.push((ci, a));
    }
    chosen
}

/// A prospect's expected value in a segment: its velocity-win rate x its
/// average deal.
fn segment_value(f: &Finding, base_avg: f64) -> f64 {
    let rate = if f.velocity_win_rate.is_finite() {
        f.velocity_win_rate
    } else {
        0.0
    };
    rate * f.average_deal.unwrap_or(base_avg)
}

/// What the exclusion choice keeps track of across candidates.
struct ExcludeState {
    covered: Bits,
    /// prospects already excluded
    excluded: Bits,
    value: f64,
    cap: f64,
}

impl ExcludeState {
    /// The prospects `acc` adds and their value, or what the cap holds back.
    fn offer(
        &self,
        f: &Finding,
        acc: Bits,
        prospect: &Bits,
        base_avg: f64,
    ) -> Result<(Bits, f64), HeldByCap> {
        let m = acc.and(prospect).and_not(&self.excluded);
        let add = m.count() as f64 * segment_value(f, base_avg);
        if self.value + add > self.cap {
            return Err(HeldByCap {
                id: f.id.clone(),
                condition: f.condition.clone(),
                prospects: m.count(),
                expected_value: add,
            });
        }
        Ok((m, add))
    }

    fn take(&mut self, deals: &Bits, prospects: &Bits, add: f64) {
        self.covered.or_with(deals);
        self.excluded.or_with(prospects);
        self.value += add;
    }
}

/// Exclude criteria: segments where working a prospect does not pay. Only
/// candidates that qualify on the deals that chose them (see [`IcpRules`])
/// compete, so a broad, weak poor fit never outbids a specific, strong one;
/// among them the next is the one whose uncovered deals fall furthest short
/// of the baseline's velocity wins. A candidate that would take the exclusions past the value cap
/// is held back and reported. Returns the chosen (candidate, adds) and those
/// held back by the cap.
#[allow(clippy::too_many_arguments)]
fn choose_exclusions(
    cands: &[Cand],
    list: &[Finding],
    ch: &Choosing,
    accounts: &AccountRows,
    base_avg: f64,
    total_value: f64,
    p: &IcpParams,
    acc_mask: &mut dyn FnMut(usize) -> Bits,
) -> (Vec<(usize, Added)>, Vec<HeldByCap>) {
    let r = &p.rules;
    let mut st = ExcludeState {
        covered: Bits::new(ch.deals.cells.rows()),
        excluded: Bits::new(accounts.cells.rows()),
        value: 0.0,
        cap: r.max_excluded_value * total_value,
    };
    let mut chosen: Vec<(usize, Added)> = Vec::new();
    let mut held: Vec<HeldByCap> = Vec::new();
    let mut stamp = vec![0u32; ch.deals.n_accounts];
    let mut generation = 0u32;
    let qualifies = |a: &Added, f: &Finding| -> bool {
        let hi = a.velocity_win_rate_ci95.1;
        let worse = match r.cost_per_prospect {
            Some(cost) => {
                let avg = f.average_deal.unwrap_or(base_avg);
                a.velocity_win_rate * avg < cost && hi < ch.base
            }
            None => {
                a.velocity_win_rate <= r.max_exclude_lift * ch.base
                    && hi < r.max_exclude_upper_lift * ch.base
            }
        };
        worse && a.accounts >= p.min_accounts && p.passes(ch.p_value(a), f.cells.len())
    };
    while chosen.len() < p.max_criteria {
        let mut best: Option<(usize, Added, Bits, f64)> = None;
        for (ci, c) in cands.iter().enumerate() {
            if chosen.iter().any(|(k, _)| *k == ci) || held.iter().any(|h| h.id == list[c.at].id) {
                continue;
            }
            let f = &list[c.at];
            // rate exclusions here; retention, fit and margin ones below
            if !f.kinds.iter().any(|k| k == "rate") {
                continue;
            }
            let rest = c.mask.and_not(&st.covered);
            let a = ch.added(&rest, false, &mut stamp, &mut generation);
            if a.deals == 0 || !qualifies(&a, f) {
                continue;
            }
            // among segments that do not pay, the most velocity wins short
            // of the baseline: the whole strong segment before a slice of it
            if best
                .as_ref()
                .is_some_and(|(_, b, _, _)| b.excess_velocity_wins >= a.excess_velocity_wins)
            {
                continue;
            }
            match st.offer(f, acc_mask(c.at), &accounts.prospect, base_avg) {
                Ok((m, add)) => best = Some((ci, a, m, add)),
                Err(h) => held.push(h),
            }
        }
        let Some((ci, a, m, add)) = best else { break };
        st.take(cands[ci].mask, &m, add);
        chosen.push((ci, a));
    }
    // Exclusions for retention, delivery fit or margin alone (their deals
    // win about as often): each taken in rank order while it still reaches
    // accounts the chosen exclusions do not, within the cap.
    for (ci, c) in cands.iter().enumerate() {
        if chosen.len() >= p.max_criteria {
            break;
        }
        let f = &list[c.at];
        if f.kinds.iter().any(|k| k == "rate")
            || chosen.iter().any(|(k, _)| *k == ci)
            || !p.passes(f.p_value, f.cells.len())
        {
            continue;
        }
        let rest = c.mask.and_not(&st.covered);
        let a = ch.added(&rest, false, &mut stamp, &mut generation);
        if a.accounts < p.min_accounts || 2 * a.deals < c.mask.and_count(&ch.train) {
            continue;
        }
        match st.offer(f, acc_mask(c.at), &accounts.prospect, base_avg) {
            Ok((m, add)) => st.take(c.mask, &m, add),
            Err(h) => {
                held.push(h);
                continue;
            }
        }
        chosen.push((ci, a));
    }
    (chosen, held)
}

/// A review item before the reorder: (a signal, not an exclusion; its
/// position in its list; why, when it is not mixed evidence).
type ReviewAt = (bool, usize, Option<String>);

/// Mixed evidence: the same condition is a signal and an exclusion (wins
/// faster but churns, or is hard to serve), or an exclusion for retention,
/// fit or margin alone whose deals still win at least as often. Returns the
/// signals' conditions and the mixed ones.
fn mixed_evidence(
    signals: &[Finding],
    exclusions: &[Finding],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let in_signals: BTreeSet<String> = signals.iter().map(|f| f.condition.clone()).collect();
    let mixed_x = |x: &Finding| {
        in_signals.contains(&x.condition) || (!x.kinds.iter().any(|k| k == "rate") && x.lift >= 1.0)
    };
    let x_mixed: BTreeSet<String> = exclusions
        .iter()
        .filter(|x| mixed_x(x))
        .map(|x| x.condition.clone())
        .collect();
    (in_signals, x_mixed)
}

/// The chosen criteria of each list as (position in the list before the
/// reorder, what it adds), in the order chosen; the exclusions the value cap
/// held back; and the review items (positions moved by [`reorder`]).
struct Chosen {
    inc: Vec<(usize, Added)>,
    exc: Vec<(usize, Added)>,
    held_by_cap: Vec<HeldByCap>,
    review_at: Vec<ReviewAt>,
}

/// Choose the include and exclude criteria on the deals before the holdout,
/// and list the mixed evidence and the weak poor fits for review.
fn choose(
    signals: &[Finding],
    exclusions: &[Finding],
    sig_masks: &[Bits],
    exc_masks: &[Bits],
    b: &Build,
    in_signals: &BTreeSet<String>,
    x_mixed: &BTreeSet<String>,
) -> Chosen {
    let (accounts, p) = (b.accounts, b.p);
    // Candidates: not mixed evidence. Each list's account masks on demand.
    let keep = |f: &Finding| !x_mixed.contains(&f.condition);
    let inc_cands = candidates(signals, sig_masks, keep);
    let exc_cands = candidates(exclusions, exc_masks, keep);
    let inc = greedy_include(&inc_cands, signals, &b.ch, b.base_avg, p);
    let (exc, held_by_cap) = {
        let list: &[Finding] = exclusions;
        let mut acc = |at: usize| accounts.cells.mask(&list[at].cells);
        choose_exclusions(
            &exc_cands,
            list,
            &b.ch,
            accounts,
            b.base_avg,
            b.total_value,
            p,
            &mut acc,
        )
    };
    let mut review_at: Vec<ReviewAt> = signals
        .iter()
        .enumerate()
        .filter(|(_, f)| x_mixed.contains(&f.condition))
        .map(|(i, _)| (true, i, None))
        .chain(
            exclusions
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    x_mixed.contains(&f.condition) && !in_signals.contains(&f.condition)
                })
                .map(|(i, _)| (false, i, None)),
        )
        .take(p.max_criteria)
        .collect();
    let n_deals = b.ch.deals.cells.rows();
    weak_poor_fits(
        &mut review_at,
        &exc,
        &exc_cands,
        exclusions,
        exc_masks,
        n_deals,
        p,
    );
    Chosen {
        inc: inc
            .into_iter()
            .map(|(ci, a)| (inc_cands[ci].at, a))
            .collect(),
        exc: exc
            .into_iter()
            .map(|(ci, a)| (exc_cands[ci].at, a))
            .collect(),
        held_by_cap,
        review_at,
    }
}

/// Broad, weak poor fits: significant, wins less, but not so much that
/// working a prospect stops paying. At most a review item, the widest
/// first, each on deals the exclusions and the items before it leave.
fn weak_poor_fits(
    review_at: &mut Vec<ReviewAt>,
    exc: &[(usize, Added)],
    exc_cands: &[Cand],
    exclusions: &[Finding],
    exc_masks: &[Bits],
    n_deals: usize,
    p: &IcpParams,
) {
    let mut covered = Bits::new(n_deals);
    for (ci, _) in exc {
        covered.or_with(exc_cands[*ci].mask);
    }
    let mut weak: Vec<(usize, usize)> = exc_cands
        .iter()
        .enumerate()
        .filter(|(ci, c)| {
            let f = &exclusions[c.at];
            !exc.iter().any(|(k, _)| k == ci)
                && f.cells.len() == 1
                && f.kinds.iter().any(|k| k == "rate")
                && f.lift > p.rules.max_exclude_lift
                && p.passes(f.p_value, 1)
        })
        .map(|(_, c)| (c.at, c.mask.count()))
        .collect();
    weak.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut n_weak = 0;
    for (at, size) in weak {
        if n_weak == 3 {
            break;
        }
        let m = &exc_masks[at];
        if 2 * m.and_count(&covered) >= size {
            continue;
        }
        covered.or_with(m);
        n_weak += 1;
        let f = &exclusions[at];
        review_at.push((
            false,
            at,
            Some(format!(
                "wins less ({:.2}x as often as average) but not below the {:.2}x at which working a prospect stops paying: keep working it, lowest priority, unless people decide to exclude it",
                f.lift, p.rules.max_exclude_lift
            )),
        ));
    }
}

/// Reorder: criteria first in the order chosen, then the rest as ranked,
/// both lists renumbered; the exclusions held back and the review items in
/// `chosen` follow. Returns the deal masks in the new order.
fn reorder(
    signals: &mut Vec<Finding>,
    exclusions: &mut Vec<Finding>,
    sig_masks: Vec<Bits>,
    exc_masks: Vec<Bits>,
    chosen: &mut Chosen,
) -> (Vec<Bits>, Vec<Bits>) {
    let inc_at: Vec<usize> = chosen.inc.iter().map(|(at, _)| *at).collect();
    let exc_at: Vec<usize> = chosen.exc.iter().map(|(at, _)| *at).collect();
    let s_order = order(&inc_at, signals.len());
    let x_order = order(&exc_at, exclusions.len());
    let sig_masks = permute(signals, sig_masks, &s_order, "S");
    let exc_masks = permute(exclusions, exc_masks, &x_order, "X");
    // held back by the cap: named by their new ids
    chosen.held_by_cap = std::mem::take(&mut chosen.held_by_cap)
        .into_iter()
        .filter_map(|mut h| {
            let f = exclusions.iter().find(|f| f.condition == h.condition)?;
            h.id = f.id.clone();
            Some(h)
        })
        .collect();
    // positions after the reorder
    let pos = |ord: &[usize], old: usize| ord.iter().position(|&i| i == old).unwrap_or(old);
    chosen.review_at = std::mem::take(&mut chosen.review_at)
        .into_iter()
        .map(|(is_sig, i, why)| {
            (
                is_sig,
                pos(if is_sig { &s_order } else { &x_order }, i),
                why,
            )
        })
        .collect();
    (sig_masks, exc_masks)
}

/// The new order of a list: the criteria in the order chosen, then the rest
/// as ranked.
fn order(chosen: &[usize], n: usize) -> Vec<usize> {
    let mut o = chosen.to_vec();
    o.extend((0..n).filter(|i| !chosen.contains(i)));
    o
}

/// Put `list` and its masks in `ord`'s order, numbered `tag`01.. anew;
/// returns the masks in the new order.
fn permute(list: &mut Vec<Finding>, masks: Vec<Bits>, ord: &[usize], tag: &str) -> Vec<Bits> {
    let old = std::mem::take(list);
    let mut slots: Vec<Option<(Finding, Bits)>> = old.into_iter().zip(masks).map(Some).collect();
    let mut new_masks = Vec::with_capacity(ord.len());
    for (k, &i) in ord.iter().enumerate() {
        if let Some((mut f, m)) = slots[i].take() {
            f.id = format!("{tag}{:02}", k + 1);
            list.push(f);
            new_masks.push(m);
        }
    }
    new_masks
}

/// Supporting evidence: each other finding points at the criterion of
/// its list that covers the largest share of its deals (half or more).
/// Returns each criterion's supporting finding ids.
fn support(
    list: &mut [Finding],
    masks: &[Bits],
    n_chosen: usize,
    x_mixed: &BTreeSet<String>,
) -> Vec<Vec<String>> {
    let mut by: Vec<Vec<String>> = vec![Vec::new(); n_chosen];
    for k in 0..list.len() {
        if k < n_chosen {
            list[k].criterion = Some(list[k].id.clone());
            continue;
        }
        // mixed evidence is its own review item, not support
        if x_mixed.contains(&list[k].condition) {
            continue;
        }
        let own = masks[k].count().max(1);
        let best = (0..n_chosen)
            .map(|c| (c, masks[k].and_count(&masks[c])))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        if let Some((c, shared)) = best
            && 2 * shared >= own
        {
            list[k].criterion = Some(list[c].id.clone());
            by[c].push(list[k].id.clone());
        }
    }
    by
}

/// Choose the criteria on the deals before the holdout, check each on the
/// later deals, reorder and renumber both finding lists (criteria first, in
/// the order chosen: S01.. and X01..), mark which criterion each other
/// finding supports, and value what each would do to targeting.
pub fn refine(
    signals: &mut Vec<Finding>,
    exclusions: &mut Vec<Finding>,
    deals: &DealRows,
    accounts: &AccountRows,
    base_rate: f64,
    base_average_deal: Option<f64>,
    p: &IcpParams,
) -> (RefinedIcp, Vec<Bits>) {
    let (in_signals, x_mixed) = mixed_evidence(signals, exclusions);
    let sig_masks: Vec<Bits> = signals.iter().map(|f| deals.cells.mask(&f.cells)).collect();
    let exc_masks: Vec<Bits> = exclusions
        .iter()
        .map(|f| deals.cells.mask(&f.cells))
        .collect();
    let mut b = Build::new(deals, accounts, base_rate, base_average_deal, p);
    let mut chosen = choose(
        signals,
        exclusions,
        &sig_masks,
        &exc_masks,
        &b,
        &in_signals,
        &x_mixed,
    );

    let (sig_masks, exc_masks) = reorder(signals, exclusions, sig_masks, exc_masks, &mut chosen);

    let s_support = support(signals, &sig_masks, chosen.inc.len(), &x_mixed);
    let x_support = support(exclusions, &exc_masks, chosen.exc.len(), &x_mixed);

    let mut review_failed: Vec<Criterion> = Vec::new();
    let include = b.include(
        &chosen.inc,
        signals,
        &sig_masks,
        &s_support,
        &mut review_failed,
    );
    let exclude_k = b.exclude(
        &chosen.exc,
        exclusions,
        &exc_masks,
        &x_support,
        &mut review_failed,
    );
    let (exclude, acc_masks_x) = b.standing(exclude_k, exclusions);
    let review = b.review(
        chosen.review_at,
        signals,
        exclusions,
        &sig_masks,
        &exc_masks,
        review_failed,
    );
    let icp = b.whole(
        include,
        exclude,
        review,
        signals,
        &sig_masks,
        &acc_masks_x,
        chosen.held_by_cap,
    );
    (icp, acc_masks_x)
}

/// What making the criteria and the ICP as a whole reads: the deals that
/// choose and the later ones with their baselines, the accounts, the values
/// per prospect, and the notes shown so far.
struct Build<'a> {
    ch: Choosing<'a>,
    accounts: &'a AccountRows,
    p: &'a IcpParams,
    later: Bits,
    base_later: f64,
    base_avg: f64,
    base_rate: f64,
    value_per_prospect: f64,
    n_prospects: usize,
    total_value: f64,
    /// an account with a closed deal: not a prospect, not an open deal only
    closed_deal: Vec<bool>,
    /// the words of the notes shown under a criterion already
    shown: BTreeSet<String>,
}

impl<'a> Build<'a> {
    /// Split the deals at the holdout, take their baselines and the values
    /// per prospect, and mark the accounts with a closed deal.
    fn new(
        deals: &'a DealRows,
        accounts: &'a AccountRows,
        base_rate: f64,
        base_average_deal: Option<f64>,
        p: &'a IcpParams,
    ) -> Build<'a> {
        let n_deals = deals.cells.rows();
        let n_acc = accounts.cells.rows();
        // The deals that choose (before the holdout) and the later ones.
        let train = Bits::full(n_deals).and_not(&deals.holdout);
        let later = deals.holdout.clone();
        let rate_of = |set: &Bits| {
            let n = set.count();
            if n == 0 {
                0.0
            } else {
                set.and_count(&deals.velocity_win) as f64 / n as f64
            }
        };
        let ch = Choosing {
            deals,
            wins: train.and_count(&deals.velocity_win),
            n: train.count(),
            base: rate_of(&train),
            train,
        };
        let base_later = rate_of(&later);
        let base_avg = base_average_deal.unwrap_or(0.0);
        let value_per_prospect = base_rate * base_avg;
        let n_prospects = accounts.prospect.count();
        let total_value = n_prospects as f64 * value_per_prospect;
        let closed_deal: Vec<bool> = {
            let mut v = vec![false; n_acc];
            for &a in &deals.account {
                if let Some(x) = v.get_mut(a as usize) {
                    *x = true;
                }
            }
            v
        };
        Build {
            ch,
            accounts,
            p,
            later,
            base_later,
            base_avg,
            base_rate,
            value_per_prospect,
            n_prospects,
            total_value,
            closed_deal,
            shown: BTreeSet::new(),
        }
    }

    /// Checked on later deals: a criterion that went the other way there is
    /// not recommended; it moves to the review list, marked so.
    fn check(&self, m: &Bits, up: bool) -> (RateCheck, RateCheck, LaterVerdict) {
        let deals = self.ch.deals;
        let chose = RateCheck::of(m, &self.ch.train, &deals.velocity_win, self.ch.base);
        let later = RateCheck::of(m, &self.later, &deals.velocity_win, self.base_later);
        let verdict = LaterVerdict::judge(&later, up);
        (chose, later, verdict)
    }

    /// The three most common loss reasons of the lost deals of `m`, and how
    /// many deals were lost.
    fn reasons(&self, m: &Bits) -> (Vec<(String, usize)>, usize) {
        let deals = self.ch.deals;
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        let mut lost = 0;
        for r in m.ones() {
            if deals.lost.get(r) {
                lost += 1;
                let why = deals.loss_reason[r]
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "(blank)".into());
                *counts.entry(why).or_default() += 1;
            }
        }
        let mut v: Vec<(String, usize)> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(3);
        (v, lost)
    }

    /// Up to three verbatim notes: buyer interview quotes first, then
    /// customer notes, from the accounts the criterion is about (current
    /// customers for an include, the other accounts with a closed deal for
    /// an exclude). A quote shown under one criterion is not shown again.
    fn notes(&mut self, m: &Bits, include: bool) -> Vec<String> {
        let accounts = self.accounts;
        let closed_deal = &self.closed_deal;
        let shown = &mut self.shown;
        let about = |r: usize| closed_deal[r] && (accounts.customer.get(r) == include);
        let quotes = m
            .ones()
            .filter(|&r| about(r))
            .filter_map(|r| accounts.quote[r].clone());
        let plain = m
            .ones()
            .filter(|&r| about(r))
            .filter_map(|r| accounts.note[r].clone())
            .map(|n| format!("customer note: \"{n}\""));
        let mut out: Vec<String> = Vec::new();
        // the words themselves, without who said them and when
        let words = |q: &str| q.split("\" (").next().unwrap_or(q).to_string();
        for q in quotes.chain(plain) {
            if !q.trim().is_empty() && !shown.contains(&words(&q)) && !shown.contains(&q) {
                shown.insert(words(&q));
                out.push(q);
            }
            if out.len() == 3 {
                break;
            }
        }
        out
    }

    /// A criterion of `f` with its loss reasons (of the deals `dm`), the
    /// figures on accounts and the later deals to be filled in.
    fn make(
        &self,
        f: &Finding,
        kind: &str,
        adds: Added,
        supporting: Vec<String>,
        dm: &Bits,
    ) -> Criterion {
        let (loss_reasons, lost_deals) = self.reasons(dm);
        Criterion {
            finding: f.clone(),
            kind: kind.into(),
            adds,
            supporting,
            prospects_matching: 0,
            prospects_only_this: 0,
            expected_pipeline: 0.0,
            customers_matching: 0,
            customer_revenue: 0.0,
            loss_reasons,
            lost_deals,
            chose: RateCheck::default(),
            later: RateCheck::default(),
            later_verdict: LaterVerdict::TooFew,
            recommendation: Recommendation::Hold,
            because: String::new(),
            value_per_prospect: segment_value(f, self.base_avg),
            best_customers: Vec::new(),
            best_rows: Vec::new(),
        }
    }

    /// The prospects and customers the accounts `m` hold, and their value;
    /// `only` counts the exclude criteria matching each account.
    fn cost(&self, c: &mut Criterion, m: &Bits, only: Option<&[u8]>) {
        let accounts = self.accounts;
        c.prospects_matching = m.and_count(&accounts.prospect);
        c.prospects_only_this = match only {
            Some(v) => m
                .ones()
                .filter(|&r| accounts.prospect.get(r) && v[r] == 1)
                .count(),
            None => c.prospects_matching,
        };
        c.expected_pipeline = c.prospects_matching as f64 * c.value_per_prospect;
        c.customers_matching = m.and_count(&accounts.customer);
        c.customer_revenue = m.ones().map(|r| accounts.customer_revenue[r]).sum();
    }

    /// Up to three current customers of `m`, by won revenue: (row, revenue).
    fn best_rows(&self, m: &Bits) -> Vec<(usize, f64)> {
        let accounts = self.accounts;
        let mut v: Vec<usize> = m.and(&accounts.customer).ones().collect();
        v.sort_by(|a, b| {
            accounts.customer_revenue[*b]
                .total_cmp(&accounts.customer_revenue[*a])
                .then(a.cmp(b))
        });
        v.truncate(3);
        v.into_iter()
            .map(|r| (r, accounts.customer_revenue[r]))
            .collect()
    }

    /// The include criteria that hold up on the later deals, as (position,
    /// criterion); one that failed there goes to `review_failed`.
    fn include(
        &mut self,
        inc: &[(usize, Added)],
        signals: &[Finding],
        sig_masks: &[Bits],
        s_support: &[Vec<String>],
        review_failed: &mut Vec<Criterion>,
    ) -> Vec<(usize, Criterion)> {
        let accounts = self.accounts;
        let mut include = Vec::new();
        for (k, (_, a)) in inc.iter().enumerate() {
            let mut c = self.make(
                &signals[k],
                "include",
                a.clone(),
                s_support[k].clone(),
                &sig_masks[k],
            );
            (c.chose, c.later, c.later_verdict) = self.check(&sig_masks[k], true);
            let m = accounts.cells.mask(&signals[k].cells);
            self.cost(&mut c, &m, None);
            c.finding.notes = self.notes(&m, true);
            c.best_rows = self.best_rows(&m);
            if c.later_verdict == LaterVerdict::Fails {
                c.kind = "review".into();
                c.recommendation = Recommendation::Hold;
                c.because = format!(
                    "chosen on earlier deals ({} lift), but {}: later deals became velocity wins {} of the time against {} for all later deals",
                    fmt_lift(c.chose.lift),
                    LaterVerdict::Fails.words(),
                    fmt_rate(c.later.velocity_win_rate),
                    fmt_rate(Some(c.later.baseline))
                );
                review_failed.push(c);
            } else {
                c.recommendation = Recommendation::Keep;
                c.because = if c.later_verdict == LaterVerdict::Holds {
                    format!(
                        "deals here became velocity wins {} as often as average on earlier deals and {} on later ones",
                        fmt_lift(c.chose.lift),
                        fmt_lift(c.later.lift)
                    )
                } else {
                    format!(
                        "deals here became velocity wins {} as often as average on earlier deals; later deals have not confirmed it yet ({} on {}): keep as a pilot",
                        fmt_lift(c.chose.lift),
                        fmt_lift(c.later.lift),
                        c.later.deals
                    )
                };
                include.push((k, c));
            }
        }
        include
    }

    /// The exclude criteria checked on the later deals: a rate exclusion that
    /// failed there goes to `review_failed`; the rest stand, as (position,
    /// criterion).
    fn exclude(
        &mut self,
        exc: &[(usize, Added)],
        exclusions: &[Finding],
        exc_masks: &[Bits],
        x_support: &[Vec<String>],
        review_failed: &mut Vec<Criterion>,
    ) -> Vec<(usize, Criterion)> {
        let accounts = self.accounts;
        let mut exclude_k: Vec<(usize, Criterion)> = Vec::new();
        for (k, (_, a)) in exc.iter().enumerate() {
            let mut c = self.make(
                &exclusions[k],
                "exclude",
                a.clone(),
                x_support[k].clone(),
                &exc_masks[k],
            );
            (c.chose, c.later, c.later_verdict) = self.check(&exc_masks[k], false);
            let rate_kind = c.finding.kinds.iter().any(|x| x == "rate");
            if rate_kind && c.later_verdict == LaterVerdict::Fails {
                let m = accounts.cells.mask(&exclusions[k].cells);
                self.cost(&mut c, &m, None);
                c.finding.notes = self.notes(&m, false);
                c.kind = "review".into();
                c.because = format!(
                    "chosen on earlier deals ({} lift), but {}: later deals became velocity wins {} of the time against {} for all later deals",
                    fmt_lift(c.chose.lift),
                    LaterVerdict::Fails.words(),
                    fmt_rate(c.later.velocity_win_rate),
                    fmt_rate(Some(c.later.baseline))
                );
                review_failed.push(c);
            } else {
                exclude_k.push((k, c));
            }
        }
        exclude_k
    }

    /// The exclusions that stand: account masks and the prospects each holds.
    /// Returns the criteria and their account masks.
    fn standing(
        &mut self,
        exclude_k: Vec<(usize, Criterion)>,
        exclusions: &[Finding],
    ) -> (Vec<Criterion>, Vec<Bits>) {
        let accounts = self.accounts;
        let n_acc = accounts.cells.rows();
        let acc_masks_x: Vec<Bits> = exclude_k
            .iter()
            .map(|(k, _)| accounts.cells.mask(&exclusions[*k].cells))
            .collect();
        let matched_by: Vec<u8> = {
            let mut v = vec![0u8; n_acc];
            for m in &acc_masks_x {
                for r in m.ones() {
                    v[r] = v[r].saturating_add(1);
                }
            }
            v
        };
        let mut exclude = Vec::new();
        for ((_, mut c), m) in exclude_k.into_iter().zip(&acc_masks_x) {
            self.cost(&mut c, m, Some(&matched_by));
            c.finding.notes = self.notes(m, false);
            c.recommendation = Recommendation::Keep;
            let rate_kind = c.finding.kinds.iter().any(|x| x == "rate");
            c.because = if rate_kind {
                format!(
                    "its earlier deals became velocity wins {} as often as average ({} at most excludes); a prospect here is worth {} against {}; {}",
                    fmt_lift(c.chose.lift),
                    fmt_lift(Some(self.p.rules.max_exclude_lift)),
                    crate::util::money(c.value_per_prospect),
                    crate::util::money(self.value_per_prospect),
                    c.later_verdict.words()
                )
            } else {
                format!(
                    "wins about as often, but {}",
                    c.finding
                        .kinds
                        .iter()
                        .filter_map(|k| match k.as_str() {
                            "churn" => Some("churns more"),
                            "fit" => Some("is hard to serve"),
                            "margin" => Some("earns less"),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            exclude.push(c);
        }
        (exclude, acc_masks_x)
    }

    /// The review list: the mixed evidence and the weak poor fits, then the
    /// criteria that failed on the later deals.
    fn review(
        &mut self,
        review_pos: Vec<ReviewAt>,
        signals: &[Finding],
        exclusions: &[Finding],
        sig_masks: &[Bits],
        exc_masks: &[Bits],
        review_failed: Vec<Criterion>,
    ) -> Vec<Criterion> {
        let accounts = self.accounts;
        let mut review = Vec::new();
        for (is_sig, k, why) in review_pos {
            let (f, dm) = if is_sig {
                (&signals[k], &sig_masks[k])
            } else {
                (&exclusions[k], &exc_masks[k])
            };
            let mut f = f.clone();
            // the other side of the mixed evidence, when it is an exclusion too
            if is_sig && let Some(x) = exclusions.iter().find(|x| x.condition == f.condition) {
                f.evidence.extend(x.evidence.iter().cloned());
                f.kinds = x.kinds.clone();
            }
            let mut c = self.make(&f, "review", Added::default(), Vec::new(), dm);
            (c.chose, c.later, c.later_verdict) = self.check(dm, is_sig);
            let m = accounts.cells.mask(&f.cells);
            self.cost(&mut c, &m, None);
            c.finding.notes = self.notes(&m, false);
            c.because = why.unwrap_or_else(|| {
                "mixed evidence: wins more often on one measure, worse on another; people weigh it"
                    .into()
            });
            review.push(c);
        }
        review.extend(review_failed);
        for c in &mut review {
            c.finding.criterion = Some(c.finding.id.clone());
        }
        review
    }

    /// The ICP as a whole, from the include criteria that stand, and what
    /// the exclusions that stand give up.
    #[allow(clippy::too_many_arguments)]
    fn whole(
        &self,
        include: Vec<(usize, Criterion)>,
        exclude: Vec<Criterion>,
        review: Vec<Criterion>,
        signals: &[Finding],
        sig_masks: &[Bits],
        acc_masks_x: &[Bits],
        held_by_cap: Vec<HeldByCap>,
    ) -> RefinedIcp {
        let (deals, accounts) = (self.ch.deals, self.accounts);
        let n_deals = deals.cells.rows();
        let n_acc = accounts.cells.rows();
        let mut any_x = Bits::new(n_acc);
        for m in acc_masks_x {
            any_x.or_with(m);
        }
        let mut any_inc = Bits::new(n_deals);
        for (k, _) in &include {
            any_inc.or_with(&sig_masks[*k]);
        }
        let n_in = any_inc.count();
        let w_in = any_inc.and_count(&deals.velocity_win);
        let w_all = deals.velocity_win.count();
        let rate = |w: usize, n: usize| (n > 0).then(|| w as f64 / n as f64);
        let mut any_inc_acc = Bits::new(n_acc);
        // each fitting prospect at its first include criterion's value
        let mut fit_value = 0.0;
        for (k, c) in &include {
            let m = accounts.cells.mask(&signals[*k].cells);
            let new = m
                .and_not(&any_inc_acc)
                .and_not(&any_x)
                .and(&accounts.prospect);
            fit_value += new.count() as f64 * c.value_per_prospect;
            any_inc_acc.or_with(&m);
        }
        let fitting = any_inc_acc.and_not(&any_x).and_count(&accounts.prospect);
        // each excluded prospect at its first exclusion's value
        let mut excluded_value = 0.0;
        {
            let mut seen = Bits::new(n_acc);
            for (c, m) in exclude.iter().zip(acc_masks_x) {
                let new = m.and(&accounts.prospect).and_not(&seen);
                excluded_value += new.count() as f64 * c.value_per_prospect;
                seen.or_with(m);
            }
        }
        let include_later =
            RateCheck::of(&any_inc, &self.later, &deals.velocity_win, self.base_later);
        RefinedIcp {
            format: "icp-refined/2".into(),
            rule: "An account fits the refined ICP when it matches at least one include criterion and no approved exclude criterion.".into(),
            include: include.into_iter().map(|(_, c)| c).collect(),
            exclude,
            review,
            baseline_velocity_win_rate: self.base_rate,
            include_coverage: Coverage {
                deals: n_in,
                velocity_wins: w_in,
                velocity_win_rate: rate(w_in, n_in),
                velocity_win_rate_ci95: wilson(w_in, n_in),
                other_deals: n_deals - n_in,
                other_velocity_win_rate: rate(w_all - w_in, n_deals - n_in),
            },
            include_later,
            prospects: self.n_prospects,
            prospects_fitting: fitting,
            prospects_excluded: any_x.and_count(&accounts.prospect),
            value_per_prospect: self.value_per_prospect,
            expected_pipeline_all: self.total_value,
            expected_pipeline_excluded: excluded_value,
            expected_pipeline_fitting: fit_value,
            prospects_fitting_high: any_inc_acc
                .and_not(&any_x)
                .and_count(&accounts.prospect_high),
            customers: accounts.customer.count(),
            customer_revenue_all: accounts.customer_revenue.iter().sum(),
            customers_excluded: any_x.and_count(&accounts.customer),
            customer_revenue_excluded: any_x.ones().map(|r| accounts.customer_revenue[r]).sum(),
            rules: self.p.rules.clone(),
            deals_choosing: self.ch.n,
            deals_later: self.later.count(),
            held_by_cap,
        }
    }
}

fn fmt_lift(l: Option<f64>) -> String {
    match l {
        Some(l) if l.is_finite() => format!("{l:.2}x"),
        _ => "-".into(),
    }
}

fn fmt_rate(r: Option<f64>) -> String {
    crate::util::opt_pct(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::signals::rows::Coded;
    use crate::stages::features::Cell;
    use polars::prelude::*;

    fn finding(id: &str, cells: Vec<Cell>, lift: f64, kinds: &[&str]) -> Finding {
        Finding {
            lift,
            average_deal: Some(1000.0),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            ..Finding::bare(id, cells)
        }
    }

    fn coded(rows: &[(&str, &str)]) -> Coded {
        let df = DataFrame::new(
            rows.len(),
            vec![
                Column::new("__c0".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new("__c1".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ],
        )
        .unwrap();
        Coded::from_frame(&df, 2).unwrap()
    }

    fn lvl(var: usize, l: &str) -> Cell {
        Cell::Level {
            var,
            level: l.into(),
        }
    }

    /// 200 deals, one per account. Variable 0: A (40 deals, 30 wins), B (40
    /// deals, 4 wins), C (120 deals, 26 wins). Variable 1 is "a" exactly on
    /// the A deals (a duplicate of A) and "b" elsewhere. Baseline 60/200.
    #[test]
    fn a_duplicate_condition_is_supporting_evidence_not_a_second_criterion() {
        let mut rows = Vec::new();
        let mut wins = Vec::new();
        for i in 0..200 {
            let (v0, win) = if i < 40 {
                ("A", i < 30)
            } else if i < 80 {
                ("B", i < 44)
            } else {
                ("C", i < 106)
            };
            rows.push((v0, if v0 == "A" { "a" } else { "b" }));
            wins.push(win);
        }
        let cells = coded(&rows);
        let deals = DealRows {
            cells: cells.clone(),
            account: (0..200).collect(),
            n_accounts: 200,
            velocity_win: Bits::from_bools(&wins),
            holdout: Bits::new(200),
            lost: Bits::from_bools(&wins.iter().map(|w| !w).collect::<Vec<_>>()),
            loss_reason: vec![Some("price".into()); 200],
        };
        let accounts = AccountRows {
            cells,
            prospect: Bits::from_bools(&[false; 200]),
            p: vec![0.5; 200],
            prospect_high: Bits::new(200),
            customer: Bits::from_bools(&wins),
            customer_revenue: wins.iter().map(|w| if *w { 10.0 } else { 0.0 }).collect(),
            note: vec![None; 200],
            quote: vec![None; 200],
        };
        // ranked with the duplicate first
        let mut signals = vec![
            finding("S01", vec![lvl(1, "a")], 2.5, &[]),
            finding("S02", vec![lvl(0, "A")], 2.5, &[]),
        ];
        let mut exclusions = vec![finding("X01", vec![lvl(0, "B")], 0.33, &["rate"])];
        let p = IcpParams {
            max_criteria: 7,
            min_accounts: 20,
            fwer: 0.01,
            single_tests: 1,
            pair_tests: 1,
            rules: IcpRules::default(),
        };
        let (icp, _) = refine(
            &mut signals,
            &mut exclusions,
            &deals,
            &accounts,
            0.3,
            None,
            &p,
        );
        assert_eq!(icp.include.len(), 1, "{:?}", icp.include);
        let c = &icp.include[0];
        assert_eq!(c.adds.deals, 40);
        assert_eq!(c.adds.velocity_wins, 30);
        // 30 wins where 40 x 0.3 = 12 were expected
        assert!((c.adds.excess_velocity_wins - 18.0).abs() < 1e-9);
        assert_eq!(c.supporting, vec!["S02".to_string()]);
        assert_eq!(signals[1].criterion.as_deref(), Some("S01"));
        // B: 4 of 40 against 12 expected: 8 velocity wins short
        assert_eq!(icp.exclude.len(), 1);
        assert!((icp.exclude[0].adds.excess_velocity_wins - 8.0).abs() < 1e-9);
        assert_eq!(icp.exclude[0].lost_deals, 36);
        assert_eq!(icp.exclude[0].loss_reasons, vec![("price".to_string(), 36)]);
        // the 4 B customers won 10 each
        assert_eq!(icp.exclude[0].customers_matching, 4);
        assert!((icp.exclude[0].customer_revenue - 40.0).abs() < 1e-9);
        assert_eq!(icp.include_coverage.deals, 40);
        assert_eq!(icp.include_coverage.other_deals, 160);
        assert!(
            (icp.include_coverage.other_velocity_win_rate.unwrap() - 30.0 / 160.0).abs() < 1e-12
        );
    }

    /// Value at stake and the prospect count: each prospect once; the rule
    /// in dollars and the value cap.
    #[test]
    fn exclusion_value_prospects_once_cost_rule_and_cap() {
        // 4 accounts: 0 and 1 prospects in B and "b"; 2 a prospect in B only;
        // 3 a customer in C. Deals: 60 on B/b (6 wins), 60 on C/b (30 wins),
        // 60 on C/c (... ) built so both exclusions qualify.
        let rows = vec![("B", "b"), ("B", "b"), ("B", "c"), ("C", "c")];
        let accounts = AccountRows {
            cells: coded(&rows),
            prospect: Bits::from_bools(&[true, true, true, false]),
            p: vec![0.2, 0.4, f64::NAN, 0.9],
            prospect_high: Bits::new(4),
            customer: Bits::from_bools(&[false, false, false, true]),
            customer_revenue: vec![0.0, 0.0, 0.0, 500.0],
            note: vec![None; 4],
            quote: vec![None; 4],
        };
        // deals: 100 on (B, b) with 5 wins; 100 on (C, c) with 50 wins;
        // 100 on (C, b) with 5 wins
        let mut drows = Vec::new();
        let mut wins = Vec::new();
        for i in 0..300 {
            let (r, w) = match i / 100 {
                0 => (("B", "b"), i % 100 < 5),
                1 => (("C", "c"), i % 100 < 50),
                _ => (("C", "b"), i % 100 < 5),
            };
            drows.push(r);
            wins.push(w);
        }
        let deals = DealRows {
            cells: coded(&drows),
            account: (0..300).collect(),
            n_accounts: 300,
            velocity_win: Bits::from_bools(&wins),
            holdout: Bits::new(300),
            lost: Bits::new(300),
            loss_reason: vec![None; 300],
        };
        let mut signals = vec![];
        let mut exclusions = vec![
            finding("X01", vec![lvl(0, "B")], 0.25, &["rate"]),
            Finding {
                velocity_win_rate: 0.05,
                ..finding("X02", vec![lvl(1, "b")], 0.25, &["rate"])
            },
        ];
        let p = IcpParams {
            max_criteria: 7,
            min_accounts: 20,
            fwer: 0.01,
            single_tests: 1,
            pair_tests: 1,
            rules: IcpRules {
                max_excluded_value: 1.0,
                ..IcpRules::default()
            },
        };
        let base = 60.0 / 300.0;
        let (icp, masks) = refine(
            &mut signals,
            &mut exclusions,
            &deals,
            &accounts,
            base,
            Some(1000.0),
            &p,
        );
        // accounts 0 and 1 hold "b"
        assert_eq!(masks[0].ones().collect::<Vec<_>>(), vec![0, 1]);
        // "b" first: 200 deals, 10 wins, 30 short; then B adds nothing new
        assert_eq!(icp.exclude.len(), 1, "{:?}", icp.exclude);
        assert_eq!(
            icp.exclude[0].finding.condition,
            format!("{:?}", vec![lvl(1, "b")])
        );
        assert_eq!(icp.exclude[0].supporting, vec!["X02".to_string()]);
        // prospects with "b": accounts 0 and 1
        assert_eq!(icp.exclude[0].prospects_matching, 2);
        assert_eq!(icp.prospects, 3);
        assert_eq!(icp.prospects_excluded, 2);
        // value: 2 prospects x (5% velocity wins x $1,000, the segment's own)
        assert!((icp.exclude[0].value_per_prospect - 50.0).abs() < 1e-9);
        assert!((icp.exclude[0].expected_pipeline - 100.0).abs() < 1e-9);
        assert!((icp.expected_pipeline_excluded - 100.0).abs() < 1e-9);
        // all prospects: 3 x (20% baseline x $1,000), scored or not
        assert!((icp.expected_pipeline_all - 600.0).abs() < 1e-9);
        assert_eq!(icp.customers, 1);
        assert!((icp.customer_revenue_all - 500.0).abs() < 1e-9);

        // The rule in dollars: a "b" prospect is worth $50 (5% x $1,000).
        // Working one for $40 still pays: no exclusion. For $60 it does not.
        for (cost, excluded) in [(40.0, false), (60.0, true)] {
            let mut signals = vec![];
            let mut exclusions = vec![Finding {
                velocity_win_rate: 0.05,
                ..finding("X01", vec![lvl(1, "b")], 0.25, &["rate"])
            }];
            let p = IcpParams {
                rules: IcpRules {
                    cost_per_prospect: Some(cost),
                    max_excluded_value: 1.0,
                    ..IcpRules::default()
                },
                ..p.clone()
            };
            let (icp, _) = refine(
                &mut signals,
                &mut exclusions,
                &deals,
                &accounts,
                base,
                Some(1000.0),
                &p,
            );
            assert_eq!(!icp.exclude.is_empty(), excluded, "cost {cost}");
        }

        // The cap: the exclusion gives up $100 of $600 (16.7%); a 15% cap
        // holds it back and says so
        let mut signals = vec![];
        let mut exclusions = vec![Finding {
            velocity_win_rate: 0.05,
            ..finding("X01", vec![lvl(1, "b")], 0.25, &["rate"])
        }];
        let capped = IcpParams {
            rules: IcpRules::default(),
            ..p.clone()
        };
        let (icp, _) = refine(
            &mut signals,
            &mut exclusions,
            &deals,
            &accounts,
            base,
            Some(1000.0),
            &capped,
        );
        assert!(icp.exclude.is_empty());
        assert_eq!(icp.held_by_cap.len(), 1);
        assert_eq!(icp.held_by_cap[0].prospects, 2);
        assert!((icp.held_by_cap[0].expected_value - 100.0).abs() < 1e-9);
    }
}
