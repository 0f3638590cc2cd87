//! The published feed: what a workflow engine reads, written only by an
//! approval (`icp approve`) or by the daily `icp score` with the active,
//! approved model. A run directory is a proposal; `reports/published/` is
//! targeting.
//!
//! Each publication holds today's scores with each account's CRM status and
//! the approved exclusions it matches, the targeting segments (prospects and
//! open opportunities by default, scored, not excluded) and `changes.csv`:
//! the add / move / remove rows that turn the previous publication's
//! segments into these. It replaces `reports/published/` in one atomic swap
//! and is kept under `reports/publications/<id>/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::domain::{Action, Audience, Band, CrmStatus, Outcome, STATUS_SCORED, Segment};
use crate::error::{IcpError, Result};
use crate::evidence::signals::Finding;
use crate::io::publish::RunWriter;
use crate::stages::features::FeatureSpec;

pub const PUBLISHED: &str = "published";
pub const PUBLICATIONS: &str = "publications";
pub const CHANGES: &str = "changes.csv";
/// Columns of a targeting segment file.
pub const SEGMENT_COLUMNS: [&str; 6] = [
    "account_id",
    "account_name",
    "domain",
    "score",
    "band",
    "crm_status",
];

/// The CRM status of each account of `ids` (a frame with `account_id`), in
/// its row order, from its deals and the customers file. An account in
/// neither is a prospect. Deals and customers meet the accounts by row
/// number (ids interned once), not by joins on the id text.
pub fn crm_status(
    ids: &DataFrame,
    opportunities: Option<&DataFrame>,
    customers: Option<&DataFrame>,
) -> Result<Vec<CrmStatus>> {
    let text = crate::util::ids::text(ids, "account_id")?;
    let index = crate::util::ids::AccountIndex::new(&text);
    let rows = index.rows_of(ids, "account_id")?;
    crm_status_by_row(&index, &rows, opportunities, customers)
}

/// [`crm_status`] for the accounts `rows` of an index already built (each
/// row: its account's row in the index).
pub fn crm_status_by_row(
    index: &crate::util::ids::AccountIndex,
    rows: &[Option<u32>],
    opportunities: Option<&DataFrame>,
    customers: Option<&DataFrame>,
) -> Result<Vec<CrmStatus>> {
    let n = index.len();
    // per account (its first row): what its deals and customer record say
    #[derive(Default, Clone, Copy)]
    struct Seen {
        won: bool,
        churned: bool,
        open: bool,
        active: bool,
        left: bool,
    }
    let mut seen = vec![Seen::default(); n];
    if let Some(o) = opportunities {
        let outcome = crate::util::ids::text(o, "outcome")?;
        for (r, v) in index
            .rows_of(o, "account_id")?
            .into_iter()
            .zip(outcome.iter())
        {
            let (Some(r), Some(v)) = (r, v) else { continue };
            let s = &mut seen[r as usize];
            match Outcome::canonical(v) {
                Some(Outcome::Won) => s.won = true,
                Some(Outcome::Churned) => s.churned = true,
                Some(Outcome::Open) => s.open = true,
                Some(Outcome::Lost) | None => {}
            }
        }
    }
    if let Some(c) = customers {
        let status = crate::util::ids::text(c, "status")?;
        // as polars' to_lowercase: Unicode lower case
        let is = |v: &str, word: &str| {
            if v.is_ascii() {
                v.eq_ignore_ascii_case(word)
            } else {
                v.to_lowercase() == word
            }
        };
        for (r, v) in index
            .rows_of(c, "account_id")?
            .into_iter()
            .zip(status.iter())
        {
            let (Some(r), Some(v)) = (r, v) else { continue };
            let s = &mut seen[r as usize];
            s.active |= is(v, "active");
            s.left |= is(v, "churned");
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let s = r
                .and_then(|r| seen.get(r as usize).copied())
                .unwrap_or_default();
            if s.active || (s.won && !s.left) {
                CrmStatus::Customer
            } else if s.won || s.churned || s.left {
                CrmStatus::ChurnedCustomer
            } else if s.open {
                CrmStatus::OpenOpportunity
            } else {
                CrmStatus::Prospect
            }
        })
        .collect())
}

/// The ids of the exclude criteria each account matches (accounts matching
/// none are left out). `criteria` are refined-ICP criteria of `spec`.
pub fn criteria_matches(
    spec: &FeatureSpec,
    accounts: &DataFrame,
    criteria: &[Finding],
) -> Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    if criteria.is_empty() {
        return Ok(out);
    }
    let codes = crate::evidence::signals::conditions::account_codes(spec, accounts)?;
    let coded = crate::evidence::signals::rows::Coded::from_frame(&codes, spec.variables.len())?;
    let ids = crate::util::frame::str_col(&codes, "account_id")?;
    for c in criteria {
        for r in coded.mask(&c.cells).ones() {
            if let Some(a) = &ids[r] {
                out.entry(a.clone()).or_default().push(c.id.clone());
            }
        }
    }
    Ok(out)
}

