//! `icp score`: a model artifact re-scores accounts exactly as the run did.

use std::path::{Path, PathBuf};

use crate::common::{generated, icp, json, read_csv, root, run_quiet, stderr, strings, tree};

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

/// The accounts of `data` plus rows that test the reader: a duplicate of
/// the first account far from it, a name across two lines, a bad number.
fn with_awkward_rows(data: &Path, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(data.join("accounts.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let (name, emp) = (
        header.iter().position(|c| *c == "account_name").unwrap(),
        header.iter().position(|c| *c == "employees").unwrap(),
    );
    let first: Vec<String> = lines[1].split(',').map(String::from).collect();
    let mut dup = first.clone();
    dup[name] = "Same id later row".into();
    let mut multi = first.clone();
    multi[0] = "zz-multi".into();
    multi[name] = "\"Two\nLines, Inc\"".into();
    let mut bad = first.clone();
    bad[0] = "zz-bad".into();
    bad[emp] = "lots".into();
    for r in [dup, multi, bad] {
        lines.insert(lines.len() / 2, r.join(","));
    }
    let path = out.join("accounts.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn scoring_in_pieces_writes_the_bytes_of_scoring_at_once() {
    let (data, _) = generated(4000, 11);
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = trained_run(&data, tmp.path());
    let accounts = with_awkward_rows(&data, tmp.path());
    let score = |name: &str, chunk: &str| {
        let out = tmp.path().join(name);
        let o = icp(
            &[
                "score",
                "--quiet",
                "--parquet",
                "--model",
                run.join("model.json").to_str().unwrap(),
                "--accounts",
                accounts.to_str().unwrap(),
                "--chunk-rows",
                chunk,
                "--out",
                out.to_str().unwrap(),
            ],
            &root(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let whole = score("whole", "1000000");
    let pieces = score("pieces", "333");
    let (a, b) = (tree(&whole), tree(&pieces));
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    for (x, y) in a.iter().zip(&b) {
        // Parquet row groups follow the pieces; its rows are checked below
        if x.0 != "scores.parquet" && x.0 != "manifest.json" {
            assert!(
                x.1 == y.1,
                "{} differs between one piece and pieces of 333",
                x.0
            );
        }
    }
    let rows = |p: &Path| {
        use polars::prelude::{ParquetReader, SerReader};
        ParquetReader::new(std::fs::File::open(p).unwrap())
            .finish()
            .unwrap()
    };
    assert!(
        rows(&whole.join("scores.parquet")).equals_missing(&rows(&pieces.join("scores.parquet")))
    );
    // the duplicate (2,000 rows after the first) is rejected and the bad
    // number is a cell read as missing, noted: nothing is lost
    let rejects = read_csv(&pieces.join("rejects.csv"));
    let reasons = strings(&rejects, "reason");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("duplicate account_id")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with(icp::io::load::NOTE_PREFIX)
                && (r.contains("whole number >= 0") || r.contains("not a number"))),
        "{reasons:?}"
    );
    let m = json(&pieces.join("manifest.json"));
    let input = &m["inputs"][0];
    assert_eq!(input["rows"].as_u64(), Some(4003));
    assert_eq!(
        input["used"].as_u64().unwrap() + input["rejected"].as_u64().unwrap(),
        4003
    );
    let scores = read_csv(&pieces.join("scores.csv"));
    assert!(
        strings(&scores, "account_name")
            .iter()
            .any(|n| n == "Two\nLines, Inc")
    );
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
