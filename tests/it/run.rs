//! `icp run` end to end, and the model's quality on generated data.

use std::path::Path;

use crate::common::{fixture, generated, icp, json, read_csv, root, stderr, stdout, strings, tree};

/// `icp run` into `out`; active model and events log go beside it, never
/// into the repository's reports/.
fn run_to(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let reports = out.parent().unwrap().join("reports");
    let mut args = vec![
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    icp(&args, &root())
}

#[test]
fn run_writes_a_complete_consistent_run_directory() {
    let (data, truth) = generated(4000, 11);
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let o = run_to(&data, &out, &["--truth", truth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "rows read",
        "holdout quality: AUC",
        "oracle",
        "verdict:",
        "accounts:",
        "outputs:",
    ] {
        assert!(text.contains(needle), "summary lacks {needle}: {text}");
    }
    let files: Vec<String> = tree(&out).into_iter().map(|f| f.0).collect();
    for f in [
        "scores.csv",
        "model.json",
        "evaluation.json",
        "rejects.csv",
        "manifest.json",
        "segments/score_gte_30.csv",
        "segments/score_gte_90.csv",
    ] {
        assert!(files.contains(&f.to_string()), "missing {f}: {files:?}");
    }
    assert!(
        !tmp.path()
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".tmp")),
        "no temporary left behind"
    );

    // manifest: every file with its sha256 and row count
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let listed = m["files"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        files.len() - 1,
        "every file but the manifest is listed"
    );
    for f in listed {
        let p = out.join(f["path"].as_str().unwrap());
        let bytes = std::fs::read(&p).unwrap();
        use sha2::Digest;
        let sha = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert_eq!(f["sha256"].as_str().unwrap(), sha, "{p:?}");
    }
    // every input row used or rejected
    let rejects = read_csv(&out.join("rejects.csv"));
    for i in m["inputs"].as_array().unwrap() {
        let (rows, used, rej) = (
            i["rows"].as_u64().unwrap(),
            i["used"].as_u64().unwrap(),
            i["rejected"].as_u64().unwrap(),
        );
        assert_eq!(rows, used + rej);
        let listed = strings(&rejects, "file")
            .iter()
            .zip(strings(&rejects, "reason"))
            .filter(|(f, r)| {
                *f == i["file"].as_str().unwrap() && !r.starts_with(icp::io::load::NOTE_PREFIX)
            })
            .count() as u64;
        assert_eq!(listed, rej);
    }

    // scores: one per valid account, segment files exactly the accounts at or above
    let scores = read_csv(&out.join("scores.csv"));
    assert_eq!(
        scores.height() as u64,
        m["inputs"][0]["used"].as_u64().unwrap()
    );
    let ids = strings(&scores, "account_id");
    let sc = strings(&scores, "score");
    // the contract's thresholds, written out (not the library's table)
    for t in [30u8, 40, 50, 60, 70, 80, 90] {
        let seg = read_csv(&out.join(format!("segments/score_gte_{t}.csv")));
        let mut want: Vec<(i64, String)> = ids
            .iter()
            .zip(&sc)
            .filter(|(_, s)| !s.is_empty() && s.parse::<u8>().unwrap() >= t)
            .map(|(i, s)| (-(s.parse::<i64>().unwrap()), i.clone()))
            .collect();
        want.sort();
        let want: Vec<String> = want.into_iter().map(|x| x.1).collect();
        assert_eq!(strings(&seg, "account_id"), want, "threshold {t}");
    }
    // bands follow the score: the contract's cuts, 70 and 40, by hand
    for (s, b) in sc.iter().zip(strings(&scores, "band")) {
        let want = match s.parse::<u8>() {
            Err(_) => "unscored",
            Ok(70..) => "high",
            Ok(40..) => "medium",
            Ok(_) => "low",
        };
        assert_eq!(b, want, "score {s}");
    }
    // reasons in plain words for scored accounts
    let reasons = strings(&scores, "reasons");
    assert!(reasons[0].split("; ").count() == 3, "{}", reasons[0]);
    assert!(
        strings(&scores, "status")
            .iter()
            .any(|s| s.starts_with("insufficient_data")),
        "mostly-missing accounts are flagged"
    );
}

