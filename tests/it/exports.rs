//! The shipped Salesforce and HubSpot mappings on exports shaped the way
//! users download them (`tests/fixtures/exports/`, written by
//! `tests/fixtures/make_export_fixtures.py`): report footers, formatted
//! currency, thousands separators, blanks, renamed stages, rep names, and
//! "all properties" columns that the sale itself writes. Each answer is
//! checked against the raw files, read here independently of the loader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use polars::prelude::*;

use crate::common::{icp, json, read_csv, root, stderr, stdout, strings};

fn exports(name: &str) -> PathBuf {
    root().join("tests/fixtures/exports").join(name)
}

/// A CSV read as text with the report footer (an empty quoted line and
/// what follows) cut off by hand.
fn raw_csv(path: &Path) -> DataFrame {
    let text = std::fs::read_to_string(path).expect("read");
    let body = text.split("\n\"\"\n").next().expect("body");
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(std::io::Cursor::new(body.as_bytes().to_vec()))
        .finish()
        .expect("parse")
}

struct Run {
    dir: PathBuf,
    printed: String,
}

/// `icp run --config C --data D --out O` (no `--reports`: a run that must
/// stop before writing anything), its output.
fn run_stopping(config: &Path, data: &Path, out: &Path) -> std::process::Output {
    icp(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    )
}

/// `icp run` with a shipped (or fixture) mapping on an export folder.
fn run(config: &Path, data: &Path, extra: &[&str]) -> Run {
    let base = tempfile::tempdir().expect("tempdir").keep();
    let dir = base.join("run");
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--reports",
        base.join("reports").to_str().unwrap().to_string().leak(),
    ];
    args.extend_from_slice(extra);
    let o = icp(&args, &root());
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    Run {
        dir,
        printed: stdout(&o),
    }
}

fn salesforce() -> &'static Run {
    static R: OnceLock<Run> = OnceLock::new();
    R.get_or_init(|| {
        run(
            &root().join("data/examples/salesforce.toml"),
            &exports("salesforce"),
            &[],
        )
    })
}

fn hubspot() -> &'static Run {
    static R: OnceLock<Run> = OnceLock::new();
    R.get_or_init(|| {
        run(
            &root().join("data/examples/hubspot.toml"),
            &exports("hubspot"),
            &[],
        )
    })
}

/// The account columns the model reads (model.json), by their CRM names.
fn features(run: &Run) -> Vec<String> {
    json(&run.dir.join("model.json"))["model"]["spec"]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| v["column"].as_str().unwrap().to_string())
        .collect()
}

/// Every column a criterion, signal or exclusion of the run names.
fn finding_columns(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    for (file, keys) in [
        ("icp.json", &["include", "exclude"][..]),
        ("signals.json", &["signals"][..]),
        ("exclusions.json", &["exclusions"][..]),
    ] {
        let v = json(&run.dir.join(file));
        for k in keys {
            for f in v[*k].as_array().into_iter().flatten() {
                for t in f["terms"].as_array().into_iter().flatten() {
                    out.push(t["column"].as_str().unwrap_or("").to_string());
                }
            }
        }
    }
    out
}

