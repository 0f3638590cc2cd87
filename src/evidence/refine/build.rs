//! The Build helper: makes each criterion (its checks on later deals, loss
//! reasons, notes, prospects and customers, value) and the ICP as a whole.

use std::collections::BTreeSet;

use super::choose::{Choosing, ReviewAt, segment_value};
use super::criteria::{
    Added, Coverage, Criterion, HeldByCap, IcpParams, LaterVerdict, RateCheck, Recommendation,
    RefinedIcp,
};
use crate::evidence::signals::Finding;
use crate::evidence::signals::rows::{AccountRows, Bits, DealRows};
use crate::util::metrics::wilson;

/// What making the criteria and the ICP as a whole reads: the deals that
/// choose and the later ones with their baselines, the accounts, the values
/// per prospect, and the notes shown so far.
pub(super) struct Build<'a> {
    pub(super) ch: Choosing<'a>,
    pub(super) accounts: &'a AccountRows,
    pub(super) p: &'a IcpParams,
    later: Bits,
    base_later: f64,
    pub(super) base_avg: f64,
    base_rate: f64,
    value_per_prospect: f64,
    n_prospects: usize,
    pub(super) total_value: f64,
    /// an account with a closed deal: not a prospect, not an open deal only
    closed_deal: Vec<bool>,
    /// the words of the notes shown under a criterion already
    shown: BTreeSet<String>,
}

impl<'a> Build<'a> {
    /// Split the deals at the holdout, take their baselines and the values
    /// per prospect, and mark the accounts with a closed deal.
    pub(super) fn new(
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
    pub(super) fn include(
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
                c.because = failed_later(&c);
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
    pub(super) fn exclude(
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
                c.because = failed_later(&c);
                review_failed.push(c);
            } else {
                exclude_k.push((k, c));
            }
        }
        exclude_k
    }

    /// The exclusions that stand: account masks and the prospects each holds.
    /// Returns the criteria and their account masks.
    pub(super) fn standing(
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
    pub(super) fn review(
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
            if is_sig && let Some(x) = exclusions.iter().find(|x| x.cells == f.cells) {
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
    pub(super) fn whole(
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

/// Why a criterion chosen on earlier deals goes to review: later deals did
/// not bear it out.
fn failed_later(c: &Criterion) -> String {
    format!(
        "chosen on earlier deals ({} lift), but {}: later deals became velocity wins {} of the time against {} for all later deals",
        fmt_lift(c.chose.lift),
        LaterVerdict::Fails.words(),
        fmt_rate(c.later.velocity_win_rate),
        fmt_rate(Some(c.later.baseline))
    )
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