/// One account of a publication.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub account_id: String,
    pub score: Option<i64>,
    pub band: String,
    /// "scored" or why not ("insufficient_data: 1 of 6 model inputs known")
    pub status: String,
    pub crm: CrmStatus,
    pub excluded_by: Vec<String>,
    /// withheld from targeting as a control (`[publish] control_share`)
    pub control: bool,
}

/// Is an account in the control group of a model? A hash of the model id
/// and the account id (FNV-1a, 64 bits, then a murmur3 finaliser), so an
/// account stays in or out for the model's life whatever else changes.
fn in_control(model_id: &str, account_id: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model_id
        .bytes()
        .chain(std::iter::once(0))
        .chain(account_id.bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV alone mixes the last bytes into the high bits poorly (ids that
    // differ in their last digits cluster); a murmur3 finaliser spreads them
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

impl Row {
    fn scored(&self) -> bool {
        self.status == STATUS_SCORED && self.score.is_some()
    }
    /// In the targeting segments at all?
    pub fn targeted(&self, audience: Audience) -> bool {
        self.eligible(audience) && !self.control
    }
    /// Targeted but for the control group?
    pub fn eligible(&self, audience: Audience) -> bool {
        self.scored()
            && self.excluded_by.is_empty()
            && match audience {
                Audience::Prospects => {
                    matches!(self.crm, CrmStatus::Prospect | CrmStatus::OpenOpportunity)
                }
                Audience::All => true,
            }
    }
}

/// What approving a run publishes, counted before anyone approves: each
/// segment's accounts as the workflow engine will receive them, with the
/// run's recommended exclusions applied and its control group withheld.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Preview {
    /// the exclude criteria it assumes approved
    pub exclusions: Vec<String>,
    pub audience: String,
    pub control_share: f64,
    /// segment, accounts, of them prospects, of them open opportunities
    pub segments: Vec<PreviewSegment>,
    /// scored accounts of the audience withheld as the control group
    pub control: usize,
    /// accounts of the audience the exclusions keep out of every segment
    pub excluded: usize,
    /// and of them prospects
    #[serde(default)]
    pub excluded_prospects: usize,
    /// from each band to its segment: scored, outside the audience, left
    /// out by the exclusions, withheld as control, published
    #[serde(default)]
    pub bands: Vec<BandBridge>,
    /// every account by CRM status (the one definition of each status)
    pub crm_status: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PreviewSegment {
    pub segment: String,
    pub accounts: usize,
    pub prospects: usize,
    pub open_opportunities: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct BandBridge {
    pub band: String,
    pub scored: usize,
    pub outside_audience: usize,
    pub excluded: usize,
    pub control: usize,
    pub published: usize,
}

/// [`Preview`] of publishing `scores` (CRM status `crm` and `excluded` by
/// score row), by the same rows, control rule and membership as
/// [`publish`], one row at a time (no account list is kept).
pub fn preview(
    scores: &DataFrame,
    crm: &[CrmStatus],
    excluded: &[bool],
    exclusions: Vec<String>,
    model_id: &str,
    audience: Audience,
    control_share: f64,
) -> Result<Preview> {
    let text = |c: &str| crate::util::ids::text(scores, c);
    let (ids, score, band, status) = (
        text("account_id")?,
        text("score")?,
        text("band")?,
        text("status")?,
    );
    let names = segment_names();
    let mut seg: Vec<PreviewSegment> = names
        .iter()
        .map(|n| PreviewSegment {
            segment: n.clone(),
            ..Default::default()
        })
        .collect();
    let mut bands: Vec<BandBridge> = Band::ALL
        .iter()
        .map(|b| BandBridge {
            band: b.as_str().to_string(),
            ..Default::default()
        })
        .collect();
    let mut crm_status: BTreeMap<String, usize> = BTreeMap::new();
    let (mut control, mut n_excluded, mut n_excluded_prospects) = (0, 0, 0);
    for i in 0..ids.len() {
        let c = crm.get(i).copied().unwrap_or(CrmStatus::Prospect);
        *crm_status.entry(c.as_str().to_string()).or_default() += 1;
        let mut r = Row {
            account_id: ids.get(i).unwrap_or_default().to_string(),
            score: score.get(i).and_then(|x| x.parse().ok()),
            band: band.get(i).unwrap_or_default().to_string(),
            status: status.get(i).unwrap_or_default().to_string(),
            crm: c,
            excluded_by: if excluded.get(i).copied().unwrap_or(false) {
                vec![String::new()]
            } else {
                Vec::new()
            },
            control: false,
        };
        r.control = r.eligible(audience) && in_control(model_id, &r.account_id, control_share);
        let in_audience = r.scored()
            && match audience {
                Audience::Prospects => {
                    matches!(r.crm, CrmStatus::Prospect | CrmStatus::OpenOpportunity)
                }
                Audience::All => true,
            };
        if in_audience && !r.excluded_by.is_empty() {
            n_excluded += 1;
            n_excluded_prospects += (r.crm == CrmStatus::Prospect) as usize;
        }
        control += r.control as usize;
        if let Some(b) = bands.iter_mut().find(|b| r.scored() && b.band == r.band) {
            b.scored += 1;
            if !in_audience {
                b.outside_audience += 1;
            } else if !r.excluded_by.is_empty() {
                b.excluded += 1;
            } else if r.control {
                b.control += 1;
            }
        }
        for name in segments_of(&r, audience) {
            if let Some(k) = names.iter().position(|n| *n == name) {
                let s = &mut seg[k];
                s.accounts += 1;
                s.prospects += (r.crm == CrmStatus::Prospect) as usize;
                s.open_opportunities += (r.crm == CrmStatus::OpenOpportunity) as usize;
            }
        }
    }
    for (b, s) in bands
        .iter_mut()
        .zip(seg.iter().skip(Segment::THRESHOLDS.len()))
    {
        b.published = s.accounts;
    }
    Ok(Preview {
        exclusions,
        audience: match audience {
            Audience::Prospects => "prospects".into(),
            Audience::All => "all".into(),
        },
        control_share,
        segments: seg,
        control,
        excluded: n_excluded,
        excluded_prospects: n_excluded_prospects,
        bands,
        crm_status,
    })
}

/// The ten segment names, in file order.
fn segment_names() -> Vec<String> {
    Segment::all().map(Segment::name).collect()
}

/// Which segments a row belongs to.
fn segments_of(r: &Row, audience: Audience) -> Vec<String> {
    if !r.targeted(audience) {
        return Vec::new();
    }
    let s = r.score.unwrap_or(i64::MIN);
    let mut v: Vec<String> = Segment::THRESHOLDS
        .into_iter()
        .filter(|t| s >= *t as i64)
        .map(|t| Segment::ScoreAtLeast(t).name())
        .collect();
    if let Some(b) = Band::parse(&r.band) {
        v.push(Segment::Band(b).name());
    }
    v
}

/// Segment name -> member account ids.
pub type Members = BTreeMap<String, BTreeSet<String>>;

pub fn members(rows: &[Row], audience: Audience) -> Members {
    let mut m: Members = segment_names()
        .into_iter()
        .map(|s| (s, BTreeSet::new()))
        .collect();
    for r in rows {
        for s in segments_of(r, audience) {
            if let Some(set) = m.get_mut(&s) {
                set.insert(r.account_id.clone());
            }
        }
    }
    m
}

/// One line of changes.csv.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub segment: String,
    pub account_id: String,
    pub action: Action,
    pub previous_score: Option<i64>,
    pub score: Option<i64>,
    pub previous_band: Option<String>,
    pub band: Option<String>,
    pub why: String,
}

/// What the previous publication said.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    pub id: String,
    pub model_id: Option<String>,
    pub rows: HashMap<String, Row>,
    pub members: Members,
}

/// Why an account's segments changed, in plain words (the first that applies).
fn why(
    prev: Option<&Row>,
    now: Option<&Row>,
    prev_model: Option<&str>,
    model: &str,
    audience: Audience,
) -> String {
    let Some(now) = now else {
        return "not in today's accounts file".into();
    };
    let Some(prev) = prev else {
        return "new in today's accounts file".into();
    };
    if !now.excluded_by.is_empty() && now.excluded_by != prev.excluded_by {
        return format!("excluded by {}", now.excluded_by.join(", "));
    }
    // a CRM change is the reason only when it changes who may be targeted
    // (prospect to open opportunity does not, by default)
    if now.crm != prev.crm && now.eligible(audience) != prev.eligible(audience) {
        return match now.crm {
            CrmStatus::Customer => "became a customer".into(),
            CrmStatus::ChurnedCustomer => "churned".into(),
            CrmStatus::OpenOpportunity => "opened an opportunity".into(),
            CrmStatus::Prospect => "back to prospect".into(),
        };
    }
    if now.control && !prev.control {
        return "held out as a control".into();
    }
    if !now.control && prev.control {
        return "back from the control group".into();
    }
    if !now.scored() {
        let reason = now
            .status
            .split_once(": ")
            .map(|x| x.1)
            .unwrap_or(&now.status);
        return format!("no longer scored: {reason}");
    }
    if !prev.scored() {
        return "now scored".into();
    }
    if now.excluded_by.is_empty() && !prev.excluded_by.is_empty() {
        return format!("no longer excluded by {}", prev.excluded_by.join(", "));
    }
    if prev_model.is_some_and(|p| p != model) {
        return format!("model {model} replaced {}", prev_model.unwrap_or_default());
    }
    format!(
        "score {} -> {}",
        prev.score.map(|s| s.to_string()).unwrap_or_default(),
        now.score.map(|s| s.to_string()).unwrap_or_default()
    )
}

/// The add / move / remove rows that turn `prev`'s segments into `now`'s.
/// Score segments: add or remove. Band segments: an account changing band is
/// one `move` (segment = its new band), entering the bands `add`, leaving
/// them `remove`.
pub fn changes(
    prev: Option<&Previous>,
    rows: &[Row],
    now: &Members,
    model_id: &str,
    audience: Audience,
) -> Vec<Change> {
    let empty = Previous::default();
    let p = prev.unwrap_or(&empty);
    let by_id: HashMap<&str, &Row> = rows.iter().map(|r| (r.account_id.as_str(), r)).collect();
    let mk = |seg: &str, a: &str, action: Action| {
        let (pr, nr) = (p.rows.get(a), by_id.get(a).copied());
        Change {
            segment: seg.to_string(),
            account_id: a.to_string(),
            action,
            previous_score: pr.and_then(|r| r.score),
            score: nr.and_then(|r| r.score),
            previous_band: pr.map(|r| r.band.clone()),
            band: nr.map(|r| r.band.clone()),
            why: if prev.is_none() {
                "first publication".to_string()
            } else {
                why(pr, nr, p.model_id.as_deref(), model_id, audience)
            },
        }
    };
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for t in Segment::THRESHOLDS {
        let seg = Segment::ScoreAtLeast(t).name();
        let (old, new) = (
            p.members.get(&seg).unwrap_or(&none),
            now.get(&seg).unwrap_or(&none),
        );
        for a in new.difference(old) {
            out.push(mk(&seg, a, Action::Add));
        }
        for a in old.difference(new) {
            out.push(mk(&seg, a, Action::Remove));
        }
    }
    // band segments: each account in at most one
    let band_of = |m: &Members| -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        for b in Band::ALL {
            let seg = Segment::Band(b).name();
            if let Some(set) = m.get(&seg) {
                for a in set {
                    v.insert(a.clone(), seg.clone());
                }
            }
        }
        v
    };
    let (old_b, new_b) = (band_of(&p.members), band_of(now));
    let ids: BTreeSet<&String> = old_b.keys().chain(new_b.keys()).collect();
    for a in ids {
        match (old_b.get(a), new_b.get(a)) {
            (Some(o), Some(n)) if o != n => out.push(mk(n, a, Action::Move)),
            (None, Some(n)) => out.push(mk(n, a, Action::Add)),
            (Some(o), None) => out.push(mk(o, a, Action::Remove)),
            _ => {}
        }
    }
    let order: HashMap<String, usize> = segment_names()
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i))
        .collect();
    out.sort_by(|a, b| {
        order[&a.segment]
            .cmp(&order[&b.segment])
            .then(a.account_id.cmp(&b.account_id))
    });
    out
}

