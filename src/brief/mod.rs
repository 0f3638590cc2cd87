//! Stage 8: the ICP refinement brief that leadership reviews and approves.
//!
//! Every claim names its evidence (counts and the file beside the brief it
//! comes from). The brief proposes; `icp approve` records the decision.

pub mod charts;
pub mod doc;

use doc::Block;

use crate::error::Result;
use crate::model::ModelArtifact;
use crate::signals::{Finding, Findings};

/// Everything the brief is written from.
pub struct BriefInput<'a> {
    pub artifact: &'a ModelArtifact,
    pub findings: &'a Findings,
    /// (band, accounts) in the order high, medium, low, unscored
    pub band_counts: &'a [(String, usize)],
    /// (threshold, accounts at or above it)
    pub segment_counts: &'a [(u8, usize)],
    pub rejected_rows: usize,
    /// what changed since the active model's run, already worded
    pub changes: Option<&'a [Block]>,
}

pub struct Brief {
    pub markdown: String,
    pub html: String,
    pub measurement: Measurement,
}

/// Today's baseline values for the measurement plan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Measurement {
    /// share of all accounts (unscored included) in the high band
    pub lead_fit_rate: f64,
    /// won (incl. later churned) over closed deals
    pub close_rate: f64,
    pub median_sales_cycle_days: Option<f64>,
    pub churn_rate: Option<f64>,
    pub mean_delivery_fit: Option<f64>,
    /// share of ICP criteria (best-fit signals) backed by win/loss, retention,
    /// margin and delivery evidence: no worse than baseline on each that is known
    pub icp_evidence_alignment_rate: Option<f64>,
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "n/a".into()
    }
}
fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "n/a".into())
}
fn opt_num(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "n/a".into())
}
fn money(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => crate::features::format_quantity("annual_revenue", v),
        _ => "n/a".into(),
    }
}
fn n(x: usize) -> String {
    crate::cmd::thousands(x)
}

/// Is a signal backed by retention, margin and delivery evidence as well as
/// by win/loss (no worse than baseline on each measure that is known)?
fn aligned(s: &Finding, f: &Findings, tol_fit: f64, tol_margin: f64) -> bool {
    let b = &f.baseline;
    let churn_ok = match (s.churn_rate, b.churn_rate) {
        (Some(c), Some(bc)) => c <= bc * 1.1 + 0.01,
        _ => true,
    };
    let fit_ok = match (s.delivery_fit, b.delivery_fit) {
        (Some(x), Some(bx)) => x >= bx - tol_fit,
        _ => true,
    };
    let margin_ok = match (s.gross_margin, b.gross_margin) {
        (Some(x), Some(bx)) => x >= bx - tol_margin,
        _ => true,
    };
    churn_ok && fit_ok && margin_ok
}

pub fn measurement(inp: &BriefInput, tol_fit: f64, tol_margin: f64) -> Measurement {
    let f = inp.findings;
    let b = &f.baseline;
    let high = inp
        .band_counts
        .iter()
        .find(|(k, _)| k == "high")
        .map(|x| x.1)
        .unwrap_or(0);
    let total: usize = inp.band_counts.iter().map(|x| x.1).sum();
    Measurement {
        lead_fit_rate: if total > 0 {
            high as f64 / total as f64
        } else {
            f64::NAN
        },
        close_rate: b.close_rate,
        median_sales_cycle_days: b.median_cycle_days,
        churn_rate: b.churn_rate,
        mean_delivery_fit: b.delivery_fit,
        icp_evidence_alignment_rate: (!f.signals.is_empty()).then(|| {
            f.signals
                .iter()
                .filter(|s| aligned(s, f, tol_fit, tol_margin))
                .count() as f64
                / f.signals.len() as f64
        }),
    }
}

const TOP: usize = 15;

fn finding_rows(list: &[Finding], matches: Option<&dyn Fn(&str) -> usize>) -> Vec<Vec<String>> {
    list.iter()
        .take(TOP)
        .map(|s| {
            let mut r = vec![
                s.id.clone(),
                s.condition.clone(),
                n(s.accounts),
                n(s.velocity_wins),
                format!(
                    "{} ({}-{})",
                    pct(s.velocity_win_rate),
                    pct(s.velocity_win_rate_ci95.0),
                    pct(s.velocity_win_rate_ci95.1)
                ),
                format!("{:.2}", s.lift),
                opt_num(s.median_cycle_days, 0),
                opt_pct(s.churn_rate),
                money(s.average_deal),
                money(s.sales_velocity_per_month),
                format!("{:.1e}", s.q_value),
            ];
            if let Some(m) = matches {
                r.push(n(m(&s.id)));
                r.push(s.evidence.join("; "));
            }
            r
        })
        .collect()
}

