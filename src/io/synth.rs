//! `icp generate`: a synthetic CRM in the contract's format with a known,
//! documented ground truth (see README, "The synthetic ground truth").
//!
//! Deterministic per seed whatever the thread count: accounts are made in
//! fixed-size chunks, each with its own RNG seeded from (seed, chunk).

use std::path::Path;

use chrono::{Duration, NaiveDate};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::domain::Outcome;
use crate::error::{IcpError, Result};

const CHUNK: usize = 50_000;

pub const INDUSTRIES: &[(&str, f64, f64)] = &[
    // name, share, effect on the log-odds of winning
    ("Software", 0.14, 0.9),
    ("Logistics", 0.08, 1.1),
    ("Healthcare", 0.11, 0.0),
    ("Manufacturing", 0.12, 0.2),
    ("Retail", 0.12, -0.9),
    ("Financial Services", 0.09, 0.3),
    ("Education", 0.07, -0.4),
    ("Government", 0.06, -1.2),
    ("Media", 0.06, -0.2),
    ("Construction", 0.06, 0.1),
    ("Energy", 0.04, 0.0),
    ("Hospitality", 0.05, -0.6),
];
pub const COUNTRIES: &[(&str, f64, f64)] = &[
    ("United States", 0.40, 0.15),
    ("United Kingdom", 0.12, 0.0),
    ("Germany", 0.10, 0.0),
    ("France", 0.07, 0.0),
    ("Canada", 0.07, 0.0),
    ("Australia", 0.05, 0.0),
    ("Netherlands", 0.05, 0.0),
    ("Brazil", 0.05, -0.2),
    ("India", 0.05, -0.2),
    ("Japan", 0.04, 0.0),
];
pub const OWNERSHIP: &[(&str, f64, f64)] = &[
    ("private", 0.70, 0.0),
    ("pe_backed", 0.15, 0.3),
    ("public", 0.15, -0.1),
];
/// The wide CRM's extra columns (`icp generate --wide`): what richer CRMs
/// hold beside firmographics. Their planted truth, on the log-odds of
/// winning:
/// - `tech_stack = Custom` is a strong, specific poor fit (about 13% of
///   accounts); SAP and Oracle are milder ones;
/// - `has_ops_owner = false` is a broad, weak one: about half the accounts,
///   a velocity-win lift of about 0.76 (a significant finding), which
///   working still pays for;
/// - `multi_location` and `region` (the country's region) carry no effect
///   of their own: negative controls.
pub const TECH_STACKS: &[(&str, f64, f64)] = &[
    ("Salesforce", 0.25, 0.2),
    ("HubSpot", 0.20, 0.1),
    ("Microsoft", 0.20, 0.0),
    ("SAP", 0.12, -0.5),
    ("Oracle", 0.10, -0.4),
    ("Custom", 0.13, -1.8),
];
/// the strong, specific poor fit of the wide CRM
pub const STRONG_POOR_FIT_STACK: &str = "Custom";
/// the broad, weak one: `has_ops_owner` of this value
pub const WEAK_BROAD_OPS_OWNER: &str = "false";
const NO_OPS_OWNER_EFFECT: f64 = -1.0;
const OPS_OWNER_SHARE: f64 = 0.5;
const MULTI_LOCATION_SHARE: f64 = 0.4;

/// The region of each country of [`COUNTRIES`].
fn region_of(country: &str) -> &'static str {
    match country {
        "United States" | "Canada" => "North America",
        "Brazil" => "Latin America",
        "India" | "Japan" | "Australia" => "Asia Pacific",
        _ => "EMEA",
    }
}

/// trigger, share of accounts with it, probability of a deal afterwards.
/// `office_move` is the null trigger: its probability is the base one, so
/// it brings no deal (a negative control the findings must not support).
pub const TRIGGERS: &[(&str, f64, f64)] = &[
    ("funding_round", 0.08, 0.85),
    ("new_executive", 0.10, 0.70),
    ("hiring_surge", 0.10, 0.70),
    ("office_move", 0.07, BASE_DEAL_PROBABILITY),
];
/// the trigger with no effect
pub const NULL_TRIGGER: &str = "office_move";
/// probability that an account with no trigger ever has a deal
pub const BASE_DEAL_PROBABILITY: f64 = 0.42;
const MISSING_RATE: f64 = 0.03;
const PAINFUL_REVENUE: f64 = 500e6;

