//! `icp generate`: deterministic synthetic data with its truth kept apart.

use crate::common::{icp, stderr, stdout, tree};

#[test]
fn same_seed_same_bytes_and_truth_outside_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    for d in [&a, &b] {
        let o = icp(
            &[
                "generate",
                "--accounts",
                "3000",
                "--seed",
                "7",
                "--out",
                d.to_str().unwrap(),
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("3000 accounts"));
    }
    assert_eq!(tree(&a), tree(&b));
    let names: Vec<String> = tree(&a).into_iter().map(|x| x.0).collect();
    assert_eq!(
        names,
        [
            "accounts.csv",
            "customers.csv",
            "interviews.csv",
            "opportunities.csv",
            "triggers.csv"
        ]
    );
    assert!(tmp.path().join("a_truth.csv").is_file());
    assert_eq!(
        std::fs::read(tmp.path().join("a_truth.csv")).unwrap(),
        std::fs::read(tmp.path().join("b_truth.csv")).unwrap()
    );
    let c = tmp.path().join("c");
    let o = icp(
        &[
            "generate",
            "--accounts",
            "3000",
            "--seed",
            "8",
            "--out",
            c.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(o.status.success());
    assert_ne!(tree(&a), tree(&c), "another seed gives other data");
}

#[test]
fn truth_inside_data_dir_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    let t = d.join("truth.csv");
    let o = icp(
        &[
            "generate",
            "--accounts",
            "10",
            "--out",
            d.to_str().unwrap(),
            "--truth",
            t.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("out of the data directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn generated_data_has_the_documented_shape() {
    let s = icp::io::synth::generate(20_000, 1).expect("generate");
    let n = s.accounts.height();
    let with_deals = s
        .opportunities
        .column("account_id")
        .unwrap()
        .n_unique()
        .unwrap();
    let share = with_deals as f64 / n as f64;
    assert!(
        (0.4..0.6).contains(&share),
        "about half the accounts have deals: {share}"
    );
    let missing = s.accounts.column("industry").unwrap().null_count() as f64 / n as f64;
    assert!(
        (0.01..0.08).contains(&missing),
        "a few per cent missing: {missing}"
    );
    assert!(s.customers.height() > 1000 && s.triggers.height() > 1000);
    assert!(
        (20..90).contains(&s.window_days),
        "window {}",
        s.window_days
    );
}
