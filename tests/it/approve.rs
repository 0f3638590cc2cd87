//! People decide: `icp approve`, the active-model rule for `icp score`, the
//! events log and the quarter-on-quarter comparison.

use std::path::PathBuf;

use crate::common::{
    generated, icp, json, read_csv, root, run_quiet, stderr, stdout, strings, tree,
};

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    setup_with(None)
}

/// A run of a generated CRM, with `config` as its TOML when given.
fn setup_with(config: Option<&str>) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let (data, _) = generated(12_000, 31);
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let out = tmp.path().join("q1");
    let cfg = tmp.path().join("icp.toml");
    let mut extra: Vec<&str> = Vec::new();
    if let Some(c) = config {
        std::fs::write(&cfg, c).unwrap();
        extra.extend(["--config", cfg.to_str().unwrap()]);
    }
    run_quiet(Some(&data), &out, &reports, &extra);
    (tmp, data, reports, out)
}

#[test]
fn approval_records_the_decision_publishes_kept_exclusions_and_activates_the_model() {
    // a looser exclusion rule than the default, so there are two or more
    // exclusions to decide one by one
    let (tmp, data, reports, q1) = setup_with(Some("[icp]\nmax_exclude_lift = 0.6\n"));
    let f = json(&q1.join("findings.json"));
    assert_eq!(f["readiness"]["ready"], true, "{}", f["readiness"]);
    // decisions are about the refined ICP's exclude criteria
    let ids: Vec<String> = f["icp"]["exclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 2, "{ids:?}");
    let evidence_only: Vec<String> = f["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .filter(|i| !ids.contains(i))
        .collect();

    // the daily job refuses to guess a model before anything is approved
    let sc = icp(
        &[
            "score",
            "--accounts",
            data.join("accounts.csv").to_str().unwrap(),
            "--out",
            tmp.path().join("s0").to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(sc.status.code(), Some(1));
    assert!(stderr(&sc).contains("no active model"), "{}", stderr(&sc));

    // a finding that is only supporting evidence cannot be decided on (the
    // data always has one: a check that may be skipped is not a check)
    {
        let x = evidence_only
            .first()
            .expect("an exclusion finding that is not a criterion");
        let o = icp(
            &[
                "approve",
                q1.to_str().unwrap(),
                "--by",
                "Dana Revenue",
                "--reject-exclusion",
                x,
                "--reports",
                reports.to_str().unwrap(),
            ],
            &root(),
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("supporting evidence"), "{}", stderr(&o));
        assert!(!q1.join("approval.json").exists());
    }

    // every exclude criterion is decided: none left to omission
    let o = icp(
        &[
            "approve",
            q1.to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--reject-exclusion",
            &ids[0],
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("undecided exclude criteria") && stderr(&o).contains(&ids[1]),
        "{}",
        stderr(&o)
    );
    assert!(!q1.join("approval.json").exists());

    let before = tree(&q1);
    let o = icp(
        &[
            "approve",
            q1.to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--note",
            "Q1 review",
            "--reject-exclusion",
            &ids[0],
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("approved run"), "{}", stdout(&o));

    // the run's outputs are untouched; two files were added
    let after = tree(&q1);
    for (name, bytes) in &before {
        let now = after.iter().find(|x| &x.0 == name).expect("file kept");
        assert!(&now.1 == bytes, "{name} was rewritten");
    }
    let added: Vec<&str> = after
        .iter()
        .map(|x| x.0.as_str())
        .filter(|n| !before.iter().any(|b| b.0 == *n))
        .collect();
    assert_eq!(added, vec!["approval.json", "exclusions_approved.csv"]);

    let a = json(&q1.join("approval.json"));
    assert_eq!(a["approved_by"], "Dana Revenue");
    assert_eq!(a["exclusions_rejected"][0], ids[0].as_str());
    let published = read_csv(&q1.join("exclusions_approved.csv"));
    let pub_ids = strings(&published, "exclusion_id");
    assert!(
        !pub_ids.contains(&ids[0]),
        "a rejected exclusion is not published"
    );
    let matches = crate::common::read_parquet(&q1.join("exclusion_matches.parquet"));
    let want = strings(&matches, "exclusion_id")
        .iter()
        .filter(|i| **i != ids[0] && ids.contains(i))
        .count();
    assert_eq!(
        published.height(),
        want,
        "every other criterion's matches are published, and no supporting finding's"
    );

    let active = json(&reports.join("active.json"));
    assert_eq!(active["model_id"], f["model_id"]);

    // the events log has the run and the approval, one JSON object per line
    let log = std::fs::read_to_string(reports.join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "run");
    let n = events.len();
    assert_eq!(events[n - 2]["event"], "approval");
    // and the approval published the run's scoring
    assert_eq!(events[n - 1]["event"], "publication");
    assert!(reports.join("published/manifest.json").is_file());

    // now the daily job uses the active model
    let s1 = tmp.path().join("s1");
    let sc = icp(
        &[
            "score",
            "--quiet",
            "--accounts",
            data.join("accounts.csv").to_str().unwrap(),
            "--out",
            s1.to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(sc.status.success(), "{}", stderr(&sc));
    assert_eq!(
        std::fs::read(s1.join("scores.csv")).unwrap(),
        std::fs::read(q1.join("scores.csv")).unwrap()
    );

    // a decision is not rewritten
    let again = icp(
        &[
            "approve",
            q1.to_str().unwrap(),
            "--by",
            "Someone Else",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already approved by Dana Revenue"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn unknown_exclusion_ids_are_refused() {
    let (_tmp, _data, reports, q1) = setup();
    let o = icp(
        &[
            "approve",
            q1.to_str().unwrap(),
            "--by",
            "Dana",
            "--reject-exclusion",
            "X99",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("X99"), "{}", stderr(&o));
    assert!(!q1.join("approval.json").exists());
    assert!(!reports.join("active.json").exists());
}

#[test]
fn a_later_run_is_compared_with_the_active_model() {
    let (tmp, data, reports, q1) = setup();
    let o = icp(
        &[
            "approve",
            q1.to_str().unwrap(),
            "--by",
            "Dana",
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // the same data a quarter later: nothing moves
    let q2 = tmp.path().join("q2");
    run_quiet(Some(&data), &q2, &reports, &[]);
    let c = json(&q2.join("changes.json"));
    assert_eq!(c["signals_gained"].as_array().unwrap().len(), 0);
    assert_eq!(c["signals_lost"].as_array().unwrap().len(), 0);
    for t in c["thresholds"].as_array().unwrap() {
        assert_eq!(t["entered"], 0);
        assert_eq!(t["left"], 0);
        assert_eq!(t["before"], t["after"]);
    }
    // different data: the diff counts real movements
    let (other, _) = generated(12_000, 32);
    let q3 = tmp.path().join("q3");
    run_quiet(Some(&other), &q3, &reports, &[]);
    let c = json(&q3.join("changes.json"));
    let old = read_csv(&q1.join("scores.csv"));
    let new = read_csv(&q3.join("scores.csv"));
    let at = |df: &polars::prelude::DataFrame, t: i64| -> std::collections::BTreeSet<String> {
        strings(df, "account_id")
            .into_iter()
            .zip(strings(df, "score"))
            .filter(|(_, s)| s.parse::<i64>().is_ok_and(|s| s >= t))
            .map(|x| x.0)
            .collect()
    };
    for t in c["thresholds"].as_array().unwrap() {
        let th = t["threshold"].as_i64().unwrap();
        let (b, a) = (at(&old, th), at(&new, th));
        assert_eq!(
            t["entered"].as_u64().unwrap() as usize,
            a.difference(&b).count()
        );
        assert_eq!(
            t["left"].as_u64().unwrap() as usize,
            b.difference(&a).count()
        );
    }
    let brief = std::fs::read_to_string(q3.join("brief.md")).unwrap();
    assert!(brief.contains("Changes since the active model"));
}

/// A damaged run is not published and its model is not made active: an
/// account missing from crm_status.csv would be targeted as a prospect,
/// and an unreadable model.json would publish with default settings.
#[test]
fn a_damaged_run_is_neither_published_nor_made_active() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let run = tmp.path().join("run");
    run_quiet(None, &run, &reports, &[]);
    let approve = |dir: &std::path::Path| {
        icp(
            &[
                "approve",
                dir.to_str().unwrap(),
                "--by",
                "Test",
                "--accept-all-exclusions",
                "--reports",
                reports.to_str().unwrap(),
            ],
            &root(),
        )
    };
    let copy = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (rel, bytes) in tree(&run) {
            let p = d.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        d
    };
    // one account's CRM status lost
    let lost = copy("lost-status");
    let st = std::fs::read_to_string(lost.join("crm_status.csv")).unwrap();
    let mut lines: Vec<&str> = st.lines().collect();
    let gone = lines.remove(7).split(',').next().unwrap().to_string();
    std::fs::write(lost.join("crm_status.csv"), lines.join("\n") + "\n").unwrap();
    let o = approve(&lost);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("1 of the 5,000 scored accounts have no known CRM status"),
        "{e}"
    );
    assert!(e.contains(&gone), "{e}");
    // a model.json that is not the artifact
    let broken = copy("broken-model");
    std::fs::write(broken.join("model.json"), "{\"format\": \"icp-model/1\"}").unwrap();
    let o = approve(&broken);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("model.json"), "{}", stderr(&o));
    // neither was made active, nothing was published
    assert!(!reports.join("active.json").exists());
    assert!(!reports.join("published").exists());
    // the intact run approves
    let o = approve(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(reports.join("active.json").exists());
}

/// The brief's publication preview is what `icp approve` publishes: each
/// segment file's rows and the control group, counted from the files.
#[test]
fn the_publication_preview_is_what_approval_publishes() {
    let (_tmp, _data, reports, q1) = setup();
    let f = json(&q1.join("findings.json"));
    let preview = &f["preview"];
    let kept: Vec<String> = f["icp"]["exclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!kept.is_empty(), "an exclusion to apply");
    let assumed: Vec<String> = preview["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(assumed, kept);
    // on by default: a tenth of each band withheld
    assert_eq!(preview["control_share"].as_f64(), Some(0.1));
    let o = icp(
        &[
            "approve",
            q1.to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let published = reports.join("published").join("segments");
    let rows = |name: &str| read_csv(&published.join(format!("{name}.csv"))).height();
    let segments = preview["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 10);
    for s in segments {
        let name = s["segment"].as_str().unwrap();
        assert_eq!(
            s["accounts"].as_u64(),
            Some(rows(name) as u64),
            "{name}: the brief's preview against the published file"
        );
    }
    let control = rows("control");
    assert!(control > 0);
    assert_eq!(preview["control"].as_u64(), Some(control as u64));
    // no published account matches an approved exclusion
    let matches = crate::common::read_parquet(&q1.join("exclusion_matches.parquet"));
    let excluded: std::collections::BTreeSet<String> = strings(&matches, "exclusion_id")
        .into_iter()
        .zip(strings(&matches, "account_id"))
        .filter(|(x, _)| kept.contains(x))
        .map(|(_, a)| a)
        .collect();
    assert!(!excluded.is_empty());
    let high = strings(&read_csv(&published.join("band_high.csv")), "account_id");
    assert!(high.iter().all(|a| !excluded.contains(a)));
}
