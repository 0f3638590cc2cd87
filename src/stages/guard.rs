//! The leak guard, run before every fit: account columns that the sale
//! itself writes (lifecycle stage, deal rollups, "became a customer"
//! dates), and columns that name people or records (owners, phones, postal
//! codes, activity dates, free text), never reach the model or the ICP.
//!
//! CRM exports carry such columns by the dozen, and a model fed one learns
//! the outcome from it: the holdout AUC rises while the ranking of
//! prospects collapses, because prospects have no value to be ranked by. So
//! each column is judged by what it is (its name, its values) and by how
//! it sits against the deals' outcomes; the first rule it breaks is its
//! reason, shown in the run's summary, the brief and model.json. A column
//! the user vouches for is kept with `[features] allow = [...]`.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use polars::prelude::*;

use crate::config::FeatureParams;
use crate::domain::Outcome;
use crate::error::Result;
use crate::util::{pct, thousands};

/// A column kept out of the model, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    pub column: String,
    pub reason: String,
}

/// Words of column names that name people or records, not companies.
const RECORD_WORDS: &[&str] = &[
    "owner",
    "rep",
    "representative",
    "assigned",
    "created by",
    "modified by",
    "email",
    "e-mail",
    "fax",
    "zip",
    "postal",
    "postcode",
    "time zone",
    "timezone",
    "street",
    "address",
    "city",
    "latitude",
    "longitude",
    "linkedin",
    "twitter",
    "facebook",
    "description",
    "notes",
    "note",
    "comment",
    "comments",
    "next step",
];

/// Words that name a record's contact details in some headers ("Phone",
/// "Mobile") and a company's trait in others ("Phone System", "Has Mobile
/// App", "Contact Center Software", "Salesforce User"): the values decide.
const CONTACT_WORDS: &[&str] = &["phone", "mobile", "contact", "user"];

/// First names common in CRM user lists: a column whose values mostly
/// start with one names people (owners, reps), whatever its header says.
const FIRST_NAMES: &[&str] = &[
    "aaron",
    "adam",
    "alex",
    "alexander",
    "alice",
    "alicia",
    "amanda",
    "amy",
    "andrea",
    "andrew",
    "angela",
    "anna",
    "anthony",
    "ashley",
    "barbara",
    "ben",
    "benjamin",
    "beth",
    "bob",
    "brandon",
    "brian",
    "carlos",
    "carol",
    "catherine",
    "charles",
    "chris",
    "christina",
    "christopher",
    "claire",
    "daniel",
    "dana",
    "david",
    "deborah",
    "dennis",
    "diana",
    "donna",
    "elizabeth",
    "emily",
    "emma",
    "eric",
    "frank",
    "gary",
    "george",
    "grace",
    "greg",
    "hannah",
    "heather",
    "henry",
    "jack",
    "jacob",
    "james",
    "jamie",
    "jane",
    "jason",
    "jeff",
    "jennifer",
    "jessica",
    "john",
    "jonathan",
    "jordan",
    "jose",
    "joseph",
    "josh",
    "joshua",
    "julia",
    "julie",
    "justin",
    "karen",
    "kate",
    "katherine",
    "kelly",
    "kevin",
    "kim",
    "laura",
    "lauren",
    "linda",
    "lisa",
    "maria",
    "mark",
    "mary",
    "matt",
    "matthew",
    "megan",
    "melissa",
    "michael",
    "michelle",
    "mike",
    "morgan",
    "nancy",
    "nicole",
    "olivia",
    "patricia",
    "patrick",
    "paul",
    "peter",
    "rachel",
    "rebecca",
    "richard",
    "riley",
    "robert",
    "ryan",
    "sam",
    "samantha",
    "sandra",
    "sarah",
    "scott",
    "sean",
    "sophie",
    "stephanie",
    "stephen",
    "steve",
    "steven",
    "susan",
    "taylor",
    "thomas",
    "tim",
    "timothy",
    "tom",
    "tyler",
    "victoria",
    "william",
    "casey",
    "avery",
    "quinn",
    "drew",
    "robin",
    "jesse",
    "kai",
    "leslie",
    "lee",
    "pat",
];

