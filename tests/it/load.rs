//! Loading and labelling: a tiny hand-made data set with known rejects and labels.

use icp::config::{Config, ValidConfig};
use icp::io::load::{Need, load_dir};
use polars::prelude::*;

use crate::common::{fixture, strings};

fn tiny_config() -> ValidConfig {
    let cfg: Config = toml::from_str("[label]\nvelocity_window_days = 30\n").expect("toml");
    cfg.check(std::path::Path::new("test")).expect("valid")
}

#[test]
fn tiny_rejects_are_exactly_the_bad_rows_with_reasons() {
    let data = load_dir(&fixture("tiny"), &tiny_config(), Need::Training).expect("loads");
    let r = &data.rejects;
    let got: Vec<String> = (0..r.height())
        .map(|i| {
            format!(
                "{} {} {}",
                strings(r, "file")[i],
                strings(r, "row")[i],
                strings(r, "column")[i]
            )
        })
        .collect();
    let want = [
        "accounts.csv 5 account_id",
        "accounts.csv 6 employees",
        "accounts.csv 8 account_id",
        "accounts.csv 9 annual_revenue",
        "accounts.csv 10 founded_year",
        "opportunities.csv 7 account_id",
        "opportunities.csv 8 created_date",
        "opportunities.csv 9 closed_date",
        "opportunities.csv 10 amount",
        "opportunities.csv 11 outcome",
        "opportunities.csv 12 opportunity_id",
        "opportunities.csv 14 closed_date",
        "customers.csv 4 delivery_fit",
        "triggers.csv 3 account_id",
        "triggers.csv 4 date",
        "interviews.csv 3 account_id",
        "interviews.csv 4 quote",
        "interviews.csv 5 date",
    ];
    assert_eq!(got, want);
    let reasons = strings(r, "reason");
    let note = |i: usize, what: &str| {
        assert!(
            reasons[i].starts_with(icp::io::load::NOTE_PREFIX) && reasons[i].contains(what),
            "{i}: {}",
            reasons[i]
        )
    };
    assert!(
        reasons[0].starts_with("duplicate account_id"),
        "{}",
        reasons[0]
    );
    // unreadable or out-of-range optional numbers are cells read as
    // missing, noted; their rows are kept
    note(1, "not a number");
    assert!(reasons[2].starts_with("missing account_id"));
    note(3, ">= 0");
    note(4, "whole year");
    assert!(reasons[5].starts_with("unknown account_id"));
    assert!(reasons[6].contains("ISO 8601"));
    assert!(reasons[7].starts_with("closed before created"));
    note(8, "negative amount");
    assert!(reasons[9].starts_with("unknown outcome"));
    assert!(reasons[10].starts_with("duplicate opportunity_id"));
    assert!(reasons[11].starts_with("missing closed_date"));
    // the raw value is shown as written
    assert_eq!(strings(r, "value")[1], "abc");
    assert!(reasons[15].starts_with("unknown account_id"));
    assert_eq!(reasons[16], "missing quote");
    assert!(reasons[17].contains("ISO 8601"), "{}", reasons[17]);
    // A4 (employees "abc") is kept with employees missing, and so is its
    // deal O11; O9 (amount -3) is kept with its amount missing
    let acc = &data.accounts.df;
    let a4 = strings(acc, "account_id")
        .iter()
        .position(|a| a == "A4")
        .expect("A4 kept");
    assert_eq!(
        acc.column("employees").unwrap().get(a4).unwrap(),
        AnyValue::Null
    );
    let opp = &data.opportunities.as_ref().expect("opps").df;
    let ids = strings(opp, "opportunity_id");
    assert!(ids.contains(&"O11".to_string()), "{ids:?}");
    let o9 = ids.iter().position(|o| o == "O9").expect("O9 kept");
    assert_eq!(
        opp.column("amount").unwrap().get(o9).unwrap(),
        AnyValue::Null
    );
    // the good quotes are kept verbatim, a date and a role optional
    let iv = &data.interviews.as_ref().expect("interviews loaded").df;
    assert_eq!(
        strings(iv, "quote"),
        ["We needed it live, and it was.", "Undated and no role"]
    );
}

