//! Buying triggers: how much more often an opportunity follows a trigger
//! within the window than it does for accounts that never had one, how often
//! those opportunities are won, and the typical lag.
//!
//! The baseline is matched in time and in prior activity: for each trigger
//! on day d, the share of never-triggered accounts *with the same prior
//! activity* (an opportunity created on or before d, or none) that opened
//! an opportunity in (d, d + window]. That keeps seasonality, the growth of
//! the CRM and dormant accounts out of the lift.
//!
//! Two answers per trigger, kept apart: timing (does a deal follow?) and
//! fit (are those deals won more often than others?). A trigger that tells
//! when to call is not evidence of who fits.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::Outcome;
use crate::error::Result;
use crate::util::frame::{f64_col, str_col};
use crate::util::metrics::wilson;
use crate::util::stats::{benjamini_hochberg, normal_two_sided, two_proportions};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerFinding {
    pub trigger: String,
    pub events: usize,
    pub accounts: usize,
    /// events followed by a new opportunity of the same account within the window
    pub followed: usize,
    pub follow_rate: f64,
    pub follow_rate_ci95: (f64, f64),
    /// the same window after the same days, for accounts with no trigger at all
    pub baseline_follow_rate: Option<f64>,
    pub lift: Option<f64>,
    pub follow_p_value: f64,
    pub follow_q_value: f64,
    /// of the opportunities that followed and have closed: won (incl. later churned)
    pub closed: usize,
    pub won: usize,
    pub win_rate: Option<f64>,
    pub win_rate_ci95: Option<(f64, f64)>,
    /// closed opportunities of never-triggered accounts
    pub baseline_win_rate: Option<f64>,
    pub win_p_value: f64,
    pub win_q_value: f64,
    pub median_lag_days: Option<f64>,
    /// enough events to say anything, and the lift survives the FDR correction
    pub supported: bool,
    /// the same as `supported`: a deal follows more often than the baseline
    #[serde(default)]
    pub timing_supported: bool,
    /// the deals that follow are won more often than the baseline's
    #[serde(default)]
    pub fit_supported: bool,
    /// share of events on accounts that had an opportunity before the trigger
    #[serde(default)]
    pub prior_activity_share: f64,
    #[serde(default)]
    pub window_days: i64,
}

/// Summarise every trigger type. `opportunities` holds all deals, open included.
/// Accounts are joined by their row in `index` (the accounts' table), not
/// by id text.
pub fn summarise(
    index: &crate::util::ids::AccountIndex,
    opportunities: &DataFrame,
    triggers: &DataFrame,
    window_days: i64,
    min_events: usize,
    fdr: f64,
) -> Result<Vec<TriggerFinding>> {
    let triggered = index.rows_of(triggers, "account_id")?;
    let (per_event, opps) = event_frame(
        opportunities,
        index.rows_of(opportunities, "account_id")?,
        triggers,
        &triggered,
        window_days,
    )?;
    let per_type = type_counts(&per_event)?;
    let pool = Pool::of(index.len(), &triggered, opps)?;
    let ev = Events::of(per_event)?;
    let cover = coverage(&pool, &ev.day, window_days);
    let (mut out, pvals) = findings(&per_type, &ev, &cover, &pool, window_days)?;
    let q = benjamini_hochberg(&pvals);
    for (k, t) in out.iter_mut().enumerate() {
        t.follow_q_value = q[2 * k];
        t.win_q_value = q[2 * k + 1];
        t.timing_supported =
            t.events >= min_events && t.follow_q_value <= fdr && t.lift.is_some_and(|l| l > 1.0);
        t.supported = t.timing_supported;
        t.fit_supported = t.events >= min_events
            && t.win_q_value <= fdr
            && matches!((t.win_rate, t.baseline_win_rate), (Some(w), Some(b)) if w > b);
    }
    out.sort_by(|a, b| {
        b.lift
            .unwrap_or(0.0)
            .total_cmp(&a.lift.unwrap_or(0.0))
            .then(a.trigger.cmp(&b.trigger))
    });
    Ok(out)
}

