//! Measurement that can fail: what happened next to the accounts an earlier
//! scoring put in each band. If High does not go on to open, win and win
//! fast more often than Low, this table says so, run after run.
//!
//! Pure functions of an earlier scoring (its bands and its data's as-of
//! date) and today's opportunities; reading run directories is the
//! caller's business.

use std::collections::HashMap;

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::Outcome;
use crate::error::Result;
use crate::util::metrics::wilson;

/// The bands one earlier run gave the accounts.
#[derive(Debug, Clone)]
pub struct EarlierScoring {
    pub run_id: String,
    /// newest date in the data that run read: "next" is after it
    pub as_of: NaiveDate,
    /// account_id -> band (high, medium, low; unscored accounts left out)
    pub bands: HashMap<String, String>,
}

/// What followed for one band of one earlier scoring.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BandOutcome {
    pub band: String,
    pub accounts: usize,
    /// accounts that opened an opportunity after the as-of date
    pub accounts_with_new_opportunity: usize,
    /// None for a band with no account
    pub new_opportunity_rate: Option<f64>,
    pub new_opportunity_rate_ci95: (f64, f64),
    /// those opportunities: created, closed since, won (churned included)
    pub opportunities: usize,
    pub closed: usize,
    pub won: usize,
    pub win_rate: Option<f64>,
    pub win_rate_ci95: Option<(f64, f64)>,
    /// velocity wins among the closed ones
    pub velocity_wins: usize,
    pub velocity_win_rate: Option<f64>,
    pub velocity_win_rate_ci95: Option<(f64, f64)>,
    pub median_cycle_days_won: Option<f64>,
    /// churned of the won
    pub churned: usize,
    /// the new lost deals' loss reasons, most common first: why leads of
    /// this fit were disqualified ((blank) when none was given)
    #[serde(default)]
    pub loss_reasons: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoringOutcomes {
    pub run_id: String,
    pub as_of: String,
    /// days from that as-of date to today's
    pub days_since: i64,
    pub bands: Vec<BandOutcome>,
}

/// `opportunities`: every deal (account_id, opportunity_id, created_date,
/// closed_date, outcome); `labels`: the labelled closed deals
/// (opportunity_id, label, outcome as effective). Deals created after the
/// earlier as-of date count; open ones count as opportunities only.
pub fn band_outcomes(
    earlier: &EarlierScoring,
    today: NaiveDate,
    opportunities: &DataFrame,
    labels: &DataFrame,
) -> Result<ScoringOutcomes> {
    let df = new_deals(earlier, opportunities, labels)?;
    let mut t = tally(earlier, &df)?;
    let bands = crate::domain::Band::NAMES
        .iter()
        .map(|b| band_outcome(b, t.remove(b).unwrap_or_default()))
        .collect();
    Ok(ScoringOutcomes {
        run_id: earlier.run_id.clone(),
        as_of: earlier.as_of.to_string(),
        days_since: (today - earlier.as_of).num_days(),
        bands,
    })
}

