//! The published feed: only approved decisions reach `reports/published/`,
//! as add / move / remove changes that turn yesterday's segments into
//! today's, day after day.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use icp::domain::Action;
use icp::feed::{Change, Members};

use crate::common::{generated, icp, read_csv, root, run_quiet, stderr, stdout, strings, tree};

/// The contract's ten segment files, written out by hand.
const SEGMENTS: [&str; 10] = [
    "score_gte_30",
    "score_gte_40",
    "score_gte_50",
    "score_gte_60",
    "score_gte_70",
    "score_gte_80",
    "score_gte_90",
    "band_high",
    "band_medium",
    "band_low",
];
const BANDS: [&str; 3] = ["band_high", "band_medium", "band_low"];

fn members(published: &Path) -> Members {
    SEGMENTS
        .iter()
        .map(|s| {
            let df = read_csv(&published.join("segments").join(format!("{s}.csv")));
            let ids: BTreeSet<String> = strings(&df, "account_id").into_iter().collect();
            (s.to_string(), ids)
        })
        .collect()
}

/// What a workflow engine does with changes.csv, from the contract (not
/// the library's `feed::apply`): `add` puts an account that is not there in
/// the segment, `remove` takes one that is there out, `move` takes it out
/// of the one band segment that holds it and puts it in another.
fn apply_by_hand(before: &Members, changes: &[Change]) -> Members {
    let mut m: Members = SEGMENTS
        .iter()
        .map(|s| (s.to_string(), before.get(*s).cloned().unwrap_or_default()))
        .collect();
    for c in changes {
        let (seg, a) = (c.segment.as_str(), &c.account_id);
        assert!(
            SEGMENTS.contains(&seg),
            "a change to an unknown segment: {c:?}"
        );
        match c.action {
            Action::Add => assert!(
                m.get_mut(seg).unwrap().insert(a.clone()),
                "add of a member: {c:?}"
            ),
            Action::Remove => assert!(
                m.get_mut(seg).unwrap().remove(a),
                "remove of a non-member: {c:?}"
            ),
            Action::Move => {
                let from: Vec<&str> = BANDS.into_iter().filter(|b| m[*b].contains(a)).collect();
                assert!(BANDS.contains(&seg), "a move into a score segment: {c:?}");
                assert!(
                    from.len() == 1 && from[0] != seg,
                    "a move not from another band: {c:?}"
                );
                m.get_mut(from[0]).unwrap().remove(a);
                m.get_mut(seg).unwrap().insert(a.clone());
            }
        }
    }
    m
}

fn changes(published: &Path) -> Vec<Change> {
    let df = read_csv(&published.join("changes.csv"));
    let col = |c: &str| strings(&df, c);
    let (a, s, act, ps, sc, pb, b, w) = (
        col("account_id"),
        col("segment"),
        col("action"),
        col("previous_score"),
        col("score"),
        col("previous_band"),
        col("band"),
        col("why"),
    );
    (0..df.height())
        .map(|i| Change {
            segment: s[i].clone(),
            account_id: a[i].clone(),
            action: Action::parse(&act[i]).unwrap_or_else(|| panic!("unknown action {:?}", act[i])),
            previous_score: ps[i].parse().ok(),
            score: sc[i].parse().ok(),
            previous_band: Some(pb[i].clone()).filter(|x| !x.is_empty()),
            band: Some(b[i].clone()).filter(|x| !x.is_empty()),
            why: w[i].clone(),
        })
        .collect()
}

/// The invariant after each publication, and what must never be targeted.
fn check(published: &Path, before: &Members) -> (Members, Vec<Change>) {
    let now = members(published);
    let ch = changes(published);
    assert_eq!(
        apply_by_hand(before, &ch),
        now,
        "applying changes.csv to the previous segments does not give these"
    );
    let scores = read_csv(&published.join("scores.csv"));
    let ids = strings(&scores, "account_id");
    let crm = strings(&scores, "crm_status");
    let exc = strings(&scores, "excluded_by");
    let blocked: BTreeSet<&String> = (0..ids.len())
        .filter(|&i| !(crm[i] == "prospect" || crm[i] == "open_opportunity") || !exc[i].is_empty())
        .map(|i| &ids[i])
        .collect();
    for (seg, set) in &now {
        assert!(
            set.iter().all(|a| !blocked.contains(a)),
            "{seg} holds a customer or an excluded account"
        );
    }
    (now, ch)
}