/// Apply changes to segment memberships (what a workflow engine does).
pub fn apply(prev: &Members, changes: &[Change]) -> Members {
    let mut m: Members = segment_names()
        .into_iter()
        .map(|s| {
            let set = prev.get(&s).cloned().unwrap_or_default();
            (s, set)
        })
        .collect();
    for c in changes {
        match c.action {
            Action::Add => {
                m.entry(c.segment.clone())
                    .or_default()
                    .insert(c.account_id.clone());
            }
            Action::Remove => {
                m.entry(c.segment.clone())
                    .or_default()
                    .remove(&c.account_id);
            }
            Action::Move => {
                for b in Band::ALL {
                    if let Some(set) = m.get_mut(&Segment::Band(b).name()) {
                        set.remove(&c.account_id);
                    }
                }
                m.entry(c.segment.clone())
                    .or_default()
                    .insert(c.account_id.clone());
            }
        }
    }
    m
}

/// Rows from a scores frame (typed or read back as text) and today's CRM
/// status and matched exclusions.
pub fn rows(
    scores: &DataFrame,
    crm: &[CrmStatus],
    excluded: &HashMap<String, Vec<String>>,
) -> Result<Vec<Row>> {
    let s = crate::util::frame::str_col;
    let (ids, score, band, status) = (
        s(scores, "account_id")?,
        s(scores, "score")?,
        s(scores, "band")?,
        s(scores, "status")?,
    );
    // one row per score row, in its order (scores_with_status relies on it)
    Ok((0..ids.len())
        .map(|i| {
            let a = ids[i].clone().unwrap_or_default();
            Row {
                crm: crm.get(i).copied().unwrap_or(CrmStatus::Prospect),
                excluded_by: excluded.get(&a).cloned().unwrap_or_default(),
                score: score[i].as_deref().and_then(|x| x.parse().ok()),
                band: band[i].clone().unwrap_or_default(),
                status: status[i].clone().unwrap_or_default(),
                control: false,
                account_id: a,
            }
        })
        .collect())
}

