//! Best-fit signals and poor-fit exclusions: firmographic conditions tested
//! against the baseline, with support, intervals and a correction for
//! testing many conditions ([`conditions`]), and the deals and accounts as
//! rows of cells that the refined ICP counts on ([`rows`]).

pub mod conditions;
pub mod rows;

use polars::prelude::*;

use crate::error::Result;

pub use conditions::{Baseline, Finding};

/// Findings as a flat table (signals.csv, exclusions.csv).
pub fn findings_frame(list: &[Finding]) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&Finding) -> String| list.iter().map(f).collect::<Vec<String>>();
    let u = |f: &dyn Fn(&Finding) -> usize| list.iter().map(|x| f(x) as u64).collect::<Vec<u64>>();
    let x = |f: &dyn Fn(&Finding) -> f64| list.iter().map(f).collect::<Vec<f64>>();
    let o = |f: &dyn Fn(&Finding) -> Option<f64>| list.iter().map(f).collect::<Vec<Option<f64>>>();
    let cols = vec![
        Column::new("id".into(), s(&|f| f.id.clone())),
        Column::new("condition".into(), s(&|f| f.condition.clone())),
        Column::new("accounts".into(), u(&|f| f.accounts)),
        Column::new("deals".into(), u(&|f| f.deals)),
        Column::new("velocity_wins".into(), u(&|f| f.velocity_wins)),
        Column::new("velocity_win_rate".into(), x(&|f| f.velocity_win_rate)),
        Column::new("rate_ci95_low".into(), x(&|f| f.velocity_win_rate_ci95.0)),
        Column::new("rate_ci95_high".into(), x(&|f| f.velocity_win_rate_ci95.1)),
        Column::new("lift".into(), x(&|f| f.lift)),
        Column::new("median_cycle_days".into(), o(&|f| f.median_cycle_days)),
        Column::new("churn_rate".into(), o(&|f| f.churn_rate)),
        Column::new("average_deal".into(), o(&|f| f.average_deal)),
        Column::new(
            "sales_velocity_per_day".into(),
            o(&|f| f.sales_velocity_per_day),
        ),
        Column::new("delivery_fit".into(), o(&|f| f.delivery_fit)),
        Column::new("gross_margin".into(), o(&|f| f.gross_margin)),
        Column::new("p_value".into(), x(&|f| f.p_value)),
        Column::new("q_value".into(), x(&|f| f.q_value)),
        Column::new("evidence".into(), s(&|f| f.evidence.join("; "))),
        Column::new(
            "icp_criterion".into(),
            s(&|f| f.criterion.clone().unwrap_or_default()),
        ),
    ];
    Ok(DataFrame::new(list.len(), cols)?)
}
