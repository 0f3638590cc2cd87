//! `icp validate`: rejects and readiness, nothing else.

use crate::common::{fixture, icp, read_csv, root, stderr, stdout};

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
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ready to train: NO"), "{}", stdout(&o));
    let rejects = read_csv(&out.join("rejects.csv"));
    // 16 bad rows in the four CRM files, 3 in interviews.csv
    assert_eq!(rejects.height(), 19);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("readiness.json")).unwrap()).unwrap();
    assert_eq!(r["ready_to_train"], false);
    assert_eq!(r["won"], 3);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["manifest.json", "readiness.json", "rejects.csv"]);
}