/// The deals created after the earlier as-of date, with their cycle, loss
/// reason and effective label, sorted by account and opportunity.
fn new_deals(
    earlier: &EarlierScoring,
    opportunities: &DataFrame,
    labels: &DataFrame,
) -> Result<DataFrame> {
    let day = |d: NaiveDate| {
        (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
    };
    let after = day(earlier.as_of);
    // an opportunities table without loss reasons gives "(blank)" ones
    let why_col = if opportunities
        .get_column_names()
        .iter()
        .any(|c| c.as_str() == "loss_reason")
    {
        col("loss_reason").cast(DataType::String)
    } else {
        lit(NULL).cast(DataType::String)
    };
    let lab = labels.clone().lazy().select([
        col("opportunity_id"),
        col("label").cast(DataType::Boolean).alias("__vw"),
        col("outcome").alias("__eff"),
    ]);
    let df = opportunities
        .clone()
        .lazy()
        .filter(col("created_date").cast(DataType::Int32).gt(lit(after)))
        .select([
            col("account_id"),
            col("opportunity_id"),
            (col("closed_date").cast(DataType::Int32) - col("created_date").cast(DataType::Int32))
                .alias("__cycle"),
            col("outcome"),
            why_col.alias("__why"),
        ])
        .join(
            lab,
            [col("opportunity_id")],
            [col("opportunity_id")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(
            ["account_id", "opportunity_id"],
            SortMultipleOptions::default(),
        )
        .collect()?;
    Ok(df)
}

/// What followed for one band, counted as the new deals go by.
#[derive(Default)]
struct Tally {
    accounts: usize,
    with_new: std::collections::BTreeSet<String>,
    opps: usize,
    closed: usize,
    won: usize,
    vwins: usize,
    churned: usize,
    cycles: Vec<f64>,
    reasons: std::collections::BTreeMap<String, usize>,
}

/// The accounts of each band, then each new deal counted in its account's
/// band (deals of accounts the earlier scoring did not band are left out).
fn tally(earlier: &EarlierScoring, df: &DataFrame) -> Result<HashMap<&'static str, Tally>> {
    let acc = crate::util::frame::str_col(df, "account_id")?;
    let out = crate::util::frame::str_col(df, "outcome")?;
    let eff = crate::util::frame::str_col(df, "__eff")?;
    let cyc = crate::util::frame::f64_col(df, "__cycle")?;
    let why = crate::util::frame::str_col(df, "__why")?;
    let vw: Vec<bool> = df
        .column("__vw")?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let mut t: HashMap<&'static str, Tally> = crate::domain::Band::NAMES
        .iter()
        .map(|b| (*b, Tally::default()))
        .collect();
    for b in earlier.bands.values() {
        if let Some(x) = t.get_mut(b.as_str()) {
            x.accounts += 1;
        }
    }
    for i in 0..acc.len() {
        let Some(a) = acc[i].as_deref() else { continue };
        let Some(band) = earlier.bands.get(a) else {
            continue;
        };
        let Some(x) = t.get_mut(band.as_str()) else {
            continue;
        };
        x.with_new.insert(a.to_string());
        x.opps += 1;
        // the effective outcome (a won deal whose customer left is churned)
        let o = eff[i]
            .as_deref()
            .or(out[i].as_deref())
            .unwrap_or(Outcome::Open.as_str());
        let o = Outcome::canonical(o);
        if o == Some(Outcome::Open) {
            continue;
        }
        x.closed += 1;
        if matches!(o, Some(Outcome::Won | Outcome::Churned)) {
            x.won += 1;
            if let Some(c) = cyc[i] {
                x.cycles.push(c);
            }
        }
        x.churned += (o == Some(Outcome::Churned)) as usize;
        x.vwins += vw[i] as usize;
        if o == Some(Outcome::Lost) {
            let r = why[i]
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .unwrap_or("(blank)");
            *x.reasons.entry(r.to_string()).or_default() += 1;
        }
    }
    Ok(t)
}

/// One band's row: the counts turned into rates with their intervals, and
/// the five most common loss reasons.
fn band_outcome(b: &str, mut x: Tally) -> BandOutcome {
    let share = |k: usize, n: usize| (n > 0).then(|| k as f64 / n as f64);
    let ci = |k: usize, n: usize| (n > 0).then(|| wilson(k, n));
    BandOutcome {
        band: b.to_string(),
        accounts: x.accounts,
        accounts_with_new_opportunity: x.with_new.len(),
        new_opportunity_rate: share(x.with_new.len(), x.accounts),
        new_opportunity_rate_ci95: wilson(x.with_new.len(), x.accounts),
        opportunities: x.opps,
        closed: x.closed,
        won: x.won,
        win_rate: share(x.won, x.closed),
        win_rate_ci95: ci(x.won, x.closed),
        velocity_wins: x.vwins,
        velocity_win_rate: share(x.vwins, x.closed),
        velocity_win_rate_ci95: ci(x.vwins, x.closed),
        median_cycle_days_won: crate::util::median(&mut x.cycles),
        churned: x.churned,
        loss_reasons: {
            let mut v: Vec<(String, usize)> = std::mem::take(&mut x.reasons).into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(5);
            v
        },
    }
}

/// Targeted against withheld accounts of one earlier publication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlComparison {
    pub publication_id: String,
    pub as_of: String,
    pub targeted: ScoringOutcomes,
    pub control: ScoringOutcomes,
}

/// The newest date in the inputs (opportunity, churn and trigger dates):
/// what "now" is for the data, whatever day the run is made.
pub fn newest_date(data: &crate::io::load::Dataset) -> Option<NaiveDate> {
    let mut best: Option<i32> = None;
    let mut see = |df: &DataFrame, c: &str| {
        if let Ok(col) = df.column(c)
            && let Ok(s) = col.as_materialized_series().cast(&DataType::Int32)
            && let Ok(ca) = s.i32()
            && let Some(m) = ca.max()
        {
            best = Some(best.map_or(m, |b| b.max(m)));
        }
    };
    if let Some(o) = &data.opportunities {
        see(&o.df, "created_date");
        // an open deal's close date is its expected close, in the future:
        // only closed deals' dates say how recent the data is
        if let Ok(closed) =
            o.df.clone()
                .lazy()
                .filter(col("outcome").neq(lit(Outcome::Open.as_str())))
                .select([col("closed_date")])
                .collect()
        {
            see(&closed, "closed_date");
        }
    }
    if let Some(c) = &data.customers {
        see(&c.df, "churn_date");
    }
    if let Some(t) = &data.triggers {
        see(&t.df, "date");
    }
    best.map(crate::stages::label::epoch_days_to_date)
}

/// Today's accounts by their band now: what the customers in each band are
/// worth, how risky they are to onboard, how often they churned, and why
/// the band's deals were lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BandNow {
    pub band: String,
    pub accounts: usize,
    /// CRM status prospect: no customer record, no won or open deal (the
    /// feed's definition; lost deals allowed)
    pub prospects: usize,
    /// accounts with a won deal (later churned included)
    pub won_accounts: usize,
    pub churned_accounts: usize,
    pub churn_rate: Option<f64>,
    /// mean won revenue per won account
    pub mean_won_revenue: Option<f64>,
    /// customers with a delivery fit, and of them 2 or less (onboarding risk)
    pub fit_known: usize,
    pub onboarding_risk: usize,
    pub lost_deals: usize,
    /// most common loss reasons: (reason, lost deals)
    pub loss_reasons: Vec<(String, usize)>,
}