/// The account rows of each group the rules compare: with any deal,
/// without (prospects); with a closed deal, won or not.
struct Groups {
    deal: Vec<usize>,
    prospect: Vec<usize>,
    won: Vec<usize>,
    lost: Vec<usize>,
}

/// Least accounts in each group before a rule that compares groups speaks.
const MIN_GROUP: usize = 20;
/// A fill-rate gap this wide between two groups is written by the sale ...
const FILL_GAP: f64 = 0.8;
/// ... and so is a column empty for one group (at most this share filled)
/// and filled for at least half of the other.
const EMPTY: f64 = 0.02;
/// A single column separating groups this well (AUC) is no firmographic.
const SEPARATES: f64 = 0.95;
/// A value this pure (share of won accounts, or of lost ones) ...
const PURE: f64 = 0.97;
/// ... where chance would have put at least this many of the other kind.
const EXPECTED_OTHERS: f64 = 10.0;

/// Judge every candidate feature column of `accounts`. `opportunities`
/// says which accounts have deals; `labels` (account_id, outcome)
/// which closed deals were won. Canonical identifiers, columns
/// the config excludes and columns it allows are not judged.
pub fn screen(
    accounts: &DataFrame,
    opportunities: &DataFrame,
    labels: &DataFrame,
    params: &FeatureParams,
    date_format: Option<&str>,
) -> Result<Vec<Dropped>> {
    let mut trace = crate::util::progress::Trace::start();
    let groups = groups(accounts, opportunities, labels)?;
    trace.lap("guard: groups");
    let mut out = Vec::new();
    for c in accounts.columns() {
        let name = c.name().as_str();
        if name.starts_with("__")
            || crate::stages::features::IDENTIFIERS.contains(&name)
            || params.exclude.iter().any(|x| x == name)
            || params.allow.iter().any(|x| x == name)
        {
            continue;
        }
        let s = c.as_materialized_series();
        let reason = if s.dtype().is_primitive_numeric() {
            let v: Vec<Option<f64>> = s.cast(&DataType::Float64)?.f64()?.iter().collect();
            record_name(name).or_else(|| leak(&groups, &v, |x| x.map(Value::Num)))
        } else {
            let s = s.cast(&DataType::String)?;
            let v: Vec<Option<&str>> = s.str()?.iter().collect();
            // "Has Ops Owner" holding yes and no names no person: a flag's
            // header words are about the company
            record_name(name)
                .filter(|_| !is_flag(&v))
                .or_else(|| contact_details(name, &v))
                .or_else(|| record_values(&v, date_format))
                .or_else(|| leak(&groups, &v, |x| x.map(Value::Text)))
        };
        trace.lap_with(|| format!("guard: {name}"));
        if let Some(reason) = reason {
            out.push(Dropped {
                column: name.to_string(),
                reason,
            });
        }
    }
    Ok(out)
}

