//! The findings and the brief: known answers on generated data, NOT READY on
//! thin evidence, escaping of account-supplied strings.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::common::{generated, icp, json, read_csv, root, run_quiet, stderr, strings};

/// One run on 30k generated accounts shared by the tests below.
fn run30k() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let (data, _) = generated(30_000, 2024);
        let base = tempfile::tempdir().expect("tempdir").keep();
        let out = base.join("run");
        run_quiet(Some(&data), &out, &base.join("reports"), &[]);
        out
    })
}

fn conditions(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|f| f["condition"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn generated_truth_comes_out_as_signals_exclusions_painful_and_triggers() {
    let run = run30k();
    let s = json(&run.join("signals.json"));
    let sig = conditions(&s["signals"]);
    for want in ["industry = Software", "industry = Logistics"] {
        assert!(
            sig.iter().any(|c| c == want),
            "{want} not a signal: {sig:?}"
        );
    }
    // the size sweet spot (50-500 employees in the truth) shows in a signal
    // on an employee band inside it (alone or paired)
    let in_sweet_spot = s["signals"].as_array().unwrap().iter().any(|f| {
        f["terms"].as_array().unwrap().iter().any(|t| {
            t["column"] == "employees"
                && t["range"][0].as_f64().is_some_and(|lo| lo >= 45.0)
                && t["range"][1].as_f64().is_some_and(|hi| hi <= 560.0)
        })
    });
    assert!(in_sweet_spot, "no employee band of 50-500 among {sig:?}");
    // the planted interaction: Healthcare at 200-2,000 employees
    assert!(
        sig.iter()
            .any(|c| c.contains("industry = Healthcare") && c.contains("employees")),
        "interaction missing: {sig:?}"
    );
    // every signal meets the support minimum and the FDR
    for f in s["signals"].as_array().unwrap() {
        assert!(f["accounts"].as_u64().unwrap() >= 20);
        assert!(f["velocity_wins"].as_u64().unwrap() >= 5);
        assert!(f["q_value"].as_f64().unwrap() <= 0.05);
        assert!(f["lift"].as_f64().unwrap() >= 1.25);
    }
    let x = json(&run.join("exclusions.json"));
    let exc = conditions(&x["exclusions"]);
    for want in ["industry = Government", "industry = Retail"] {
        assert!(
            exc.iter().any(|c| c == want),
            "{want} not excluded: {exc:?}"
        );
    }
    // the churn-prone small accounts are excluded for churn
    let small_churn = x["exclusions"].as_array().unwrap().iter().any(|f| {
        f["condition"]
            .as_str()
            .unwrap()
            .starts_with("employees under")
            && f["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e.as_str().unwrap().starts_with("churns"))
    });
    assert!(small_churn, "{exc:?}");

    let p = json(&run.join("painful.json"));
    assert!(p["painful_accounts"].as_u64().unwrap() > 0);
    // Government customers are planted hard to serve: they share it
    let shared = conditions(&p["shared_conditions"]);
    assert!(
        shared.iter().any(|c| c == "industry = Government"),
        "{shared:?}"
    );
    let painful = read_csv(&run.join("painful_customers.csv"));
    assert_eq!(
        painful.height() as u64,
        p["painful_accounts"].as_u64().unwrap()
    );
    // and the planted painful kind, revenue >= $500M, is over-represented
    let (data, _) = generated(30_000, 2024);
    let acc = read_csv(&data.join("accounts.csv"));
    let big: std::collections::BTreeSet<String> = strings(&acc, "account_id")
        .into_iter()
        .zip(strings(&acc, "annual_revenue"))
        .filter(|(_, r)| r.parse::<f64>().is_ok_and(|r| r >= 500e6))
        .map(|x| x.0)
        .collect();
    let ids = strings(&painful, "account_id");
    let share_painful = ids.iter().filter(|i| big.contains(*i)).count() as f64 / ids.len() as f64;
    let share_all = big.len() as f64 / acc.height() as f64;
    assert!(
        share_painful > 3.0 * share_all,
        "revenue >= $500M: {share_painful:.3} of painful customers vs {share_all:.3} of accounts"
    );

    let t = json(&run.join("triggers.json"));
    for trig in t.as_array().unwrap() {
        let name = trig["trigger"].as_str().unwrap();
        if name == icp::io::synth::NULL_TRIGGER {
            // the negative control: no effect planted, none reported
            assert!(
                !trig["timing_supported"].as_bool().unwrap()
                    && !trig["supported"].as_bool().unwrap(),
                "the null trigger is reported as supported: {trig}"
            );
        } else {
            assert!(
                trig["lift"].as_f64().unwrap() > 1.0 && trig["timing_supported"].as_bool().unwrap(),
                "{name}: {trig}"
            );
        }
        // no trigger makes a deal likelier to be won in the generator
        assert!(!trig["fit_supported"].as_bool().unwrap(), "{name}: {trig}");
        assert_eq!(trig["window_days"], 90);
    }
    assert_eq!(t.as_array().unwrap().len(), 4);

    // the accounts behind each finding are listed
    let behind = crate::common::read_parquet(&run.join("finding_accounts.parquet"));
    let ids = strings(&behind, "finding_id");
    assert!(ids.iter().any(|i| i == "S01") && ids.iter().any(|i| i == "X01"));
    // each finding's accounts, deals and velocity wins, as the screen
    // counted them (signals.csv, exclusions.csv), add up from its rows; its
    // accounts are listed once each, by account_id
    let accounts = strings(&behind, "account_id");
    let num = |c: &str| -> Vec<u64> {
        strings(&behind, c)
            .iter()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (deals, wins) = (num("deals"), num("velocity_wins"));
    let mut checked = 0;
    for f in ["signals.csv", "exclusions.csv"] {
        let t = read_csv(&run.join(f));
        let (fid, n_acc, n_deals, n_wins) = (
            strings(&t, "id"),
            strings(&t, "accounts"),
            strings(&t, "deals"),
            strings(&t, "velocity_wins"),
        );
        for k in 0..t.height() {
            let rows: Vec<usize> = (0..ids.len()).filter(|&r| ids[r] == fid[k]).collect();
            assert_eq!(rows.len().to_string(), n_acc[k], "{} accounts", fid[k]);
            let sum = |v: &[u64]| rows.iter().map(|&r| v[r]).sum::<u64>().to_string();
            assert_eq!(sum(&deals), n_deals[k], "{} deals", fid[k]);
            assert_eq!(sum(&wins), n_wins[k], "{} velocity wins", fid[k]);
            assert!(
                rows.windows(2).all(|w| accounts[w[0]] < accounts[w[1]]),
                "{}: accounts not in id order, or listed twice",
                fid[k]
            );
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

#[test]
fn a_condition_of_two_accounts_never_becomes_a_finding() {
    // The generator plants two perfect accounts in industry "Aerospace".
    // With every category kept (min_level_count = 1) the condition exists,
    // and support alone must keep it out.
    let (data, _) = generated(30_000, 2024);
    let acc = read_csv(&data.join("accounts.csv"));
    let n = strings(&acc, "industry")
        .iter()
        .filter(|i| *i == "Aerospace")
        .count();
    assert_eq!(n, 2, "the generator plants exactly two Aerospace accounts");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[features]\nmin_level_count = 1\n").unwrap();
    let out = tmp.path().join("run");
    run_quiet(
        Some(&data),
        &out,
        &tmp.path().join("reports"),
        &["--config", cfg.to_str().unwrap()],
    );
    for f in ["signals.csv", "exclusions.csv"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            !text.contains("Aerospace"),
            "{f} claims a two-account condition"
        );
    }
}

#[test]
fn the_brief_has_every_section_and_inline_charts() {
    let run = run30k();
    let html = std::fs::read_to_string(run.join("brief.html")).unwrap();
    let md = std::fs::read_to_string(run.join("brief.md")).unwrap();
    for section in [
        "What to do",
        "The refined ICP",
        "Review: for people to weigh",
        "How good the model is",
        "Decisions",
        "What approval publishes",
        "Pilot plan",
        "Recording the decisions",
        "Appendix: how we know",
        "Best-fit signals",
        "Poor-fit exclusions",
        "Painful and best customers",
        "Conditions painful customers share",
        "Buying triggers",
        "Segments and qualification",
        "Qualification checklists",
        "Measurement plan",
        "Did the bands convert in practice?",
        "icp_evidence_alignment_rate",
        "Readiness gates",
    ] {
        assert!(html.contains(section), "html lacks {section}");
        // an underscore inside a word needs no escape in Markdown
        assert!(md.contains(section), "md lacks {section}");
    }
    assert!(html.matches("<svg").count() >= 2, "two inline charts");
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("src=\"http"), "no network resources");
    assert!(html.contains("PROPOSAL for leadership approval"));
    // the first screen: recommendations come before the evidence
    let first = html.find("What to do").unwrap();
    assert!(first < html.find("The refined ICP").unwrap());
    assert!(
        first < html.find("Readiness gates").unwrap(),
        "readiness follows when all pass"
    );
    // no literal Markdown in the HTML
    assert!(
        !html.contains('`') && !html.contains("\\_"),
        "markup leaks into the HTML"
    );
    // charts scale to the page
    assert!(html.contains("viewBox") && !html.contains("<svg width="));
}

/// Tiny evidence: the run works, but the brief says NOT READY and publishes
/// no exclusions; account names with markup show as text.
#[test]
fn thin_evidence_is_not_ready_and_markup_in_names_is_text() {
    let (data, _) = generated(1500, 9);
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["opportunities.csv", "triggers.csv"] {
        std::fs::copy(data.join(f), d.join(f)).unwrap();
    }
    // no customers file: retention and delivery evidence are missing
    let acc = std::fs::read_to_string(data.join("accounts.csv")).unwrap();
    let mut lines: Vec<String> = acc.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let name_col = header.iter().position(|h| *h == "account_name").unwrap();
    for l in lines.iter_mut().skip(1) {
        if l.contains('"') {
            continue; // a quoted name with a comma: leave the row as it is
        }
        let mut cells: Vec<String> = l.split(',').map(str::to_string).collect();
        cells[name_col] = "<script>alert(1)</script>".into();
        *l = cells.join(",");
    }
    std::fs::write(d.join("accounts.csv"), lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("run");
    run_quiet(Some(&d), &out, &tmp.path().join("reports"), &[]);
    let html = std::fs::read_to_string(out.join("brief.html")).unwrap();
    assert!(html.contains("NOT READY"));
    assert!(!html.contains("<script>alert(1)</script>"));
    let f = json(&out.join("findings.json"));
    assert_eq!(f["readiness"]["ready"], false);
    let failed: Vec<&str> = f["readiness"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["passed"] == false)
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"retention evidence") || failed.contains(&"delivery-fit evidence"),
        "{failed:?}"
    );
    assert!(
        !out.join("exclusion_matches.parquet").exists(),
        "no exclusions published"
    );
    // the scores still work
    assert!(read_csv(&out.join("scores.csv")).height() > 0);
}

/// reports/example/ holds the brief of the bundled sample, so a reader sees
/// one without running anything; it must be what the code makes today.
/// Regenerate: `SOURCE_DATE_EPOCH=1751328000 cargo run -- run --quiet --out /tmp/ex`
/// and copy brief.md,
/// brief.html and findings.json into reports/example/.
#[test]
fn the_committed_example_is_what_the_code_makes_of_the_sample() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    run_quiet(None, &out, &tmp.path().join("reports"), &[]);
    for f in ["brief.md", "brief.html", "findings.json"] {
        let now = std::fs::read(out.join(f)).unwrap();
        let committed = std::fs::read(root().join("reports/example").join(f)).unwrap();
        assert!(
            now == committed,
            "reports/example/{f} is stale; regenerate it (see this test's doc)"
        );
    }
}

/// The refined ICP on generated data with a known truth: the planted strong
/// conditions are criteria, no planted weak or null one is, and every
/// criterion is a handful, not a pile.
#[test]
fn the_refined_icp_holds_the_planted_strong_conditions_and_no_weak_one() {
    let run = run30k();
    let icp = json(&run.join("icp.json"));
    let conds = |k: &str| conditions(&icp[k]);
    let include = conds("include");
    let exclude = conds("exclude");
    assert!(
        include.len() <= 7 && exclude.len() <= 7,
        "{include:?} {exclude:?}"
    );
    assert!(
        include.iter().any(|c| c == "industry = Software"),
        "Software not included: {include:?}"
    );
    assert!(
        include
            .iter()
            .any(|c| c.contains("industry = Healthcare") && c.contains("employees")),
        "the planted Healthcare x size interaction is not included: {include:?}"
    );
    // Logistics is a real signal, but its velocity wins (lift about 1.3:
    // its deals are no faster) fall short of the default 1.5 a criterion needs
    let s = json(&run.join("signals.json"));
    let logistics = s["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["condition"] == "industry = Logistics")
        .expect("Logistics is a signal");
    let lift = logistics["lift"].as_f64().unwrap();
    assert!(lift > 1.0 && lift < 1.5, "{lift}");
    assert!(!include.iter().any(|c| c == "industry = Logistics"));
    // Government does not pay (lift about 0.3); Retail wins less (about
    // 0.6) but still pays to work: a review item, not an exclusion
    assert!(
        exclude.iter().any(|c| c == "industry = Government"),
        "Government not excluded: {exclude:?}"
    );
    assert!(!exclude.iter().any(|c| c == "industry = Retail"));
    let review = conds("review");
    assert!(
        review.iter().any(|c| c == "industry = Retail"),
        "Retail is not a review item: {review:?}"
    );
    // every criterion checked on later deals
    for k in ["include", "exclude"] {
        for c in icp[k].as_array().unwrap() {
            assert!(
                c["later"]["deals"].as_u64().unwrap() > 0,
                "{}",
                c["condition"]
            );
            assert_ne!(c["later_verdict"], "fails", "{}", c["condition"]);
        }
    }
    // planted weak or null: small industry effects, every country and ownership
    let weak_levels = [
        "Manufacturing",
        "Financial Services",
        "Construction",
        "Energy",
        "Media",
    ];
    // country and ownership enter only as the planted pair (public
    // companies in Germany), never alone; pe_backed ownership is a weak
    // real effect (+0.3 log-odds in src/synth.rs), so it may qualify a
    // strong size band (50-499 employees: +0.7), never stand alone
    let planted = |c: &serde_json::Value| {
        let terms = c["terms"].as_array().unwrap();
        let level = |col: &str| {
            terms
                .iter()
                .find(|t| t["column"] == col)
                .and_then(|t| t["level"].as_str())
        };
        let sized = terms
            .iter()
            .any(|t| t["column"] == "employees" || t["column"] == "annual_revenue");
        terms.len() == 2
            && ((level("country") == Some("Germany") && level("ownership") == Some("public"))
                || (level("ownership") == Some("pe_backed") && sized))
    };
    for (kind, list) in [("include", &icp["include"]), ("exclude", &icp["exclude"])] {
        for c in list.as_array().unwrap() {
            for t in c["terms"].as_array().unwrap() {
                let column = t["column"].as_str().unwrap();
                assert!(
                    (column != "country" && column != "ownership") || planted(c),
                    "{kind} criterion on a null variable: {}",
                    c["condition"]
                );
                if let Some(level) = t["level"].as_str() {
                    assert!(
                        !weak_levels.contains(&level),
                        "{kind} criterion on a weak level: {}",
                        c["condition"]
                    );
                }
            }
            // structured, and with its evidence
            assert!(c["accounts"].as_u64().unwrap() >= 20);
            assert!(c["adds"]["deals"].as_u64().unwrap() > 0);
        }
    }
    // each prospect once: the union is no more than the sum, and no more
    // than all prospects
    let sum: u64 = icp["exclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["prospects_matching"].as_u64().unwrap())
        .sum();
    let once = icp["prospects_excluded"].as_u64().unwrap();
    assert!(once <= sum && once <= icp["prospects"].as_u64().unwrap());
    // every other signal points at the criterion it supports, or at none
    let s = read_csv(&run.join("signals.csv"));
    let ids = strings(&s, "id");
    let crit = strings(&s, "icp_criterion");
    for (i, c) in ids.iter().zip(&crit) {
        assert!(c.is_empty() || c.starts_with('S'), "{i} -> {c}");
    }
}

/// A scoring made a quarter earlier is measured by the next run: what the
/// accounts it put in each band did after its data's as-of date.
#[test]
fn an_earlier_scoring_is_measured_by_the_next_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let r1 = reports.join("run-q1");
    run_quiet(None, &r1, &reports, &[]);
    // as if r1 had been made on the data as of 2025-03-31
    let path = r1.join("findings.json");
    let mut f = json(&path);
    f["as_of"] = serde_json::json!("2025-03-31");
    std::fs::write(&path, serde_json::to_vec(&f).unwrap()).unwrap();
    let r2 = tmp.path().join("r2");
    run_quiet(None, &r2, &reports, &[]);
    let m = json(&r2.join("measurement.json"));
    let o = &m["band_outcomes"][0];
    assert_eq!(o["as_of"], "2025-03-31");
    // counted by hand from r1's scores and the sample's opportunities
    let s1 = read_csv(&r1.join("scores.csv"));
    let band: std::collections::HashMap<String, String> = strings(&s1, "account_id")
        .into_iter()
        .zip(strings(&s1, "band"))
        .collect();
    let opps = read_csv(&root().join("data/sample/opportunities.csv"));
    let (acc, created) = (strings(&opps, "account_id"), strings(&opps, "created_date"));
    for (k, b) in ["high", "medium", "low"].iter().enumerate() {
        let row = &o["bands"][k];
        assert_eq!(row["band"], *b);
        let accounts = band.values().filter(|x| x == b).count() as u64;
        assert_eq!(row["accounts"].as_u64().unwrap(), accounts, "{b}");
        let new: Vec<&String> = acc
            .iter()
            .zip(&created)
            .filter(|(a, c)| c.as_str() > "2025-03-31" && band.get(*a).is_some_and(|x| x == b))
            .map(|(a, _)| a)
            .collect();
        assert_eq!(
            row["opportunities"].as_u64().unwrap(),
            new.len() as u64,
            "{b}"
        );
        let distinct: std::collections::BTreeSet<&&String> = new.iter().collect();
        assert_eq!(
            row["accounts_with_new_opportunity"].as_u64().unwrap(),
            distinct.len() as u64,
            "{b}"
        );
    }
    let md = std::fs::read_to_string(r2.join("brief.md")).unwrap();
    assert!(
        md.contains("Accounts as scored by run"),
        "no band outcome table"
    );
}

/// A wide CRM (`icp generate --wide`): a broad, weak poor fit (no operations
/// owner: half the accounts, lift about 0.8) and strong, specific ones
/// (tech stack Custom, Government). The weak one is never an exclusion, the
/// strong ones are, the null column (multi_location) is in no criterion,
/// and the exclusions give up at most the configured share of value.
#[test]
fn on_a_wide_crm_exclusions_pay_and_the_broad_weak_poor_fit_is_never_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("wide");
    let o = icp(
        &[
            "generate",
            "--wide",
            "--accounts",
            "20000",
            "--seed",
            "5",
            "--out",
            data.to_str().unwrap(),
            "--truth",
            tmp.path().join("truth.csv").to_str().unwrap(),
            "--quiet",
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let check = |cfg: Option<&str>, cap: f64| -> serde_json::Value {
        let out = tmp.path().join(format!("run{cap}"));
        let mut extra: Vec<String> = Vec::new();
        if let Some(c) = cfg {
            let p = tmp.path().join(format!("icp{cap}.toml"));
            std::fs::write(&p, c).unwrap();
            extra = vec!["--config".into(), p.to_str().unwrap().into()];
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        run_quiet(Some(&data), &out, &tmp.path().join("reports"), &extra);
        let icp = json(&out.join("icp.json"));
        let exclude = conditions(&icp["exclude"]);
        for c in icp["include"]
            .as_array()
            .unwrap()
            .iter()
            .chain(icp["exclude"].as_array().unwrap())
        {
            let cond = c["condition"].as_str().unwrap();
            assert!(
                !cond.contains("multi location"),
                "null column in a criterion: {cond}"
            );
            assert!(
                !(cond.contains("has ops owner") && c["terms"].as_array().unwrap().len() == 1),
                "the broad, weak poor fit is a criterion: {cond}"
            );
        }
        let share = icp["expected_pipeline_excluded"].as_f64().unwrap()
            / icp["expected_pipeline_all"].as_f64().unwrap();
        assert!(share <= cap + 1e-9, "{share} > {cap}: {exclude:?}");
        // each exclusion's prospects are worth far less than the average
        let avg = icp["value_per_prospect"].as_f64().unwrap();
        for c in icp["exclude"].as_array().unwrap() {
            assert!(
                c["value_per_prospect"].as_f64().unwrap() < 0.5 * avg,
                "{}",
                c["condition"]
            );
        }
        icp
    };
    let icp = check(None, 0.15);
    let exclude = conditions(&icp["exclude"]);
    // the broad, weak one is a finding (it wins less, and significantly),
    // which the old rule would have made the first exclusion; it is a
    // review item: working it still pays
    let findings = json(&tmp.path().join("run0.15").join("findings.json"));
    let weak = findings["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["condition"] == "has ops owner = false")
        .expect("has ops owner = false is an exclusion finding");
    let lift = weak["lift"].as_f64().unwrap();
    assert!(lift > 0.5 && lift < 0.85, "{lift}");
    assert!(
        conditions(&icp["review"])
            .iter()
            .any(|c| c == "has ops owner = false"),
        "{}",
        icp["review"]
    );
    for want in ["tech stack = Custom", "industry = Government"] {
        assert!(
            exclude.iter().any(|c| c == want),
            "{want} not excluded: {exclude:?}"
        );
    }
    // a tighter cap holds some back, and the brief says so on its first screen
    let tight = check(Some("[icp]\nmax_excluded_value = 0.03\n"), 0.03);
    assert!(
        !tight["held_by_cap"].as_array().unwrap().is_empty(),
        "{}",
        tight["held_by_cap"]
    );
    let brief = std::fs::read_to_string(tmp.path().join("run0.03").join("brief.md")).unwrap();
    let first_screen = &brief[..brief.find("## What to do").unwrap()];
    assert!(
        first_screen.contains("asks to exclude more than the 3.0% cap"),
        "{first_screen}"
    );
}
