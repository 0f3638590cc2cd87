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

mod build;
mod choose;
mod criteria;

use std::collections::BTreeSet;

use crate::evidence::signals::Finding;
use crate::evidence::signals::rows::{AccountRows, Bits, DealRows};
use crate::stages::features::Cell;
use build::Build;
use choose::{
    Chosen, ReviewAt, candidates, choose_exclusions, greedy_include, mixed_evidence, reorder,
    support, weak_poor_fits,
};

pub use criteria::{
    Added, Coverage, Criterion, HeldByCap, IcpParams, LaterVerdict, MIN_LATER_DEALS, NamedAccount,
    RateCheck, Recommendation, RefinedIcp,
};

/// Choose the include and exclude criteria on the deals before the holdout,
/// and list the mixed evidence and the weak poor fits for review.
fn choose(
    signals: &[Finding],
    exclusions: &[Finding],
    sig_masks: &[Bits],
    exc_masks: &[Bits],
    b: &Build,
    in_signals: &BTreeSet<Vec<Cell>>,
    x_mixed: &BTreeSet<Vec<Cell>>,
) -> Chosen {
    let (accounts, p) = (b.accounts, b.p);
    // Candidates: not mixed evidence. Each list's account masks on demand.
    let keep = |f: &Finding| !x_mixed.contains(&f.cells);
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
        .filter(|(_, f)| x_mixed.contains(&f.cells))
        .map(|(i, _)| (true, i, None))
        .chain(
            exclusions
                .iter()
                .enumerate()
                .filter(|(_, f)| x_mixed.contains(&f.cells) && !in_signals.contains(&f.cells))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IcpRules;
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
