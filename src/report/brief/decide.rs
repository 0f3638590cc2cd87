//! The brief's first screen and the ICP a leader approves: the decision
//! card (one row per decision, with the recommendation, its upside and
//! downside and who owns it), what approval publishes, the refined ICP in
//! accounts, deals, dollars and rates, and the pilot plan. Intervals and
//! tests are in the appendix ("How we know").

use super::doc::Block;
use super::{BriefInput, band, role, share};
use crate::domain::Band;
use crate::evidence::refine::{Criterion, LaterVerdict, RefinedIcp};
use crate::evidence::signals::Baseline;
use crate::util::{money, opt_money, opt_num, opt_pct, pct, pct_ci, thousands as n};

/// Average days in a month, for bookings per month.
const DAYS_PER_MONTH: f64 = 30.44;

fn owners(inp: &BriefInput) -> (String, String, String) {
    let o = &inp.params.owners;
    (
        role(&o.revenue_leader, "revenue leader"),
        role(&o.sales, "head of sales"),
        role(&o.delivery, "head of delivery"),
    )
}

/// A criterion's velocity-win rate on the deals that chose it and on later
/// deals, in words: "40% of earlier deals, 26% of later ones (24% for all)".
fn earlier_later(c: &Criterion) -> String {
    match c.later_verdict {
        LaterVerdict::TooFew => format!(
            "{} of earlier deals (average {}); {} later deals, too few to check",
            opt_pct(c.chose.velocity_win_rate),
            pct(c.chose.baseline),
            n(c.later.deals)
        ),
        _ => format!(
            "{} of earlier deals (average {}); {} of {} later deals (average {})",
            opt_pct(c.chose.velocity_win_rate),
            pct(c.chose.baseline),
            opt_pct(c.later.velocity_win_rate),
            n(c.later.deals),
            pct(c.later.baseline)
        ),
    }
}

/// What a decision says while the run is not ready to act on.
const NOT_READY: &str = "hold: the run is NOT READY";