fn history_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).expect("valid date")
}
pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 30).expect("valid date")
}

/// The true model of one account (before missing values are punched in).
#[derive(Debug, Clone)]
pub struct Truth {
    pub win_logit: f64,
    pub cycle_mu: f64,
    pub churn: f64,
}

pub const CYCLE_SIGMA: f64 = 0.55;

/// The planted category x category interaction: (country, ownership).
pub const PLANTED_PAIR: (&str, &str) = ("Germany", "public");

fn truth_of(
    industry: usize,
    country: usize,
    ownership: usize,
    employees: f64,
    revenue: f64,
    age: f64,
) -> Truth {
    let ind = INDUSTRIES[industry].0;
    let mut z = -0.3 + INDUSTRIES[industry].2 + COUNTRIES[country].2 + OWNERSHIP[ownership].2;
    z += match employees {
        e if e < 10.0 => -0.8,
        e if e < 50.0 => -0.2,
        e if e < 500.0 => 0.7,
        e if e < 5000.0 => 0.0,
        _ => -0.5,
    };
    if ind == "Healthcare" && (200.0..2000.0).contains(&employees) {
        z += 1.5;
    }
    // a category x category interaction with no main effect of its own:
    // Germany and public ownership are null alone, strong together
    if (COUNTRIES[country].0, OWNERSHIP[ownership].0) == PLANTED_PAIR {
        z += 1.5;
    }
    if age < 3.0 {
        z -= 0.5;
    }
    let mut mu = 40f64.ln();
    if revenue >= PAINFUL_REVENUE {
        mu += 0.6;
    }
    match ind {
        "Government" => mu += 0.25,
        "Software" => mu -= 0.15,
        _ => {}
    }
    let mut churn: f64 = 0.06;
    if employees < 20.0 {
        churn += 0.30;
    }
    if revenue >= PAINFUL_REVENUE {
        churn += 0.25;
    }
    if ind == "Hospitality" {
        churn += 0.08;
    }
    Truth {
        win_logit: z,
        cycle_mu: mu,
        churn,
    }
}

/// P(velocity win) for a deal of this account under window `w` days.
pub fn p_velocity_win(t: &Truth, w: i64) -> f64 {
    let p_win = 1.0 / (1.0 + (-t.win_logit).exp());
    // cycle = round(lognormal) <= w  <=>  lognormal < w + 0.5
    let zc = (((w as f64) + 0.5).ln() - t.cycle_mu) / CYCLE_SIGMA;
    let p_fast = 0.5 * (1.0 + libm::erf(zc / std::f64::consts::SQRT_2));
    p_win * p_fast * (1.0 - t.churn)
}