fn groups(accounts: &DataFrame, opportunities: &DataFrame, labels: &DataFrame) -> Result<Groups> {
    let ids = accounts.column("account_id")?.str()?;
    let row: HashMap<&str, u32> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((v?, i as u32)))
        .collect();
    let n = accounts.height();
    let (mut has_deal, mut closed, mut won) = (vec![false; n], vec![false; n], vec![false; n]);
    for id in opportunities.column("account_id")?.str()?.iter().flatten() {
        if let Some(&r) = row.get(id) {
            has_deal[r as usize] = true;
        }
    }
    // every closed deal, the holdout's too: a column the sale writes holds
    // the latest outcome, so it is judged against it. Dropping a column on
    // the holdout's evidence can only make the holdout look worse, never
    // better.
    let (ids, outcome) = (
        labels.column("account_id")?.str()?,
        labels.column("outcome")?.str()?,
    );
    for (id, o) in ids.iter().zip(outcome.iter()) {
        let Some(&r) = id.and_then(|id| row.get(id)) else {
            continue;
        };
        closed[r as usize] = true;
        if o.and_then(Outcome::canonical).is_some_and(Outcome::was_won) {
            won[r as usize] = true;
        }
    }
    let rows = |f: &dyn Fn(usize) -> bool| (0..n).filter(|&r| f(r)).collect::<Vec<_>>();
    Ok(Groups {
        deal: rows(&|r| has_deal[r]),
        prospect: rows(&|r| !has_deal[r]),
        won: rows(&|r| closed[r] && won[r]),
        lost: rows(&|r| closed[r] && !won[r]),
    })
}

/// Values that are all yes/no flags (true/false, yes/no, y/n, 1/0).
fn is_flag(v: &[Option<&str>]) -> bool {
    let mut any = false;
    for x in v.iter().flatten().take(10_000) {
        any = true;
        let k = x.trim().to_ascii_lowercase();
        if !matches!(
            k.as_str(),
            "true" | "false" | "yes" | "no" | "y" | "n" | "1" | "0"
        ) {
            return false;
        }
    }
    any
}

/// A header that names people or records.
fn record_name(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    let joined = words.join(" ");
    RECORD_WORDS
        .iter()
        .find(|w| {
            if w.contains(' ') {
                joined.contains(*w)
            } else {
                words.contains(w)
            }
        })
        .map(|w| format!("names people or records (\"{w}\" in its name), not a company's fit"))
}

/// A header with a contact word whose values are phone numbers.
fn contact_details(name: &str, v: &[Option<&str>]) -> Option<String> {
    let lower = name.to_lowercase();
    let word = CONTACT_WORDS.iter().find(|w| {
        lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|x| x == **w)
    })?;
    let filled: Vec<&str> = v.iter().flatten().copied().take(1000).collect();
    let phone = |s: &str| {
        s.bytes().filter(|b| b.is_ascii_digit()).count() >= 7
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b" +()-.x/".contains(&b))
    };
    let phones = filled.iter().filter(|s| phone(s)).count();
    (!filled.is_empty() && phones * 10 >= filled.len() * 7).then(|| {
        format!("names people or records (\"{word}\" in its name, and its values are phone numbers), not a company's fit")
    })
}

/// Values that are dates, near-unique, free text or people's names.
fn record_values(v: &[Option<&str>], date_format: Option<&str>) -> Option<String> {
    let filled: Vec<&str> = v.iter().flatten().copied().collect();
    if filled.is_empty() {
        return None;
    }
    let sample = &filled[..filled.len().min(1000)];
    let share = |f: &dyn Fn(&str) -> bool| {
        sample.iter().filter(|s| f(s)).count() as f64 / sample.len() as f64
    };
    if share(&|s| is_date(s, date_format)) >= 0.8 {
        return Some("holds dates (activity, record and deal dates describe the CRM's use or the sale, not a company's fit)".into());
    }
    let distinct: HashSet<&str> = filled.iter().copied().collect();
    // a multi-select ("Salesforce;Slack") has many combinations: not an id
    let multi = share(&|s| s.contains(';')) >= 0.5;
    if !multi && filled.len() >= 50 && distinct.len() * 2 >= filled.len() {
        return Some(format!(
            "near-unique values ({} different in {} filled cells): an identifier or free text, not a trait many companies share",
            thousands(distinct.len()),
            thousands(filled.len())
        ));
    }
    let mean_len =
        sample.iter().map(|s| s.chars().count()).sum::<usize>() as f64 / sample.len() as f64;
    if mean_len > 60.0 {
        return Some("free text (its cells average more than 60 characters)".into());
    }
    let person = |s: &str| {
        let mut w = s.split_whitespace();
        let first = w.next().unwrap_or("").to_lowercase();
        w.next().is_some() && FIRST_NAMES.contains(&first.as_str())
    };
    if share(&person) >= 0.7 {
        return Some(
            "names people (its values are first and last names: owners or reps, not a company's fit)"
                .into(),
        );
    }
    None
}