#[test]
fn two_runs_with_the_same_inputs_are_byte_identical() {
    let (data, _) = generated(4000, 11);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(run_to(&data, &a, &["--quiet"]).status.success());
    assert!(run_to(&data, &b, &["--quiet"]).status.success());
    let (ta, tb) = (tree(&a), tree(&b));
    assert_eq!(ta.len(), tb.len());
    for (x, y) in ta.iter().zip(&tb) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between runs", x.0);
    }
}

#[test]
fn run_updates_reports_latest() {
    let (data, _) = generated(4000, 11);
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let o = icp(
        &[
            "run",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let latest = reports.join("latest");
    assert!(latest.join("scores.csv").is_file());
    assert!(
        std::fs::read_link(&latest)
            .unwrap()
            .to_string_lossy()
            .starts_with("run-")
    );
}

#[test]
fn a_bad_data_path_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = run_to(&tmp.path().join("nope"), &tmp.path().join("out"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("nope") && e.contains("not a directory"), "{e}");
    assert!(!e.contains("panicked"));
    assert!(!tmp.path().join("out").exists(), "no partial outputs");
}

#[test]
fn a_missing_column_fails_naming_file_and_column() {
    let (data, _) = generated(2000, 5);
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(data.join("accounts.csv"), d.join("accounts.csv")).unwrap();
    let opp = std::fs::read_to_string(data.join("opportunities.csv")).unwrap();
    std::fs::write(
        d.join("opportunities.csv"),
        opp.replacen("outcome", "stage", 1),
    )
    .unwrap();
    let o = run_to(&d, &tmp.path().join("out"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("opportunities.csv") && e.contains("`outcome`"),
        "{e}"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn too_little_evidence_stops_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = run_to(&fixture("tiny"), &tmp.path().join("out"), &[]);
    // not ready (2), with a pilot brief and nothing to approve
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("not enough evidence"), "{e}");
    assert!(tmp.path().join("out").join("brief.md").is_file());
    assert!(!tmp.path().join("out").join("model.json").exists());
}

/// The model ranks deals of accounts it never saw nearly as well as the
/// true probabilities do, and the generator's strong industries come out on top.
#[test]
///
/// 50k accounts: the planted interaction (Healthcare at 200-2,000 employees)
/// spans two employee bands, and at 30k each band's score test came out at
/// chi2 about 14 against the threshold of 16 (measured on seed 2024); at 50k
/// it is about 20.
fn model_on_generated_data_ranks_well_and_finds_strong_industries() {
    let (data, truth) = generated(50_000, 2024);
    let cfg = icp::config::ValidConfig::default();
    let d = icp::io::load::load_dir(&data, &cfg, icp::io::load::Need::Training).unwrap();
    let t = icp::io::synth::read_truth(&truth).unwrap();
    let out = icp::stages::model::train(&d, &cfg, Some(&t)).unwrap();
    let e = &out.artifact.evaluation;
    let o = e.oracle.as_ref().unwrap();
    assert!(e.reliable, "{}", e.verdict);
    assert!(
        o.oracle_auc - o.model_auc < 0.03,
        "model {} vs oracle {}",
        o.model_auc,
        o.oracle_auc
    );
    let (um, uo) = (o.unseen_model_auc.unwrap(), o.unseen_oracle_auc.unwrap());
    assert!(uo - um < 0.03, "unseen accounts: model {um} vs oracle {uo}");

    // industries ranked by their level coefficient
    let m = &out.artifact.model;
    let mut ind: Vec<(f64, String)> = m
        .spec
        .features
        .iter()
        .zip(&m.coefficients)
        .filter_map(|(f, w)| match f {
            icp::stages::features::Feature::Level { var, level }
                if m.spec.variables[*var].column() == "industry" =>
            {
                Some((*w, level.clone()))
            }
            _ => None,
        })
        .collect();
    ind.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top: Vec<&str> = ind.iter().take(2).map(|x| x.1.as_str()).collect();
    assert!(
        top.contains(&"Logistics") && top.contains(&"Software"),
        "{ind:?}"
    );
    let bottom: Vec<&str> = ind.iter().rev().take(2).map(|x| x.1.as_str()).collect();
    assert!(
        bottom.contains(&"Government") && bottom.contains(&"Retail"),
        "{ind:?}"
    );
    // the planted interaction is found
    assert!(
        m.spec
            .interactions
            .iter()
            .any(|it| m.spec.describe_cell(&it.a).contains("Healthcare")
                && m.spec.describe_cell(&it.b).contains("employees")),
        "{:?}",
        m.spec
            .interactions
            .iter()
            .map(|it| (m.spec.describe_cell(&it.a), m.spec.describe_cell(&it.b)))
            .collect::<Vec<_>>()
    );
    // and so is the planted category x category one (public companies in
    // Germany), a pair of two levels that neither main effect can carry
    let described: Vec<(String, String)> = m
        .spec
        .interactions
        .iter()
        .map(|it| (m.spec.describe_cell(&it.a), m.spec.describe_cell(&it.b)))
        .collect();
    assert!(
        described
            .iter()
            .any(|(a, b)| a == "country = Germany" && b == "ownership = public"),
        "{described:?}"
    );
    // negative control: no other country and no other ownership takes part
    // in an interaction (a complement such as Germany x private may: the
    // screen tests every cell against the main effects alone)
    let planted_cell = |c: &str| c == "country = Germany" || c == "ownership = public";
    let null_cell = |c: &str| {
        (c.starts_with("country = ") || c.starts_with("ownership = ")) && !planted_cell(c)
    };
    let nulls: Vec<_> = described
        .iter()
        .filter(|(a, b)| (null_cell(a) && !planted_cell(b)) || (null_cell(b) && !planted_cell(a)))
        .collect();
    assert!(nulls.is_empty(), "{nulls:?}");
}

/// The public Maven CRM demo: the mapping works and the pipeline says there
/// is no reliable signal. Skipped when the folder is absent.
#[test]
fn maven_crm_export_maps_and_reports_no_reliable_signal() {
    let maven = root().join("../shared/datasets/maven-crm");
    if !maven.is_dir() {
        // straight to stderr: the test harness hides eprintln! of a passing
        // test, and a reader of the output must see that it was skipped
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED maven_crm_export_maps_and_reports_no_reliable_signal: {} is absent",
            maven.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("maven");
    let o = run_to(&maven, &out, &["--config", "data/examples/maven-crm.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("no reliable signal"), "{text}");
    let rejects = read_csv(&out.join("rejects.csv"));
    // 1,425 open deals have no account and 500 prospecting rows no date: all listed
    assert!(rejects.height() >= 1425, "{}", rejects.height());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["inputs"][1]["rows"].as_u64(), Some(8800));
    assert_eq!(m["inputs"][0]["used"].as_u64(), Some(85));
    // the brief says NOT READY and claims no signal the data cannot support
    let f: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("findings.json")).unwrap()).unwrap();
    assert_eq!(f["readiness"]["ready"], false);
    assert_eq!(f["signals"].as_array().map(|a| a.len()), Some(0));
    assert!(!out.join("exclusion_matches.parquet").exists());
    let brief = std::fs::read_to_string(out.join("brief.md")).unwrap();
    assert!(brief.contains("NOT READY") && brief.contains("No best-fit signal"));
}

/// A lead-cohort export: one lead per account, created through 2024; a
/// lead that converts is won 5-24 days after it was created, the rest are
/// marked lost by a rule 150 days after; exported on 2025-05-15, so the
/// newest unconverted leads are still open. Returns the data directory and
/// per deal (created, closed or None, won).
fn lead_cohort(dir: &Path) -> Vec<(chrono::NaiveDate, Option<chrono::NaiveDate>, bool)> {
    use chrono::{Duration, NaiveDate};
    std::fs::create_dir_all(dir).unwrap();
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let export = NaiveDate::from_ymd_opt(2025, 5, 15).unwrap();
    let mut acc = String::from(
        "account_id,account_name,domain,industry,country,employees,annual_revenue,founded_year,ownership\n",
    );
    let mut opp = String::from(
        "opportunity_id,account_id,created_date,closed_date,outcome,amount,loss_reason,product,source,owner\n",
    );
    let mut deals = Vec::new();
    let mut state: u64 = 12345;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = 1500;
    for i in 0..n {
        let (industry, p) = [("Alpha", 0.55), ("Beta", 0.25), ("Gamma", 0.08)][i % 3];
        let employees = 20 + (i * 37) % 900;
        acc.push_str(&format!(
            "L{i:05},Lead {i},lead{i}.com,{industry},Germany,{employees},{},2010,private\n",
            employees * 100_000
        ));
        let created = start + Duration::days((i * 366 / n) as i64);
        let won = uniform() < p;
        let closed = if won {
            created + Duration::days(5 + (uniform() * 20.0) as i64)
        } else {
            created + Duration::days(150)
        };
        let closed = (closed <= export).then_some(closed);
        let outcome = match (closed, won) {
            (None, _) => "open",
            (Some(_), true) => "won",
            (Some(_), false) => "lost",
        };
        opp.push_str(&format!(
            "O{i:05},L{i:05},{created},{},{outcome},1000,,Core,inbound,rep_01\n",
            closed.map(|d| d.to_string()).unwrap_or_default()
        ));
        deals.push((created, closed, won));
    }
    std::fs::write(dir.join("accounts.csv"), acc).unwrap();
    std::fs::write(dir.join("opportunities.csv"), opp).unwrap();
    deals
}

/// Lead-cohort data: the close-date holdout holds only rule-made losses and
/// the run stops naming `holdout_by`; with `holdout_by = "created_date"` the
/// newest creation cohort is held out with both classes, no deal created in
/// it is trained on, and the still-open recent leads are counted as left out.
#[test]
fn lead_cohort_data_is_evaluated_on_its_newest_creation_cohort() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("leads");
    let deals = lead_cohort(&data);

    let o = run_to(&data, &tmp.path().join("by-close"), &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("has 0 velocity wins"), "{e}");
    assert!(e.contains("holdout_by = \"created_date\""), "{e}");

    let config = tmp.path().join("leads.toml");
    std::fs::write(&config, "[model]\nholdout_by = \"created_date\"\n").unwrap();
    let out = tmp.path().join("by-created");
    let o = run_to(&data, &out, &["--config", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    let e = &m["evaluation"];
    assert_eq!(e["holdout_by"], "created_date");
    let from: chrono::NaiveDate = e["holdout_from"].as_str().unwrap().parse().unwrap();
    let to: chrono::NaiveDate = e["holdout_to"].as_str().unwrap().parse().unwrap();
    // a cohort is judged once its deals had time to close: losses close 150
    // days after creation, the export is 2025-05-15, so the holdout ends
    // around 2024-12-16 (the 95th percentile of the time to close is 150)
    assert_eq!(to, chrono::NaiveDate::from_ymd_opt(2024, 12, 16).unwrap());
    // counted by hand from the fixture around the dates the run chose
    let closed: Vec<_> = deals.iter().filter(|d| d.1.is_some()).collect();
    let train = closed.iter().filter(|d| d.0 < from).count();
    let held = closed.iter().filter(|d| d.0 >= from && d.0 <= to).count();
    let recent = closed.iter().filter(|d| d.0 > to).count();
    let open_recent = deals
        .iter()
        .filter(|d| d.1.is_none() && d.0 >= from)
        .count();
    assert_eq!(e["train_deals"].as_u64(), Some(train as u64));
    assert_eq!(e["holdout_deals"].as_u64(), Some(held as u64));
    assert_eq!(e["holdout_left_recent"].as_u64(), Some(recent as u64));
    assert_eq!(e["holdout_left_open"].as_u64(), Some(open_recent as u64));
    assert!(
        open_recent > 0 && recent > 0,
        "the fixture has recent leads"
    );
    // the newest fifth of the settled closed deals by creation, both classes
    let share = held as f64 / (train + held) as f64;
    assert!((0.19..0.23).contains(&share), "{share}");
    // and its velocity-win rate is the training part's, not inflated by
    // recent fast wins whose cohort's losses have not closed yet
    let rate = |won: usize, n: usize| won as f64 / n as f64;
    let won_in = |lo: chrono::NaiveDate, hi: chrono::NaiveDate| {
        closed
            .iter()
            .filter(|d| d.0 >= lo && d.0 <= hi && d.2)
            .count()
    };
    let (held_won, train_won) = (
        won_in(from, to),
        won_in(chrono::NaiveDate::MIN, from.pred_opt().unwrap()),
    );
    assert!(
        (rate(held_won, held) - rate(train_won, train)).abs() < 0.08,
        "held-out win rate {} vs training {}",
        rate(held_won, held),
        rate(train_won, train)
    );
    let wins = e["holdout_velocity_wins"].as_u64().unwrap();
    assert!(wins >= 10 && held as u64 - wins >= 10, "{wins} of {held}");
    let text = stdout(&o);
    assert!(
        text.contains(&format!("deals created from {from} to {to}"))
            && text.contains("too recent to have closed"),
        "{text}"
    );
}

/// At the seed workflow's pilot size (the sample cut to its last 50 won and
/// 50 lost deals) there is no model, but there is a brief: NOT READY, best
/// customers beside poor fits and recent losses on every account column,
/// no criterion, and exit status 2.
#[test]
fn a_pilot_size_crm_gets_a_not_ready_brief_and_exit_status_2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("pilot");
    std::fs::create_dir_all(&data).unwrap();
    let sample = root().join("data/sample");
    std::fs::copy(sample.join("accounts.csv"), data.join("accounts.csv")).unwrap();
    let text = std::fs::read_to_string(sample.join("opportunities.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // columns: opportunity_id, account_id, created, closed, outcome, ...
    let last = |want: &[&str]| {
        let mut v: Vec<&Vec<&str>> = rows.iter().filter(|r| want.contains(&r[4])).collect();
        v.sort_by(|a, b| (a[3], a[0]).cmp(&(b[3], b[0])));
        v[v.len() - 50..].to_vec()
    };
    let mut out = vec![header.to_string()];
    for r in last(&["won", "churned"]).into_iter().chain(last(&["lost"])) {
        out.push(r.join(","));
    }
    std::fs::write(data.join("opportunities.csv"), out.join("\n") + "\n").unwrap();
    let run = tmp.path().join("run");
    let reports = tmp.path().join("reports");
    let o = icp(
        &[
            "run",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stdout(&o).contains("icp run: NOT READY"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("not enough evidence to train"),
        "{}",
        stderr(&o)
    );
    let brief = std::fs::read_to_string(run.join("brief.md")).unwrap();
    assert!(brief.contains("NOT READY"), "{brief}");
    assert!(brief.contains("do not change targeting from one or two anecdotes"));
    assert!(
        brief.contains("The data holds 50 won and 50 lost deals"),
        "{brief}"
    );
    for column in [
        "industry",
        "country",
        "employees",
        "annual_revenue",
        "ownership",
    ] {
        assert!(
            brief.contains(&format!("| {column} |")),
            "{column} not compared"
        );
    }
    assert!(run.join("brief.html").is_file());
    // nothing to approve or publish: no model, no criterion, no latest
    assert!(!run.join("model.json").exists());
    assert!(!run.join("icp.json").exists());
    assert!(!reports.join("latest").exists());
    let pilot = json(&run.join("pilot.json"));
    assert_eq!(pilot["won_deals"], 50);
    assert_eq!(pilot["lost_deals"], 50);
    assert!(!pilot["best"].as_array().unwrap().is_empty());
    assert!(!pilot["recent_lost"].as_array().unwrap().is_empty());
}