/// One row per decision: the ICP, each exclusion, the model, each review item.
pub(super) fn decision_card(d: &mut Vec<Block>, inp: &BriefInput) {
    let f = inp.findings;
    let icp = &f.icp;
    let ready = f.readiness.ready;
    let (leader, sales, delivery) = owners(inp);
    d.push(Block::Heading(2, "Decisions".into()));
    let mut rows: Vec<Vec<String>> = vec![icp_decision(icp, ready, &leader)];
    exclusion_decisions(&mut rows, icp, ready, &leader, &delivery);
    rows.push(model_decision(inp, ready, &sales));
    for r in &icp.review {
        rows.push(vec![
            format!("Review {} {}", r.finding.id, r.finding.condition),
            "hold".into(),
            r.because.clone(),
            format!(
                "{} prospects, {} each against {} on average",
                n(r.prospects_matching),
                money(r.value_per_prospect),
                money(icp.value_per_prospect)
            ),
            "-".into(),
            format!("{leader}, with {sales}"),
        ]);
    }
    d.push(Block::Table {
        head: [
            "decision",
            "recommendation",
            "why",
            "upside",
            "downside",
            "owner",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
    });
    exclusion_totals(d, icp);
}

/// The refined ICP's row: aim outbound at the include criteria, or keep the
/// current ICP when there is none.
fn icp_decision(icp: &RefinedIcp, ready: bool, leader: &str) -> Vec<String> {
    if icp.include.is_empty() {
        vec![
            "Refined ICP: no include criterion".into(),
            "keep the current ICP".into(),
            format!(
                "no segment's deals became velocity wins {:.1}x as often as average on earlier deals, with enough deals to be sure",
                icp.rules.min_include_lift
            ),
            "-".into(),
            "-".into(),
            leader.to_string(),
        ]
    } else {
        let c = &icp.include_coverage;
        vec![
            format!(
                "Refined ICP: aim outbound at {}",
                icp.include
                    .iter()
                    .map(|c| format!("{} {}", c.finding.id, c.finding.condition))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            if ready {
                "keep".into()
            } else {
                NOT_READY.into()
            },
            format!(
                "matching deals became velocity wins {} of the time against {} for the rest; on later deals {} against {} for all",
                opt_pct(c.velocity_win_rate),
                opt_pct(c.other_velocity_win_rate),
                opt_pct(icp.include_later.velocity_win_rate),
                pct(icp.include_later.baseline)
            ),
            format!(
                "{} prospects fit, worth {} in expected value",
                n(icp.prospects_fitting),
                money(icp.expected_pipeline_fitting)
            ),
            "-".into(),
            leader.to_string(),
        ]
    }
}

/// One row per exclusion: what working fewer prospects saves and gives up;
/// fit and margin exclusions are owned with delivery.
fn exclusion_decisions(
    rows: &mut Vec<Vec<String>>,
    icp: &RefinedIcp,
    ready: bool,
    leader: &str,
    delivery: &str,
) {
    for x in &icp.exclude {
        let fit = x.finding.kinds.iter().any(|k| k == "fit" || k == "margin");
        let saved = match icp.rules.cost_per_prospect {
            Some(cost) => format!(
                "; saves {} of prospecting at {} each",
                money(cost * x.prospects_only_this as f64),
                money(cost)
            ),
            None => String::new(),
        };
        rows.push(vec![
            format!("Exclude {} {}", x.finding.id, x.finding.condition),
            if ready {
                x.recommendation.as_str().into()
            } else {
                NOT_READY.into()
            },
            x.because.clone(),
            format!(
                "{} prospects no longer worked, {} each against {} on average{saved}",
                n(x.prospects_matching),
                money(x.value_per_prospect),
                money(icp.value_per_prospect)
            ),
            format!(
                "{} expected value given up; {} current customers look like this",
                money(x.expected_pipeline),
                n(x.customers_matching)
            ),
            if fit {
                format!("{leader}, with {delivery}")
            } else {
                leader.to_string()
            },
        ]);
    }
}

/// The model's row: kept only when the run is ready and the score ranks
/// better than chance on later deals.
fn model_decision(inp: &BriefInput, ready: bool, sales: &str) -> Vec<String> {
    let e = &inp.artifact.evaluation;
    let model_ok = ready && e.reliable;
    let high = band(e, Band::High.as_str());
    let low = band(e, Band::Low.as_str());
    let high_prospects = inp
        .bands_now
        .iter()
        .find(|b| b.band == Band::High.as_str())
        .map(|b| b.prospects)
        .unwrap_or(0);
    vec![
        format!("Score accounts with model {}", inp.artifact.model_id),
        if model_ok {
            "keep".into()
        } else if !ready {
            NOT_READY.into()
        } else {
            "hold: the score does not rank better than chance".into()
        },
        match (high, low) {
            (Some(h), Some(l)) => format!(
                "on {} later deals it never saw, High accounts became velocity wins {} of the time against {} for Low",
                n(e.holdout_deals),
                pct(h.velocity_win_share),
                pct(l.velocity_win_share)
            ),
            _ => e.verdict.clone(),
        },
        format!("{} High prospects to work first", n(high_prospects)),
        "-".into(),
        sales.to_string(),
    ]
}

/// Below the card: what the exclusions give up together, counted once, and
/// those the cap held back.
fn exclusion_totals(d: &mut Vec<Block>, icp: &RefinedIcp) {
    if !icp.exclude.is_empty() {
        d.push(Block::Para(format!(
            "The exclusions together give up {} of the {} expected value of all {} prospects ({}; at most {} allowed). The rows above overlap; this total counts each prospect once. A prospect is worth its segment's velocity-win rate x its average deal, one deal if worked; the average prospect {}.",
            money(icp.expected_pipeline_excluded),
            money(icp.expected_pipeline_all),
            n(icp.prospects),
            pct(icp.expected_pipeline_excluded / icp.expected_pipeline_all.max(f64::MIN_POSITIVE)),
            pct(icp.rules.max_excluded_value),
            money(icp.value_per_prospect)
        )));
    }
    if !icp.held_by_cap.is_empty() {
        d.push(Block::Callout(format!(
            "The evidence asks to exclude more than the {} cap allows: {} would also qualify but were held back. Raise [icp] max_excluded_value to propose them, or accept that working them costs more than it brings.",
            pct(icp.rules.max_excluded_value),
            icp.held_by_cap
                .iter()
                .map(|h| format!(
                    "{} {} ({} prospects, {} expected value)",
                    h.id,
                    h.condition,
                    n(h.prospects),
                    money(h.expected_value)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
}

/// Per segment, what the workflow engine receives on approval.
pub(super) fn publication_preview(d: &mut Vec<Block>, inp: &BriefInput) {
    let p = inp.preview;
    d.push(Block::Heading(2, "What approval publishes".into()));
    let audience = if p.audience == "all" {
        "every scored account, customers included"
    } else {
        "prospects and accounts with an open opportunity"
    };
    let with = if p.exclusions.is_empty() {
        "no exclusion".to_string()
    } else {
        format!("the recommended exclusions ({})", p.exclusions.join(", "))
    };
    d.push(Block::Para(format!(
        "Approved as recommended, with {with}, the workflow engine receives these segments of {audience}. {} accounts the exclusions match ({} prospects and {} open opportunities) are left out of every segment; {} accounts ({} of each band) are withheld as the control group (segments/control.csv), so the pilot can be told apart from the market.",
        n(p.excluded),
        n(p.excluded_prospects),
        n(p.excluded - p.excluded_prospects),
        n(p.control),
        pct(p.control_share)
    )));
    d.push(Block::Table {
        head: [
            "band",
            "scored accounts",
            "customers and churned (not targeted)",
            "left out by exclusions",
            "control",
            "published",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: p
            .bands
            .iter()
            .map(|b| {
                vec![
                    b.band.clone(),
                    n(b.scored),
                    n(b.outside_audience),
                    n(b.excluded),
                    n(b.control),
                    n(b.published),
                ]
            })
            .collect(),
    });
    d.push(Block::Table {
        head: vec![
            "segment".into(),
            "accounts".into(),
            "prospects".into(),
            "open opportunities".into(),
        ],
        rows: p
            .segments
            .iter()
            .map(|s| {
                vec![
                    s.segment.clone(),
                    n(s.accounts),
                    n(s.prospects),
                    n(s.open_opportunities),
                ]
            })
            .collect(),
    });
    let status = |k: &str| p.crm_status.get(k).copied().unwrap_or(0);
    d.push(Block::Para(format!(
        "CRM status, one definition across the brief, the feed and the README: prospect {} (no customer record, no won or open deal; lost deals allowed), open opportunity {}, customer {} (a won deal or an active customer record, not churned), churned customer {}.",
        n(status("prospect")),
        n(status("open_opportunity")),
        n(status("customer")),
        n(status("churned_customer"))
    )));
}

/// Bookings per month of a segment, and per account.
fn bookings(booked: f64, accounts: usize, b: &Baseline) -> String {
    if b.period_days <= 0.0 {
        return "-".into();
    }
    let months = (b.period_days / DAYS_PER_MONTH).max(1.0);
    let per = booked / months;
    format!(
        "{}; {} per account",
        money(per),
        money(per / accounts.max(1) as f64)
    )
}

/// "S01 (condition): part; part; in their words: ...".
fn evidence_line(c: &Criterion, mut parts: Vec<String>) -> String {
    if !c.finding.notes.is_empty() {
        parts.push(format!("in their words: {}", c.finding.notes.join("; ")));
    }
    format!(
        "{} ({}): {}.",
        c.finding.id,
        c.finding.condition,
        parts.join("; ")
    )
}

fn reasons_words(c: &Criterion) -> String {
    if c.lost_deals == 0 {
        return "none lost".into();
    }
    c.loss_reasons
        .iter()
        .map(|(r, k)| format!("{r} {}", share(*k, c.lost_deals)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refined ICP in the leader's terms.
pub(super) fn refined_icp(d: &mut Vec<Block>, inp: &BriefInput) {
    let f = inp.findings;
    let icp: &RefinedIcp = &f.icp;
    d.push(Block::Heading(2, "The refined ICP".into()));
    d.push(Block::Para(format!(
        "{} Criteria are chosen on the {} deals before {} and checked on the {} later deals, which played no part in choosing them. An include criterion's deals become velocity wins at least {:.1}x as often as average; an exclusion is a segment where working a prospect does not pay{}. Scores are ranks: the top 30% of accounts is High.",
        icp.rule,
        n(icp.deals_choosing),
        inp.artifact.evaluation.holdout_from,
        n(icp.deals_later),
        icp.rules.min_include_lift,
        match icp.rules.cost_per_prospect {
            Some(c) => format!(
                " (a prospect's expected value is below the {} it costs to work)",
                money(c)
            ),
            None => format!(
                " (its deals become velocity wins at most {:.1}x as often as average)",
                icp.rules.max_exclude_lift
            ),
        }
    )));
    include_section(d, inp);
    exclude_section(d, inp);
    review_section(d, icp);
}

/// Include: the segments to aim at, beside all accounts, with the evidence
/// behind each.
fn include_section(d: &mut Vec<Block>, inp: &BriefInput) {
    let f = inp.findings;
    let icp: &RefinedIcp = &f.icp;
    let b = &f.baseline;
    d.push(Block::Heading(3, "Include".into()));
    if f.signals.is_empty() {
        d.push(Block::Callout(
            "No best-fit signal: nothing in this data passes the support and false-discovery checks, so there is nothing to include.".into(),
        ));
    } else if icp.include.is_empty() {
        d.push(Block::Para(
            "None: no segment adds enough velocity wins to be worth aiming at. Keep the current ICP and work accounts by score.".into(),
        ));
    } else {
        include_table(d, icp, b);
        let evidence: Vec<String> = icp
            .include
            .iter()
            .map(|c| {
                let mut parts = vec![format!(
                    "{} of its deals were won (average {}), {} on average, in a median {} days",
                    pct(c.finding.close_rate),
                    pct(b.close_rate),
                    opt_money(c.finding.average_deal),
                    opt_num(c.finding.median_cycle_days, 0)
                )];
                parts.push(format!(
                    "its {} lost deals: {}",
                    n(c.lost_deals),
                    reasons_words(c)
                ));
                if !c.best_customers.is_empty() {
                    parts.push(format!(
                        "largest current customers: {}",
                        c.best_customers
                            .iter()
                            .map(|a| format!("{} ({})", a.name, a.account_id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                evidence_line(c, parts)
            })
            .collect();
        d.push(Block::Bullets(evidence));
    }
}

/// The include table: one row per criterion, then all accounts with a
/// closed deal to read them against.
fn include_table(d: &mut Vec<Block>, icp: &RefinedIcp, b: &Baseline) {
    let mut rows: Vec<Vec<String>> = icp
        .include
        .iter()
        .map(|c| {
            let x = &c.finding;
            vec![
                x.id.clone(),
                x.condition.clone(),
                n(x.accounts),
                earlier_later(c),
                c.later_verdict.words().into(),
                pct(x.close_rate),
                opt_money(x.average_deal),
                opt_num(x.median_cycle_days, 0),
                bookings(x.booked_revenue, x.accounts, b),
                opt_pct(x.churn_rate),
                n(c.prospects_matching),
            ]
        })
        .collect();
    rows.push(vec![
        "all".into(),
        "all accounts with a closed deal".into(),
        n(b.accounts),
        pct(b.velocity_win_rate),
        "-".into(),
        pct(b.close_rate),
        opt_money(b.average_deal),
        opt_num(b.median_cycle_days, 0),
        bookings(b.booked_revenue, b.accounts, b),
        opt_pct(b.churn_rate),
        n(icp.prospects),
    ]);
    d.push(Block::Table {
        head: [
            "id",
            "condition",
            "accounts",
            "velocity wins",
            "later-deal check",
            "close rate",
            "average deal",
            "median cycle (days)",
            "bookings per month",
            "churn",
            "prospects",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
    });
}

/// Exclude: the segments where working a prospect does not pay, withheld
/// while the run is not ready, with why each qualifies.
fn exclude_section(d: &mut Vec<Block>, inp: &BriefInput) {
    let f = inp.findings;
    let icp: &RefinedIcp = &f.icp;
    d.push(Block::Heading(3, "Exclude".into()));
    if !f.readiness.ready {
        d.push(Block::Callout(
            "Withheld: the run is NOT READY, so these are evidence only and no exclusion is published.".into(),
        ));
    }
    if icp.exclude.is_empty() {
        d.push(Block::Para(
            "None: no segment is poor enough that working its prospects stops paying.".into(),
        ));
    } else {
        exclude_table(d, icp, &f.baseline);
        let why: Vec<String> = icp
            .exclude
            .iter()
            .map(|c| {
                let mut parts = vec![c.because.clone()];
                parts.push(format!(
                    "its {} lost deals: {}",
                    n(c.lost_deals),
                    reasons_words(c)
                ));
                evidence_line(c, parts)
            })
            .collect();
        d.push(Block::Bullets(why));
    }
}

/// The exclude table: one row per exclusion, then all prospects to read
/// them against.
fn exclude_table(d: &mut Vec<Block>, icp: &RefinedIcp, b: &Baseline) {
    let mut rows: Vec<Vec<String>> = icp
        .exclude
        .iter()
        .map(|c| {
            let x = &c.finding;
            vec![
                x.id.clone(),
                x.condition.clone(),
                format!(
                    "{} ({}); {} only this one",
                    n(c.prospects_matching),
                    share(c.prospects_matching, icp.prospects),
                    n(c.prospects_only_this)
                ),
                money(c.value_per_prospect),
                money(c.expected_pipeline),
                format!("{}: {}", n(c.customers_matching), money(c.customer_revenue)),
                earlier_later(c),
                c.later_verdict.words().into(),
                pct(x.close_rate),
                opt_num(x.median_cycle_days, 0),
                opt_pct(x.churn_rate),
                opt_num(x.delivery_fit, 2),
                opt_pct(x.gross_margin),
            ]
        })
        .collect();
    rows.push(vec![
        "all".into(),
        "all prospects".into(),
        n(icp.prospects),
        money(icp.value_per_prospect),
        money(icp.expected_pipeline_all),
        format!("{}: {}", n(icp.customers), money(icp.customer_revenue_all)),
        pct(b.velocity_win_rate),
        "-".into(),
        pct(b.close_rate),
        opt_num(b.median_cycle_days, 0),
        opt_pct(b.churn_rate),
        opt_num(b.delivery_fit, 2),
        opt_pct(b.gross_margin),
    ]);
    d.push(Block::Table {
        head: [
            "id",
            "condition",
            "prospects",
            "value per prospect",
            "expected value given up",
            "current customers: won revenue",
            "velocity wins",
            "later-deal check",
            "close rate",
            "median cycle (days)",
            "churn",
            "delivery fit (1-5)",
            "margin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
    });
}

/// Review: conditions for people to weigh, not criteria.
fn review_section(d: &mut Vec<Block>, icp: &RefinedIcp) {
    d.push(Block::Heading(3, "Review: for people to weigh".into()));
    if icp.review.is_empty() {
        d.push(Block::Para(
            "None: no condition is mixed (wins more but churns or serves badly), broad but weak, or failed its later-deal check.".into(),
        ));
    } else {
        d.push(Block::Table {
            head: [
                "id",
                "condition",
                "why it is not a criterion",
                "velocity wins",
                "prospects",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows: icp
                .review
                .iter()
                .map(|c| {
                    vec![
                        c.finding.id.clone(),
                        c.finding.condition.clone(),
                        c.because.clone(),
                        earlier_later(c),
                        n(c.prospects_matching),
                    ]
                })
                .collect(),
        });
    }
}

/// Two-sided 95%, 80% power: deals needed in each arm to tell rate `a`
/// from rate `b` (the normal approximation for two proportions).
fn deals_per_arm(a: f64, b: f64) -> Option<usize> {
    let gap = (a - b).abs();
    if gap.is_nan() || gap <= 0.0 || !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) {
        return None;
    }
    let (za, zb) = (1.959_964, 0.841_621);
    let pbar = (a + b) / 2.0;
    let num = za * (2.0 * pbar * (1.0 - pbar)).sqrt() + zb * (a * (1.0 - a) + b * (1.0 - b)).sqrt();
    Some((num * num / (gap * gap)).ceil() as usize)
}

/// The pilot: window, control, success threshold, rollback trigger, next read.
pub(super) fn pilot_plan(d: &mut Vec<Block>, inp: &BriefInput) {
    let e = &inp.artifact.evaluation;
    let p = inp.preview;
    let days = inp.params.pilot_days;
    let next = inp.run_date + chrono::Duration::days(days);
    let (_, sales, _) = owners(inp);
    d.push(Block::Heading(2, "Pilot plan".into()));
    let high_seg = p
        .segments
        .iter()
        .find(|s| s.segment == crate::domain::Segment::Band(Band::High).name());
    let mut bullets = vec![format!(
        "Window: {days} days from approval; the next brief ({next} at the earliest, after a re-run on fresh data) measures it ([brief] pilot_days)."
    )];
    if p.control_share > 0.0 {
        bullets.push(format!(
            "Control: {} of each band ({} accounts now) stays out of the segments and gets today's treatment; the split is fixed per account and model ([publish] control_share; 0 turns it off, and then results cannot be told apart from the market).",
            pct(p.control_share),
            n(p.control)
        ));
    } else {
        bullets.push("Control: none ([publish] control_share = 0): the pilot's results cannot be told apart from the market. Set a share (0.1 is 10%) to measure it.".into());
    }
    let high = band(e, Band::High.as_str());
    let medium = band(e, Band::Medium.as_str());
    if let (Some(h), Some(m)) = (high, medium) {
        let need = deals_per_arm(h.velocity_win_share, m.velocity_win_share);
        bullets.push(format!(
            "Success: the targeted High accounts open more opportunities and win more of them than their control, and their closed deals become velocity wins more often, by at least the gap the holdout showed between High and Medium ({} against {}). Proving a gap that size takes about {} closed deals in each group{}.",
            pct(h.velocity_win_share),
            pct(m.velocity_win_share),
            need.map(n).unwrap_or_else(|| "n/a".into()),
            match (high_seg, need) {
                (Some(s), Some(k)) => {
                    let ctl = (s.accounts as f64 * p.control_share
                        / (1.0 - p.control_share).max(f64::MIN_POSITIVE))
                        .round() as usize;
                    if ctl < k {
                        format!(
                            "; the High control holds about {} accounts, so the first read after {days} days is directional (opportunities opened and won), and the velocity-win comparison firms up over later quarters",
                            n(ctl)
                        )
                    } else {
                        format!("; the High control holds about {} accounts", n(ctl))
                    }
                }
                _ => String::new(),
            }
        ));
    }
    bullets.push(format!(
        "Rollback trigger: if at the next brief the targeted High accounts do no better than their control (opportunities opened and won), {sales} makes the previous approved run active again (icp activate RUN --by NAME), which republishes its scoring; an exclusion whose segment starts winning at the average rate in the next data is rejected at the next review."
    ));
    bullets.push(
        "Measured from the log: measurement.json records, for each published scoring, what its accounts did next by the band they were given (their lead fit: deals opened, won, lost and the loss reasons given), and the control group beside the targeted accounts; reports/events.jsonl records each run and approval.".into(),
    );
    d.push(Block::Bullets(bullets));
}

/// Appendix: each criterion on earlier and later deals, with intervals and
/// the tests behind the choice.
pub(super) fn criteria_checks(d: &mut Vec<Block>, inp: &BriefInput) {
    let f = inp.findings;
    let icp = &f.icp;
    d.push(Block::Heading(
        3,
        "Each criterion on earlier and later deals".into(),
    ));
    d.push(Block::Para(format!(
        "Chosen on the {} deals before the holdout: the part each criterion adds beyond those above it must reach its rule with a 95% interval clear of the average, at least {} accounts, and a test that passes a Bonferroni correction at {} over the tests of its kind ({} on single conditions, {} on pairs). Then checked on the {} later deals: holds (interval clear of the later average), same direction, too few later deals (under {}), or did not hold up (moved to review, not recommended). At most {} of each (icp.json).",
        n(icp.deals_choosing),
        f.signal_params.min_accounts,
        f.signal_params.criterion_fwer,
        n(f.single_tests),
        n(f.pair_tests),
        n(icp.deals_later),
        crate::evidence::refine::MIN_LATER_DEALS,
        f.signal_params.max_criteria
    )));
    let row = |c: &Criterion| {
        vec![
            c.finding.id.clone(),
            c.kind.clone(),
            c.finding.condition.clone(),
            format!(
                "{}: {}",
                n(c.chose.deals),
                c.chose
                    .velocity_win_rate
                    .map(|r| pct_ci(r, c.chose.velocity_win_rate_ci95))
                    .unwrap_or_else(|| "n/a".into())
            ),
            c.chose
                .lift
                .map(|l| format!("{l:.2}"))
                .unwrap_or_else(|| "-".into()),
            format!(
                "{}: {}",
                n(c.later.deals),
                c.later
                    .velocity_win_rate
                    .map(|r| pct_ci(r, c.later.velocity_win_rate_ci95))
                    .unwrap_or_else(|| "n/a".into())
            ),
            c.later
                .lift
                .map(|l| format!("{l:.2}"))
                .unwrap_or_else(|| "-".into()),
            c.later_verdict.words().into(),
        ]
    };
    let rows: Vec<Vec<String>> = icp
        .include
        .iter()
        .chain(&icp.exclude)
        .chain(&icp.review)
        .map(row)
        .collect();
    if rows.is_empty() {
        d.push(Block::Para("No criterion.".into()));
        return;
    }
    d.push(Block::Table {
        head: [
            "id",
            "kind",
            "condition",
            "earlier deals: velocity-win rate (95% CI)",
            "lift",
            "later deals: velocity-win rate (95% CI)",
            "lift",
            "check",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: 30% against 20% needs 294 per arm (the textbook
    /// two-proportion formula at 5% two-sided and 80% power).
    #[test]
    fn deals_per_arm_matches_the_textbook_formula() {
        assert_eq!(deals_per_arm(0.3, 0.2), Some(294));
        assert_eq!(deals_per_arm(0.2, 0.2), None);
    }
}
