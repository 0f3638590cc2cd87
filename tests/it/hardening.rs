//! Hostile and broken input: the loaders never panic, every row is used or
//! rejected, runs killed mid-publish leave nothing half-written, and cells
//! that a spreadsheet would execute are neutralised in the files people open.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::common::{icp, json, read_csv, root, run_quiet, stderr, strings};

fn load_accounts_bytes(bytes: &[u8]) -> (PathBuf, icp::Result<icp::io::load::Dataset>) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let path = dir.join("accounts.csv");
    std::fs::write(&path, bytes).expect("write");
    let cfg = icp::config::ValidConfig::default();
    let r = icp::io::load::load_files(&path, None, None, None, &cfg, None);
    (dir, r)
}

/// The loader either accounts for every row it read, or says what is wrong
/// with the file, naming it.
fn assert_accounted(r: &icp::Result<icp::io::load::Dataset>, expected_rows: Option<usize>) {
    match r {
        Ok(ds) => {
            let i = &ds.accounts.input;
            assert_eq!(i.used + i.rejected, i.rows, "{i:?}");
            assert_eq!(ds.accounts.df.height(), i.used);
            assert_eq!(icp::io::load::rejected_rows(&ds.rejects), i.rejected);
            if let Some(n) = expected_rows {
                assert_eq!(i.rows, n, "rows read");
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains("accounts.csv"), "error names the file: {m}");
        }
    }
}

/// Load `path` as `icp score` does, `rows` records at a time: (used, rejects).
fn load_in_pieces(
    path: &Path,
    rows: usize,
) -> icp::Result<(polars::prelude::DataFrame, polars::prelude::DataFrame)> {
    let cfg = icp::config::ValidConfig::default();
    let mut pieces = icp::io::load::Pieces::open(path, rows, &cfg)?;
    let mut seen = icp::io::load::SeenIds::default();
    let mut rejects = Vec::new();
    let mut used: Option<polars::prelude::DataFrame> = None;
    while let Some(raw) = pieces.next_piece()? {
        let t = icp::io::load::accounts_piece(raw, path, &cfg, None, &mut seen, &mut rejects)?;
        match &mut used {
            None => used = Some(t.df),
            Some(u) => {
                u.vstack_mut(&t.df)?;
            }
        }
    }
    Ok((
        used.expect("the first piece is always read"),
        icp::io::load::concat_rejects(rejects)?,
    ))
}

/// Cells a hostile or sloppy export holds.
fn nasty_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("=HYPERLINK(\"http://x\")".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("-12".to_string()),
        Just("1e400".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("  padded  ".to_string()),
        Just("\u{feff}bom".to_string()),
        Just("naïve ☃".to_string()),
        Just("a,b".to_string()),
        Just("say \"hi\"".to_string()),
        Just("two\nlines".to_string()),
        Just("1,234".to_string()),
        Just("2019-02-30".to_string()),
        "[a-zA-Z0-9 ._-]{0,12}",
        (0u32..100_000).prop_map(|n| n.to_string()),
    ]
}

/// A numeric column's cell: mostly numbers as CRMs write them, sometimes
/// a nasty cell (when most of a column is unreadable the run stops, which
/// is checked separately; here the rows must be accounted for).
fn number_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u32..100_000).prop_map(|n| n.to_string()),
        1 => (1u32..1000, 0u32..1000).prop_map(|(a, b)| format!("USD {a},{b:03}.50")),
        2 => nasty_cell(),
    ]
}

fn row_cells() -> impl Strategy<Value = Vec<String>> {
    (
        nasty_cell(),
        nasty_cell(),
        nasty_cell(),
        number_cell(),
        number_cell(),
        number_cell(),
    )
        .prop_map(|(a, b, c, d, e, f)| vec![a, b, c, d, e, f])
}

fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