pub fn by_band_now(
    index: &crate::util::ids::AccountIndex,
    band: &[Option<crate::domain::Band>],
    labels: &DataFrame,
    opportunities: &DataFrame,
    customers: Option<&DataFrame>,
    crm: &[crate::domain::CrmStatus],
) -> Result<Vec<BandNow>> {
    use crate::util::frame::{f64_col, text_col};
    // accounts by row number: a million accounts, no map of ids
    let band_of = |r: Option<u32>| r.and_then(|r| band.get(r as usize).copied().flatten());
    let mut out: Vec<BandNow> = crate::domain::Band::NAMES
        .iter()
        .map(|b| BandNow {
            band: b.to_string(),
            ..Default::default()
        })
        .collect();
    for b in band.iter().flatten() {
        out[*b as usize].accounts += 1;
    }
    // accounts: closed at all, won, churned, won revenue
    let outc = text_col(labels, "outcome")?;
    let amt = f64_col(labels, "amount")?;
    #[derive(Default, Clone)]
    struct A {
        closed: bool,
        won: bool,
        churned: bool,
        revenue: f64,
    }
    let mut per: Vec<A> = vec![A::default(); index.len()];
    for ((r, o), m) in index
        .rows_of(labels, "account_id")?
        .into_iter()
        .zip(outc.iter())
        .zip(&amt)
    {
        let Some(r) = r else { continue };
        let e = &mut per[r as usize];
        e.closed = true;
        match o.and_then(Outcome::canonical) {
            Some(Outcome::Won) => {
                e.won = true;
                e.revenue += m.unwrap_or(0.0);
            }
            Some(Outcome::Churned) => {
                e.won = true;
                e.churned = true;
                e.revenue += m.unwrap_or(0.0);
            }
            _ => {}
        }
    }
    let mut revenue: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for (r, x) in per.iter().enumerate() {
        let Some(b) = band.get(r).copied().flatten() else {
            continue;
        };
        let i = b as usize;
        if crm.get(r) == Some(&crate::domain::CrmStatus::Prospect) {
            out[i].prospects += 1;
        }
        if x.closed && x.won {
            out[i].won_accounts += 1;
            out[i].churned_accounts += x.churned as usize;
            revenue[i].push(x.revenue);
        }
    }
    if let Some(c) = customers {
        for (r, f) in index
            .rows_of(c, "account_id")?
            .into_iter()
            .zip(f64_col(c, "delivery_fit")?)
        {
            let Some(f) = f else { continue };
            if let Some(b) = band_of(r) {
                out[b as usize].fit_known += 1;
                out[b as usize].onboarding_risk += (f <= 2.0) as usize;
            }
        }
    }
    let (o_rows, o_out, o_why) = (
        index.rows_of(opportunities, "account_id")?,
        text_col(opportunities, "outcome")?,
        text_col(opportunities, "loss_reason")?,
    );
    let mut reasons: Vec<std::collections::BTreeMap<String, usize>> = vec![Default::default(); 3];
    for ((r, o), why) in o_rows.into_iter().zip(o_out.iter()).zip(o_why.iter()) {
        if o.and_then(Outcome::canonical) != Some(Outcome::Lost) {
            continue;
        }
        let Some(k) = band_of(r).map(|b| b as usize) else {
            continue;
        };
        out[k].lost_deals += 1;
        let why = why.filter(|s| !s.trim().is_empty()).unwrap_or("(blank)");
        match reasons[k].get_mut(why) {
            Some(n) => *n += 1,
            None => {
                reasons[k].insert(why.to_string(), 1);
            }
        }
    }
    for (i, b) in out.iter_mut().enumerate() {
        b.churn_rate =
            (b.won_accounts > 0).then(|| b.churned_accounts as f64 / b.won_accounts as f64);
        // summed in a fixed order: the same bits whatever the map's order
        revenue[i].sort_by(f64::total_cmp);
        b.mean_won_revenue = (!revenue[i].is_empty())
            .then(|| revenue[i].iter().sum::<f64>() / revenue[i].len() as f64);
        let mut v: Vec<(String, usize)> = std::mem::take(&mut reasons[i]).into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(3);
        b.loss_reasons = v;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Option<i32> {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        Some((d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32)
    }

    /// A scoring on 2024-03-31 put H1, H2 in high and L1, L2, L3 in low.
    /// In the quarter after: H1 opened two deals (one won in 20 days, a
    /// velocity win; one lost), H2 one (won in 60 days, not fast); L1 one
    /// (lost), L2 one still open. L3 nothing. A deal of H2 created before the
    /// as-of date does not count.
    #[test]
    fn a_scoring_a_quarter_earlier_gives_the_band_outcome_table() {
        let ids = ["o1", "o2", "o3", "o4", "o5", "o0"];
        let accounts = ["H1", "H1", "H2", "L1", "L2", "H2"];
        let created = [
            "2024-04-02",
            "2024-04-10",
            "2024-04-05",
            "2024-05-01",
            "2024-06-01",
            "2024-01-01",
        ];
        let closed = [
            Some("2024-04-22"),
            Some("2024-05-10"),
            Some("2024-06-04"),
            Some("2024-05-20"),
            None,
            Some("2024-02-01"),
        ];
        let outcome = ["won", "lost", "won", "lost", "open", "won"];
        let opps = DataFrame::new(
            6,
            vec![
                Column::new("opportunity_id".into(), ids.to_vec()),
                Column::new("account_id".into(), accounts.to_vec()),
                Column::new(
                    "created_date".into(),
                    created.iter().map(|d| date(d)).collect::<Vec<_>>(),
                )
                .cast(&DataType::Date)
                .unwrap(),
                Column::new(
                    "closed_date".into(),
                    closed.iter().map(|d| d.and_then(date)).collect::<Vec<_>>(),
                )
                .cast(&DataType::Date)
                .unwrap(),
                Column::new("outcome".into(), outcome.to_vec()),
                Column::new(
                    "loss_reason".into(),
                    vec![None, Some("Price: over budget"), None, None, None, None],
                ),
            ],
        )
        .unwrap();
        let labels = DataFrame::new(
            5,
            vec![
                Column::new("opportunity_id".into(), vec!["o1", "o2", "o3", "o4", "o0"]),
                Column::new("label".into(), vec![true, false, false, false, true]),
                Column::new("outcome".into(), vec!["won", "lost", "won", "lost", "won"]),
            ],
        )
        .unwrap();
        let bands: HashMap<String, String> = [
            ("H1", "high"),
            ("H2", "high"),
            ("L1", "low"),
            ("L2", "low"),
            ("L3", "low"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let earlier = EarlierScoring {
            run_id: "r0".into(),
            as_of: NaiveDate::from_ymd_opt(2024, 3, 31).unwrap(),
            bands,
        };
        let o = band_outcomes(
            &earlier,
            NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(),
            &opps,
            &labels,
        )
        .unwrap();
        assert_eq!(o.days_since, 91);
        let high = &o.bands[0];
        assert_eq!(high.band, "high");
        assert_eq!(high.accounts, 2);
        assert_eq!(high.accounts_with_new_opportunity, 2);
        assert_eq!(high.opportunities, 3);
        assert_eq!(high.closed, 3);
        assert_eq!(high.won, 2);
        assert_eq!(high.velocity_wins, 1);
        assert_eq!(high.median_cycle_days_won, Some(40.0)); // 20 and 60
        // why the new lost deals were lost, by the band their account had
        assert_eq!(
            high.loss_reasons,
            vec![("Price: over budget".to_string(), 1)]
        );
        let medium = &o.bands[1];
        assert_eq!(medium.accounts, 0);
        assert_eq!(medium.win_rate, None);
        let low = &o.bands[2];
        assert_eq!(low.accounts, 3);
        assert_eq!(low.accounts_with_new_opportunity, 2);
        assert!((low.new_opportunity_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(low.opportunities, 2);
        assert_eq!(low.closed, 1);
        assert_eq!(low.won, 0);
        assert_eq!(low.win_rate, Some(0.0));
        assert_eq!(low.velocity_win_rate, Some(0.0));
        assert_eq!(low.loss_reasons, vec![("(blank)".to_string(), 1)]);
    }
}