fn pick(rng: &mut ChaCha8Rng, table: &[(&str, f64, f64)]) -> usize {
    let total: f64 = table.iter().map(|t| t.1).sum();
    let mut u = rng.r#gen::<f64>() * total;
    for (i, t) in table.iter().enumerate() {
        if u < t.1 {
            return i;
        }
        u -= t.1;
    }
    table.len() - 1
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(1e-300);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

const SYL: &[&str] = &[
    "ac", "bel", "cor", "dan", "el", "fer", "gal", "hor", "ist", "jun", "kal", "lum", "mer", "nor",
    "ov", "pax", "quin", "ros", "sol", "tri", "ul", "ver", "wex", "yor", "zen",
];
const SUFFIX: &[&str] = &[
    "Inc", "Ltd", "GmbH", "Group", "Labs", "Systems", "Partners", "Co",
];

#[derive(Default)]
struct Chunk {
    acc_id: Vec<String>,
    acc_name: Vec<String>,
    domain: Vec<String>,
    industry: Vec<Option<&'static str>>,
    country: Vec<Option<&'static str>>,
    employees: Vec<Option<i64>>,
    revenue: Vec<Option<f64>>,
    founded: Vec<Option<i32>>,
    ownership: Vec<Option<&'static str>>,
    // the wide CRM's columns (empty unless wide)
    region: Vec<Option<&'static str>>,
    tech_stack: Vec<Option<&'static str>>,
    multi_location: Vec<Option<&'static str>>,
    ops_owner: Vec<Option<&'static str>>,
    truth: Vec<Truth>,
    // opportunities
    opp_id: Vec<String>,
    opp_acc: Vec<String>,
    created: Vec<NaiveDate>,
    closed: Vec<Option<NaiveDate>>,
    outcome: Vec<&'static str>,
    amount: Vec<f64>,
    loss_reason: Vec<Option<&'static str>>,
    product: Vec<&'static str>,
    source: Vec<&'static str>,
    owner: Vec<String>,
    cycle_won: Vec<i64>,
    // customers
    cust_acc: Vec<String>,
    cust_status: Vec<&'static str>,
    churn_date: Vec<Option<NaiveDate>>,
    delivery_fit: Vec<i64>,
    margin: Vec<f64>,
    // triggers
    trig_acc: Vec<String>,
    trig: Vec<&'static str>,
    trig_date: Vec<NaiveDate>,
}

/// Industry of the planted anecdote: two accounts, both fast wins. Any
/// finding about it would be claimed from two accounts, which the support
/// minimum must prevent.
pub const ANECDOTE_INDUSTRY: &str = "Aerospace";

/// Relabel the first two accounts (by first fast won deal) as the anecdote
/// industry. Done after generation, so no other account's draws change.
fn plant_anecdote(all: &mut Chunk) {
    let mut picked: Vec<usize> = Vec::new();
    for i in 0..all.opp_acc.len() {
        let fast = all.closed[i].is_some_and(|c| (c - all.created[i]).num_days() <= 30);
        if all.outcome[i] == Outcome::Won.as_str()
            && fast
            && let Ok(a) = all.opp_acc[i][1..].parse::<usize>()
            && !picked.contains(&a)
            && a < all.industry.len()
        {
            picked.push(a);
        }
        if picked.len() == 2 {
            break;
        }
    }
    for a in picked {
        all.industry[a] = Some(ANECDOTE_INDUSTRY);
    }
}

fn make_chunk(seed: u64, chunk: usize, start: usize, end: usize, wide: bool) -> Chunk {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // the wide columns draw from their own stream: the narrow CRM's columns
    // of a seed are the same with or without them
    let mut wide_rng = ChaCha8Rng::seed_from_u64(
        (seed ^ 0x5749_4445_0000_0000) ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
    );
    let mut c = Chunk::default();
    let (h0, h1) = (history_start(), as_of());
    let span = (h1 - h0).num_days();
    for a in start..end {
        let acc = push_account(&mut c, &mut rng, &mut wide_rng, wide, a, h1);
        // buying trigger, then perhaps a deal that follows it
        let first_created = push_trigger(&mut c, &mut rng, &acc.id, h0, h1, span);
        let has_deal = first_created.is_some() || rng.r#gen::<f64>() < BASE_DEAL_PROBABILITY;
        if !has_deal {
            c.truth.push(acc.truth);
            continue;
        }
        let n_deals = if rng.r#gen::<f64>() < 0.2 { 2 } else { 1 };
        let mut won_any = false;
        let mut churn_date = None;
        for k in 0..n_deals {
            let created = match (k, first_created) {
                (0, Some(d)) => d,
                _ => h0 + Duration::days(rng.gen_range(0..span - 10)),
            };
            let (won, churned) = push_deal(&mut c, &mut rng, &acc, k, created, h1);
            if won {
                won_any = true;
            }
            if let Some(cd) = churned {
                churn_date = Some(cd);
            }
        }
        if won_any {
            push_customer(&mut c, &mut rng, &acc, churn_date);
        }
        c.truth.push(acc.truth);
    }
    c
}

/// What later draws of an account (its deals, its customer row) need.
struct AccountDraw {
    a: usize,
    id: String,
    ind: usize,
    employees: f64,
    revenue: f64,
    truth: Truth,
}

/// Draw one account's name and firmographics (and the wide columns from
/// their own stream), push its row with missing cells punched in.
fn push_account(
    c: &mut Chunk,
    rng: &mut ChaCha8Rng,
    wide_rng: &mut ChaCha8Rng,
    wide: bool,
    a: usize,
    h1: NaiveDate,
) -> AccountDraw {
    let id = format!("A{a:07}");
    let n_syl = 2 + (rng.r#gen::<u8>() % 2) as usize;
    let mut name: String = (0..n_syl)
        .map(|_| SYL[rng.gen_range(0..SYL.len())])
        .collect();
    name[..1].make_ascii_uppercase();
    let slug = name.to_lowercase();
    let full = if a % 997 == 13 {
        format!("{name}, {} & Sons", SUFFIX[rng.gen_range(0..SUFFIX.len())])
    } else {
        format!("{name} {}", SUFFIX[rng.gen_range(0..SUFFIX.len())])
    };
    let domain = format!(
        "{slug}{}.{}",
        a % 1000,
        ["com", "io", "net", "co"][rng.gen_range(0..4)]
    );
    let ind = pick(rng, INDUSTRIES);
    let cty = pick(rng, COUNTRIES);
    let own = pick(rng, OWNERSHIP);
    let employees = ((120f64).ln() + 1.6 * normal(rng)).exp().round().max(1.0);
    let revenue = (employees * ((150_000f64).ln() + 0.5 * normal(rng)).exp()).round();
    let age = ((15f64).ln() + 0.8 * normal(rng)).exp().floor().min(120.0);
    let founded = h1.format("%Y").to_string().parse::<i32>().unwrap_or(2025) - age as i32;
    let mut t = truth_of(ind, cty, own, employees, revenue, age);
    if wide {
        push_wide(c, wide_rng, cty, &mut t);
    }
    let blank = rng.r#gen::<f64>() < 0.01; // a few accounts we know almost nothing about
    let miss = |rng: &mut ChaCha8Rng| blank || rng.r#gen::<f64>() < MISSING_RATE;
    c.acc_id.push(id.clone());
    c.acc_name.push(full);
    c.domain.push(domain);
    c.industry.push((!miss(rng)).then_some(INDUSTRIES[ind].0));
    c.country.push((!miss(rng)).then_some(COUNTRIES[cty].0));
    c.employees.push((!miss(rng)).then_some(employees as i64));
    c.revenue.push((!miss(rng)).then_some(revenue));
    c.founded.push((!miss(rng)).then_some(founded));
    c.ownership.push((!miss(rng)).then_some(OWNERSHIP[own].0));
    AccountDraw {
        a,
        id,
        ind,
        employees,
        revenue,
        truth: t,
    }
}

/// The wide CRM's columns of one account, and their effect on its truth.
fn push_wide(c: &mut Chunk, r: &mut ChaCha8Rng, cty: usize, t: &mut Truth) {
    let tech = pick(r, TECH_STACKS);
    let ops = r.r#gen::<f64>() < OPS_OWNER_SHARE;
    let multi = r.r#gen::<f64>() < MULTI_LOCATION_SHARE;
    t.win_logit += TECH_STACKS[tech].2 + if ops { 0.0 } else { NO_OPS_OWNER_EFFECT };
    let mut m = |v: &'static str| (r.r#gen::<f64>() >= MISSING_RATE).then_some(v);
    let region = m(region_of(COUNTRIES[cty].0));
    let tech = m(TECH_STACKS[tech].0);
    let multi = m(if multi { "yes" } else { "no" });
    let ops = m(if ops { "true" } else { "false" });
    c.region.push(region);
    c.tech_stack.push(tech);
    c.multi_location.push(multi);
    c.ops_owner.push(ops);
}

/// The account's buying trigger, if it has one; returns the created date of
/// the deal the trigger brings, if it brings one.
fn push_trigger(
    c: &mut Chunk,
    rng: &mut ChaCha8Rng,
    id: &str,
    h0: NaiveDate,
    h1: NaiveDate,
    span: i64,
) -> Option<NaiveDate> {
    let mut first_created = None;
    let mut tu = rng.r#gen::<f64>();
    for (name, share, p_deal) in TRIGGERS {
        if tu < *share {
            let d = h0 + Duration::days(rng.gen_range(0..span - 30));
            c.trig_acc.push(id.to_string());
            c.trig.push(*name);
            c.trig_date.push(d);
            // with probability q the trigger brings a deal soon after; otherwise
            // the base chance applies: q + (1 - q) * base = p_deal
            let q = (p_deal - BASE_DEAL_PROBABILITY).max(0.0) / (1.0 - BASE_DEAL_PROBABILITY);
            if rng.r#gen::<f64>() < q {
                // no deal is created after the export date (it stays open)
                first_created = Some((d + Duration::days(rng.gen_range(7..90))).min(h1));
            }
            break;
        }
        tu -= share;
    }
    first_created
}

/// Deal `k` of an account, created on `created`: returns whether it closed
/// won by the export date, and the churn date if the customer churned after it.
fn push_deal(
    c: &mut Chunk,
    rng: &mut ChaCha8Rng,
    acc: &AccountDraw,
    k: usize,
    created: NaiveDate,
    h1: NaiveDate,
) -> (bool, Option<NaiveDate>) {
    let (a, t, employees) = (acc.a, &acc.truth, acc.employees);
    let won = rng.r#gen::<f64>() < 1.0 / (1.0 + (-t.win_logit).exp());
    let cycle = if won {
        (t.cycle_mu + CYCLE_SIGMA * normal(rng))
            .exp()
            .round()
            .max(1.0) as i64
    } else {
        ((30f64).ln() + 0.7 * normal(rng)).exp().round().max(1.0) as i64
    };
    let closed = created + Duration::days(cycle);
    let amount = ((8000.0 * (employees / 50.0).powf(0.35)).ln() + 0.4 * normal(rng)).exp();
    c.opp_id.push(format!("O{a:07}{k}"));
    c.opp_acc.push(acc.id.clone());
    c.created.push(created);
    c.amount.push((amount * 100.0).round() / 100.0);
    c.product
        .push(["Core", "Pro", "Enterprise"][rng.gen_range(0..3)]);
    c.source
        .push(["inbound", "outbound", "partner", "event"][rng.gen_range(0..4)]);
    c.owner.push(format!("rep_{:02}", rng.gen_range(1..13)));
    let churn_u: f64 = rng.r#gen();
    let churn_lag = rng.gen_range(30..120);
    let reason_u: f64 = rng.r#gen();
    if closed > h1 {
        c.closed.push(None);
        c.outcome.push(Outcome::Open.as_str());
        c.loss_reason.push(None);
        return (false, None);
    }
    c.closed.push(Some(closed));
    let mut churn_date = None;
    if won {
        c.cycle_won.push(cycle);
        let cd = closed + Duration::days(churn_lag);
        if churn_u < t.churn && cd <= h1 {
            churn_date = Some(cd);
            c.outcome.push(Outcome::Churned.as_str());
        } else {
            c.outcome.push(Outcome::Won.as_str());
        }
        c.loss_reason.push(None);
    } else {
        c.outcome.push(Outcome::Lost.as_str());
        c.loss_reason.push(match reason_u {
            u if u < 0.25 => Some("price"),
            u if u < 0.50 => Some("competitor"),
            u if u < 0.70 => Some("no decision"),
            u if u < 0.80 => Some("timing"),
            u if u < 0.90 => Some("product fit"),
            _ => None,
        });
    }
    (won, churn_date)
}

/// The customers row of an account with a won deal: delivery fit and margin
/// drawn around its truth, churned if a won deal churned.
fn push_customer(
    c: &mut Chunk,
    rng: &mut ChaCha8Rng,
    acc: &AccountDraw,
    churn_date: Option<NaiveDate>,
) {
    let ind_name = INDUSTRIES[acc.ind].0;
    let mut fit = 4.2 + 0.7 * normal(rng);
    let mut margin = 0.62 + 0.06 * normal(rng);
    if acc.revenue >= PAINFUL_REVENUE {
        fit -= 1.5;
        margin -= 0.15;
    }
    if ind_name == "Government" {
        fit -= 1.2;
        margin -= 0.10;
    }
    if ind_name == "Hospitality" {
        fit -= 0.5;
    }
    c.cust_acc.push(acc.id.clone());
    let churned = churn_date.is_some();
    c.cust_status
        .push(if churned { "churned" } else { "active" });
    c.churn_date.push(if churned { churn_date } else { None });
    c.delivery_fit.push(fit.round().clamp(1.0, 5.0) as i64);
    c.margin
        .push((margin.clamp(0.0, 1.0) * 1000.0).round() / 1000.0);
}

/// A loss reason as a rep records it: most name what went wrong ("Price:
/// per-seat cost above budget ..."), some are the picklist word alone.
/// Chosen by the deal's position, not drawn, so no other draw changes.
fn loss_reason_text(kind: &'static str, i: usize) -> &'static str {
    let specific = (i.wrapping_mul(7919) >> 3) % 10 < 7;
    if !specific {
        return kind;
    }
    let two = (i >> 1).is_multiple_of(2);
    match (kind, two) {
        ("price", true) => "Price: per-seat cost above budget for a team this size",
        ("price", false) => "Price: wanted monthly terms, we sell annual only",
        ("competitor", true) => "Competitor: incumbent suite bundled a similar module",
        ("competitor", false) => "Competitor: rival had a native connector to their ERP",
        ("no decision", true) => "No decision: champion left during the evaluation",
        ("no decision", false) => "No decision: budget frozen after a reorganisation",
        ("timing", _) => "Timing: system migration freeze until next fiscal year",
        ("product fit", _) => "Product fit: no connector for their warehouse system",
        (k, _) => k,
    }
}

/// Share of accounts with a closed deal that gave a buyer interview.
const INTERVIEW_SHARE: f64 = 0.05;
const ROLES: &[&str] = &[
    "CFO",
    "COO",
    "Head of Operations",
    "VP Engineering",
    "IT Director",
    "Procurement lead",
];

/// What a buyer says, by how the deal went (the generator's truth in words).
fn quote_for(
    outcome: &str,
    cycle: i64,
    loss: Option<&str>,
    industry: Option<&str>,
) -> &'static str {
    match (outcome, loss) {
        ("lost", _) if industry == Some("Government") => {
            "Procurement rules made a quick decision impossible for us."
        }
        ("lost", Some("price")) => "The price was hard to justify at our size.",
        ("lost", Some("competitor")) => "Another vendor already covered most of what we needed.",
        ("lost", Some("no decision")) => "We never got the budget signed off this year.",
        ("lost", Some("timing")) => "Maybe next year, once our migration is done.",
        ("lost", Some("product fit")) => "It did not fit how our teams actually work.",
        ("lost", _) => "Nothing wrong with it; the project just stalled.",
        ("churned", _) => "Once the champion left, the renewal was hard to justify.",
        (_, _) if cycle <= 30 => "We needed it live this quarter, and it was.",
        (_, _) if industry == Some("Government") => {
            "Security review and procurement took most of the time."
        }
        _ => "It works well; getting everyone to agree took a while.",
    }
}

/// Interviews after the first closed deal of a few accounts, drawn with
/// their own RNG so the rest of the data does not change with them.
fn interviews(all: &Chunk, seed: u64) -> Result<DataFrame> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1A7E_4B1E_D00D_F00D);
    let end = as_of();
    // one interview per account, about its won deal when it has one (a
    // customer speaks about buying), else about its first closed deal
    let mut about: std::collections::BTreeMap<&str, usize> = Default::default();
    for i in 0..all.opp_acc.len() {
        if all.closed[i].is_none() {
            continue;
        }
        let won = |k: usize| all.outcome[k] != Outcome::Lost.as_str();
        about
            .entry(all.opp_acc[i].as_str())
            .and_modify(|k| {
                if !won(*k) && won(i) {
                    *k = i;
                }
            })
            .or_insert(i);
    }
    let mut picked: Vec<usize> = about.into_values().collect();
    picked.sort_unstable();
    let (mut acc, mut date, mut role, mut quote) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in picked {
        let Some(closed) = all.closed[i] else {
            continue;
        };
        let u: f64 = rng.r#gen();
        let lag = rng.gen_range(3..30);
        let r = ROLES[rng.gen_range(0..ROLES.len())];
        if u >= INTERVIEW_SHARE {
            continue;
        }
        let industry = all.opp_acc[i][1..]
            .parse::<usize>()
            .ok()
            .and_then(|a| all.industry.get(a).copied().flatten());
        let cycle = (closed - all.created[i]).num_days();
        acc.push(all.opp_acc[i].clone());
        date.push(Some((closed + Duration::days(lag)).min(end)));
        role.push(r);
        quote.push(quote_for(
            all.outcome[i],
            cycle,
            all.loss_reason[i],
            industry,
        ));
    }
    Ok(DataFrame::new(
        acc.len(),
        vec![
            Column::new("account_id".into(), acc),
            dates("date", date)?,
            Column::new("role".into(), role),
            Column::new("quote".into(), quote),
        ],
    )?)
}