/// One row per trigger event (in event order): the lag and outcome of the
/// first opportunity within the window, and whether the account had one
/// before. Also the opportunities, as read, for the comparison pool.
fn event_frame(
    opportunities: &DataFrame,
    opp_rows: Vec<Option<u32>>,
    triggers: &DataFrame,
    trigger_rows: &[Option<u32>],
    window_days: i64,
) -> Result<(LazyFrame, LazyFrame)> {
    let day = |c: &str| col(c).cast(DataType::Int32);
    let row = |r: Vec<Option<u32>>| Column::new(ACCOUNT.into(), r);
    let events = triggers
        .clone()
        .with_column(row(trigger_rows.to_vec()))?
        .clone()
        .lazy()
        .select([
            col("account_id"),
            col(ACCOUNT),
            col("trigger"),
            day("date").alias("__d"),
        ])
        .with_row_index("__e", None);
    let opps = opportunities
        .clone()
        .with_column(row(opp_rows))?
        .clone()
        .lazy()
        .select([
            col(ACCOUNT),
            col("opportunity_id"),
            day("created_date").alias("__c"),
            col("outcome"),
        ]);
    let first = events
        .clone()
        .join(
            opps.clone(),
            [col(ACCOUNT)],
            [col(ACCOUNT)],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column((col("__c") - col("__d")).alias("__lag"))
        .filter(
            col("__lag")
                .gt(lit(0))
                .and(col("__lag").lt_eq(lit(window_days as i32))),
        )
        .sort(
            ["__e", "__lag", "opportunity_id"],
            SortMultipleOptions::default(),
        )
        .group_by([col("__e")])
        .agg([
            col("__lag").first().alias("__lag"),
            col("outcome").first().alias("__outcome"),
        ]);
    let first_opp = opps
        .clone()
        .group_by([col(ACCOUNT)])
        .agg([col("__c").min().alias("__f")]);
    let per_event = events
        .clone()
        .join(
            first,
            [col("__e")],
            [col("__e")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            first_opp,
            [col(ACCOUNT)],
            [col(ACCOUNT)],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            col("__f")
                .lt_eq(col("__d"))
                .fill_null(lit(false))
                .alias("__prior"),
        )
        .sort(["__e"], SortMultipleOptions::default());
    Ok((per_event, opps))
}

/// The account's row in the accounts table, what events and deals join on.
const ACCOUNT: &str = "__a";

/// Per trigger type, sorted by name: events, accounts, events followed,
/// median lag, and the followed deals closed and won.
fn type_counts(per_event: &LazyFrame) -> Result<DataFrame> {
    let per_type = per_event
        .clone()
        .group_by([col("trigger")])
        .agg([
            len().cast(DataType::Float64).alias("events"),
            col("account_id")
                .n_unique()
                .cast(DataType::Float64)
                .alias("accounts"),
            col("__lag")
                .is_not_null()
                .cast(DataType::Float64)
                .sum()
                .alias("followed"),
            col("__lag").cast(DataType::Float64).median().alias("lag"),
            col("__outcome")
                .is_not_null()
                .and(col("__outcome").neq(Outcome::Open.lit()))
                .cast(DataType::Float64)
                .sum()
                .alias("closed"),
            col("__outcome")
                .eq(Outcome::Won.lit())
                .or(col("__outcome").eq(Outcome::Churned.lit()))
                .fill_null(lit(false))
                .cast(DataType::Float64)
                .sum()
                .alias("won"),
        ])
        .sort(["trigger"], SortMultipleOptions::default())
        .collect()?;
    Ok(per_type)
}

/// The comparison pool: never-triggered accounts, their opportunities
/// (sorted by account row, day) and the closed and won counts among them.
struct Pool {
    /// accounts in the pool
    n: usize,
    /// each opportunity's account row
    acc: Vec<Option<u32>>,
    day: Vec<Option<f64>>,
    closed: usize,
    won: usize,
}

impl Pool {
    /// `n_accounts` accounts, `triggered` the account row of each trigger.
    fn of(n_accounts: usize, triggered: &[Option<u32>], opps: LazyFrame) -> Result<Pool> {
        // Never-triggered accounts: their opportunity days and closed outcomes.
        let mut has_trigger = vec![false; n_accounts];
        for r in triggered.iter().flatten() {
            has_trigger[*r as usize] = true;
        }
        let n_untriggered = has_trigger.iter().filter(|t| !**t).count();
        let opps = opps.collect()?;
        let untriggered: BooleanChunked = opps
            .column(ACCOUNT)?
            .u32()?
            .iter()
            .map(|r| Some(r.is_some_and(|r| !has_trigger[r as usize])))
            .collect();
        let u_opps = opps
            .filter(&untriggered)?
            .sort([ACCOUNT, "__c"], SortMultipleOptions::default())?;
        let u_acc: Vec<Option<u32>> = u_opps.column(ACCOUNT)?.u32()?.iter().collect();
        let u_day = f64_col(&u_opps, "__c")?;
        // borrowed text: no string allocated per opportunity
        let u_out = crate::util::frame::text_col(&u_opps, "outcome")?;
        let closed_u = u_out
            .iter()
            .filter(|o| {
                o.and_then(Outcome::canonical)
                    .is_some_and(|o| o != Outcome::Open)
            })
            .count();
        let won_u = u_out
            .iter()
            .filter(|o| o.and_then(Outcome::canonical).is_some_and(Outcome::was_won))
            .count();
        Ok(Pool {
            n: n_untriggered,
            acc: u_acc,
            day: u_day,
            closed: closed_u,
            won: won_u,
        })
    }
}

/// Each trigger event's type, day and prior activity, in event order.
struct Events {
    trig: StringChunked,
    prior: Vec<bool>,
    day: Vec<i64>,
}

impl Events {
    fn of(per_event: LazyFrame) -> Result<Events> {
        let ev = per_event
            .select([col("trigger"), col("__d"), col("__prior")])
            .collect()?;
        let ev_trig_ca = crate::util::frame::text_col(&ev, "trigger")?;
        let ev_prior: Vec<bool> = ev
            .column("__prior")?
            .bool()?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect();
        let ev_day: Vec<i64> = f64_col(&ev, "__d")?
            .into_iter()
            .map(|d| d.unwrap_or(0.0) as i64)
            .collect();
        Ok(Events {
            trig: ev_trig_ca,
            prior: ev_prior,
            day: ev_day,
        })
    }
}

/// Coverage: for each day d and prior-activity stratum, how many
/// never-triggered accounts opened an opportunity in (d, d + window], and
/// how many were in the stratum on day d. An account is "prior" from the
/// day its first opportunity was created. Intervals per account are
/// merged first.
fn coverage(pool: &Pool, ev_day: &[i64], window_days: i64) -> Cover {
    let u_acc = &pool.acc;
    let u_day = &pool.day;
    let (lo, hi) = (
        ev_day.iter().copied().min().unwrap_or(0),
        ev_day.iter().copied().max().unwrap_or(0),
    );
    let span = (hi - lo + 1).max(1) as usize;
    let mut strata = Strata::new(lo, span);
    let mut i = 0;
    while i < u_acc.len() {
        let mut j = i;
        while j < u_acc.len() && u_acc[j] == u_acc[i] {
            j += 1;
        }
        // days sorted within the account (the frame is sorted by account, day)
        let days: Vec<i64> = u_day[i..j].iter().flatten().map(|d| *d as i64).collect();
        strata.add_account(&days, window_days);
        i = j;
    }
    strata.finish(pool.n)
}

/// One finding per trigger type, in name order, with its q-values still to
/// come; and the p-values, follow then win for each type, for the correction.
fn findings(
    per_type: &DataFrame,
    ev: &Events,
    cover: &Cover,
    pool: &Pool,
    window_days: i64,
) -> Result<(Vec<TriggerFinding>, Vec<f64>)> {
    let ev_trig: Vec<Option<&str>> = ev.trig.iter().collect();
    let (ev_day, ev_prior) = (&ev.day, &ev.prior);
    let (closed_u, won_u) = (pool.closed, pool.won);
    let names = str_col(per_type, "trigger")?;
    let get = |c: &str| f64_col(per_type, c);
    let (events_n, accounts_n, followed_n, lag, closed_n, won_n) = (
        get("events")?,
        get("accounts")?,
        get("followed")?,
        get("lag")?,
        get("closed")?,
        get("won")?,
    );
    let mut out = Vec::new();
    let mut pvals = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let name = name.clone().unwrap_or_default();
        let n = events_n[k].unwrap_or(0.0) as usize;
        let x = followed_n[k].unwrap_or(0.0) as usize;
        let mine: Vec<usize> = (0..ev_trig.len())
            .filter(|&e| ev_trig[e] == Some(name.as_str()))
            .collect();
        let rates: Vec<f64> = mine
            .iter()
            .filter_map(|&e| cover.rate(ev_day[e], ev_prior[e]))
            .collect();
        let baseline = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
        let prior_share = if mine.is_empty() {
            0.0
        } else {
            mine.iter().filter(|&&e| ev_prior[e]).count() as f64 / mine.len() as f64
        };
        let rate = if n > 0 { x as f64 / n as f64 } else { f64::NAN };
        let follow_p = match baseline {
            Some(p0) if p0 > 0.0 && p0 < 1.0 && n > 0 => {
                let se = (p0 * (1.0 - p0) / n as f64).sqrt();
                normal_two_sided((rate - p0) / se)
            }
            _ => 1.0,
        };
        let closed = closed_n[k].unwrap_or(0.0) as usize;
        let won = won_n[k].unwrap_or(0.0) as usize;
        let win_p = two_proportions(won as u64, closed as u64, won_u as u64, closed_u as u64);
        pvals.push(follow_p);
        pvals.push(win_p);
        out.push(TriggerFinding {
            trigger: name,
            events: n,
            accounts: accounts_n[k].unwrap_or(0.0) as usize,
            followed: x,
            follow_rate: rate,
            follow_rate_ci95: wilson(x, n),
            baseline_follow_rate: baseline,
            lift: baseline.filter(|b| *b > 0.0).map(|b| rate / b),
            follow_p_value: follow_p,
            follow_q_value: 1.0,
            closed,
            won,
            win_rate: (closed > 0).then(|| won as f64 / closed as f64),
            win_rate_ci95: (closed > 0).then(|| wilson(won, closed)),
            baseline_win_rate: (closed_u > 0).then(|| won_u as f64 / closed_u as f64),
            win_p_value: win_p,
            win_q_value: 1.0,
            median_lag_days: lag[k],
            supported: false,
            timing_supported: false,
            fit_supported: false,
            prior_activity_share: prior_share,
            window_days,
        });
    }
    Ok((out, pvals))
}

/// Day-by-day coverage of the comparison pool, split by prior activity.
struct Strata {
    lo: i64,
    span: usize,
    /// difference arrays: accounts covered (an opportunity in (d, d + w]),
    /// by stratum, and accounts that became "prior" on each day
    cover: [Vec<i64>; 2],
    became_prior: Vec<i64>,
    /// accounts already prior before the first day
    prior_before: i64,
}

/// Per day: covered accounts and pool size, by stratum (0: no prior
/// opportunity, 1: prior opportunity).
struct Cover {
    lo: i64,
    covered: [Vec<f64>; 2],
    size: [Vec<f64>; 2],
}

impl Cover {
    fn rate(&self, day: i64, prior: bool) -> Option<f64> {
        let s = prior as usize;
        let i = usize::try_from(day - self.lo).ok()?;
        let n = *self.size[s].get(i)?;
        (n > 0.0).then(|| self.covered[s][i] / n)
    }
}

impl Strata {
    fn new(lo: i64, span: usize) -> Strata {
        Strata {
            lo,
            span,
            cover: [vec![0; span + 1], vec![0; span + 1]],
            became_prior: vec![0; span + 1],
            prior_before: 0,
        }
    }

    fn mark(&mut self, s: usize, a: i64, b: i64) {
        let hi = self.lo + self.span as i64 - 1;
        let (a, b) = (a.max(self.lo), b.min(hi));
        if a <= b {
            self.cover[s][(a - self.lo) as usize] += 1;
            self.cover[s][(b - self.lo + 1) as usize] -= 1;
        }
    }

    /// One pool account with its opportunity creation days, sorted.
    fn add_account(&mut self, days: &[i64], window: i64) {
        let Some(&first) = days.first() else {
            return;
        };
        if first < self.lo {
            self.prior_before += 1;
        } else if first < self.lo + self.span as i64 {
            self.became_prior[(first - self.lo) as usize] += 1;
        }
        // merged intervals of days d with c - window <= d <= c - 1
        let mut cur: Option<(i64, i64)> = None;
        let mut merged = Vec::new();
        for &c in days {
            let (a, b) = (c - window, c - 1);
            cur = match cur {
                Some((x, y)) if a <= y + 1 => Some((x, y.max(b))),
                Some(iv) => {
                    merged.push(iv);
                    Some((a, b))
                }
                None => Some((a, b)),
            };
        }
        merged.extend(cur);
        // days before the first opportunity are "no prior", from it on "prior"
        for (x, y) in merged {
            if x < first {
                self.mark(0, x, y.min(first - 1));
            }
            if y >= first {
                self.mark(1, x.max(first), y);
            }
        }
    }

    fn finish(self, pool: usize) -> Cover {
        let mut covered = [Vec::with_capacity(self.span), Vec::with_capacity(self.span)];
        let mut size = [Vec::with_capacity(self.span), Vec::with_capacity(self.span)];
        let (mut c0, mut c1, mut prior) = (0i64, 0i64, self.prior_before);
        for d in 0..self.span {
            c0 += self.cover[0][d];
            c1 += self.cover[1][d];
            prior += self.became_prior[d];
            covered[0].push(c0 as f64);
            covered[1].push(c1 as f64);
            size[0].push((pool as i64 - prior) as f64);
            size[1].push(prior as f64);
        }
        Cover {
            lo: self.lo,
            covered,
            size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three pool accounts, window 10, days 0..=19:
    /// - P: opportunities on days 5 and 25 (prior from day 5);
    /// - Q: one on day 12 (prior from day 12);
    /// - R: none (never prior, never covered).
    #[test]
    fn the_baseline_is_matched_in_time_and_prior_activity() {
        let mut s = Strata::new(0, 20);
        s.add_account(&[5, 25], 10);
        s.add_account(&[12], 10);
        s.add_account(&[], 10);
        let c = s.finish(3);
        // day 3: nobody prior; P (opp on 5) and Q (opp on 12) covered: 2 of 3
        assert_eq!(c.rate(3, false), Some(2.0 / 3.0));
        assert_eq!(c.rate(3, true), None, "no prior account on day 3");
        // day 8: P prior (first opp day 5), no opp in (8, 18] for P: 0 of 1;
        // no-prior pool Q, R: Q's opp on 12 is in (8, 18]: 1 of 2
        assert_eq!(c.rate(8, true), Some(0.0));
        assert_eq!(c.rate(8, false), Some(0.5));
        // day 15: P and Q prior; P's opp on 25 is in (15, 25]: 1 of 2
        assert_eq!(c.rate(15, true), Some(0.5));
        // day 5: P just became prior, its next opp (25) is past (5, 15]
        assert_eq!(c.rate(5, true), Some(0.0));
        assert_eq!(c.rate(20, true), None, "outside the event days");
        assert_eq!(c.rate(19, false), Some(0.0));
    }
}