fn is_date(s: &str, date_format: Option<&str>) -> bool {
    let head = s.split_whitespace().next().unwrap_or("");
    let parses = |f: &str| chrono::NaiveDate::parse_from_str(head, f).is_ok();
    date_format.is_some_and(|f| chrono::NaiveDate::parse_from_str(s, f).is_ok() || parses(f))
        || ["%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d"]
            .iter()
            .any(|f| parses(f))
}

/// A cell as the leak rules compare it.
#[derive(Clone, Copy)]
enum Value<'a> {
    Num(f64),
    Text(&'a str),
}

/// Whether a column is set by the sale: filled for one group and empty for
/// the other, a value almost only on won (or lost) accounts, or alone
/// separating won from lost accounts, or accounts with deals from
/// prospects, as no firmographic does.
fn leak<'a, T: Copy>(
    g: &Groups,
    v: &'a [Option<T>],
    value: impl Fn(Option<T>) -> Option<Value<'a>>,
) -> Option<String> {
    let cells: Vec<Option<Value>> = v.iter().map(|x| value(*x)).collect();
    let (deal, prospect, won, lost) = (&g.deal, &g.prospect, &g.won, &g.lost);
    let fill = |rs: &[usize]| {
        rs.iter().filter(|&&r| cells[r].is_some()).count() as f64 / rs.len().max(1) as f64
    };
    let enough = |a: &[usize], b: &[usize]| a.len() >= MIN_GROUP && b.len() >= MIN_GROUP;
    // prospects show whether a column is there before the sale: a column
    // the sale writes is as empty for them as for the accounts it did not
    // win (an honest checkbox is filled for prospects too)
    let prospects_known = prospect.len() >= MIN_GROUP;
    for (a, an, b, bn) in [
        (won, "won accounts", lost, "lost accounts"),
        (deal, "accounts with deals", prospect, "prospects"),
    ] {
        let (fa, fb) = (fill(a), fill(b));
        let one_sided = fa.min(fb) <= EMPTY && fa.max(fb) >= 0.5;
        let empty_for_prospects =
            std::ptr::eq(b, prospect) || !prospects_known || fill(prospect) <= fa.min(fb) + 0.05;
        if enough(a, b) && ((fa - fb).abs() >= FILL_GAP || one_sided) && empty_for_prospects {
            return Some(format!(
                "set by the sale: filled for {} of {an} and {} of {bn}",
                pct(fill(a)),
                pct(fill(b))
            ));
        }
    }
    // a value's purity is a category's trait: a number (nearly every
    // value its own) is judged by its separation below
    let text = cells.iter().flatten().any(|v| matches!(v, Value::Text(_)));
    if text
        && enough(won, lost)
        && prospects_known
        && let Some(r) = pure_value(&cells, won, lost, prospect)
    {
        return Some(r);
    }
    for (a, an, b) in [
        (won, "won from lost accounts", lost),
        (deal, "accounts with deals from prospects", prospect),
    ] {
        if enough(a, b)
            && let Some(auc) = separation(&cells, a, b)
            && auc >= SEPARATES
        {
            return Some(format!(
                "set by the sale: alone it separates {an} (AUC {auc:.2}), as no firmographic does"
            ));
        }
    }
    None
}

/// A text cell as a hash key, without copying its text (a million
/// accounts); a blank is None. Values are compared by key only in text
/// columns: numbers are judged by their order.
type Key<'a> = Option<&'a str>;