const HEADER: &[&str] = &[
    "account_id",
    "account_name",
    "industry",
    "employees",
    "annual_revenue",
    "founded_year",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes: no panic; rows accounted for or a clear error.
    #[test]
    fn arbitrary_bytes_never_panic_the_loader(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_dir, r) = load_accounts_bytes(&bytes);
        assert_accounted(&r, None);
    }

    /// Well-quoted CSVs with nasty cells, LF or CRLF, with or without a BOM,
    /// and a few non-UTF-8 bytes: every data row is used or rejected.
    #[test]
    fn plausible_csvs_account_for_every_row(
        rows in proptest::collection::vec(row_cells(), 0..25),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        latin1_row in proptest::option::of(0usize..25),
        ragged_row in proptest::option::of(0usize..25),
        piece_rows in 1usize..6,
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut bytes = Vec::new();
        if bom {
            bytes.extend_from_slice("\u{feff}".as_bytes());
        }
        bytes.extend_from_slice(HEADER.join(",").as_bytes());
        bytes.extend_from_slice(nl.as_bytes());
        for (i, r) in rows.iter().enumerate() {
            for (k, c) in r.iter().enumerate() {
                if k > 0 {
                    bytes.push(b',');
                }
                if k == 1 && latin1_row == Some(i) {
                    bytes.extend_from_slice(b"Caf\xe9 \xe9t\xe9"); // Latin-1, not UTF-8
                } else {
                    bytes.extend_from_slice(quote(c).as_bytes());
                }
            }
            if ragged_row == Some(i) {
                bytes.extend_from_slice(b",one too many"); // an unquoted comma
            }
            bytes.extend_from_slice(nl.as_bytes());
        }
        let (dir, r) = load_accounts_bytes(&bytes);
        assert_accounted(&r, Some(rows.len()));
        let ds = match r {
            Ok(ds) => ds,
            // most of a numeric column unreadable: a stop naming the file
            // and the column, never a column quietly all missing
            Err(icp::IcpError::Data { message, .. }) if message.contains("are not numbers as read") => {
                prop_assert!(message.contains('`'), "{message}");
                return Ok(());
            }
            Err(e) => panic!("a well-formed CSV loads: {e}"),
        };
        // read a few rows at a time (as `icp score` reads a large file), the
        // same rows are used and rejected for the same reasons
        let (used, rejects) = load_in_pieces(&dir.join("accounts.csv"), piece_rows)
            .expect("loads in pieces");
        prop_assert!(used.equals_missing(&ds.accounts.df), "used rows differ:\n{used}\n{}", ds.accounts.df);
        prop_assert!(rejects.equals_missing(&ds.rejects), "rejects differ:\n{rejects}\n{}", ds.rejects);
        if let Some(i) = ragged_row.filter(|i| *i < rows.len()) {
            let line = (i + 2).to_string();
            let (at, reasons) = (strings(&ds.rejects, "row"), strings(&ds.rejects, "reason"));
            assert!(
                at.iter().zip(&reasons).any(|(r, why)| *r == line && why.starts_with("too_many_fields")),
                "row {line} with an extra field is rejected: {at:?} {reasons:?}"
            );
        }
        // (a row both ragged and Latin-1 is rejected for its fields first)
        if let Some(i) = latin1_row.filter(|i| *i < rows.len() && Some(*i) != ragged_row) {
            let reasons = strings(&ds.rejects, "reason");
            let at = strings(&ds.rejects, "row");
            let line = (i + 2).to_string();
            assert!(
                at.iter().zip(&reasons).any(|(r, why)| *r == line && why.contains("UTF-8")),
                "row {line} with Latin-1 bytes is rejected as not UTF-8: {at:?} {reasons:?}"
            );
        }
    }
}

#[test]
fn ragged_rows_huge_cells_and_empty_files_get_clear_answers() {
    // a 10 MB cell: the row is rejected, the file still loads
    let big = "x".repeat(10 << 20);
    let text = format!("account_id,account_name\na1,{big}\na2,Fine Co\n");
    let (_d, r) = load_accounts_bytes(text.as_bytes());
    let ds = r.expect("loads");
    assert_eq!(ds.accounts.df.height(), 1);
    let why = strings(&ds.rejects, "reason");
    assert!(why[0].contains("bytes (at most 65,536"), "{why:?}");
    assert!(
        strings(&ds.rejects, "value")[0].len() <= 200,
        "the reject shows a prefix"
    );

    // a row with more fields than the header: that row rejected, by line
    // and with the count, the others used
    let (_d, r) = load_accounts_bytes(b"account_id,industry\na1,Retail\na2,Retail,extra,more\n");
    let ds = r.expect("a ragged row is a reject, not a stop");
    assert_eq!(strings(&ds.accounts.df, "account_id"), ["a1"]);
    assert_eq!(strings(&ds.rejects, "row"), ["3"]);
    assert_eq!(
        strings(&ds.rejects, "reason"),
        ["too_many_fields: 4 fields where the header has 2 (a value with a comma not in quotes?)"]
    );

    // an empty file: an error naming the file and what was expected
    let (_d, r) = load_accounts_bytes(b"");
    let Err(e) = r.map(|_| ()) else {
        panic!("an empty file is an error")
    };
    let e = e.to_string();
    assert!(
        e.contains("accounts.csv") && e.contains("the file is empty"),
        "{e}"
    );

    // a header and no rows: read, nothing used, nothing rejected
    let (_d, r) = load_accounts_bytes(b"account_id,industry\n");
    let i = r.expect("a header-only file loads").accounts.input;
    assert_eq!((i.rows, i.used, i.rejected), (0, 0, 0));
}

