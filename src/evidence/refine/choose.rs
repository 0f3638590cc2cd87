//! The choosing algorithm: the candidates, the greedy choice of include and
//! exclude criteria on the deals before the holdout, the mixed evidence and
//! weak poor fits for review, and the reorder and supporting evidence.

use std::collections::BTreeSet;

use super::criteria::{Added, HeldByCap, IcpParams};
use crate::error::Result;
use crate::evidence::signals::Finding;
use crate::evidence::signals::rows::{AccountRows, Bits, DealRows};
use crate::stages::features::Cell;
use crate::util::metrics::wilson;
use crate::util::stats::two_proportions;

pub(super) struct Cand<'a> {
    /// index into the finding list
    pub(super) at: usize,
    pub(super) mask: &'a Bits,
}

/// The deals the selection reads: the training part, its wins and baseline.
pub(super) struct Choosing<'a> {
    pub(super) deals: &'a DealRows,
    pub(super) train: Bits,
    pub(super) wins: usize,
    pub(super) n: usize,
    pub(super) base: f64,
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

pub(super) fn candidates<'a>(
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
pub(super) fn greedy_include(
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
pub(super) fn segment_value(f: &Finding, base_avg: f64) -> f64 {
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
/// candidates that qualify on the deals that chose them (see [`IcpRules`](crate::config::IcpRules))
/// compete, so a broad, weak poor fit never outbids a specific, strong one;
/// among them the next is the one whose uncovered deals fall furthest short
/// of the baseline's velocity wins. A candidate that would take the exclusions past the value cap
/// is held back and reported. Returns the chosen (candidate, adds) and those
/// held back by the cap.
#[allow(clippy::too_many_arguments)]
pub(super) fn choose_exclusions(
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
pub(super) type ReviewAt = (bool, usize, Option<String>);

/// Mixed evidence: the same condition is a signal and an exclusion (wins
/// faster but churns, or is hard to serve), or an exclusion for retention,
/// fit or margin alone whose deals still win at least as often. Returns the
/// signals' conditions and the mixed ones.
pub(super) fn mixed_evidence(
    signals: &[Finding],
    exclusions: &[Finding],
) -> (BTreeSet<Vec<Cell>>, BTreeSet<Vec<Cell>>) {
    let in_signals: BTreeSet<Vec<Cell>> = signals.iter().map(|f| f.cells.clone()).collect();
    let mixed_x = |x: &Finding| {
        in_signals.contains(&x.cells) || (!x.kinds.iter().any(|k| k == "rate") && x.lift >= 1.0)
    };
    let x_mixed: BTreeSet<Vec<Cell>> = exclusions
        .iter()
        .filter(|x| mixed_x(x))
        .map(|x| x.cells.clone())
        .collect();
    (in_signals, x_mixed)
}

/// The chosen criteria of each list as (position in the list before the
/// reorder, what it adds), in the order chosen; the exclusions the value cap
/// held back; and the review items (positions moved by [`reorder`]).
pub(super) struct Chosen {
    pub(super) inc: Vec<(usize, Added)>,
    pub(super) exc: Vec<(usize, Added)>,
    pub(super) held_by_cap: Vec<HeldByCap>,
    pub(super) review_at: Vec<ReviewAt>,
}

/// Broad, weak poor fits: significant, wins less, but not so much that
/// working a prospect stops paying. At most a review item, the widest
/// first, each on deals the exclusions and the items before it leave.
pub(super) fn weak_poor_fits(
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
pub(super) fn reorder(
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
pub(super) fn support(
    list: &mut [Finding],
    masks: &[Bits],
    n_chosen: usize,
    x_mixed: &BTreeSet<Vec<Cell>>,
) -> Vec<Vec<String>> {
    let mut by: Vec<Vec<String>> = vec![Vec::new(); n_chosen];
    for k in 0..list.len() {
        if k < n_chosen {
            list[k].criterion = Some(list[k].id.clone());
            continue;
        }
        // mixed evidence is its own review item, not support
        if x_mixed.contains(&list[k].cells) {
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
