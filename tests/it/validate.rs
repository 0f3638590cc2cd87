//! `icp validate`: rejects and readiness, nothing else.

use crate::common::{fixture, icp, read_csv, root, stderr, stdout, strings};

#[test]
fn validate_writes_rejects_and_readiness_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("v");
    let o = icp(
        &[
            "validate",
            "--data",
            fixture("tiny").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    // not ready: the documented exit code, and the report is still written
    assert_eq!(
        o.status.code(),
        Some(icp::cmd::EXIT_NOT_READY as i32),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("ready to train: NO"), "{}", stdout(&o));
    assert!(stderr(&o).contains("not ready to train"), "{}", stderr(&o));
    let rejects = read_csv(&out.join("rejects.csv"));
    // 11 bad rows in the four CRM files and 3 in interviews.csv, and 4
    // cells read as missing in rows that were used (tests/it/load.rs)
    assert_eq!(rejects.height(), 18);
    let notes = strings(&rejects, "reason")
        .iter()
        .filter(|r| r.starts_with(icp::io::load::NOTE_PREFIX))
        .count();
    assert_eq!(notes, 4);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("readiness.json")).unwrap()).unwrap();
    assert_eq!(r["ready_to_train"], false);
    // O1, O2, O4 ("WON"), O9 and O11
    assert_eq!(r["won"], 5);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["manifest.json", "readiness.json", "rejects.csv"]);
}