#[test]
fn every_row_is_used_or_rejected() {
    let data = load_dir(&fixture("tiny"), &tiny_config(), Need::Training).expect("loads");
    let files = strings(&data.rejects, "file");
    let reasons = strings(&data.rejects, "reason");
    for input in data.inputs() {
        // rows rejected; cell notes are about rows that were used
        let listed = files
            .iter()
            .zip(&reasons)
            .filter(|(f, r)| **f == input.file && !r.starts_with(icp::io::load::NOTE_PREFIX))
            .count();
        assert_eq!(input.used + input.rejected, input.rows, "{input:?}");
        assert_eq!(listed, input.rejected, "{input:?}");
    }
    // rejected: the duplicate A2 and the row without an id
    assert_eq!(data.accounts.input.rows, 9);
    assert_eq!(data.accounts.input.used, 7);
}

#[test]
fn labels_follow_the_definition() {
    let data = load_dir(&fixture("tiny"), &tiny_config(), Need::Training).expect("loads");
    let l = icp::stages::label::label(&data, &tiny_config()).expect("labels");
    assert_eq!(l.window.days, 30);
    let df =
        l.df.sort(["opportunity_id"], SortMultipleOptions::default())
            .expect("sort");
    let ids = strings(&df, "opportunity_id");
    let labels = strings(&df, "label");
    let outcome = strings(&df, "outcome");
    let got: Vec<String> = (0..ids.len())
        .map(|i| format!("{} {} {}", ids[i], outcome[i], labels[i]))
        .collect();
    assert_eq!(
        got,
        [
            "O1 won true",       // 19 days, within the window
            "O11 won true",      // 4 days (its account's bad employees cell is only missing)
            "O13 churned false", // churned is negative
            "O2 won false",      // 90 days: won but slow
            "O3 lost false",
            "O4 churned false", // won, but customers.csv says the account churned after
            "O9 won true",      // 4 days (its negative amount is only missing)
        ]
    );
}

#[test]
fn missing_required_column_names_file_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("accounts.csv"), "id,name\nA1,x\n").expect("write");
    std::fs::write(dir.path().join("opportunities.csv"), "opportunity_id\nO1\n").expect("write");
    let err = load_dir(dir.path(), &ValidConfig::default(), Need::Training).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("accounts.csv"), "{msg}");
    assert!(msg.contains("`account_id`"), "{msg}");
    assert!(msg.contains("columns found: id, name"), "{msg}");
}

#[test]
fn config_rejects_unknown_canonical_names_and_bad_values() {
    let bad: Config = toml::from_str("[columns.opportunities]\nstage = \"x\"\n").expect("toml");
    let e = bad
        .check(std::path::Path::new("c.toml"))
        .expect_err("unknown column");
    assert!(
        e.to_string().contains("`stage` is not a canonical column"),
        "{e}"
    );
    let bad: Config = toml::from_str("[outcomes]\n\"Closed Won\" = \"victory\"\n").expect("toml");
    let e = bad
        .check(std::path::Path::new("c.toml"))
        .expect_err("bad outcome");
    assert!(e.to_string().contains("Closed Won"), "{e}");
    assert!(
        toml::from_str::<Config>("[model]\nfolds = 3\n").is_err(),
        "unknown keys are refused"
    );
}

#[test]
fn parquet_inputs_load_like_csv() {
    let (dir, _) = crate::common::generated(2000, 3);
    let tmp = tempfile::tempdir().expect("tempdir");
    for t in ["accounts", "opportunities", "customers", "triggers"] {
        let df = crate::common::read_csv(&dir.join(format!("{t}.csv")));
        icp::io::synth::write_frame(
            &tmp.path().join(format!("{t}.parquet")),
            &df,
            icp::io::synth::Format::Parquet,
        )
        .expect("write parquet");
    }
    let cfg = ValidConfig::default();
    let a = load_dir(&dir, &cfg, Need::Training).expect("csv");
    let b = load_dir(tmp.path(), &cfg, Need::Training).expect("parquet");
    assert_eq!(a.accounts.df.height(), b.accounts.df.height());
    let (ao, bo) = (a.opportunities.expect("o"), b.opportunities.expect("o"));
    assert_eq!(ao.df.height(), bo.df.height());
    assert_eq!(ao.input.rejected, bo.input.rejected);
}