#[test]
fn empty_accounts_and_single_class_histories_stop_the_run_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = root().join("data/sample");

    // an accounts file with a header and no rows
    let d = tmp.path().join("empty");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("accounts.csv"), "account_id,industry,employees\n").unwrap();
    std::fs::copy(
        sample.join("opportunities.csv"),
        d.join("opportunities.csv"),
    )
    .unwrap();
    let o = icp(
        &[
            "run",
            "--data",
            d.to_str().unwrap(),
            "--reports",
            tmp.path().join("r").to_str().unwrap(),
        ],
        &root(),
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("accounts.csv: no usable account rows") && !e.contains("panicked"),
        "{e}"
    );

    // every closed deal lost: one class, no model
    let d = tmp.path().join("alllost");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(sample.join("accounts.csv"), d.join("accounts.csv")).unwrap();
    let opps = read_csv(&sample.join("opportunities.csv"));
    let mut text = std::fs::read_to_string(sample.join("opportunities.csv")).unwrap();
    for w in ["won", "churned"] {
        text = text.replace(&format!(",{w},"), ",lost,");
    }
    assert!(opps.height() > 100);
    std::fs::write(d.join("opportunities.csv"), text).unwrap();
    let o = icp(
        &[
            "run",
            "--data",
            d.to_str().unwrap(),
            "--reports",
            tmp.path().join("r").to_str().unwrap(),
        ],
        &root(),
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("not enough evidence") && e.contains("no won deal") && !e.contains("panicked"),
        "{e}"
    );
}

/// A data directory with the sample's tables except accounts (the test writes its own).
fn sample_but_accounts(tmp: &Path) -> PathBuf {
    let sample = root().join("data/sample");
    let d = tmp.join("data");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["opportunities.csv", "customers.csv", "triggers.csv"] {
        if sample.join(f).is_file() {
            std::fs::copy(sample.join(f), d.join(f)).unwrap();
        }
    }
    d
}

#[test]
fn a_free_text_column_is_capped_and_the_brief_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = root().join("data/sample");
    let d = sample_but_accounts(tmp.path());
    // a notes column: a different value on every account
    let text = std::fs::read_to_string(sample.join("accounts.csv")).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str(&format!("{line},notes\n"));
        } else {
            out.push_str(&format!("{line},call back about renewal {i}\n"));
        }
    }
    std::fs::write(d.join("accounts.csv"), out).unwrap();
    let run = tmp.path().join("run");
    run_quiet(Some(&d), &run, &tmp.path().join("reports"), &[]);
    let model = json(&run.join("model.json"));
    let skipped = model["model"]["spec"]["skipped"].to_string();
    assert!(skipped.contains("notes"), "{skipped}");
    let brief = std::fs::read_to_string(run.join("brief.md")).unwrap();
    assert!(
        brief.contains("notes:"),
        "the brief names the capped column"
    );
}