/// The reason model.json gives for a column it does not use.
fn skipped_reason(run: &Run, column: &str) -> Option<String> {
    json(&run.dir.join("model.json"))["model"]["spec"]["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .find(|s| s[0] == column)
        .map(|s| s[1].as_str().unwrap().to_string())
}

#[test]
fn a_salesforce_report_export_reads_right_with_the_shipped_mapping() {
    let r = salesforce();
    let p = &r.printed;
    // footers are skipped, not rows read or rejected
    assert!(
        p.contains("900 rows read,        900 used,        0 rejected  (accounts_report.csv)"),
        "{p}"
    );
    assert!(
        p.contains("accounts_report.csv: 6 report footer lines after the data skipped"),
        "{p}"
    );
    assert!(
        p.contains("opportunities_report.csv: 6 report footer lines"),
        "{p}"
    );
    // renamed stages: named with their counts and the lines that map them
    let raw_opps = raw_csv(&exports("salesforce/opportunities_report.csv"));
    let stages = strings(&raw_opps, "Stage");
    let count = |s: &str| stages.iter().filter(|x| *x == s).count();
    for (stage, outcome) in [
        ("Closed Won - Expansion", "won"),
        ("Closed Lost - No Decision", "lost"),
        ("Discovery", "open"),
    ] {
        let line = format!("\"{stage}\" = \"{outcome}\"   # {} deals", count(stage));
        assert!(p.contains(&line), "{line} not in:\n{p}");
    }
    // formatted currency and thousands: every readable cell read, the
    // unreadable ones missing and noted, no row dropped
    let raw_acc = raw_csv(&exports("salesforce/accounts_report.csv"));
    let scores = read_csv(&r.dir.join("scores.csv"));
    assert_eq!(scores.height(), raw_acc.height(), "every account scored");
    let rejects = read_csv(&r.dir.join("rejects.csv"));
    let (rc, rv, rr) = (
        strings(&rejects, "column"),
        strings(&rejects, "value"),
        strings(&rejects, "reason"),
    );
    let noted: Vec<&String> = (0..rejects.height())
        .filter(|&i| rc[i] == "annual_revenue")
        .map(|i| &rv[i])
        .collect();
    // the cells not written as Salesforce formats currency ("n/a",
    // "see notes", "approx 5M")
    let mut want: Vec<String> = strings(&raw_acc, "Annual Revenue")
        .into_iter()
        .filter(|v| !(v.is_empty() || v.starts_with("USD ") || v.starts_with('$')))
        .collect();
    want.sort();
    let mut got: Vec<String> = noted.iter().map(|s| s.to_string()).collect();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want, "unreadable revenue cells noted");
    assert!(
        (0..rejects.height())
            .filter(|&i| rc[i] == "annual_revenue" || rc[i] == "amount")
            .all(|i| rr[i].starts_with(icp::io::load::NOTE_PREFIX)),
        "a bad number is a cell note, never a rejected row"
    );
    assert!(
        p.contains("cells of `annual_revenue` read as missing"),
        "{p}"
    );
    // no deal is rejected for its account or its amount: only the renamed stages
    let rejected_deals = (0..rejects.height())
        .filter(|&i| {
            strings(&rejects, "file")[i] == "opportunities_report.csv"
                && !rr[i].starts_with(icp::io::load::NOTE_PREFIX)
        })
        .count();
    assert_eq!(
        rejected_deals,
        count("Closed Won - Expansion") + count("Closed Lost - No Decision") + count("Discovery")
    );
    // the brief says what was left out, for a leader weighing the findings
    let brief = std::fs::read_to_string(r.dir.join("brief.md")).unwrap();
    let unmapped =
        count("Closed Won - Expansion") + count("Closed Lost - No Decision") + count("Discovery");
    assert!(
        brief.contains(&format!(
            "{unmapped} deals whose stage the config does not map"
        )),
        "{brief}"
    );
    assert!(
        brief.contains(&format!("annual_revenue: {}", want.len())),
        "{brief}"
    );
    // the as-of date: the newest created or close date of a closed deal
    // (an open deal's Close Date is its expected close), by hand
    let us = |d: &str| {
        let v: Vec<u32> = d.split('/').map(|x| x.parse().unwrap()).collect();
        format!("{:04}-{:02}-{:02}", v[2], v[0], v[1])
    };
    let (created, closed) = (
        strings(&raw_opps, "Created Date"),
        strings(&raw_opps, "Close Date"),
    );
    let mut newest = String::new();
    for i in 0..raw_opps.height() {
        if stages[i] == "Closed Won" || stages[i] == "Closed Lost" {
            newest = newest.max(us(&closed[i]));
        }
        if ["Closed Won", "Closed Lost"].contains(&stages[i].as_str())
            || !stages[i].starts_with("Closed") && !["Discovery"].contains(&stages[i].as_str())
        {
            newest = newest.max(us(&created[i]));
        }
    }
    assert!(newest.as_str() <= "2026-11-20", "{newest}");
    assert!(
        p.contains(&format!("data as of {newest} ")),
        "{newest}\n{p}"
    );
    let findings = json(&r.dir.join("findings.json"));
    assert_eq!(findings["as_of"], newest.as_str());
}

