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

use rustc_hash::FxHashMap as HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::features::Cell;
use crate::metrics::wilson;
use crate::signals::Finding;

/// Each variable's cell codes, interned, for a set of rows (deals or accounts).
#[derive(Debug, Clone, Default)]
pub struct Coded {
    dict: Vec<HashMap<String, u32>>,
    /// per variable and code, the rows in that cell: a condition's rows are
    /// the AND of one or two of these (a word at a time, not a row at a time)
    bits: Vec<Vec<Bits>>,
    rows: usize,
}

impl Coded {
    /// From a frame with the code columns of [`crate::signals::conditions::code_col`].
    pub fn from_frame(df: &DataFrame, n_vars: usize) -> Result<Coded> {
        use rayon::prelude::*;
        let rows = df.height();
        let cols: Vec<StringChunked> = (0..n_vars)
            .map(|i| {
                Ok(df
                    .column(&crate::signals::conditions::code_col(i))?
                    .as_materialized_series()
                    .cast(&DataType::String)?
                    .str()?
                    .clone())
            })
            .collect::<Result<_>>()?;
        // one variable per task: each dictionary is in first-seen order of
        // its own column, so the result does not depend on the threads
        let per: Vec<(HashMap<String, u32>, Vec<Bits>)> = cols
            .par_iter()
            .map(|s| {
                let mut d: HashMap<String, u32> = HashMap::default();
                let mut b: Vec<Bits> = Vec::new();
                for (r, x) in s.iter().enumerate() {
                    let Some(x) = x else { continue };
                    let k = match d.get(x) {
                        Some(k) => *k,
                        None => {
                            let next = d.len() as u32;
                            d.insert(x.to_string(), next);
                            b.push(Bits::new(rows));
                            next
                        }
                    };
                    b[k as usize].set(r);
                }
                (d, b)
            })
            .collect();
        let (dict, bits) = per.into_iter().unzip();
        Ok(Coded { dict, bits, rows })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows in every cell of a condition, as a bit set.
    pub fn mask(&self, cells: &[Cell]) -> Bits {
        let mut want: Vec<(usize, u32)> = Vec::with_capacity(cells.len());
        for c in cells {
            let (var, code) = match c {
                Cell::Level { var, level } => (*var, level.clone()),
                Cell::Bin { var, bin } => (*var, bin.to_string()),
            };
            match self.dict.get(var).and_then(|d| d.get(&code)) {
                Some(k) => want.push((var, *k)),
                None => return Bits::new(self.rows),
            }
        }
        let Some(((v0, k0), rest)) = want.split_first() else {
            return Bits::new(self.rows);
        };
        let mut b = self.bits[*v0][*k0 as usize].clone();
        for (v, k) in rest {
            b.and_with(&self.bits[*v][*k as usize]);
        }
        b
    }
}

/// A fixed-size bit set over rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Bits(Vec<u64>, usize);

impl Bits {
    pub fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)], n)
    }
    pub fn from_bools(v: &[bool]) -> Bits {
        let mut b = Bits::new(v.len());
        for (i, x) in v.iter().enumerate() {
            if *x {
                b.set(i);
            }
        }
        b
    }
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn and_with(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a &= b;
        }
    }
    pub fn or_with(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    /// |self & o|
    pub fn and_count(&self, o: &Bits) -> usize {
        self.0
            .iter()
            .zip(&o.0)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }
    /// self & !o
    pub fn and_not(&self, o: &Bits) -> Bits {
        Bits(
            self.0.iter().zip(&o.0).map(|(a, b)| a & !b).collect(),
            self.1,
        )
    }
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut x = word;
            std::iter::from_fn(move || {
                if x == 0 {
                    return None;
                }
                let t = x.trailing_zeros() as usize;
                x &= x - 1;
                Some(w * 64 + t)
            })
        })
    }
}