fn score_day(data: &Path, reports: &Path) -> String {
    let o = icp(
        &[
            "score",
            "--data",
            data.to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn append(path: &Path, line: &str) {
    let mut t = std::fs::read_to_string(path).unwrap();
    t.push_str(line);
    t.push('\n');
    std::fs::write(path, t).unwrap();
}

/// The first cell of each line is the account id: edit one account's line.
fn edit_account(path: &Path, id: &str, f: impl Fn(&mut Vec<String>)) {
    let t = std::fs::read_to_string(path).unwrap();
    let out: Vec<String> = t
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{id},")) && !l.contains('"') {
                let mut cells: Vec<String> = l.split(',').map(str::to_string).collect();
                f(&mut cells);
                cells.join(",")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

fn find<'a>(ch: &'a [Change], a: &str) -> Vec<&'a Change> {
    ch.iter().filter(|c| c.account_id == a).collect()
}

#[test]
fn days_of_publications_turn_yesterday_into_today() {
    let (data, _) = generated(6_000, 8);
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let published = reports.join("published");
    let day1 = tmp.path().join("day1");
    copy_dir(&data, &day1);

    // a run proposes; nothing is published
    let run1 = reports.join("run1");
    run_quiet(Some(&day1), &run1, &reports, &[]);
    assert!(!published.exists(), "icp run published targeting");
    let m = icp::io::publish::run_id_of(&run1).unwrap();
    let manifest = std::fs::read_to_string(run1.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("proposal"),
        "{m}: the run's manifest does not say it is a proposal"
    );

    // the approval publishes the run's scoring: everything is an add
    let o = icp(
        &[
            "approve",
            run1.to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--by",
            "Sam Okafor",
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let a = crate::common::json(&run1.join("approval.json"));
    assert_eq!(
        a["deciders"],
        serde_json::json!(["Dana Revenue", "Sam Okafor"])
    );
    assert!(stdout(&o).contains("published:"), "{}", stdout(&o));
    let (m0, ch) = check(&published, &Members::new());
    assert!(ch.iter().all(|c| c.action == icp::domain::Action::Add));
    assert!(m0["score_gte_30"].len() > 100);
    // negative control: the oracle notices one change row missing
    assert_ne!(apply_by_hand(&Members::new(), &ch[1..]), m0);

    // day 1, same CRM: nothing changes
    score_day(&day1, &reports);
    let (m1, ch) = check(&published, &m0);
    assert!(ch.is_empty(), "the same inputs changed {} rows", ch.len());

    // day 2: the CRM moves on
    let day2 = tmp.path().join("day2");
    copy_dir(&day1, &day2);
    let seg: Vec<&String> = m1["score_gte_30"].iter().collect();
    let (won, opened, moved, deleted) = (
        seg[0].clone(),
        seg[1].clone(),
        seg[2].clone(),
        seg[3].clone(),
    );
    append(
        &day2.join("opportunities.csv"),
        &format!("OX0000001,{won},2025-06-01,2025-06-20,won,12000.00,,Core,inbound,rep_01"),
    );
    append(
        &day2.join("opportunities.csv"),
        &format!("OX0000002,{opened},2025-06-10,,open,9000.00,,Core,inbound,rep_02"),
    );
    // a firmographic change that moves a score
    edit_account(&day2.join("accounts.csv"), &moved, |c| {
        c[3] = "Government".into();
        c[5] = "5".into();
    });
    // an account deleted, one added
    let acc = std::fs::read_to_string(day2.join("accounts.csv")).unwrap();
    let kept: Vec<&str> = acc
        .lines()
        .filter(|l| !l.starts_with(&format!("{deleted},")))
        .collect();
    std::fs::write(day2.join("accounts.csv"), kept.join("\n") + "\n").unwrap();
    append(
        &day2.join("accounts.csv"),
        "A9999999,Newco Labs,newco.io,Logistics,United States,300,45000000,2015,private",
    );
    let out = score_day(&day2, &reports);
    assert!(out.contains("replacing"), "{out}");
    let (m2, ch) = check(&published, &m1);
    let why = |a: &str| {
        find(&ch, a)
            .iter()
            .map(|c| c.why.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        why(&won).iter().all(|w| w == "became a customer") && !why(&won).is_empty(),
        "{:?}",
        why(&won)
    );
    assert!(
        why(&deleted)
            .iter()
            .all(|w| w == "not in today's accounts file")
            && !why(&deleted).is_empty()
    );
    // an open opportunity stays targeted (the default audience): same
    // firmographics, same score, same control draw, so no change at all
    assert!(m2["score_gte_30"].contains(&opened));
    assert!(find(&ch, &opened).is_empty(), "{:?}", find(&ch, &opened));
    // five employees in Government: both approved exclusions of the
    // sample's ICP (under 25 employees, Government) take it out
    assert!(!why(&moved).is_empty());
    assert!(
        why(&moved).iter().all(|w| w.starts_with("excluded by")),
        "{:?}",
        why(&moved)
    );
    assert!(m2.values().all(|s| !s.contains(&moved)));
    // the new account enters its segments, unless the control draw holds
    // it out (then it is in no segment and has no change row)
    let scores = read_csv(&published.join("scores.csv"));
    let ids = strings(&scores, "account_id");
    let control = strings(&scores, "control");
    let k = ids
        .iter()
        .position(|a| a == "A9999999")
        .expect("the new account is scored");
    let new_why = why("A9999999");
    if control[k] == "true" {
        assert!(new_why.is_empty(), "{new_why:?}");
        assert!(m2.values().all(|s| !s.contains("A9999999")));
    } else {
        assert!(!new_why.is_empty());
        assert!(
            new_why.iter().all(|w| w == "new in today's accounts file"),
            "{new_why:?}"
        );
    }
    assert!(m2.values().all(|s| !s.contains(&won)));

    // a run in between changes nothing in reports/published/
    let before = tree(&published);
    run_quiet(Some(&day2), &reports.join("run2"), &reports, &[]);
    assert!(
        tree(&published) == before,
        "icp run touched reports/published/"
    );

    // day 3, same CRM as day 2: an empty changes.csv
    score_day(&day2, &reports);
    let (m3, ch) = check(&published, &m2);
    assert!(ch.is_empty());

    // approve run 2, then roll back to run 1's model: the next publication
    // says the model changed, and the invariant holds throughout
    let o = icp(
        &[
            "approve",
            reports.join("run2").to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (m4, _) = check(&published, &m3);
    let never = tmp.path().join("never");
    run_quiet(Some(&day2), &never, &reports, &[]);
    let o = icp(
        &[
            "activate",
            never.to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("never approved"), "{}", stderr(&o));
    let o = icp(
        &[
            "activate",
            run1.to_str().unwrap(),
            "--by",
            "Dana Revenue",
            "--note",
            "roll back",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // the active model survives its run directory being deleted
    std::fs::remove_dir_all(&run1).unwrap();
    score_day(&day2, &reports);
    let (_, ch) = check(&published, &m4);
    let m1_id = icp::review::active(&reports).unwrap().unwrap().0.model_id;
    if ch.iter().any(|c| c.why.starts_with("model ")) {
        assert!(
            ch.iter()
                .any(|c| c.why.starts_with(&format!("model {m1_id} replaced")))
        );
    }
    // every publication is kept
    let kept: Vec<PathBuf> = std::fs::read_dir(reports.join("publications"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(kept.len() >= 5, "{} publications kept", kept.len());
    let log = std::fs::read_to_string(reports.join("events.jsonl")).unwrap();
    assert!(log.contains("\"activation\"") && log.contains("\"publication\""));
}

/// `[publish] control_share`: a stable share of each band's targeting
/// accounts is withheld, listed in control.csv and in no segment; a later
/// run compares what targeted and withheld accounts did.
#[test]
fn a_control_group_is_withheld_and_measured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[publish]\ncontrol_share = 0.2\n").unwrap();
    let run1 = reports.join("run1");
    run_quiet(None, &run1, &reports, &["--config", cfg.to_str().unwrap()]);
    let o = icp(
        &[
            "approve",
            run1.to_str().unwrap(),
            "--by",
            "Dana",
            "--accept-all-exclusions",
            "--reports",
            reports.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let published = reports.join("published");
    let control = read_csv(&published.join("segments/control.csv"));
    let withheld: BTreeSet<String> = strings(&control, "account_id").into_iter().collect();
    let targeted = members(&published);
    // eligible: every account in a band segment, and the withheld ones
    let n_targeted = ["band_high", "band_medium", "band_low"]
        .iter()
        .map(|b| targeted[*b].len())
        .sum::<usize>()
        + withheld.len();
    // 20% of about 2,900 eligible: 580, standard deviation about 22
    assert!(
        withheld.len() * 100 > 16 * n_targeted && withheld.len() * 100 < 24 * n_targeted,
        "{} withheld of {n_targeted}",
        withheld.len()
    );
    for (seg, set) in &targeted {
        assert!(set.is_disjoint(&withheld), "{seg} holds a control account");
    }
    // the same accounts the next day
    score_day(&root().join("data/sample"), &reports);
    let again: BTreeSet<String> = strings(
        &read_csv(&published.join("segments/control.csv")),
        "account_id",
    )
    .into_iter()
    .collect();
    assert_eq!(again, withheld);
    assert!(changes(&published).is_empty());

    // as if the first publication had been made a quarter earlier
    let id = icp::io::publish::run_id_of(&published).unwrap();
    let kept = reports.join("publications").join(&id).join("manifest.json");
    let mut m = crate::common::json(&kept);
    m["as_of"] = serde_json::json!("2025-03-31");
    std::fs::write(&kept, serde_json::to_vec(&m).unwrap()).unwrap();
    let run2 = tmp.path().join("run2");
    run_quiet(None, &run2, &reports, &[]);
    let meas = crate::common::json(&run2.join("measurement.json"));
    let c = &meas["control"];
    assert_eq!(c["publication_id"], id.as_str());
    let control_high = strings(&control, "band")
        .iter()
        .filter(|b| *b == "high")
        .count() as u64;
    assert_eq!(
        c["control"]["bands"][0]["accounts"].as_u64(),
        Some(control_high)
    );
    assert_eq!(
        c["targeted"]["bands"][0]["accounts"].as_u64(),
        Some(targeted["band_high"].len() as u64)
    );
    let md = std::fs::read_to_string(run2.join("brief.md")).unwrap();
    assert!(
        md.contains(&format!("Publication {id}")),
        "no control comparison in the brief"
    );
}