/// A generated CRM and its ground truth.
pub struct Synthetic {
    pub accounts: DataFrame,
    pub opportunities: DataFrame,
    pub customers: DataFrame,
    pub triggers: DataFrame,
    /// buyer interview quotes (account_id, date, role, quote)
    pub interviews: DataFrame,
    /// account_id, p_velocity_win_true (for the window below)
    pub truth: DataFrame,
    pub window_days: i64,
}

fn dates(name: &str, v: Vec<Option<NaiveDate>>) -> Result<Column> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let days: Vec<Option<i32>> = v
        .iter()
        .map(|d| d.map(|d| (d - epoch).num_days() as i32))
        .collect();
    Ok(Column::new(name.into(), days).cast(&DataType::Date)?)
}

pub fn generate(n_accounts: usize, seed: u64) -> Result<Synthetic> {
    generate_shaped(n_accounts, seed, false)
}

/// [`generate`], with the wide CRM's columns when `wide` (see [`TECH_STACKS`]).
pub fn generate_shaped(n_accounts: usize, seed: u64, wide: bool) -> Result<Synthetic> {
    if n_accounts == 0 {
        return Err(IcpError::Usage("--accounts must be at least 1".into()));
    }
    let chunks: Vec<Chunk> = (0..n_accounts.div_ceil(CHUNK))
        .into_par_iter()
        .map(|k| make_chunk(seed, k, k * CHUNK, ((k + 1) * CHUNK).min(n_accounts), wide))
        .collect();
    let mut all = merge(chunks);
    plant_anecdote(&mut all);
    let window_days = median_cycle(&all.cycle_won);
    let interviews = interviews(&all, seed)?;
    let n = all.acc_id.len();
    let p_true: Vec<f64> = all
        .truth
        .par_iter()
        .map(|t| p_velocity_win(t, window_days))
        .collect();
    let accounts = accounts_frame(&all, n, wide)?;
    let m = all.opp_id.len();
    let opportunities = DataFrame::new(
        m,
        vec![
            Column::new("opportunity_id".into(), &all.opp_id),
            Column::new("account_id".into(), &all.opp_acc),
            dates(
                "created_date",
                all.created.iter().map(|d| Some(*d)).collect(),
            )?,
            dates("closed_date", all.closed)?,
            Column::new("outcome".into(), &all.outcome),
            Column::new("amount".into(), &all.amount),
            Column::new(
                "loss_reason".into(),
                all.loss_reason
                    .iter()
                    .enumerate()
                    .map(|(i, r)| r.map(|r| loss_reason_text(r, i)))
                    .collect::<Vec<_>>(),
            ),
            Column::new("product".into(), &all.product),
            Column::new("source".into(), &all.source),
            Column::new("owner".into(), &all.owner),
        ],
    )?;
    let customers = DataFrame::new(
        all.cust_acc.len(),
        vec![
            Column::new("account_id".into(), &all.cust_acc),
            Column::new("status".into(), &all.cust_status),
            dates("churn_date", all.churn_date)?,
            Column::new("delivery_fit".into(), &all.delivery_fit),
            Column::new("gross_margin".into(), &all.margin),
        ],
    )?;
    let triggers = DataFrame::new(
        all.trig_acc.len(),
        vec![
            Column::new("account_id".into(), &all.trig_acc),
            Column::new("trigger".into(), &all.trig),
            dates("date", all.trig_date.iter().map(|d| Some(*d)).collect())?,
        ],
    )?;
    let truth = DataFrame::new(
        n,
        vec![
            Column::new("account_id".into(), &all.acc_id),
            Column::new("p_velocity_win_true".into(), p_true),
        ],
    )?;
    Ok(Synthetic {
        accounts,
        opportunities,
        customers,
        triggers,
        interviews,
        truth,
        window_days,
    })
}

