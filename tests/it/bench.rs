//! `icp bench`: prints every stage and writes its figures; outputs are the
//! same whatever the thread count.

use crate::common::{icp, json, root, stderr, stdout};

#[test]
fn bench_reports_every_stage_and_identical_outputs_across_threads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = icp(
        &[
            "bench",
            "--accounts",
            "3000",
            "--seed",
            "5",
            "--threads",
            "1,2",
            "--dir",
            tmp.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for stage in [
        "load", "label", "features", "fit", "score", "signals", "segments", "brief", "publish",
    ] {
        assert!(
            out.contains(&format!("  {stage} ")),
            "stage {stage} in\n{out}"
        );
    }
    assert!(out.contains("byte-identical"), "{out}");
    let b = json(&tmp.path().join("3000-s5/bench.json"));
    assert_eq!(b["accounts"], 3000);
    assert!(b["floor_read_seconds"].as_f64().unwrap() > 0.0);
    assert!(b["rescore_floor_seconds"].as_f64().unwrap() > 0.0);
    assert!(out.contains("re-score floor"), "{out}");
    assert!(b["run"]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    let runs = b["score"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["timings"]["threads"], 1);
    assert_eq!(runs[1]["timings"]["threads"], 2);
    assert!(runs.iter().all(|r| r["identical_to_first"] == true));

    // a second bench reuses the generated data
    let o = icp(
        &[
            "bench",
            "--accounts",
            "3000",
            "--seed",
            "5",
            "--threads",
            "1",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--model",
            tmp.path().join("3000-s5/run/model.json").to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(reused)"));
}