fn key(v: Option<Value<'_>>) -> Key<'_> {
    match v {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    }
}

/// A value found almost only on won accounts, or only on lost ones, in
/// numbers chance would not give, and (almost) never on prospects: so not
/// a segment the business never wins (Government), which prospects have as
/// often as the accounts with deals.
fn pure_value(
    cells: &[Option<Value>],
    won: &[usize],
    lost: &[usize],
    prospect: &[usize],
) -> Option<String> {
    let mut counts: HashMap<Key, (usize, usize)> = HashMap::default();
    for (rs, is_won) in [(won, true), (lost, false)] {
        for &r in rs {
            if cells[r].is_some() {
                let e = counts.entry(key(cells[r])).or_default();
                if is_won { e.0 += 1 } else { e.1 += 1 }
            }
        }
    }
    let base = won.len() as f64 / (won.len() + lost.len()) as f64;
    let mut on_prospects: HashMap<Key, usize> = HashMap::default();
    for &r in prospect {
        if cells[r].is_some() {
            *on_prospects.entry(key(cells[r])).or_default() += 1;
        }
    }
    let closed = (won.len() + lost.len()) as f64;
    let mut found: Vec<(Key, usize, usize)> = counts
        .into_iter()
        .filter(|(k, (w, l))| {
            let n = (w + l) as f64;
            let share = *w as f64 / n;
            let rare_on_prospects = on_prospects.get(k).copied().unwrap_or(0) as f64
                / prospect.len() as f64
                <= 0.1 * n / closed;
            rare_on_prospects
                && ((share >= PURE && n * (1.0 - base) >= EXPECTED_OTHERS)
                    || (share <= 1.0 - PURE && n * base >= EXPECTED_OTHERS))
        })
        .map(|(k, (w, l))| (k, w, l))
        .collect();
    // the largest first, ties by value: the reason names one deterministically
    found.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
    let (k, w, l) = found.into_iter().next()?;
    let n = w + l;
    let (kind, others, expected) = if w >= l {
        ("won", "lost", n as f64 * (1.0 - base))
    } else {
        ("lost", "won", n as f64 * base)
    };
    Some(format!(
        "set by the sale: \"{}\" is on {} accounts with closed deals, {} of them {kind} (at the overall rate about {expected:.0} would have {others})",
        k.unwrap_or_default(),
        thousands(n),
        pct(w.max(l) as f64 / n as f64),
    ))
}

/// How well the column alone tells group `a` from group `b` (AUC, either
/// direction, 0.5 to 1): numbers by their value, text by each value's share
/// of `a` (values on fewer than 20 accounts pooled), a blank as a value.
fn separation(cells: &[Option<Value>], a: &[usize], b: &[usize]) -> Option<f64> {
    // an AUC from 100,000 rows a side is within a few thousandths of the
    // whole's: every k-th row, so the same rows every run
    let (a, b) = (&spread(a, SAMPLE)[..], &spread(b, SAMPLE)[..]);
    let numeric = cells.iter().flatten().all(|v| matches!(v, Value::Num(_)));
    let mut score: Vec<f64> = Vec::with_capacity(a.len() + b.len());
    let mut y: Vec<bool> = Vec::with_capacity(a.len() + b.len());
    if numeric {
        for (rs, is_a) in [(a, true), (b, false)] {
            for &r in rs {
                if let Some(Value::Num(x)) = cells[r] {
                    score.push(x);
                    y.push(is_a);
                }
            }
        }
    } else {
        let k = |r: usize| key(cells[r]);
        let mut counts: HashMap<Key, (usize, usize)> = HashMap::default();
        for (rs, is_a) in [(a, true), (b, false)] {
            for &r in rs {
                let e = counts.entry(k(r)).or_default();
                if is_a { e.0 += 1 } else { e.1 += 1 }
            }
        }
        let (mut ra, mut rb) = (0, 0);
        for (x, z) in counts.values() {
            if x + z < MIN_GROUP {
                ra += x;
                rb += z;
            }
        }
        let share = |c: &(usize, usize)| {
            if c.0 + c.1 < MIN_GROUP {
                ra as f64 / (ra + rb).max(1) as f64
            } else {
                c.0 as f64 / (c.0 + c.1) as f64
            }
        };
        for (rs, is_a) in [(a, true), (b, false)] {
            for &r in rs {
                score.push(share(&counts[&k(r)]));
                y.push(is_a);
            }
        }
    }
    if y.iter().filter(|b| **b).count() < MIN_GROUP || y.iter().filter(|b| !**b).count() < MIN_GROUP
    {
        return None;
    }
    let auc = crate::util::metrics::auc(&score, &y)?;
    Some(auc.max(1.0 - auc))
}

/// Rows a separation is measured on, at most, per group.
const SAMPLE: usize = 100_000;

/// At most `cap` of `rows`, evenly spread.
fn spread(rows: &[usize], cap: usize) -> std::borrow::Cow<'_, [usize]> {
    if rows.len() <= cap {
        return std::borrow::Cow::Borrowed(rows);
    }
    let step = rows.len().div_ceil(cap);
    std::borrow::Cow::Owned(rows.iter().step_by(step).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 accounts: 60 won, 60 lost, 40 with only open deals, 40 prospects.
    fn frames(extra: Vec<Column>) -> (DataFrame, DataFrame, DataFrame) {
        let ids: Vec<String> = (0..200).map(|i| format!("A{i:03}")).collect();
        let mut cols = vec![Column::new("account_id".into(), ids.clone())];
        cols.extend(extra);
        let accounts = DataFrame::new_infer_height(cols).expect("accounts");
        let deal_ids: Vec<String> = ids[..160].to_vec();
        let opps = DataFrame::new_infer_height(vec![Column::new("account_id".into(), deal_ids)])
            .expect("opps");
        let closed: Vec<String> = ids[..120].to_vec();
        let outcome: Vec<&str> = (0..120)
            .map(|i| if i < 60 { "won" } else { "lost" })
            .collect();
        let labels = DataFrame::new_infer_height(vec![
            Column::new("account_id".into(), closed),
            Column::new("outcome".into(), outcome),
            Column::new("holdout".into(), vec![false; 120]),
        ])
        .expect("labels");
        (accounts, opps, labels)
    }

    fn dropped(extra: Vec<Column>, allow: &[&str]) -> Vec<String> {
        let (a, o, l) = frames(extra);
        let params = FeatureParams {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            ..crate::config::ValidConfig::default().features
        };
        screen(&a, &o, &l, &params, None)
            .expect("screen")
            .into_iter()
            .map(|d| d.column)
            .collect()
    }

    #[test]
    fn columns_set_by_the_sale_are_dropped_and_honest_ones_kept() {
        let by = |f: &dyn Fn(usize) -> Option<&'static str>| -> Vec<Option<&'static str>> {
            (0..200).map(f).collect()
        };
        // HubSpot's lifecycle stage: Customer on won accounts
        let lifecycle = by(&|i| {
            Some(match i {
                0..60 => "Customer",
                60..160 => "Opportunity",
                _ => "Lead",
            })
        });
        // a custom property filled for won accounts only
        let onboarding = by(&|i| (i < 60).then_some("Complete"));
        // a deal rollup: prospects 0, accounts with deals 1 to 4
        let deals: Vec<Option<f64>> = (0..200)
            .map(|i| Some(if i < 160 { 1.0 + (i % 4) as f64 } else { 0.0 }))
            .collect();
        // negative control: a strong honest column (won 70% Yes, lost 30%)
        let erp = by(&|i| {
            Some(
                if (i < 60 && i % 10 < 7)
                    || ((60..120).contains(&i) && i % 10 < 3)
                    || (i >= 120 && i % 2 == 0)
                {
                    "Yes"
                } else {
                    "No"
                },
            )
        });
        let industry = by(&|i| Some(["Retail", "Software", "Finance", "Health"][i % 4]));
        let employees: Vec<Option<f64>> = (0..200)
            .map(|i| (i % 7 != 0).then_some((i * 37 % 500) as f64))
            .collect();
        // negative controls: a segment never won (20 lost accounts,
        // none won) that prospects have as well, and a checkbox filled
        // for 55% of won accounts, no lost one, and 30% of prospects
        let sector = by(&|i| {
            Some(if (60..80).contains(&i) || (180..190).contains(&i) {
                "Government"
            } else if i % 2 == 0 {
                "Software"
            } else {
                "Retail"
            })
        });
        let multi = by(&|i| {
            (i < 33 || (130..140).contains(&i) || (160..172).contains(&i)).then_some("Yes")
        });
        let cols = vec![
            Column::new("Lifecycle Stage".into(), lifecycle),
            Column::new("Onboarding Status".into(), onboarding),
            Column::new("Number of Associated Deals".into(), deals),
            Column::new("Uses ERP".into(), erp),
            Column::new("industry".into(), industry),
            Column::new("employees".into(), employees),
            Column::new("sector".into(), sector),
            Column::new("Multi-location".into(), multi),
        ];
        let got = dropped(cols.clone(), &[]);
        assert_eq!(
            got,
            [
                "Lifecycle Stage",
                "Onboarding Status",
                "Number of Associated Deals"
            ]
        );
        // the user vouches for one: kept
        let got = dropped(cols, &["Onboarding Status"]);
        assert_eq!(got, ["Lifecycle Stage", "Number of Associated Deals"]);
    }

    #[test]
    fn people_and_record_columns_are_recognised_by_name_and_by_value() {
        let reps = [
            "Dana Revenue",
            "Sam Seller",
            "Alex Account",
            "Riley Forecast",
        ];
        let cols = vec![
            Column::new(
                "Account Owner".into(),
                (0..200).map(|i| reps[i % 4]).collect::<Vec<_>>(),
            ),
            Column::new(
                "Handled By".into(),
                (0..200).map(|i| reps[(i / 3) % 4]).collect::<Vec<_>>(),
            ),
            Column::new(
                "Last Touch".into(),
                (0..200)
                    .map(|i| format!("2026-0{}-1{}", 1 + i % 9, i % 10))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "Ref".into(),
                (0..200).map(|i| format!("R-{i}")).collect::<Vec<_>>(),
            ),
            Column::new(
                "Billing Zip/Postal Code".into(),
                (0..200)
                    .map(|i| format!("{:05}", i % 30))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "Phone".into(),
                (0..200)
                    .map(|i| format!("(415) 555-{:04}", i * 7))
                    .collect::<Vec<_>>(),
            ),
            // negative controls: countries and industries of two capitalised
            // words, a company's phone system and app, a multi-select stack
            Column::new(
                "Phone System".into(),
                (0..200)
                    .map(|i| ["Avaya", "Cisco", "RingCentral"][i % 3])
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "Has Mobile App".into(),
                (0..200).map(|i| ["Yes", "No"][i % 2]).collect::<Vec<_>>(),
            ),
            Column::new(
                "Tech Stack".into(),
                (0..200)
                    .map(|i| format!("Salesforce;Slack;Tool{i}"))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "country".into(),
                (0..200)
                    .map(|i| ["United States", "United Kingdom", "New Zealand"][i % 3])
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "industry".into(),
                (0..200)
                    .map(|i| ["Financial Services", "Computer Software"][i % 2])
                    .collect::<Vec<_>>(),
            ),
        ];
        assert_eq!(
            dropped(cols, &[]),
            [
                "Account Owner",
                "Handled By",
                "Last Touch",
                "Ref",
                "Billing Zip/Postal Code",
                "Phone"
            ]
        );
    }
}