#[test]
fn no_outcome_or_people_column_reaches_the_model_or_the_icp() {
    for r in [salesforce(), hubspot()] {
        let used = features(r);
        let named = finding_columns(r);
        for c in [
            // set by the sale
            "Type",
            "Customer Priority",
            "Active",
            "Lifecycle Stage",
            "Lead Status",
            "Total Revenue",
            "Number of Associated Deals",
            "Days to Close",
            "Became a Customer Date",
            "First Deal Created Date",
            "Recent Deal Amount",
            "Recent Deal Close Date",
            "Onboarding Status",
            // people and records
            "Account Owner",
            "Company owner",
            "Phone",
            "Phone Number",
            "Billing City",
            "City",
            "Billing Zip/Postal Code",
            "Postal Code",
            "Time Zone",
            "Last Activity",
            "Last Activity Date",
            "Last Modified Date",
            "Created Date",
            "Create Date",
        ] {
            assert!(!used.contains(&c.to_string()), "{c} is a feature: {used:?}");
            assert!(!named.contains(&c.to_string()), "{c} is in a finding");
        }
        // negative control: a strong honest column is kept
        assert!(used.contains(&"Uses ERP".to_string()), "{used:?}");
        assert!(r.printed.contains("features: "), "{}", r.printed);
    }
    // the custom property no mapping lists is caught by what it holds,
    // and the reason is printed and kept in model.json
    let why = skipped_reason(hubspot(), "Onboarding Status").expect("listed as skipped");
    assert!(why.starts_with("set by the sale"), "{why}");
    assert!(
        hubspot()
            .printed
            .contains(&format!("  Onboarding Status: {why}")),
        "{}",
        hubspot().printed
    );
    // the brief's model section names it too
    let brief = std::fs::read_to_string(hubspot().dir.join("brief.md")).unwrap();
    assert!(brief.contains("Onboarding Status"), "not in brief.md");
}

/// Spearman correlation of two equally long samples (average ranks for ties).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                r[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Score against the planted truth, over every account.
fn truth_correlation(r: &Run, truth: &str) -> f64 {
    let t = read_csv(&exports(truth));
    let p: HashMap<String, f64> = strings(&t, "account_id")
        .into_iter()
        .zip(strings(&t, "p_velocity_win_true"))
        .map(|(a, p)| (a, p.parse().unwrap()))
        .collect();
    let s = read_csv(&r.dir.join("scores.csv"));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (id, score) in strings(&s, "account_id").iter().zip(strings(&s, "score")) {
        if let (Some(pt), Ok(sc)) = (p.get(id), score.parse::<f64>()) {
            a.push(sc);
            b.push(*pt);
        }
    }
    spearman(&a, &b)
}

/// What the guard is for: with the leaked properties let in (`allow`),
/// the printed holdout AUC rises while the ranking of accounts against the
/// planted truth falls; with the guard, the ranking holds.
#[test]
fn the_guard_keeps_the_ranking_that_leaked_columns_would_ruin() {
    let guarded = hubspot();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("leaky.toml");
    let shipped = std::fs::read_to_string(root().join("data/examples/hubspot.toml")).unwrap();
    // the same mapping with its [features] section replaced: everything allowed
    let head = shipped.split("[features]").next().unwrap();
    let tail = shipped.split("[crm_import]").nth(1).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{head}[features]\nallow = [\"Lifecycle Stage\", \"Lead Status\", \"Type\", \"Total Revenue\", \"Number of Associated Deals\", \"Days to Close\", \"Recent Deal Amount\", \"Onboarding Status\"]\n\n[crm_import]{tail}"
        ),
    )
    .unwrap();
    let leaky = run(&cfg, &exports("hubspot"), &[]);
    assert!(features(&leaky).contains(&"Lifecycle Stage".to_string()));
    let auc = |r: &Run| {
        json(&r.dir.join("model.json"))["evaluation"]["auc"]
            .as_f64()
            .unwrap()
    };
    let (g, l) = (
        truth_correlation(guarded, "truth_hubspot.csv"),
        truth_correlation(&leaky, "truth_hubspot.csv"),
    );
    assert!(
        auc(&leaky) > auc(guarded),
        "leaky {} guarded {}",
        auc(&leaky),
        auc(guarded)
    );
    assert!(g > l + 0.1, "guarded {g:.3}, leaky {l:.3}");
    assert!(g > 0.4, "guarded {g:.3}");
}