/// The labelled deals, as the selection needs them.
pub struct DealRows {
    pub cells: Coded,
    /// account index of each deal (for counting distinct accounts)
    pub account: Vec<u32>,
    pub n_accounts: usize,
    pub velocity_win: Bits,
    /// lost deals, and their loss reason (None: blank)
    pub lost: Bits,
    pub loss_reason: Vec<Option<String>>,
}

/// Every account, for what a criterion would do to targeting.
pub struct AccountRows {
    pub cells: Coded,
    /// no closed deal yet: the accounts targeting acts on
    pub prospect: Bits,
    /// P(velocity win) from the model; NaN when unscored
    pub p: Vec<f64>,
    /// prospects the model puts in the High band
    pub prospect_high: Bits,
    /// won, not churned: a current customer
    pub customer: Bits,
    /// won revenue of each current customer (0 otherwise)
    pub customer_revenue: Vec<f64>,
    /// a customer note (customers.notes), verbatim
    pub note: Vec<Option<String>>,
    /// a buyer interview quote (interviews.csv), verbatim with who and when
    pub quote: Vec<Option<String>>,
}

/// How many criteria, and how big an effect is worth one.
#[derive(Debug, Clone)]
pub struct IcpParams {
    pub max_criteria: usize,
    pub min_accounts: usize,
    /// the part a criterion adds must reach this lift (include) or its
    /// inverse (exclude) over the baseline
    pub min_lift: f64,
    /// a criterion's own test must pass a Bonferroni correction at this
    /// family-wise error rate over the tests of its kind (single conditions,
    /// or the far more numerous pairs): stricter than the findings' FDR,
    /// because criteria are acted on, and with many true effects the FDR
    /// lets a chance pair through
    pub fwer: f64,
    /// tests on single conditions and on pairs in the screen
    pub single_tests: usize,
    pub pair_tests: usize,
}

impl IcpParams {
    /// Strong enough evidence to act on (see `fwer`).
    fn passes(&self, f: &Finding) -> bool {
        let m = if f.cells.len() > 1 {
            self.pair_tests
        } else {
            self.single_tests
        };
        f.p_value * m.max(1) as f64 <= self.fwer
    }
}

/// What a criterion adds beyond the criteria chosen before it.
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
    /// prospects (no closed deal) matching, and of them, matching no other
    /// exclude criterion
    pub prospects_matching: usize,
    pub prospects_only_this: usize,
    /// sum over matching prospects of P(velocity win) x the average deal
    pub expected_pipeline: f64,
    /// current customers matching and their won revenue
    pub customers_matching: usize,
    pub customer_revenue: f64,
    /// most common loss reasons of its lost deals: (reason, lost deals)
    pub loss_reasons: Vec<(String, usize)>,
    pub lost_deals: usize,
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
    pub prospects: usize,
    /// prospects matching an include criterion and no exclude criterion
    pub prospects_fitting: usize,
    /// and of them, in the High band
    #[serde(default)]
    pub prospects_fitting_high: usize,
    /// prospects matching at least one exclude criterion (counted once)
    pub prospects_excluded: usize,
    /// sum over all prospects of P(velocity win) x the baseline average deal
    pub expected_pipeline_all: f64,
    /// the same over the prospects the exclusions match (each once)
    pub expected_pipeline_excluded: f64,
    pub customers: usize,
    pub customer_revenue_all: f64,
    /// current customers matching an exclusion, and their won revenue
    pub customers_excluded: usize,
    pub customer_revenue_excluded: f64,
}

struct Cand<'a> {
    /// index into the finding list
    at: usize,
    mask: &'a Bits,
}