/// Join the chunks' columns in chunk order: the same rows as one chunk
/// making every account.
fn merge(chunks: Vec<Chunk>) -> Chunk {
    let mut all = Chunk::default();
    for c in chunks {
        macro_rules! app { ($($f:ident),*) => { $( all.$f.extend(c.$f); )* } }
        app!(
            acc_id,
            acc_name,
            domain,
            industry,
            country,
            employees,
            revenue,
            founded,
            ownership,
            region,
            tech_stack,
            multi_location,
            ops_owner,
            truth,
            opp_id,
            opp_acc,
            created,
            closed,
            outcome,
            amount,
            loss_reason,
            product,
            source,
            owner,
            cycle_won,
            cust_acc,
            cust_status,
            churn_date,
            delivery_fit,
            margin,
            trig_acc,
            trig,
            trig_date
        );
    }
    all
}

/// The window the pipeline derives by default: median cycle of won deals.
fn median_cycle(cycle_won: &[i64]) -> i64 {
    let mut cyc = cycle_won.to_vec();
    cyc.sort_unstable();
    if cyc.is_empty() {
        1
    } else if cyc.len() % 2 == 1 {
        cyc[cyc.len() / 2]
    } else {
        ((cyc[cyc.len() / 2 - 1] + cyc[cyc.len() / 2]) as f64 / 2.0).ceil() as i64
    }
}