#[test]
fn a_german_locale_export_reads_with_its_decimal_setting_or_stops_with_the_hint() {
    // with the shipped mapping (decimal point), the amounts do not read:
    // the run stops and names the line that reads them
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("de-dates.toml");
    let de = std::fs::read_to_string(exports("salesforce_de.toml")).unwrap();
    std::fs::write(&cfg, de.replace("decimal = \",\"", "")).unwrap();
    let o = icp(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--data",
            exports("salesforce_de").to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
            "--reports",
            tmp.path().join("r").to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.to_lowercase().contains("add decimal = \",\""), "{e}");
    assert!(!tmp.path().join("o").exists(), "nothing written");
    // with `[files] decimal = ","` every account is read as in the US export
    let de = run(
        &exports("salesforce_de.toml"),
        &exports("salesforce_de"),
        &[],
    );
    let us = salesforce();
    for f in ["scores.csv", "rejects.csv"] {
        let (a, b) = (read_csv(&de.dir.join(f)), read_csv(&us.dir.join(f)));
        assert_eq!(a.height(), b.height(), "{f}");
    }
    let (a, b) = (
        read_csv(&de.dir.join("scores.csv")),
        read_csv(&us.dir.join("scores.csv")),
    );
    assert_eq!(
        strings(&a, "score"),
        strings(&b, "score"),
        "the same scores"
    );
}

#[test]
fn a_mapping_for_another_crm_names_the_one_that_fits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = run_stopping(
        &root().join("data/examples/hubspot.toml"),
        &exports("salesforce"),
        &tmp.path().join("o"),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("--config data/examples/salesforce.toml"), "{e}");
    // without a config at all, the same hint
    let o = icp(
        &[
            "validate",
            "--data",
            exports("hubspot").to_str().unwrap(),
            "--out",
            tmp.path().join("v").to_str().unwrap(),
        ],
        &root(),
    );
    assert!(
        stderr(&o).contains("--config data/examples/hubspot.toml"),
        "{}",
        stderr(&o)
    );
}

/// A copy of the HubSpot export in `base/name` with its deals file edited.
fn hubspot_with_deals(base: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let d = base.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let src = exports("hubspot");
    std::fs::copy(src.join("companies.csv"), d.join("companies.csv")).unwrap();
    let deals = std::fs::read_to_string(src.join("deals.csv")).unwrap();
    std::fs::write(d.join("deals.csv"), edit(&deals)).unwrap();
    d
}

#[test]
fn a_stop_suggests_validate_with_the_users_own_config() {
    // two closed deals: too little to train
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = hubspot_with_deals(tmp.path(), "few", |deals| {
        deals.lines().take(6).collect::<Vec<_>>().join("\n") + "\n"
    });
    let cfg = root().join("data/examples/hubspot.toml");
    let o = run_stopping(&cfg, &d, &tmp.path().join("o"));
    // not ready: a pilot brief, exit status 2
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let suggested = format!(
        "icp validate --data {} --config {}",
        d.display(),
        cfg.display()
    );
    assert!(e.contains(&suggested), "{e}");
    // and that command, run as printed, says NOT ready with its own exit code
    let o = icp(
        &[
            "validate",
            "--data",
            d.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            tmp.path().join("v").to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(
        o.status.code(),
        Some(icp::cmd::EXIT_NOT_READY as i32),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("ready to train: NO"));
}

#[test]
fn many_deals_with_unmapped_stages_stop_the_run_with_the_lines_to_add() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // every "Closed Lost" renamed, as an org that customised its pipeline
    let n = std::fs::read_to_string(exports("hubspot/deals.csv"))
        .unwrap()
        .matches(",Closed Lost,")
        .count();
    assert!(n > 100);
    let d = hubspot_with_deals(tmp.path(), "renamed", |deals| {
        deals.replace(",Closed Lost,", ",Closed Lost - Budget,")
    });
    let o = run_stopping(
        &root().join("data/examples/hubspot.toml"),
        &d,
        &tmp.path().join("o"),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("more than 5%"), "{e}");
    assert!(
        e.contains(&format!(
            "\"Closed Lost - Budget\" = \"lost\"   # {n} deals"
        )),
        "{e}"
    );
}

#[test]
fn a_bad_source_date_epoch_is_an_error_not_today() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = crate::common::icp_command(
        &[
            "run",
            "--quiet",
            "--reports",
            tmp.path().join("r").to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ],
        &root(),
    )
    .env("SOURCE_DATE_EPOCH", "yesterday")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("SOURCE_DATE_EPOCH"), "{}", stderr(&o));
}