const FINDING_HEAD: [&str; 11] = [
    "id",
    "condition",
    "accounts",
    "velocity wins",
    "velocity-win rate (95% CI)",
    "lift",
    "median cycle (days)",
    "churn",
    "average deal",
    "velocity per day",
    "q (BH)",
];

pub fn build(inp: &BriefInput, tol_fit: f64, tol_margin: f64) -> Result<Brief> {
    let a = inp.artifact;
    let e = &a.evaluation;
    let f = inp.findings;
    let r = &f.readiness;
    let m = measurement(inp, tol_fit, tol_margin);
    let mut d: Vec<Block> = Vec::new();
    let title = format!("ICP refinement brief: model {}", a.model_id);
    d.push(Block::Heading(1, title.clone()));
    d.push(Block::Callout(if r.ready {
        "PROPOSAL awaiting leadership approval: nothing here changes targeting until it is approved with `icp approve`.".into()
    } else {
        let failed: Vec<&str> = r
            .gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| g.gate.as_str())
            .collect();
        format!(
            "NOT READY: {} failed. The evidence is kept below; no exclusion is published and the model should not be approved until this is fixed.",
            failed.join(", ")
        )
    }));
    d.push(Block::Para(format!(
        "Model {} (program {}), velocity window {} days ({}); {} input rows rejected (rejects.csv).",
        a.model_id,
        a.program_version,
        a.velocity_window.days,
        a.velocity_window.source,
        n(inp.rejected_rows)
    )));

    // The answer in five lines.
    d.push(Block::Heading(2, "The answer in five lines".into()));
    let top_signals: Vec<String> = f
        .signals
        .iter()
        .take(3)
        .map(|s| format!("{} (lift {:.2})", s.condition, s.lift))
        .collect();
    let top_x: Vec<String> = f
        .exclusions
        .iter()
        .take(3)
        .map(|s| s.condition.clone())
        .collect();
    let best_trigger = f
        .triggers
        .iter()
        .find(|t| t.supported)
        .map(|t| {
            format!(
                "{} is followed by a new opportunity within the window {} of the time ({:.1}x accounts without a trigger), median lag {} days",
                t.trigger,
                pct(t.follow_rate),
                t.lift.unwrap_or(f64::NAN),
                opt_num(t.median_lag_days, 0)
            )
        })
        .unwrap_or_else(|| "no buying trigger has supported lift in this data".into());
    d.push(Block::Bullets(vec![
        format!(
            "Model: {} (evaluation.json).",
            e.verdict
        ),
        if top_signals.is_empty() {
            "Best fit: no condition passes the support and false-discovery checks; do not change targeting on this data.".into()
        } else {
            format!(
                "Best fit: {} of {} tested conditions pass; strongest: {} (signals.csv).",
                f.signals.len(),
                n(f.tested_conditions),
                top_signals.join("; ")
            )
        },
        if !r.ready {
            format!(
                "Exclusions: {} proposed by the evidence but withheld because the run is NOT READY (exclusions.json).",
                f.exclusions.len()
            )
        } else if top_x.is_empty() {
            "Exclusions: none supported by the evidence.".into()
        } else {
            format!(
                "Exclusions proposed: {} conditions, for example {}; {} current prospects match one (exclusion_matches.csv).",
                f.exclusions.len(),
                top_x.join("; "),
                n(f.exclusion_matches.height())
            )
        },
        format!(
            "Painful customers: {} of {} high-revenue customers churned, stalled or are hard to serve (painful_customers.csv).",
            n(f.painful.painful_accounts),
            n(f.painful.high_revenue_accounts)
        ),
        format!("Triggers: {best_trigger} (triggers.json)."),
    ]));

    // Readiness gates.
    d.push(Block::Heading(2, "Readiness gates".into()));
    d.push(Block::Table {
        head: vec!["gate".into(), "result".into(), "why".into()],
        rows: r
            .gates
            .iter()
            .map(|g| {
                vec![
                    g.gate.clone(),
                    if g.passed { "pass" } else { "FAIL" }.into(),
                    g.detail.clone(),
                ]
            })
            .collect(),
    });

    // Model quality.
    d.push(Block::Heading(2, "How good the model is".into()));
    let mut q = vec![
        format!(
            "Holdout: {} deals that closed from {} on, never used for fitting; {} velocity wins (base rate {}).",
            n(e.holdout_deals),
            e.holdout_from,
            n(e.holdout_velocity_wins),
            pct(e.base_rate)
        ),
        format!(
            "ROC AUC {:.3} (95% CI {:.3}-{:.3}); Brier {:.4} against {:.4} for the base rate alone.",
            e.auc, e.auc_ci95.0, e.auc_ci95.1, e.brier, e.brier_base_rate
        ),
    ];
    if let Some(u) = e.unseen_accounts_auc {
        q.push(format!(
            "On the {} holdout accounts never seen in training: AUC {:.3}.",
            n(e.holdout_accounts_unseen),
            u
        ));
    }
    if let Some(o) = &e.oracle {
        q.push(format!(
            "Against the generator's true probabilities on the same deals: oracle AUC {:.3}, model {:.3}.",
            o.oracle_auc, o.model_auc
        ));
    }
    d.push(Block::Bullets(q));
    d.push(Block::Svg {
        svg: charts::lift_by_decile(&e.calibration, e.base_rate)?,
        alt: "Chart: holdout lift by score decile (brief.html).".into(),
    });
    d.push(Block::Svg {
        svg: charts::calibration(&e.calibration)?,
        alt: "Chart: calibration on the holdout (brief.html).".into(),
    });
    d.push(Block::Table {
        head: vec![
            "band (holdout)".into(),
            "deals".into(),
            "win rate".into(),
            "velocity-win share".into(),
            "median cycle of wins (days)".into(),
        ],
        rows: e
            .bands
            .iter()
            .map(|b| {
                vec![
                    b.band.clone(),
                    n(b.deals),
                    pct(b.win_rate),
                    pct(b.velocity_win_share),
                    opt_num(b.median_cycle_days_won, 0),
                ]
            })
            .collect(),
    });

    // Columns the model could not use as they are (high-cardinality text is
    // capped, empty or too-rare columns are left out): say so, not silently.
    let skipped = &inp.artifact.model.spec.skipped;
    if !skipped.is_empty() {
        d.push(Block::Para(
            "Account columns the model did not use as they are:".into(),
        ));
        d.push(Block::Bullets(
            skipped
                .iter()
                .map(|(c, why)| format!("{c}: {why}"))
                .collect(),
        ));
    }

    // Best-fit signals.
    d.push(Block::Heading(2, "Best-fit signals".into()));
    d.push(Block::Para(format!(
        "Conditions whose deals become velocity wins at least {:.2}x as often as the baseline ({} of {} deals), with at least {} accounts and {} velocity wins, surviving a Benjamini-Hochberg correction over all {} conditions tested ({} more were below the support minimum and not tested). Pairs must also beat each part alone. Evidence: signals.csv, signals.json; accounts behind each: finding_accounts.csv.",
        f.signal_params.min_lift,
        pct(f.baseline.velocity_win_rate),
        n(f.baseline.deals),
        f.signal_params.min_accounts,
        f.signal_params.min_wins,
        n(f.tested_conditions),
        n(f.below_support)
    )));
    if f.signals.is_empty() {
        d.push(Block::Callout(
            "No best-fit signal: nothing in this data passes the support and false-discovery checks.".into(),
        ));
    } else {
        d.push(Block::Table {
            head: FINDING_HEAD.iter().map(|s| s.to_string()).collect(),
            rows: finding_rows(&f.signals, None),
        });
        if f.signals.len() > TOP {
            d.push(Block::Para(format!(
                "{} more in signals.csv.",
                f.signals.len() - TOP
            )));
        }
    }

    // Exclusions.
    d.push(Block::Heading(2, "Poor-fit exclusions (proposals)".into()));
    let counts = |id: &str| -> usize {
        f.exclusion_matches
            .column("exclusion_id")
            .ok()
            .and_then(|c| {
                c.str()
                    .ok()
                    .map(|s| s.iter().filter(|v| *v == Some(id)).count())
            })
            .unwrap_or(0)
    };
    if f.exclusions.is_empty() {
        d.push(Block::Para(
            "No condition is supported as a poor fit.".into(),
        ));
    } else {
        if !r.ready {
            d.push(Block::Callout(
                "Withheld: the run is NOT READY, so these are evidence only and no exclusion list is published.".into(),
            ));
        }
        d.push(Block::Para(
            "Conditions whose deals lose or stall, churn, are hard to serve or earn low margin, with the same support and correction. Each is a proposal until approved; matching prospects are in exclusion_matches.csv.".into(),
        ));
        let mut head: Vec<String> = FINDING_HEAD.iter().map(|s| s.to_string()).collect();
        head.push("prospects matching".into());
        head.push("why".into());
        d.push(Block::Table {
            head,
            rows: finding_rows(&f.exclusions, Some(&counts)),
        });
    }

    // Painful customers.
    d.push(Block::Heading(2, "Painful customers".into()));
    let p = &f.painful;
    d.push(Block::Para(format!(
        "Of {} won customers, {} are high-revenue (won revenue {} or more); {} of those churned, took over {:.0}x the velocity window to close, or have poor delivery fit or low margin (painful_customers.csv). For contrast, {} customers are the best kind: a velocity win, retained, delivery fit 4+ where known.",
        n(p.won_accounts),
        n(p.high_revenue_accounts),
        money(p.high_revenue_from),
        n(p.painful_accounts),
        f.signal_params.painful_slow_factor,
        n(p.best_accounts)
    )));
    if !p.shared_conditions.is_empty() {
        d.push(Block::Table {
            head: vec![
                "condition they share".into(),
                "high-revenue customers".into(),
                "painful".into(),
                "painful share (95% CI)".into(),
                "lift".into(),
            ],
            rows: p
                .shared_conditions
                .iter()
                .take(TOP)
                .map(|s| {
                    vec![
                        s.condition.clone(),
                        n(s.accounts),
                        n(s.painful),
                        format!(
                            "{} ({}-{})",
                            pct(s.painful_share),
                            pct(s.painful_share_ci95.0),
                            pct(s.painful_share_ci95.1)
                        ),
                        format!("{:.2}", s.lift),
                    ]
                })
                .collect(),
        });
    }
    let list = &f.painful_accounts;
    if list.height() > 0 {
        let take = list.head(Some(10));
        let ids = crate::signals::str_col(&take, "account_id")?;
        let names = crate::signals::str_col(&take, "account_name")?;
        let rev = crate::signals::f64_col(&take, "won_revenue")?;
        let pain = crate::signals::str_col(&take, "pain")?;
        d.push(Block::Table {
            head: vec![
                "account".into(),
                "name".into(),
                "won revenue".into(),
                "why painful".into(),
            ],
            rows: (0..take.height())
                .map(|i| {
                    vec![
                        ids[i].clone().unwrap_or_default(),
                        names[i].clone().unwrap_or_default(),
                        money(rev[i]),
                        pain[i].clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }

    // Triggers.
    d.push(Block::Heading(2, "Buying triggers".into()));
    if f.triggers.is_empty() {
        d.push(Block::Para(
            "No triggers file, or no trigger events.".into(),
        ));
    } else {
        d.push(Block::Para(format!(
            "How often a new opportunity follows a trigger within {} days, against accounts with no trigger over the same days, and how often those opportunities are won (triggers.json).",
            f.signal_params.trigger_window_days
        )));
        d.push(Block::Table {
            head: vec![
                "trigger".into(),
                "events".into(),
                "followed by a deal (95% CI)".into(),
                "no-trigger baseline".into(),
                "lift".into(),
                "won of closed (95% CI)".into(),
                "baseline win rate".into(),
                "median lag (days)".into(),
                "supported".into(),
            ],
            rows: f
                .triggers
                .iter()
                .map(|t| {
                    vec![
                        t.trigger.clone(),
                        n(t.events),
                        format!(
                            "{} ({}-{})",
                            pct(t.follow_rate),
                            pct(t.follow_rate_ci95.0),
                            pct(t.follow_rate_ci95.1)
                        ),
                        opt_pct(t.baseline_follow_rate),
                        opt_num(t.lift, 2),
                        match (t.win_rate, t.win_rate_ci95) {
                            (Some(w), Some(ci)) => {
                                format!(
                                    "{} of {} ({}-{})",
                                    pct(w),
                                    n(t.closed),
                                    pct(ci.0),
                                    pct(ci.1)
                                )
                            }
                            _ => "n/a".into(),
                        },
                        opt_pct(t.baseline_win_rate),
                        opt_num(t.median_lag_days, 0),
                        if t.supported { "yes" } else { "no" }.into(),
                    ]
                })
                .collect(),
        });
    }

    // Segments.
    d.push(Block::Heading(2, "Segments and qualification".into()));
    let band_expect = |name: &str| {
        e.bands
            .iter()
            .find(|b| b.band == name)
            .map(|b| {
                format!(
                    "on the holdout: win rate {}, velocity wins {}",
                    pct(b.win_rate),
                    pct(b.velocity_win_share)
                )
            })
            .unwrap_or_default()
    };
    d.push(Block::Table {
        head: vec!["band".into(), "accounts".into(), "what to expect".into()],
        rows: inp
            .band_counts
            .iter()
            .map(|(b, c)| {
                let what = match b.as_str() {
                    "high" => format!("score 70+: work first; {}", band_expect("high")),
                    "medium" => format!("score 40-69: nurture; {}", band_expect("medium")),
                    "low" => format!("score 39 or less: deprioritise; {}", band_expect("low")),
                    _ => "too little data to score: enrich before targeting".into(),
                };
                vec![b.clone(), n(*c), what]
            })
            .collect(),
    });
    d.push(Block::Table {
        head: vec!["segment file".into(), "accounts".into()],
        rows: inp
            .segment_counts
            .iter()
            .map(|(t, c)| vec![crate::segments::file_name(*t), n(*c)])
            .collect(),
    });

    // Measurement plan.
    d.push(Block::Heading(2, "Measurement plan".into()));
    d.push(Block::Para(
        "Re-run each quarter and compare with these baseline values (measurement.json); the events log (reports/events.jsonl) records every run and approval.".into(),
    ));
    d.push(Block::Table {
        head: vec!["measure".into(), "today".into(), "definition".into()],
        rows: vec![
            vec![
                "lead fit".into(),
                pct(m.lead_fit_rate),
                "share of scored accounts in the high band".into(),
            ],
            vec![
                "close rate".into(),
                pct(m.close_rate),
                "won (incl. later churned) over closed deals".into(),
            ],
            vec![
                "sales cycle".into(),
                opt_num(m.median_sales_cycle_days, 0),
                "median days from created to closed, won deals".into(),
            ],
            vec![
                "churn".into(),
                opt_pct(m.churn_rate),
                "churned over won deals".into(),
            ],
            vec![
                "delivery fit".into(),
                opt_num(m.mean_delivery_fit, 2),
                "mean delivery_fit (1-5) of customers with a closed deal".into(),
            ],
            vec![
                "icp_evidence_alignment_rate".into(),
                opt_pct(m.icp_evidence_alignment_rate),
                "share of best-fit signals backed by win/loss, retention, margin and delivery evidence (no worse than baseline on each known measure)".into(),
            ],
        ],
    });

    if let Some(ch) = inp.changes {
        d.push(Block::Heading(2, "Changes since the active model".into()));
        d.extend(ch.iter().cloned());
    }

    // Leadership review.
    d.push(Block::Heading(2, "Leadership review".into()));
    let mut tasks = vec![format!(
        "Approve model {} as the active scoring model (owner: VP Sales or Revenue Operations lead){}",
        a.model_id,
        if r.ready {
            String::new()
        } else {
            " - not recommended: the run is NOT READY".into()
        }
    )];
    if r.ready {
        for x in f.exclusions.iter().take(TOP) {
            tasks.push(format!(
                "Approve or reject exclusion {}: {} ({} prospects) (owner: Head of Marketing)",
                x.id,
                x.condition,
                n(counts(&x.id))
            ));
        }
    }
    tasks.push(
        "Confirm the best-fit signals match what the field sees (owner: Sales leadership)".into(),
    );
    d.push(Block::Checklist(tasks));
    d.push(Block::Para(format!(
        "Record the decision: icp approve RUN --by NAME [--note TEXT] [--reject-exclusion ID ...], where RUN is this run directory (printed by icp run; reports/latest is the newest)."
    )));

    Ok(Brief {
        markdown: doc::markdown(&d),
        html: doc::html(&title, &d),
        measurement: m,
    })
}