fn added(
    mask: &Bits,
    deals: &DealRows,
    base: f64,
    up: bool,
    stamp: &mut Vec<u32>,
    generation: &mut u32,
) -> Added {
    let n = mask.count();
    let w = mask.and_count(&deals.velocity_win);
    *generation += 1;
    let mut accounts = 0;
    for r in mask.ones() {
        let a = deals.account[r] as usize;
        if stamp[a] != *generation {
            stamp[a] = *generation;
            accounts += 1;
        }
    }
    let rate = if n > 0 { w as f64 / n as f64 } else { f64::NAN };
    let expected = n as f64 * base;
    Added {
        deals: n,
        accounts,
        velocity_wins: w,
        velocity_win_rate: rate,
        velocity_win_rate_ci95: wilson(w, n),
        lift: rate / base,
        excess_velocity_wins: if up {
            w as f64 - expected
        } else {
            expected - w as f64
        },
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

/// Greedy choice: the next criterion is the one whose uncovered deals carry
/// the most velocity wins beyond (or short of) the baseline, provided that
/// uncovered part has the support, the practical lift and an interval that
/// excludes the baseline. Returns (candidate position, what it adds), in order.
fn greedy(
    cands: &[Cand],
    deals: &DealRows,
    base: f64,
    up: bool,
    p: &IcpParams,
) -> Vec<(usize, Added)> {
    let mut covered = Bits::new(deals.cells.rows());
    let mut chosen: Vec<(usize, Added)> = Vec::new();
    let mut stamp = vec![0u32; deals.n_accounts];
    let mut generation = 0u32;
    while chosen.len() < p.max_criteria {
        let mut best: Option<(usize, Added)> = None;
        for (ci, c) in cands.iter().enumerate() {
            if chosen.iter().any(|(k, _)| *k == ci) {
                continue;
            }
            let rest = c.mask.and_not(&covered);
            let n = rest.count();
            if n == 0 {
                continue;
            }
            let w = rest.and_count(&deals.velocity_win);
            let rate = w as f64 / n as f64;
            let (lo, hi) = wilson(w, n);
            let practical = if up {
                rate >= p.min_lift * base && lo > base
            } else {
                rate <= base / p.min_lift && hi < base
            };
            if !practical {
                continue;
            }
            let excess = if up {
                w as f64 - n as f64 * base
            } else {
                n as f64 * base - w as f64
            };
            if best
                .as_ref()
                .is_some_and(|(_, b)| b.excess_velocity_wins >= excess)
            {
                continue;
            }
            let a = added(&rest, deals, base, up, &mut stamp, &mut generation);
            if a.accounts < p.min_accounts {
                continue;
            }
            best = Some((ci, a));
        }
        let Some((ci, a)) = best else { break };
        covered.or_with(cands[ci].mask);
        chosen.push((ci, a));
    }
    chosen
}

/// Choose the criteria, reorder and renumber both finding lists (criteria
/// first, in the order chosen: S01.. and X01..), mark which criterion each
/// other finding supports, and cost the exclusions.
pub fn refine(
    signals: &mut Vec<Finding>,
    exclusions: &mut Vec<Finding>,
    deals: &DealRows,
    accounts: &AccountRows,
    base_rate: f64,
    base_average_deal: Option<f64>,
    p: &IcpParams,
) -> (RefinedIcp, Vec<Bits>) {
    // Mixed evidence: the same condition is a signal and an exclusion (wins
    // faster but churns, or is hard to serve), or an exclusion for retention,
    // fit or margin alone whose deals still win at least as often.
    let in_signals: std::collections::BTreeSet<String> =
        signals.iter().map(|f| f.condition.clone()).collect();
    let mixed_x = |x: &Finding| {
        in_signals.contains(&x.condition) || (!x.kinds.iter().any(|k| k == "rate") && x.lift >= 1.0)
    };
    let x_mixed: std::collections::BTreeSet<String> = exclusions
        .iter()
        .filter(|x| mixed_x(x))
        .map(|x| x.condition.clone())
        .collect();
    let sig_masks: Vec<Bits> = signals.iter().map(|f| deals.cells.mask(&f.cells)).collect();
    let exc_masks: Vec<Bits> = exclusions
        .iter()
        .map(|f| deals.cells.mask(&f.cells))
        .collect();

    // candidates: not mixed, and strong enough to act on
    let keep = |f: &Finding| !x_mixed.contains(&f.condition) && p.passes(f);
    let inc_cands = candidates(signals, &sig_masks, keep);
    let exc_cands = candidates(exclusions, &exc_masks, keep);
    let inc = greedy(&inc_cands, deals, base_rate, true, p);
    let mut exc = greedy(&exc_cands, deals, base_rate, false, p);
    // Exclusions for retention, delivery fit or margin alone (their deals
    // win about as often): each taken in rank order while it still reaches
    // accounts the chosen exclusions do not.
    {
        let mut covered = Bits::new(deals.cells.rows());
        for (ci, _) in &exc {
            covered.or_with(exc_cands[*ci].mask);
        }
        let mut stamp = vec![0u32; deals.n_accounts];
        let mut generation = 0;
        for (ci, c) in exc_cands.iter().enumerate() {
            if exc.len() >= p.max_criteria {
                break;
            }
            let f = &exclusions[c.at];
            if f.kinds.iter().any(|k| k == "rate") || exc.iter().any(|(k, _)| *k == ci) {
                continue;
            }
            let rest = c.mask.and_not(&covered);
            let a = added(&rest, deals, base_rate, false, &mut stamp, &mut generation);
            if a.accounts >= p.min_accounts && 2 * a.deals >= c.mask.count() {
                covered.or_with(c.mask);
                exc.push((ci, a));
            }
        }
    }
    let review_at: Vec<(bool, usize)> = signals
        .iter()
        .enumerate()
        .filter(|(_, f)| x_mixed.contains(&f.condition))
        .map(|(i, _)| (true, i))
        .chain(
            exclusions
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    x_mixed.contains(&f.condition) && !in_signals.contains(&f.condition)
                })
                .map(|(i, _)| (false, i)),
        )
        .take(p.max_criteria)
        .collect();

    // Reorder: criteria first in the order chosen, then the rest as ranked.
    let inc_at: Vec<usize> = inc.iter().map(|(ci, _)| inc_cands[*ci].at).collect();
    let exc_at: Vec<usize> = exc.iter().map(|(ci, _)| exc_cands[*ci].at).collect();
    let order = |chosen: &[usize], n: usize| -> Vec<usize> {
        let mut o = chosen.to_vec();
        o.extend((0..n).filter(|i| !chosen.contains(i)));
        o
    };
    let s_order = order(&inc_at, signals.len());
    let x_order = order(&exc_at, exclusions.len());
    let permute = |list: &mut Vec<Finding>, masks: Vec<Bits>, ord: &[usize], tag: &str| {
        let old = std::mem::take(list);
        let mut slots: Vec<Option<(Finding, Bits)>> =
            old.into_iter().zip(masks).map(Some).collect();
        let mut new_masks = Vec::with_capacity(ord.len());
        for (k, &i) in ord.iter().enumerate() {
            if let Some((mut f, m)) = slots[i].take() {
                f.id = format!("{tag}{:02}", k + 1);
                list.push(f);
                new_masks.push(m);
            }
        }
        new_masks
    };
    let sig_masks = permute(signals, sig_masks, &s_order, "S");
    let exc_masks = permute(exclusions, exc_masks, &x_order, "X");
    // positions after the reorder
    let pos = |ord: &[usize], old: usize| ord.iter().position(|&i| i == old).unwrap_or(old);
    let review_pos: Vec<(bool, usize)> = review_at
        .iter()
        .map(|&(is_sig, i)| (is_sig, pos(if is_sig { &s_order } else { &x_order }, i)))
        .collect();

    // Supporting evidence: each other finding points at the criterion of
    // its list that covers the largest share of its deals (half or more).
    let support = |list: &mut Vec<Finding>, masks: &[Bits], n_chosen: usize| {
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
            if let Some((c, shared)) = best {
                if 2 * shared >= own {
                    list[k].criterion = Some(list[c].id.clone());
                    by[c].push(list[k].id.clone());
                }
            }
        }
        by
    };
    let s_support = support(signals, &sig_masks, inc.len());
    let x_support = support(exclusions, &exc_masks, exc.len());

    // What the exclusions would do to targeting.
    let acc_masks_x: Vec<Bits> = exclusions
        .iter()
        .take(exc.len())
        .map(|f| accounts.cells.mask(&f.cells))
        .collect();
    let mut any_x = Bits::new(accounts.cells.rows());
    for m in &acc_masks_x {
        any_x.or_with(m);
    }
    let matched_by: Vec<u8> = {
        let mut v = vec![0u8; accounts.cells.rows()];
        for m in &acc_masks_x {
            for r in m.ones() {
                v[r] = v[r].saturating_add(1);
            }
        }
        v
    };
    // One deal size per prospect for every total: the average deal of the
    // first exclude criterion it matches, else the baseline's. So the
    // exclusions' total is never more than the sum of their own figures,
    // and its share of all prospects' is a share of the same measure.
    let base_avg = base_average_deal.unwrap_or(0.0);
    let deal_of: Vec<f64> = {
        let mut v = vec![base_avg; accounts.cells.rows()];
        let mut set = vec![false; accounts.cells.rows()];
        for (k, m) in acc_masks_x.iter().enumerate() {
            let avg = exclusions[k].average_deal.unwrap_or(base_avg);
            for r in m.ones() {
                if !set[r] {
                    set[r] = true;
                    v[r] = avg;
                }
            }
        }
        v
    };
    let value = |m: &Bits| -> f64 {
        m.ones()
            .filter(|&r| accounts.prospect.get(r) && accounts.p[r].is_finite())
            .map(|r| accounts.p[r] * deal_of[r])
            .sum()
    };
    let cost = |c: &mut Criterion, m: &Bits, only: Option<&[u8]>| {
        c.prospects_matching = m.and_count(&accounts.prospect);
        c.prospects_only_this = match only {
            Some(v) => m
                .ones()
                .filter(|&r| accounts.prospect.get(r) && v[r] == 1)
                .count(),
            None => c.prospects_matching,
        };
        c.expected_pipeline = value(m);
        c.customers_matching = m.and_count(&accounts.customer);
        c.customer_revenue = m.ones().map(|r| accounts.customer_revenue[r]).sum();
    };
    let reasons = |m: &Bits| -> (Vec<(String, usize)>, usize) {
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
    };
    // Up to three verbatim notes: buyer interview quotes first, then
    // customer notes, from the accounts the criterion is about (won accounts
    // for an include, the others that closed a deal for an exclude).
    let notes = |m: &Bits, include: bool| -> Vec<String> {
        let about = |r: usize| !accounts.prospect.get(r) && (accounts.customer.get(r) == include);
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
            if !q.trim().is_empty() && !out.iter().any(|o| words(o) == words(&q)) {
                out.push(q);
            }
            if out.len() == 3 {
                break;
            }
        }
        out
    };
    let make = |f: &Finding, kind: &str, adds: Added, supporting: Vec<String>, dm: &Bits| {
        let (loss_reasons, lost_deals) = reasons(dm);
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
        }
    };
    let mut include = Vec::new();
    for (k, (_, a)) in inc.iter().enumerate() {
        let mut c = make(
            &signals[k],
            "include",
            a.clone(),
            s_support[k].clone(),
            &sig_masks[k],
        );
        let m = accounts.cells.mask(&signals[k].cells);
        cost(&mut c, &m, None);
        c.finding.notes = notes(&m, true);
        include.push(c);
    }
    let mut exclude = Vec::new();
    for (k, (_, a)) in exc.iter().enumerate() {
        let mut c = make(
            &exclusions[k],
            "exclude",
            a.clone(),
            x_support[k].clone(),
            &exc_masks[k],
        );
        cost(&mut c, &acc_masks_x[k], Some(&matched_by));
        c.finding.notes = notes(&acc_masks_x[k], false);
        exclude.push(c);
    }
    let mut review = Vec::new();
    for (is_sig, k) in review_pos {
        let (f, dm) = if is_sig {
            (&signals[k], &sig_masks[k])
        } else {
            (&exclusions[k], &exc_masks[k])
        };
        let mut f = f.clone();
        // the other side of the mixed evidence, when it is an exclusion too
        if is_sig {
            if let Some(x) = exclusions.iter().find(|x| x.condition == f.condition) {
                f.evidence.extend(x.evidence.iter().cloned());
                f.kinds = x.kinds.clone();
            }
        }
        let mut c = make(&f, "review", Added::default(), Vec::new(), dm);
        let m = accounts.cells.mask(&f.cells);
        cost(&mut c, &m, None);
        c.finding.notes = notes(&m, false);
        review.push(c);
    }
    for c in &mut review {
        c.finding.criterion = Some(c.finding.id.clone());
    }

    // The ICP as a whole.
    let mut any_inc = Bits::new(deals.cells.rows());
    for m in sig_masks.iter().take(inc.len()) {
        any_inc.or_with(m);
    }
    let n_in = any_inc.count();
    let w_in = any_inc.and_count(&deals.velocity_win);
    let n_all = deals.cells.rows();
    let w_all = deals.velocity_win.count();
    let rate = |w: usize, n: usize| (n > 0).then(|| w as f64 / n as f64);
    let mut any_inc_acc = Bits::new(accounts.cells.rows());
    for f in signals.iter().take(inc.len()) {
        any_inc_acc.or_with(&accounts.cells.mask(&f.cells));
    }
    let fitting = any_inc_acc.and_not(&any_x).and_count(&accounts.prospect);
    let all = {
        let mut b = Bits::new(accounts.cells.rows());
        for r in 0..accounts.cells.rows() {
            b.set(r);
        }
        b
    };
    let icp = RefinedIcp {
        format: "icp-refined/1".into(),
        rule: "An account fits the refined ICP when it matches at least one include criterion and no approved exclude criterion.".into(),
        include,
        exclude,
        review,
        baseline_velocity_win_rate: base_rate,
        include_coverage: Coverage {
            deals: n_in,
            velocity_wins: w_in,
            velocity_win_rate: rate(w_in, n_in),
            velocity_win_rate_ci95: wilson(w_in, n_in),
            other_deals: n_all - n_in,
            other_velocity_win_rate: rate(w_all - w_in, n_all - n_in),
        },
        prospects: accounts.prospect.count(),
        prospects_fitting: fitting,
        prospects_excluded: any_x.and_count(&accounts.prospect),
        expected_pipeline_all: value(&all),
        expected_pipeline_excluded: value(&any_x),
        prospects_fitting_high: any_inc_acc
            .and_not(&any_x)
            .and_count(&accounts.prospect_high),
        customers: accounts.customer.count(),
        customer_revenue_all: accounts.customer_revenue.iter().sum(),
        customers_excluded: any_x.and_count(&accounts.customer),
        customer_revenue_excluded: any_x.ones().map(|r| accounts.customer_revenue[r]).sum(),
    };
    (icp, acc_masks_x)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            min_lift: 1.25,
            fwer: 0.01,
            single_tests: 1,
            pair_tests: 1,
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

    /// Pipeline at stake and the prospect count: each prospect once.
    #[test]
    fn prospects_matching_two_exclusions_count_once_and_pipeline_is_p_times_deal() {
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
            lost: Bits::new(300),
            loss_reason: vec![None; 300],
        };
        let mut signals = vec![];
        let mut exclusions = vec![
            finding("X01", vec![lvl(0, "B")], 0.25, &["rate"]),
            finding("X02", vec![lvl(1, "b")], 0.25, &["rate"]),
        ];
        let p = IcpParams {
            max_criteria: 7,
            min_accounts: 20,
            min_lift: 1.25,
            fwer: 0.01,
            single_tests: 1,
            pair_tests: 1,
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
        // pipeline: (0.2 + 0.4) x $1,000 (the finding's average deal)
        assert!((icp.exclude[0].expected_pipeline - 600.0).abs() < 1e-9);
        // all prospects: the unscored one adds nothing
        assert!((icp.expected_pipeline_all - 600.0).abs() < 1e-9);
        assert_eq!(icp.customers, 1);
        assert!((icp.customer_revenue_all - 500.0).abs() < 1e-9);
    }
}