#[test]
fn the_default_window_is_the_median_won_cycle_before_the_holdout() {
    let cfg = ValidConfig::default();
    let data = load_dir(&fixture("tiny"), &cfg, Need::Training).expect("loads");
    let l = icp::stages::label::label(&data, &cfg).expect("labels");
    // closed deals by date: O9 01-05, O11 01-05, O3 01-15, O1 01-20,
    // O13 02-10 | O4 03-10, O2 05-01: the holdout starts at the 6th of 7
    // (floor(7 x 0.8) = 5, 0-based)
    assert_eq!(l.cutoff.to_string(), "2024-03-10");
    assert_eq!((l.n_train, l.n_holdout), (5, 2));
    // won or churned before the holdout: O9 4 days, O11 4, O13 9, O1 19 ->
    // median 6.5, rounded up to 7
    assert_eq!(l.window.days, 7);
    assert!(l.window.source.contains("median"), "{}", l.window.source);
}

fn edit_line(path: &std::path::Path, line: usize, f: impl Fn(&str) -> String) {
    let t = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
    lines[line - 1] = f(&lines[line - 1]);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// One bad line never stops the daily job: a record with more or fewer
/// fields than the header, in each input file, is a reject with its line
/// and reason, and the run goes on.
#[test]
fn a_ragged_row_in_each_file_is_rejected_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    for f in [
        "accounts.csv",
        "opportunities.csv",
        "customers.csv",
        "triggers.csv",
    ] {
        std::fs::copy(crate::common::root().join("data/sample").join(f), d.join(f)).unwrap();
    }
    edit_line(&d.join("accounts.csv"), 11, |l| format!("{l},extra,fields"));
    edit_line(&d.join("accounts.csv"), 21, |l| {
        l.split(',').take(5).collect::<Vec<_>>().join(",")
    });
    edit_line(&d.join("opportunities.csv"), 6, |l| {
        l.split(',').take(3).collect::<Vec<_>>().join(",")
    });
    edit_line(&d.join("customers.csv"), 4, |l| format!("{l},x"));
    edit_line(&d.join("triggers.csv"), 5, |l| format!("{l},x,y"));
    let out = tmp.path().join("run");
    crate::common::run_quiet(Some(&d), &out, &tmp.path().join("reports"), &[]);
    let r = crate::common::read_csv(&out.join("rejects.csv"));
    let got: Vec<String> = (0..r.height())
        .filter(|&i| strings(&r, "column")[i] == "(line)")
        .map(|i| {
            format!(
                "{} {} {}",
                strings(&r, "file")[i],
                strings(&r, "row")[i],
                strings(&r, "reason")[i].split(':').next().unwrap()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "accounts.csv 11 too_many_fields",
            "accounts.csv 21 too_few_fields",
            "opportunities.csv 6 too_few_fields",
            "customers.csv 4 too_many_fields",
            "triggers.csv 5 too_many_fields",
        ]
    );
    // every row used or rejected
    let m = crate::common::json(&out.join("manifest.json"));
    for i in m["inputs"].as_array().unwrap() {
        assert_eq!(
            i["used"].as_u64().unwrap() + i["rejected"].as_u64().unwrap(),
            i["rows"].as_u64().unwrap(),
            "{i}"
        );
    }
}

/// A file that is mostly ragged, or semicolon-separated, stops the run and
/// says what it looks like.
#[test]
fn a_mostly_ragged_or_semicolon_file_stops_saying_what_it_looks_like() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |accounts: &str| {
        let d = tmp.path().join(format!("d{}", accounts.len()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("accounts.csv"), accounts).unwrap();
        std::fs::copy(
            crate::common::root().join("data/sample/opportunities.csv"),
            d.join("opportunities.csv"),
        )
        .unwrap();
        crate::common::icp(
            &[
                "validate",
                "--data",
                d.to_str().unwrap(),
                "--out",
                d.join("v").to_str().unwrap(),
            ],
            &crate::common::root(),
        )
    };
    let o = run("account_id;industry;employees\nA1;Retail;10\nA2;Software;20\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        crate::common::stderr(&o).contains("semicolon-separated"),
        "{}",
        crate::common::stderr(&o)
    );
    let o = run("account_id,industry\nA1,Retail,x\nA2,Software,y\nA3,Media,z\nA4,Energy\n");
    assert_eq!(o.status.code(), Some(1));
    let e = crate::common::stderr(&o);
    assert!(
        e.contains("3 of about 5 lines do not have the header's 2 fields"),
        "{e}"
    );
}

/// The whole sample written semicolon-separated, as Excel saves CSV in much
/// of Europe (names holding commas left unquoted, quotes around the fields
/// that hold a semicolon or a quote): with `[files] delimiter = ";"` it
/// scores every account exactly as the comma-separated sample does.
#[test]
fn a_semicolon_export_reads_with_the_delimiter_setting() {
    use polars::prelude::*;
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = crate::common::root().join("data/sample");
    let semi = tmp.path().join("semi");
    std::fs::create_dir_all(&semi).unwrap();
    let mut commas_left_unquoted = 0;
    for f in [
        "accounts",
        "opportunities",
        "customers",
        "triggers",
        "interviews",
    ] {
        let mut df = crate::common::read_csv(&sample.join(format!("{f}.csv")));
        let mut file = std::fs::File::create(semi.join(format!("{f}.csv"))).unwrap();
        CsvWriter::new(&mut file)
            .with_separator(b';')
            .finish(&mut df)
            .unwrap();
        let text = std::fs::read_to_string(semi.join(format!("{f}.csv"))).unwrap();
        commas_left_unquoted += text
            .lines()
            .filter(|l| l.contains(',') && !l.contains('"'))
            .count();
    }
    assert!(commas_left_unquoted > 0, "the test holds names with commas");
    // without the setting: the stop names it
    let o = crate::common::icp(
        &[
            "validate",
            "--data",
            semi.to_str().unwrap(),
            "--out",
            tmp.path().join("v").to_str().unwrap(),
        ],
        &crate::common::root(),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = crate::common::stderr(&o);
    assert!(e.contains("delimiter = \";\""), "{e}");
    // with it: the same scores and rejects as the comma-separated sample
    // (the model id differs: it fingerprints the input files' bytes)
    let config = tmp.path().join("semi.toml");
    std::fs::write(&config, "[files]\ndelimiter = \";\"\n").unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    crate::common::run_quiet(None, &a, &tmp.path().join("ra"), &[]);
    crate::common::run_quiet(
        Some(&semi),
        &b,
        &tmp.path().join("rb"),
        &["--config", config.to_str().unwrap()],
    );
    let without_id = |p: &std::path::Path| {
        let df = crate::common::read_csv(p);
        let keep: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .filter(|c| c != "model_id")
            .collect();
        df.select(keep).unwrap()
    };
    let (sa, sb) = (
        without_id(&a.join("scores.csv")),
        without_id(&b.join("scores.csv")),
    );
    assert_eq!(sa.height(), 5000);
    assert!(sa.equals_missing(&sb), "scores differ");
    assert_eq!(
        std::fs::read(a.join("rejects.csv")).unwrap(),
        std::fs::read(b.join("rejects.csv")).unwrap()
    );
}

/// Dates written the US way (1/31/2024) in most of a column stop the run
/// with the format they look like and the line that reads them; with that
/// line, they load.
#[test]
fn us_dates_get_the_date_format_hint_and_load_with_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    let sample = crate::common::root().join("data/sample");
    std::fs::copy(sample.join("accounts.csv"), d.join("accounts.csv")).unwrap();
    let us = |iso: &str| {
        let p: Vec<&str> = iso.split('-').collect();
        if p.len() == 3 {
            format!(
                "{}/{}/{}",
                p[1].trim_start_matches('0'),
                p[2].trim_start_matches('0'),
                p[0]
            )
        } else {
            iso.to_string()
        }
    };
    let text = std::fs::read_to_string(sample.join("opportunities.csv")).unwrap();
    let out: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_string();
            }
            let mut c: Vec<String> = l.split(',').map(str::to_string).collect();
            c[2] = us(&c[2]);
            c[3] = us(&c[3]);
            c.join(",")
        })
        .collect();
    std::fs::write(d.join("opportunities.csv"), out.join("\n") + "\n").unwrap();
    let validate = |extra: &[&str]| {
        let mut args = vec!["validate", "--data", d.to_str().unwrap(), "--out"];
        let o = tmp.path().join(format!("v{}", extra.len()));
        let o = o.to_str().unwrap().to_string();
        args.push(&o);
        args.extend_from_slice(extra);
        crate::common::icp(&args, &crate::common::root())
    };
    let o = validate(&[]);
    // data that cannot train as it is: validate's "not ready" code
    assert_eq!(o.status.code(), Some(icp::cmd::EXIT_NOT_READY as i32));
    let e = crate::common::stderr(&o);
    assert!(
        e.contains("created_date")
            && e.contains("US month/day/year")
            && e.contains("date_format = \"%m/%d/%Y\""),
        "{e}"
    );
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "date_format = \"%m/%d/%Y\"\n").unwrap();
    let o = validate(&["--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
}

/// A file saved as Windows-1252 (Excel's default on Windows): without the
/// setting its accented rows are rejected with the setting named; with
/// `[files] encoding = "windows-1252"` they load with their accents.
#[test]
fn a_windows_1252_file_is_named_and_reads_with_the_setting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    let sample = crate::common::root().join("data/sample");
    std::fs::copy(
        sample.join("opportunities.csv"),
        d.join("opportunities.csv"),
    )
    .unwrap();
    // the sample's accounts, two names with Windows-1252 letters
    let text = std::fs::read_to_string(sample.join("accounts.csv")).unwrap();
    let mut bytes: Vec<u8> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let mut line = l.as_bytes().to_vec();
        if i == 3 || i == 4 {
            let comma = line.iter().position(|b| *b == b',').unwrap();
            // "Café Müller – Labs": é, ü and an en dash in Windows-1252
            let name = [
                b"Caf".to_vec(),
                vec![0xE9],
                b" M".to_vec(),
                vec![0xFC],
                b"ller ".to_vec(),
                vec![0x96],
                b" Labs".to_vec(),
            ]
            .concat();
            let rest = line[comma + 1..].iter().position(|b| *b == b',').unwrap() + comma + 1;
            line = [line[..=comma].to_vec(), name, line[rest..].to_vec()].concat();
        }
        bytes.extend(line);
        bytes.push(b'\n');
    }
    std::fs::write(d.join("accounts.csv"), &bytes).unwrap();
    let validate = |extra: &[&str], out: &str| {
        let o = tmp.path().join(out);
        let mut args = vec![
            "validate",
            "--data",
            d.to_str().unwrap(),
            "--out",
            o.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (crate::common::icp(&args, &crate::common::root()), o)
    };
    let (o, out) = validate(&[], "plain");
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let r = crate::common::read_csv(&out.join("rejects.csv"));
    let why = strings(&r, "reason");
    assert_eq!(why.len(), 2, "{why:?}");
    assert!(
        why.iter()
            .all(|w| w.contains("encoding = \"windows-1252\"")),
        "{why:?}"
    );
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[files]\nencoding = \"windows-1252\"\n").unwrap();
    let (o, out) = validate(&["--config", cfg.to_str().unwrap()], "cp1252");
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let r = crate::common::read_csv(&out.join("rejects.csv"));
    assert_eq!(r.height(), 0);
    let data = icp::io::load::load_dir(
        &d,
        &icp::config::Config::from_file(&cfg).unwrap(),
        icp::io::load::Need::Training,
    )
    .unwrap();
    let names = strings(&data.accounts.df, "account_name");
    assert!(
        names.iter().any(|n| n == "Café Müller – Labs"),
        "{:?}",
        &names[..5]
    );
}