#[test]
fn formula_cells_are_neutralised_in_files_people_open_not_in_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = root().join("data/sample");
    let d = sample_but_accounts(tmp.path());
    // give the first account a hostile name and add a row whose employees is a formula
    let text = std::fs::read_to_string(sample.join("accounts.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
    let name_at = header
        .iter()
        .position(|h| h == "account_name")
        .expect("account_name");
    let emp_at = header
        .iter()
        .position(|h| h == "employees")
        .expect("employees");
    let mut first: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    first[name_at] = "=cmd|'/c calc'!A1".into();
    let id = first[0].clone();
    lines[1] = first.join(",");
    let mut bad: Vec<String> = vec![String::new(); header.len()];
    bad[0] = "evil-1".into();
    bad[emp_at] = "=1+1".into();
    lines.push(bad.join(","));
    std::fs::write(d.join("accounts.csv"), lines.join("\n") + "\n").unwrap();

    let run = tmp.path().join("run");
    run_quiet(Some(&d), &run, &tmp.path().join("reports"), &[]);
    let rejects = read_csv(&run.join("rejects.csv"));
    let values = strings(&rejects, "value");
    assert!(values.iter().any(|v| v == "'=1+1"), "{values:?}");
    assert!(!values.iter().any(|v| v.starts_with('=')));
    // machine-facing files keep the value exactly (documented in the README)
    let scores = read_csv(&run.join("scores.csv"));
    let ids = strings(&scores, "account_id");
    let names = strings(&scores, "account_name");
    let at = ids.iter().position(|x| *x == id).expect("scored");
    assert_eq!(names[at], "=cmd|'/c calc'!A1");
    // every people-facing CSV is free of formula starts
    for f in [
        "painful_customers.csv",
        "signals.csv",
        "exclusions.csv",
        "rejects.csv",
    ] {
        let df = read_csv(&run.join(f));
        for c in df.get_column_names() {
            for v in strings(&df, c) {
                assert!(
                    !v.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{f}.{c}: {v}"
                );
            }
        }
    }
}

/// Is `dir` a whole run: a manifest whose every file is there with its checksum?
fn whole(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join("manifest.json")) else {
        return false;
    };
    let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    m["files"].as_array().is_some_and(|files| {
        files.iter().all(|f| {
            let p = dir.join(f["path"].as_str().unwrap_or("?"));
            icp::io::load::sha256_file(&p).ok().as_deref() == f["sha256"].as_str()
        })
    })
}

#[test]
fn a_run_killed_during_publish_leaves_the_previous_run_and_active_model_intact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let fixed = reports.join("fixed");
    run_quiet(None, &fixed, &reports, &[]);
    let o = icp(
        &[
            "approve",
            fixed.to_str().unwrap(),
            "--by",
            "Test Lead",
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let active_before = std::fs::read(reports.join("active.json")).expect("active.json");
    let manifest_before = std::fs::read(fixed.join("manifest.json")).unwrap();

    // kill -9 at three points inside publish: before, among and after most files
    for files_written in [0u64, 4, 12] {
        let mut child = crate::common::icp_command(
            &[
                "run",
                "--quiet",
                "--out",
                fixed.to_str().unwrap(),
                "--reports",
                reports.to_str().unwrap(),
            ],
            &root(),
        )
        .env("ICP_TEST_PUBLISH_DELAY_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
        let tmp_name = format!(".fixed.tmp-{}", child.id());
        let t0 = Instant::now();
        while !reports.join(&tmp_name).exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "publish never started"
            );
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("the run ended ({status}) before publishing");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200 * files_written + 50));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");

        assert!(
            whole(&fixed),
            "after a kill at file {files_written}: the run directory is whole"
        );
        assert_eq!(
            std::fs::read(fixed.join("manifest.json")).unwrap(),
            manifest_before
        );
        assert_eq!(
            std::fs::read(reports.join("active.json")).unwrap(),
            active_before
        );
        for e in std::fs::read_dir(&reports).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && !name.starts_with('.') {
                if name == "publications" {
                    // a directory of publications, each whole
                    for p in std::fs::read_dir(e.path()).unwrap().flatten() {
                        let pn = p.file_name().to_string_lossy().into_owned();
                        if !pn.starts_with('.') {
                            assert!(whole(&p.path()), "publication {pn} is whole");
                        }
                    }
                } else {
                    assert!(whole(&e.path()), "visible directory {name} is whole");
                }
            }
        }
    }
    // the next run completes, replaces the run whole and clears the leftovers
    run_quiet(None, &fixed, &reports, &[]);
    assert!(whole(&fixed));
    let leftovers: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        std::fs::read(reports.join("active.json")).unwrap(),
        active_before
    );
}
