//! The Salesforce and HubSpot example mappings (`data/examples/`) on
//! fixtures in each CRM's own export shape (`tests/fixtures/`, written by
//! `tests/fixtures/make_crm_fixtures.py`): `icp run` trains on them, and
//! `icp score` writes `crm_import.csv` with the CRM's record ids and field
//! names, in a scoring directory and in the daily publication.

use std::collections::HashMap;
use std::path::Path;

use crate::common::{icp, read_csv, root, stderr, stdout, strings};

/// Runs, approves and publishes one CRM's fixture; checks its import file.
/// `id` is the CRM's account id column in the accounts export, `fields` the
/// header `[crm_import]` sets.
fn run_score_publish(crm: &str, accounts_file: &str, id: &str, fields: [&str; 5]) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = root().join(format!("data/examples/{crm}.toml"));
    let data = root().join(format!("tests/fixtures/{crm}"));
    let (run, reports) = (tmp.path().join("run"), tmp.path().join("reports"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = icp(
        &[
            "run",
            "--config",
            &s(&config),
            "--data",
            &s(&data),
            "--out",
            &s(&run),
            "--reports",
            &s(&reports),
        ],
        &root(),
    );
    assert!(o.status.success(), "{crm}: {}", stderr(&o));
    let printed = stdout(&o);
    // a scoring directory: every account of the export, by its CRM id
    let out = tmp.path().join("score");
    let o = icp(
        &[
            "score",
            "--quiet",
            "--config",
            &s(&config),
            "--model",
            &s(&run.join("model.json")),
            "--accounts",
            &s(&data.join(accounts_file)),
            "--out",
            &s(&out),
        ],
        &root(),
    );
    assert!(o.status.success(), "{crm}: {}", stderr(&o));
    let export = read_csv(&data.join(accounts_file));
    let imported = read_csv(&out.join("crm_import.csv"));
    let header: Vec<String> = imported
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header, fields, "{crm}: crm_import.csv header");
    let mut want = strings(&export, id);
    let mut got = strings(&imported, fields[0]);
    want.sort();
    got.sort();
    assert_eq!(got, want, "{crm}: one row per account, by the CRM's own id");
    // the same score, band and model as scores.csv, row for row
    let scores = read_csv(&out.join("scores.csv"));
    let by_id: HashMap<String, (String, String)> = strings(&scores, "account_id")
        .into_iter()
        .zip(
            strings(&scores, "score")
                .into_iter()
                .zip(strings(&scores, "band")),
        )
        .collect();
    for ((i, sc), b) in strings(&imported, fields[0])
        .iter()
        .zip(strings(&imported, fields[1]))
        .zip(strings(&imported, fields[2]))
    {
        assert_eq!(by_id[i], (sc, b), "{crm}: {i}");
    }
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
    assert!(
        strings(&imported, fields[4])
            .iter()
            .all(|m| m == model["model_id"].as_str().unwrap())
    );
    // approved, then the daily job publishes the import file too
    let o = icp(
        &[
            "approve",
            &s(&run),
            "--by",
            "Dana Revenue",
            "--accept-all-exclusions",
            "--reports",
            &s(&reports),
        ],
        &root(),
    );
    assert!(o.status.success(), "{crm}: {}", stderr(&o));
    let published = read_csv(&reports.join("published/crm_import.csv"));
    assert_eq!(published.height(), export.height());
    assert_eq!(published.get_column_names()[0].as_str(), fields[0]);
    printed
}

#[test]
fn salesforce_report_exports_run_and_score_back_by_account_id() {
    let printed = run_score_publish(
        "salesforce",
        "accounts_report.csv",
        "Account ID",
        [
            "Id",
            "ICP_Score__c",
            "ICP_Band__c",
            "ICP_Reasons__c",
            "ICP_Model__c",
        ],
    );
    // every row of both reports used: US dates, quoted fields, stages
    assert!(
        printed.contains("700 rows read,        700 used,        0 rejected"),
        "{printed}"
    );
}

#[test]
fn hubspot_exports_run_and_score_back_by_record_id() {
    let printed = run_score_publish(
        "hubspot",
        "companies.csv",
        "Record ID",
        [
            "Record ID",
            "icp_score",
            "icp_band",
            "icp_reasons",
            "icp_model",
        ],
    );
    // the deals linked to two companies are the only rejects, with a reason
    assert!(
        printed.contains("700 rows read,        692 used,        8 rejected"),
        "{printed}"
    );
}

/// A deal whose "Associated Company IDs" holds two ids is listed in
/// rejects.csv with a reason that says so, not as an unknown account.
#[test]
fn a_deal_linked_to_several_companies_is_rejected_with_its_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("v");
    let o = icp(
        &[
            "validate",
            "--config",
            root().join("data/examples/hubspot.toml").to_str().unwrap(),
            "--data",
            root().join("tests/fixtures/hubspot").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.code().is_some(), "{}", stderr(&o));
    let r = read_csv(&out.join("rejects.csv"));
    let reasons = strings(&r, "reason");
    let values = strings(&r, "value");
    assert_eq!(r.height(), 8);
    for (v, why) in values.iter().zip(&reasons) {
        assert!(v.contains(';'), "{v}");
        assert!(why.starts_with("several account ids in one cell"), "{why}");
    }
}