/// The accounts table: the contract's columns, then the wide CRM's when `wide`.
fn accounts_frame(all: &Chunk, n: usize, wide: bool) -> Result<DataFrame> {
    let mut account_columns = vec![
        Column::new("account_id".into(), &all.acc_id),
        Column::new("account_name".into(), &all.acc_name),
        Column::new("domain".into(), &all.domain),
        Column::new("industry".into(), &all.industry),
        Column::new("country".into(), &all.country),
        Column::new("employees".into(), &all.employees),
        Column::new("annual_revenue".into(), &all.revenue),
        Column::new("founded_year".into(), &all.founded),
        Column::new("ownership".into(), &all.ownership),
    ];
    if wide {
        account_columns.extend([
            Column::new("region".into(), &all.region),
            Column::new("tech_stack".into(), &all.tech_stack),
            Column::new("multi_location".into(), &all.multi_location),
            Column::new("has_ops_owner".into(), &all.ops_owner),
        ]);
    }
    Ok(DataFrame::new(n, account_columns)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Parquet,
}

/// Write the four tables into `dir` and the truth to `truth_path` (outside `dir`).
pub fn write(s: &Synthetic, dir: &Path, truth_path: &Path, format: Format) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| IcpError::write(dir, e))?;
    let ext = match format {
        Format::Csv => "csv",
        Format::Parquet => "parquet",
    };
    for (name, df) in [
        ("accounts", &s.accounts),
        ("opportunities", &s.opportunities),
        ("customers", &s.customers),
        ("triggers", &s.triggers),
        ("interviews", &s.interviews),
    ] {
        write_frame(&dir.join(format!("{name}.{ext}")), df, format)?;
    }
    if let Some(p) = truth_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(|e| IcpError::write(p, e))?;
    }
    write_frame(truth_path, &s.truth, Format::Csv)
}

/// Write a frame to `path` through a temporary file and a rename.
pub fn write_frame(path: &Path, df: &DataFrame, format: Format) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| IcpError::write(&tmp, e))?;
    let mut df = df.clone();
    match format {
        Format::Csv => CsvWriter::new(&mut f).finish(&mut df),
        Format::Parquet => ParquetWriter::new(&mut f).finish(&mut df).map(|_| ()),
    }
    .map_err(|e| IcpError::write(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| IcpError::write(path, e))?;
    Ok(())
}
/// Read a generator truth file (account_id, p_velocity_win_true), to
/// report the oracle AUC beside the model's.
pub fn read_truth(path: &std::path::Path) -> Result<DataFrame> {
    let bad = |message: String| IcpError::Data {
        path: path.to_path_buf(),
        message,
    };
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| bad(format!("cannot read the truth file: {e}")))?;
    for c in ["account_id", "p_velocity_win_true"] {
        if df.column(c).is_err() {
            return Err(bad(format!("truth file lacks the column `{c}`")));
        }
    }
    Ok(df
        .lazy()
        .select([
            col("account_id").cast(DataType::String),
            col("p_velocity_win_true"),
        ])
        .collect()?)
}
