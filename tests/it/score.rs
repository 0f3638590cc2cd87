//! `icp score`: a model artifact re-scores accounts exactly as the run did.

use std::path::{Path, PathBuf};

use crate::common::{generated, icp, root, run_quiet, stderr, tree};

/// `icp run` on `data` into `dir/run`; the run directory holds model.json.
fn trained_run(data: &Path, dir: &Path) -> PathBuf {
    let run = dir.join("run");
    run_quiet(Some(data), &run, &dir.join("reports"), &[]);
    run
}

#[test]
fn rescoring_with_the_runs_model_gives_the_same_scores() {
    let (data, _) = generated(4000, 11);
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = trained_run(&data, tmp.path());
    let sc = tmp.path().join("score");
    let o = icp(
        &[
            "score",
            "--model",
            run.join("model.json").to_str().unwrap(),
            "--accounts",
            data.join("accounts.csv").to_str().unwrap(),
            "--out",
            sc.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (tree(&run), tree(&sc));
    for f in ["scores.csv", "segments/score_gte_70.csv"] {
        let x = a.iter().find(|x| x.0 == f).unwrap();
        let y = b.iter().find(|y| y.0 == f).unwrap();
        assert!(x.1 == y.1, "{f} differs between run and score");
    }
}

#[test]
fn a_missing_model_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = icp(
        &[
            "score",
            "--model",
            "nowhere/model.json",
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nowhere/model.json"), "{}", stderr(&o));
}

#[test]
fn an_accounts_file_without_a_model_input_is_a_clear_error() {
    let (data, _) = generated(4000, 11);
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = trained_run(&data, tmp.path());
    // drop the last column (ownership) from every line
    let text = std::fs::read_to_string(data.join("accounts.csv")).unwrap();
    let cut: String = text
        .lines()
        .map(|l| format!("{}\n", &l[..l.rfind(',').unwrap()]))
        .collect();
    assert!(cut.starts_with("account_id,") && !cut.lines().next().unwrap().contains("ownership"));
    let accounts = tmp.path().join("accounts.csv");
    std::fs::write(&accounts, cut).unwrap();
    let o = icp(
        &[
            "score",
            "--model",
            run.join("model.json").to_str().unwrap(),
            "--accounts",
            accounts.to_str().unwrap(),
            "--out",
            tmp.path().join("s").to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("`ownership`") && e.contains("accounts.csv"),
        "{e}"
    );
    assert!(!tmp.path().join("s").exists());
}
