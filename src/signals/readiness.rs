//! Stop gates: is there enough, and the right kind of, evidence to change
//! targeting on? A failed gate marks the brief NOT READY with its reason;
//! the evidence is kept and the scores still work, but no exclusion is
//! published.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{SignalParams, str_col};
use crate::error::Result;
use crate::model::Evaluation;
use crate::util::thousands;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gate {
    pub gate: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    pub gates: Vec<Gate>,
}

/// Loss reasons that say nothing about why a deal was lost.
const GENERIC_LOSS_REASONS: &[&str] = &[
    "",
    "-",
    "other",
    "others",
    "unknown",
    "none",
    "n/a",
    "na",
    "lost",
    "no reason",
    "not specified",
    "unspecified",
    "misc",
    "miscellaneous",
    "closed lost",
    "tbd",
];

pub fn is_generic_loss_reason(r: Option<&str>) -> bool {
    match r {
        None => true,
        Some(r) => GENERIC_LOSS_REASONS.contains(&r.trim().to_lowercase().as_str()),
    }
}

pub struct GateInputs<'a> {
    /// labelled deals (outcome is won, lost or churned)
    pub labels: &'a DataFrame,
    /// all opportunities as loaded (for loss reasons)
    pub opportunities: &'a DataFrame,
    pub customers: Option<&'a DataFrame>,
    pub evaluation: &'a Evaluation,
}

pub fn assess(inp: &GateInputs, params: &SignalParams) -> Result<Readiness> {
    let outcomes = str_col(inp.labels, "outcome")?;
    let count = |o: &str| outcomes.iter().filter(|v| v.as_deref() == Some(o)).count();
    let (won, lost, churned) = (
        count("won") + count("churned"),
        count("lost"),
        count("churned"),
    );
    let mut gates = vec![
        Gate {
            gate: "won deals".into(),
            passed: won >= params.min_won,
            detail: format!(
                "{} won deals (churned included); at least {} needed",
                thousands(won),
                params.min_won
            ),
        },
        Gate {
            gate: "lost deals".into(),
            passed: lost >= params.min_lost,
            detail: format!(
                "{} lost deals; at least {} needed",
                thousands(lost),
                params.min_lost
            ),
        },
    ];
    let status = match inp.customers {
        Some(c) => c.height(),
        None => 0,
    };
    gates.push(Gate {
        gate: "retention evidence".into(),
        passed: churned > 0 || status > 0,
        detail: if churned > 0 || status > 0 {
            format!(
                "{} churned deals; {} customers with a status",
                thousands(churned),
                thousands(status)
            )
        } else {
            "no churned outcome and no customers file: retention cannot be judged, so a fast \
             win that churns would still look like a best fit"
                .into()
        },
    });
    let fit_n = match inp.customers {
        Some(c) => c.column("delivery_fit")?.len() - c.column("delivery_fit")?.null_count(),
        None => 0,
    };
    gates.push(Gate {
        gate: "delivery-fit evidence".into(),
        passed: fit_n > 0,
        detail: if fit_n > 0 {
            format!("{} customers with a delivery fit score", thousands(fit_n))
        } else {
            "no delivery_fit in customers: whether the company can serve a segment is unknown"
                .into()
        },
    });
    let lost_reasons = inp
        .opportunities
        .clone()
        .lazy()
        .filter(col("outcome").eq(lit("lost")))
        .select([col("loss_reason")])
        .collect()?;
    let reasons = str_col(&lost_reasons, "loss_reason")?;
    let generic = reasons
        .iter()
        .filter(|r| is_generic_loss_reason(r.as_deref()))
        .count();
    let share = if reasons.is_empty() {
        1.0
    } else {
        generic as f64 / reasons.len() as f64
    };
    gates.push(Gate {
        gate: "loss reasons".into(),
        passed: share <= params.max_generic_loss_share,
        detail: format!(
            "{} of {} lost deals ({}) have a blank or generic loss reason; at most {} allowed",
            thousands(generic),
            thousands(reasons.len()),
            crate::util::pct(share),
            crate::util::pct(params.max_generic_loss_share)
        ),
    });
    let e = inp.evaluation;
    gates.push(Gate {
        gate: "holdout quality".into(),
        passed: e.reliable,
        detail: e.verdict.clone(),
    });
    Ok(Readiness {
        ready: gates.iter().all(|g| g.passed),
        gates,
    })
}