/// Every leaf and member of a JSON value, as paths of keys and indices.
fn paths(
    v: &serde_json::Value,
    at: &mut Vec<serde_json::Value>,
    out: &mut Vec<Vec<serde_json::Value>>,
) {
    out.push(at.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                at.push(serde_json::Value::String(k.clone()));
                paths(x, at, out);
                at.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(serde_json::Value::from(i));
                paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Apply mutation `kind` at `path`: remove it, or put another value there.
fn mutate(v: &mut serde_json::Value, path: &[serde_json::Value], kind: usize) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut p = v;
    for k in parent {
        p = match k {
            serde_json::Value::String(s) => &mut p[s.as_str()],
            k => &mut p[k.as_u64().unwrap() as usize],
        };
    }
    let replacement = match kind {
        0 => None,
        1 => Some(serde_json::json!(99)),
        2 => Some(serde_json::json!(-1)),
        3 => Some(serde_json::json!(1e300)),
        4 => Some(serde_json::Value::Null),
        5 => Some(serde_json::json!("x")),
        6 => Some(serde_json::json!([])),
        _ => Some(serde_json::json!(0)),
    };
    match (p, last, replacement) {
        (serde_json::Value::Object(m), serde_json::Value::String(k), None) => {
            m.remove(k);
        }
        (serde_json::Value::Array(a), k, None) => {
            a.remove(k.as_u64().unwrap() as usize);
        }
        (serde_json::Value::Object(m), serde_json::Value::String(k), Some(r)) => {
            m.insert(k.clone(), r);
        }
        (serde_json::Value::Array(a), k, Some(r)) => {
            a[k.as_u64().unwrap() as usize] = r;
        }
        _ => {}
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 96, failure_persistence: None, ..Default::default() })]

    /// A hand-edited, damaged or version-skewed model.json is a clear
    /// error naming the artifact, never a panic: neither on read nor when
    /// what was read scores accounts.
    #[test]
    fn any_model_json_mutation_is_an_error_or_scores_never_a_panic(pick in 0usize..1_000_000, kind in 0usize..8) {
        let r = salesforce();
        let text = std::fs::read_to_string(r.dir.join("model.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        let path = all[pick % all.len()].clone();
        mutate(&mut v, &path, kind);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.json");
        std::fs::write(&file, serde_json::to_string(&v).unwrap()).unwrap();
        static ACCOUNTS: OnceLock<DataFrame> = OnceLock::new();
        let accounts = ACCOUNTS.get_or_init(|| {
            let a = icp::stages::model::ModelArtifact::read(&r.dir.join("model.json")).unwrap();
            icp::io::load::load_dir_with(
                &exports("salesforce"),
                &a.config,
                icp::io::load::Need::ScoringOnly,
                Some(&a.extra_column_kinds),
            )
            .unwrap()
            .accounts
            .df
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match icp::stages::model::ModelArtifact::read(&file) {
                Ok(a) => icp::stages::score::score_by_row(&a, accounts).map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.contains("model.json"), "the error names the file: {m}");
                    Err(m)
                }
            }
        }));
        proptest::prop_assert!(outcome.is_ok(), "panicked with {path:?} mutated by {kind}");
    }
}

/// The guard by itself: the Salesforce export through its mapping with the
/// `[features]` exclusions taken out. The outcome fields and the people
/// and record columns are still kept out, each by what it holds.
#[test]
fn without_the_mappings_exclusions_the_guard_still_keeps_them_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("no-exclude.toml");
    let shipped = std::fs::read_to_string(root().join("data/examples/salesforce.toml")).unwrap();
    let head = shipped.split("[features]").next().unwrap();
    let tail = shipped.split("[crm_import]").nth(1).unwrap();
    std::fs::write(&cfg, format!("{head}[crm_import]{tail}")).unwrap();
    let r = run(&cfg, &exports("salesforce"), &[]);
    let used = features(&r);
    for c in [
        "Type",
        "Customer Priority",
        "Active",
        "Account Owner",
        "Phone",
        "Billing City",
        "Billing Zip/Postal Code",
        "Last Activity",
        "Last Modified Date",
        "Created Date",
    ] {
        assert!(!used.contains(&c.to_string()), "{c} is a feature: {used:?}");
        let why = skipped_reason(&r, c).unwrap_or_else(|| panic!("{c} not listed"));
        assert!(r.printed.contains(&format!("  {c}: {why}")), "{c}");
    }
    for c in ["Uses ERP", "Ownership", "Region Code"] {
        assert!(used.contains(&c.to_string()), "{c} dropped: {used:?}");
    }
    assert!(
        !finding_columns(&r)
            .iter()
            .any(|c| c == "Type" || c == "Account Owner")
    );
}