/// The scores frame with `crm_status` and `excluded_by` (ids joined by ";").
fn scores_with_status(scores: &DataFrame, rows: &[Row]) -> Result<DataFrame> {
    let mut df = scores.clone();
    let n = df.height();
    df.with_column(Column::new(
        "crm_status".into(),
        rows.iter().map(|r| r.crm.as_str()).collect::<Vec<_>>(),
    ))?;
    df.with_column(Column::new(
        "excluded_by".into(),
        rows.iter()
            .map(|r| r.excluded_by.join(";"))
            .collect::<Vec<_>>(),
    ))?;
    debug_assert_eq!(n, rows.len());
    Ok(df)
}

/// The segment files' rows, in score order (desc) then account_id.
fn segment_frame(full: &DataFrame, ids: &BTreeSet<String>) -> Result<DataFrame> {
    let keep = Series::new("__ids".into(), ids.iter().cloned().collect::<Vec<_>>());
    Ok(full
        .clone()
        .lazy()
        .filter(
            col("account_id")
                .cast(DataType::String)
                .is_in(lit(keep).implode(false), false),
        )
        .select(SEGMENT_COLUMNS.map(col))
        .sort_by_exprs(
            [col("score").cast(DataType::Int64), col("account_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()?)
}

fn changes_frame(ch: &[Change]) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&Change) -> String| ch.iter().map(f).collect::<Vec<String>>();
    let o = |f: &dyn Fn(&Change) -> Option<i64>| ch.iter().map(f).collect::<Vec<Option<i64>>>();
    let ob =
        |f: &dyn Fn(&Change) -> Option<String>| ch.iter().map(f).collect::<Vec<Option<String>>>();
    Ok(DataFrame::new(
        ch.len(),
        vec![
            Column::new("account_id".into(), s(&|c| c.account_id.clone())),
            Column::new("segment".into(), s(&|c| c.segment.clone())),
            Column::new("action".into(), s(&|c| c.action.as_str().to_string())),
            Column::new("previous_score".into(), o(&|c| c.previous_score)),
            Column::new("score".into(), o(&|c| c.score)),
            Column::new("previous_band".into(), ob(&|c| c.previous_band.clone())),
            Column::new("band".into(), ob(&|c| c.band.clone())),
            Column::new("why".into(), s(&|c| c.why.clone())),
        ],
    )?)
}

/// The publication now in `reports/published/`, if any.
pub fn previous(reports: &Path) -> Result<Option<Previous>> {
    let dir = reports.join(PUBLISHED);
    let mpath = dir.join("manifest.json");
    if !mpath.is_file() {
        // the first publication, unless earlier ones are kept: then the
        // current one was lost, and changes against nothing would be wrong
        let kept = fs::read_dir(reports.join(PUBLICATIONS))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0);
        if kept > 0 {
            return Err(IcpError::read(
                &dir,
                format!(
                    "no current publication, but {kept} earlier ones are kept in {}: copy the newest back to {} before publishing, so that changes.csv is against what the workflow engine has",
                    reports.join(PUBLICATIONS).display(),
                    dir.display()
                ),
            ));
        }
        return Ok(None);
    }
    let text = fs::read_to_string(&mpath).map_err(|e| IcpError::read(&mpath, e))?;
    let m: crate::io::publish::Manifest = serde_json::from_str(&text)
        .map_err(|e| IcpError::read(&mpath, format!("not the expected JSON: {e}")))?;
    let scores = crate::io::publish::read_text_csv(&dir.join("scores.csv"))?;
    let s = crate::util::frame::str_col;
    let crm_col = s(&scores, "crm_status")?;
    let exc_col = s(&scores, "excluded_by")?;
    // an unreadable status would read as a prospect (targeted): stop instead
    let crm: Vec<CrmStatus> = crm_col
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.as_deref().and_then(CrmStatus::parse).ok_or_else(|| {
                IcpError::read(
                    dir.join("scores.csv"),
                    format!(
                        "row {}: crm_status {:?} is not one of customer, churned_customer, open_opportunity, prospect",
                        i + 2,
                        c.as_deref().unwrap_or("")
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let exc: HashMap<String, Vec<String>> = s(&scores, "account_id")?
        .into_iter()
        .zip(&exc_col)
        .filter_map(|(a, e)| {
            let e = e.clone().filter(|e| !e.is_empty())?;
            Some((a?, e.split(';').map(str::to_string).collect()))
        })
        .collect();
    let mut rows = rows(&scores, &crm, &exc)?;
    if scores.column("control").is_ok() {
        for (r, c) in rows.iter_mut().zip(s(&scores, "control")?) {
            r.control = c.as_deref() == Some("true");
        }
    }
    let mut members = Members::new();
    for name in segment_names() {
        let path = dir.join("segments").join(format!("{name}.csv"));
        if !path.is_file() {
            return Err(IcpError::read(
                &path,
                "missing from the current publication: changes against it would be wrong; restore the publication (a copy is under reports/publications/) before publishing again",
            ));
        }
        let set = s(&crate::io::publish::read_text_csv(&path)?, "account_id")?
            .into_iter()
            .flatten()
            .collect();
        members.insert(name, set);
    }
    Ok(Some(Previous {
        id: m.run_id,
        model_id: m.model_id,
        rows: rows
            .into_iter()
            .map(|r| (r.account_id.clone(), r))
            .collect(),
        members,
    }))
}

/// The CRM's import file in every publication and scoring directory.
pub const CRM_IMPORT: &str = "crm_import.csv";

/// What a publication was made from.
pub struct Publish<'a> {
    pub reports: &'a Path,
    /// "approve" or "score"
    pub by: &'a str,
    pub model_id: &'a str,
    pub as_of: Option<String>,
    pub audience: Audience,
    /// share of each band's targeting accounts withheld (0: none)
    pub control_share: f64,
    pub inputs: Vec<crate::io::load::InputFile>,
    /// scores of every account (a run's scores.csv, typed or as text)
    pub scores: &'a DataFrame,
    /// each score row's CRM status, in the scores' row order
    pub crm: &'a [CrmStatus],
    pub excluded: &'a HashMap<String, Vec<String>>,
    /// the input rows not used, with their reasons
    pub rejects: &'a DataFrame,
    /// header names of `crm_import.csv`
    pub crm_import: &'a crate::config::CrmImport,
}

/// `crm_import.csv`: every scored or unscored account in the scores' order,
/// under the CRM's own names, in the shape CRM import tools take (a record
/// id column plus one column per field to update): the score (empty when
/// the account could not be scored), band, reasons and model id. Values are
/// written exactly (no formula prefix), so the ids match the CRM's records.
pub fn crm_import(scores: &DataFrame, names: &crate::config::CrmImport) -> Result<DataFrame> {
    // names come checked from the config; an artifact edited by hand may not
    if let Some(h) = names.repeated() {
        return Err(IcpError::Usage(format!(
            "[crm_import]: the name \"{h}\" is given to two columns of crm_import.csv"
        )));
    }
    let sources = ["account_id", "score", "band", "reasons", "model_id"];
    Ok(scores
        .clone()
        .lazy()
        .select(
            sources
                .iter()
                .zip(names.headers())
                .map(|(c, name)| col(*c).cast(DataType::String).alias(name))
                .collect::<Vec<_>>(),
        )
        .collect()?)
}

/// What a publication did, for the caller's summary.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: String,
    pub previous: Option<String>,
    pub dir: PathBuf,
    pub kept: PathBuf,
    /// (segment, accounts)
    pub counts: Vec<(String, usize)>,
    /// (action, rows)
    pub actions: Vec<(String, usize)>,
}

/// Write a publication to `reports/published/` (atomically replacing the
/// previous one) and keep a copy under `reports/publications/<id>/`.
pub fn publish(p: &Publish) -> Result<Published> {
    // one publisher at a time: changes are computed against the current
    // publication, which must not change underneath
    let _lock = lock(p.reports)?;
    let prev = previous(p.reports)?;
    // a crash after the last swap may have left it without its kept copy
    if let Some(x) = &prev {
        copy_dir(
            &p.reports.join(PUBLISHED),
            &p.reports.join(PUBLICATIONS).join(&x.id),
        )?;
    }
    let mut rows = rows(p.scores, p.crm, p.excluded)?;
    for r in rows.iter_mut() {
        r.control =
            r.eligible(p.audience) && in_control(p.model_id, &r.account_id, p.control_share);
    }
    let now = members(&rows, p.audience);
    let ch = changes(prev.as_ref(), &rows, &now, p.model_id, p.audience);
    let mut full = scores_with_status(p.scores, &rows)?;
    let control: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.control)
        .map(|r| r.account_id.clone())
        .collect();
    if p.control_share > 0.0 {
        full.with_column(Column::new(
            "control".into(),
            rows.iter().map(|r| r.control).collect::<Vec<_>>(),
        ))?;
    }
    let dest = p.reports.join(PUBLISHED);
    let mut w = RunWriter::create(&dest)?;
    let written = (|| -> Result<Vec<(String, usize)>> {
        w.csv("scores.csv", &full)?;
        let mut counts = Vec::new();
        for name in segment_names() {
            let ids = &now[&name];
            w.csv(&format!("segments/{name}.csv"), &segment_frame(&full, ids)?)?;
            counts.push((name, ids.len()));
        }
        if p.control_share > 0.0 {
            w.csv("segments/control.csv", &segment_frame(&full, &control)?)?;
            counts.push(("control".into(), control.len()));
        }
        w.csv(CHANGES, &changes_frame(&ch)?)?;
        w.csv(CRM_IMPORT, &crm_import(p.scores, p.crm_import)?)?;
        w.csv_for_people("rejects.csv", p.rejects)?;
        Ok(counts)
    })();
    let counts = match written {
        Ok(c) => c,
        Err(e) => {
            w.abandon();
            return Err(e);
        }
    };
    let mut actions: BTreeMap<Action, usize> = Action::ALL.into_iter().map(|a| (a, 0)).collect();
    for c in &ch {
        *actions.entry(c.action).or_default() += 1;
    }
    let actions: Vec<(String, usize)> = actions
        .into_iter()
        .map(|(a, n)| (a.as_str().to_string(), n))
        .collect();
    let mut manifest_counts = counts.clone();
    manifest_counts.extend(actions.iter().map(|(a, n)| (format!("changes_{a}"), *n)));
    w.set_publication(
        prev.as_ref().map(|x| x.id.clone()),
        p.as_of.clone(),
        format!(
            "publication by icp {}; audience {}; control_share {}",
            p.by,
            match p.audience {
                Audience::Prospects => "prospects",
                Audience::All => "all",
            },
            p.control_share
        ),
    );
    let dir = w.finish(
        "publication",
        Some(p.model_id.to_string()),
        p.inputs.clone(),
        manifest_counts,
    )?;
    let id = crate::io::publish::run_id_of(&dir)?;
    let kept = p.reports.join(PUBLICATIONS).join(&id);
    copy_dir(&dir, &kept)?;
    Ok(Published {
        id,
        previous: prev.map(|x| x.id),
        dir,
        kept,
        counts,
        actions: actions.into_iter().collect(),
    })
}

/// An exclusive lock on `reports/.publish.lock`, released when dropped
/// (the file is closed).
fn lock(reports: &Path) -> Result<fs::File> {
    fs::create_dir_all(reports).map_err(|e| IcpError::write(reports, e))?;
    let path = reports.join(".publish.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IcpError::write(&path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a valid open file descriptor; blocks until the lock is free.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(IcpError::write(&path, std::io::Error::last_os_error()));
        }
    }
    Ok(f)
}

/// Copy a publication whole: into a temporary sibling, then renamed.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if to.join("manifest.json").is_file() {
        return Ok(()); // the same id is the same content
    }
    let parent = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| IcpError::write(parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        to.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    fn rec(a: &Path, b: &Path) -> Result<()> {
        fs::create_dir_all(b).map_err(|e| IcpError::write(b, e))?;
        for e in fs::read_dir(a).map_err(|e| IcpError::read(a, e))?.flatten() {
            let (src, dst) = (e.path(), b.join(e.file_name()));
            if src.is_dir() {
                rec(&src, &dst)?;
            } else {
                fs::copy(&src, &dst).map_err(|e| IcpError::write(&dst, e))?;
            }
        }
        Ok(())
    }
    rec(from, &tmp)?;
    let _ = fs::remove_dir_all(to);
    fs::rename(&tmp, to).map_err(|e| IcpError::write(to, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, score: Option<i64>, band: &str, crm: CrmStatus, exc: &[&str]) -> Row {
        Row {
            account_id: id.into(),
            score,
            band: band.into(),
            status: if score.is_some() {
                STATUS_SCORED.into()
            } else {
                "insufficient_data: 1 of 6 model inputs known".into()
            },
            crm,
            excluded_by: exc.iter().map(|s| s.to_string()).collect(),
            control: false,
        }
    }

    /// Day 1 -> day 2 by hand: A moves 64 -> 71 (medium -> high), B becomes
    /// a customer, C is excluded by X02, D loses its data, E is deleted, F
    /// is new at 35. Each change is worded and applying them gives day 2.
    #[test]
    fn changes_turn_yesterday_into_today_with_reasons() {
        use CrmStatus::*;
        let day1 = vec![
            row("A", Some(64), "medium", Prospect, &[]),
            row("B", Some(80), "high", OpenOpportunity, &[]),
            row("C", Some(45), "medium", Prospect, &[]),
            row("D", Some(30), "low", Prospect, &[]),
            row("E", Some(91), "high", Prospect, &[]),
        ];
        let day2 = vec![
            row("A", Some(71), "high", Prospect, &[]),
            row("B", Some(80), "high", Customer, &[]),
            row("C", Some(45), "medium", Prospect, &["X02"]),
            row("D", None, "unscored", Prospect, &[]),
            row("F", Some(35), "low", Prospect, &[]),
        ];
        let m1 = members(&day1, Audience::Prospects);
        let prev = Previous {
            id: "p1".into(),
            model_id: Some("m-1".into()),
            rows: day1
                .iter()
                .map(|r| (r.account_id.clone(), r.clone()))
                .collect(),
            members: m1.clone(),
        };
        let m2 = members(&day2, Audience::Prospects);
        let ch = changes(Some(&prev), &day2, &m2, "m-1", Audience::Prospects);
        assert_eq!(apply(&m1, &ch), m2);
        let find = |seg: &str, a: &str| {
            ch.iter()
                .find(|c| c.segment == seg && c.account_id == a)
                .map(|c| (c.action.as_str(), c.why.as_str()))
        };
        assert_eq!(find("score_gte_70", "A"), Some(("add", "score 64 -> 71")));
        assert_eq!(find("band_high", "A"), Some(("move", "score 64 -> 71")));
        assert_eq!(
            find("band_high", "B"),
            Some(("remove", "became a customer"))
        );
        assert_eq!(
            find("band_medium", "C"),
            Some(("remove", "excluded by X02"))
        );
        assert_eq!(
            find("band_low", "D"),
            Some(("remove", "no longer scored: 1 of 6 model inputs known"))
        );
        assert_eq!(
            find("score_gte_90", "E"),
            Some(("remove", "not in today's accounts file"))
        );
        assert_eq!(
            find("band_low", "F"),
            Some(("add", "new in today's accounts file"))
        );
        // A stays in score_gte_30..60: no row there
        assert_eq!(find("score_gte_60", "A"), None);
        // the same day again: nothing changes
        let prev2 = Previous {
            id: "p2".into(),
            model_id: Some("m-1".into()),
            rows: day2
                .iter()
                .map(|r| (r.account_id.clone(), r.clone()))
                .collect(),
            members: m2.clone(),
        };
        assert!(changes(Some(&prev2), &day2, &m2, "m-1", Audience::Prospects).is_empty());
        // customers and excluded accounts are in no targeting segment
        for set in m2.values() {
            assert!(!set.contains("B") && !set.contains("C"));
        }
        // the first publication: everything is an add
        let first = changes(None, &day1, &m1, "m-1", Audience::Prospects);
        assert!(first.iter().all(|c| c.action == Action::Add));
        assert_eq!(apply(&Members::new(), &first), m1);
    }

    /// The control group: about the share asked for, the same accounts on
    /// every day of a model, others under another model, and never targeted.
    #[test]
    fn control_accounts_are_stable_per_model_and_never_targeted() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("A{i:07}")).collect();
        let n = ids.iter().filter(|a| in_control("m-1", a, 0.1)).count();
        // 2,000 expected, standard deviation about 42
        assert!((1_850..2_150).contains(&n), "{n} of 20,000 at 10%");
        // and sequential ids in blocks of a thousand are not clustered
        for block in ids.chunks(1_000) {
            let k = block.iter().filter(|a| in_control("m-1", a, 0.1)).count();
            assert!((50..150).contains(&k), "{k} of a block of 1,000");
        }
        assert_eq!(ids.iter().filter(|a| in_control("m-1", a, 0.0)).count(), 0);
        let again = ids.iter().filter(|a| in_control("m-1", a, 0.1)).count();
        assert_eq!(n, again);
        let other: usize = ids
            .iter()
            .filter(|a| in_control("m-1", a, 0.1) && in_control("m-2", a, 0.1))
            .count();
        assert!(other < 400, "{other}: another model draws its own group");
        let mut r = row("A", Some(90), "high", CrmStatus::Prospect, &[]);
        r.control = true;
        assert!(r.eligible(Audience::Prospects) && !r.targeted(Audience::Prospects));
        assert!(
            members(&[r], Audience::Prospects)
                .values()
                .all(|s| s.is_empty())
        );
    }

    #[test]
    fn crm_status_follows_deals_and_customers() {
        let opps = DataFrame::new(
            5,
            vec![
                Column::new("account_id".into(), ["A", "B", "C", "D", "D"]),
                Column::new("outcome".into(), ["won", "open", "churned", "lost", "open"]),
            ],
        )
        .unwrap();
        let cust = DataFrame::new(
            2,
            vec![
                Column::new("account_id".into(), ["A", "E"]),
                Column::new("status".into(), ["churned", "active"]),
            ],
        )
        .unwrap();
        let ids = DataFrame::new(
            6,
            vec![Column::new(
                "account_id".into(),
                ["F", "E", "D", "C", "B", "A"],
            )],
        )
        .unwrap();
        let s = crm_status(&ids, Some(&opps), Some(&cust)).unwrap();
        use CrmStatus::*;
        // in the ids' order: F in neither file, E active, D lost then open,
        // C churned, B open, A won then left
        assert_eq!(
            s,
            [
                Prospect,
                Customer,
                OpenOpportunity,
                ChurnedCustomer,
                OpenOpportunity,
                ChurnedCustomer
            ]
        );
    }
}