/// The founded-year bound comes from the data, not the clock: the tiny
/// fixture's newest deal date is in 2024, so 2025 (a company founded in the
/// data's last year, recorded as the next) is accepted and 2026 rejected,
/// whatever year the test runs in.
#[test]
fn the_founded_year_bound_is_the_datas_newest_year_plus_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("tiny");
    std::fs::create_dir_all(&d).unwrap();
    for f in std::fs::read_dir(fixture("tiny")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, d.join(f.file_name().unwrap())).unwrap();
    }
    // A1 (line 2) founded 2026, A3 (line 4) founded 2025
    edit_line(&d.join("accounts.csv"), 2, |l| l.replace(",2010", ",2026"));
    edit_line(&d.join("accounts.csv"), 4, |l| l.replace(",2000", ",2025"));
    let data = load_dir(&d, &tiny_config(), Need::Training).expect("loads");
    let r = &data.rejects;
    let (rows, cols, reasons) = (
        strings(r, "row"),
        strings(r, "column"),
        strings(r, "reason"),
    );
    let at = |row: &str| {
        (0..r.height()).find(|&i| strings(r, "file")[i] == "accounts.csv" && rows[i] == row)
    };
    // a founding year out of range is a cell read as missing, noted
    let a1 = at("2").expect("A1's founding year noted");
    assert_eq!(cols[a1], "founded_year");
    assert!(
        reasons[a1].contains("between 1600 and 2025"),
        "{}",
        reasons[a1]
    );
    assert!(at("4").is_none(), "A3, founded 2025, is kept");
}
