//! Stage 5: score every account with a frozen model.
//!
//! The score is the account's percentile within the reference distribution
//! frozen in the model artifact (the logits of the accounts scored when the
//! model was trained), so re-scoring the same account with the same model
//! always gives the same score, whatever else is in today's file.

use polars::prelude::*;
use rayon::prelude::*;

use crate::domain::{Band, STATUS_SCORED};
use crate::error::Result;

use crate::stages::features::{Cell, Encoded, Scorer, Variable, format_quantity};
use crate::stages::model::{ModelArtifact, band, percentile_score, sigmoid};

/// Each account's probability (as written, rounded to 6 decimals; NaN when
/// unscored) and band, in the accounts' row order: what later stages join
/// to accounts by row number instead of by id.
#[derive(Debug, Clone, Default)]
pub struct ByRow {
    pub p: Vec<f64>,
    pub band: Vec<Option<Band>>,
}

/// Score `accounts` (canonical columns). Returns one row per account, sorted
/// by score (desc) then account_id, unscored accounts last.
pub fn score(artifact: &ModelArtifact, accounts: &DataFrame) -> Result<DataFrame> {
    Ok(score_by_row(artifact, accounts)?.0)
}

/// [`score`], and the same scores by the accounts' row.
pub fn score_by_row(artifact: &ModelArtifact, accounts: &DataFrame) -> Result<(DataFrame, ByRow)> {
    let model = &artifact.model;
    let spec = &model.spec;
    let inputs = spec.input_columns();
    require_inputs(artifact, accounts, &inputs)?;
    let n = accounts.height();
    let (known, cover) = coverage(accounts, &inputs)?;
    let mut trace = crate::util::progress::Trace::start();
    let codes = Encoded::of(spec, accounts)?;
    trace.lap("score: codes");
    let scorer = Scorer::new(model, &codes);
    // raw inputs, to put each reason in plain words
    let values = raw_values(&spec.variables, accounts)?;
    let ctx = Describe::new(artifact, &codes, &values);
    let rows = RowInputs {
        artifact,
        scorer: &scorer,
        ctx: &ctx,
        known: &known,
        cover: &cover,
        n_inputs: inputs.len(),
    };
    let mut parts = score_parts(&rows, n);
    let joined = join_parts(&mut parts, n);
    trace.lap("score: rows");
    let by_row = ByRow {
        p: joined.prob.iter().map(|p| p.unwrap_or(f64::NAN)).collect(),
        band: joined
            .score
            .iter()
            .map(|s| s.map(|s| Band::of(s.clamp(0, 100) as u8)))
            .collect(),
    };
    // output order: score desc, then account_id; unscored last (the rows
    // are moved into place, not sorted and gathered by polars)
    let order = rank_order(accounts, &joined.score)?;
    trace.lap("score: rank");
    let out = ranked_frame(artifact, accounts, &order, parts, &joined, &cover)?;
    trace.lap("score: frame");
    Ok((out, by_row))
}

/// Refuse accounts that lack a column the model reads: say which, and how
/// to get past it.
fn require_inputs(artifact: &ModelArtifact, accounts: &DataFrame, inputs: &[String]) -> Result<()> {
    let missing: Vec<&str> = inputs
        .iter()
        .map(String::as_str)
        .filter(|c| accounts.column(c).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(crate::error::IcpError::Usage(format!(
            "the accounts lack the column(s) `{}` that model {} uses as features (map them in the config, or score with a model trained without them)",
            missing.join("`, `"),
            artifact.model_id
        )));
    }
    Ok(())
}

/// How many of the model's inputs each account has, and that as a share:
/// accounts below the model's minimum coverage are not scored.
fn coverage(accounts: &DataFrame, inputs: &[String]) -> Result<(Vec<u32>, Vec<f64>)> {
    let n = accounts.height();
    // share of the model's inputs known, per account (0/1 sums are exact)
    let known: Vec<u32> = {
        let mut k = vec![0u32; n];
        for c in inputs {
            let col = accounts.column(c)?.as_materialized_series().rechunk();
            if col.null_count() == 0 {
                k.iter_mut().for_each(|k| *k += 1);
            } else {
                for (k, v) in k.iter_mut().zip(col.is_not_null().iter()) {
                    *k += v.unwrap_or(false) as u32;
                }
            }
        }
        k
    };
    // as polars divides by a scalar: times its reciprocal (same bits as before)
    let inv = 1.0 / inputs.len() as f64;
    let cover: Vec<f64> = known
        .iter()
        .map(|&k| {
            if inputs.is_empty() {
                1.0
            } else {
                k as f64 * inv
            }
        })
        .collect();
    Ok((known, cover))
}

/// Each variable's input column as the variable reads it (text or number),
/// for the reasons' plain words.
fn raw_values(variables: &[Variable], accounts: &DataFrame) -> Result<Vec<Raw>> {
    variables
        .iter()
        .map(|v| {
            let s = accounts
                .column(v.column())?
                .as_materialized_series()
                .rechunk();
            Ok(match v {
                Variable::Categorical { .. } => {
                    Raw::Text(s.cast(&DataType::String)?.str()?.clone())
                }
                Variable::Numeric { .. } => Raw::Number(s.cast(&DataType::Float64)?.f64()?.clone()),
            })
        })
        .collect::<Result<_>>()
}

/// Accounts per chunk scored in parallel: account i is in chunk i / CHUNK.
const CHUNK: usize = 65_536;

/// One chunk of accounts, in input order. Reasons are written into one
/// text buffer per chunk (no string allocated per account) and copied
/// once, in rank order, into the frame's column.
struct Part {
    score: Vec<Option<i64>>,
    p: Vec<Option<f64>>,
    /// None: scored; Some: why not
    unscored: Vec<Option<String>>,
    text: String,
    /// where each account's reasons end in `text`
    ends: Vec<usize>,
}

/// What every chunk is scored from (shared, read-only, across threads).
struct RowInputs<'a> {
    artifact: &'a ModelArtifact,
    scorer: &'a Scorer<'a>,
    ctx: &'a Describe<'a>,
    known: &'a [u32],
    cover: &'a [f64],
    n_inputs: usize,
}

/// Score the `n` accounts, chunks in parallel: each account's score,
/// probability and reasons, or why it is not scored.
fn score_parts(rows: &RowInputs<'_>, n: usize) -> Vec<Part> {
    let RowInputs {
        artifact,
        scorer,
        ctx,
        known,
        cover,
        n_inputs,
    } = *rows;
    let n_groups = artifact.model.spec.n_groups();
    let min_cov = artifact.min_feature_coverage;
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    starts
        .par_iter()
        .map(|&from| {
            let to = (from + CHUNK).min(n);
            let mut groups = vec![0.0; n_groups];
            let mut text = String::with_capacity((to - from) * 128);
            let mut ends = Vec::with_capacity(to - from);
            let mut part = Part {
                score: Vec::with_capacity(to - from),
                p: Vec::with_capacity(to - from),
                unscored: Vec::with_capacity(to - from),
                text: String::new(),
                ends: Vec::new(),
            };
            for i in from..to {
                if cover[i] < min_cov {
                    part.score.push(None);
                    part.p.push(None);
                    part.unscored.push(Some(format!(
                        "insufficient_data: {} of {} model inputs known",
                        known[i], n_inputs
                    )));
                    ends.push(text.len());
                    continue;
                }
                let z = scorer.row(i, &mut groups);
                let p = sigmoid(z);
                let s = percentile_score(z, &artifact.reference);
                let (top, len) = top_effects(&groups, z, p);
                let start = text.len();
                for &(pts, g) in &top[..len] {
                    if text.len() > start {
                        text.push_str("; ");
                    }
                    text.push_str(&ctx.describe(g, i));
                    text.push_str(", ");
                    let decimals = if pts.abs() >= 1.0 { 0 } else { 1 };
                    crate::util::push_fixed(&mut text, pts, decimals, true);
                }
                ends.push(text.len());
                part.score.push(Some(s as i64));
                part.p.push(Some((p * 1e6).round() / 1e6));
                part.unscored.push(None);
            }
            part.text = text;
            part.ends = ends;
            part
        })
        .collect()
}

/// Every account's score, probability and why not scored, in row order.
struct Joined {
    score: Vec<Option<i64>>,
    prob: Vec<Option<f64>>,
    unscored: Vec<Option<String>>,
}

/// The chunks' scores end to end, in row order (the reasons stay in the
/// chunks' buffers; the reasons not scored are moved out).
fn join_parts(parts: &mut [Part], n: usize) -> Joined {
    let score: Vec<Option<i64>> = parts.iter().flat_map(|p| p.score.iter().copied()).collect();
    let prob: Vec<Option<f64>> = parts.iter().flat_map(|p| p.p.iter().copied()).collect();
    let mut unscored: Vec<Option<String>> = Vec::with_capacity(n);
    for p in parts.iter_mut() {
        unscored.append(&mut p.unscored);
    }
    Joined {
        score,
        prob,
        unscored,
    }
}

/// The rows in output order: score desc, then account_id, unscored last.
/// A counting sort by score (101 values and "unscored"), then each score's
/// accounts by id, the scores in parallel.
fn rank_order(accounts: &DataFrame, score: &[Option<i64>]) -> Result<Vec<u32>> {
    let n = score.len();
    let id_col = accounts
        .column("account_id")?
        .as_materialized_series()
        .rechunk();
    let id_text = id_col.cast(&DataType::String)?;
    let ids: Vec<&str> = id_text.str()?.iter().map(|v| v.unwrap_or("")).collect();
    let key = |s: Option<i64>| s.map_or(101, |s| 100 - s.clamp(0, 100) as usize);
    let mut start = [0usize; 103];
    for &s in score {
        start[key(s) + 1] += 1;
    }
    for k in 1..103 {
        start[k] += start[k - 1];
    }
    let mut order = vec![0u32; n];
    let mut at = start;
    for (i, &s) in score.iter().enumerate() {
        let k = key(s);
        order[at[k]] = i as u32;
        at[k] += 1;
    }
    let mut runs: Vec<&mut [u32]> = Vec::with_capacity(102);
    let mut rest = order.as_mut_slice();
    for k in 0..102 {
        let (run, tail) = rest.split_at_mut(start[k + 1] - start[k]);
        runs.push(run);
        rest = tail;
    }
    runs.par_iter_mut()
        .for_each(|run| run.sort_unstable_by(|&a, &b| ids[a as usize].cmp(ids[b as usize])));
    drop(runs);
    Ok(order)
}

/// The output frame, every column moved into rank `order`: the accounts'
/// names, score, probability, band, reasons, model, status and coverage.
fn ranked_frame(
    artifact: &ModelArtifact,
    accounts: &DataFrame,
    order: &[u32],
    parts: Vec<Part>,
    joined: &Joined,
    cover: &[f64],
) -> Result<DataFrame> {
    let n = accounts.height();
    let Joined {
        score,
        prob,
        unscored,
    } = joined;
    let text = |c: &str| -> Result<Column> {
        Ok(match accounts.column(c) {
            Ok(v) => v.cast(&DataType::String)?,
            Err(_) => Column::full_null(c.into(), accounts.height(), &DataType::String),
        })
    };
    // account i's reasons: chunk i / CHUNK, between the previous end and its own
    let reason_of = |i: usize| -> &str {
        let (part, k) = (&parts[i / CHUNK], i % CHUNK);
        let start = if k == 0 { 0 } else { part.ends[k - 1] };
        &part.text[start..part.ends[k]]
    };
    let idx = IdxCa::from_vec("".into(), order.iter().map(|&i| i as IdxSize).collect());
    let ident = DataFrame::new(
        n,
        vec![
            accounts.column("account_id")?.clone(),
            text("account_name")?,
            text("domain")?,
        ],
    )?
    .take(&idx)?;
    // copied straight into rank order: one contiguous column, no gather
    let reasons = StringChunked::from_iter_values(
        "reasons".into(),
        order.iter().map(|&i| reason_of(i as usize)),
    );
    drop(parts);
    let ranked = |i: &u32| *i as usize;
    let mut cols: Vec<Column> = ident.columns().to_vec();
    cols.extend([
        Column::new(
            "score".into(),
            order.iter().map(|i| score[ranked(i)]).collect::<Vec<_>>(),
        ),
        Column::new(
            "p_velocity_win".into(),
            order.iter().map(|i| prob[ranked(i)]).collect::<Vec<_>>(),
        ),
        Column::new(
            "band".into(),
            order
                .iter()
                .map(|i| score[ranked(i)].map_or(Band::UNSCORED, |s| band(s as u8)))
                .collect::<Vec<_>>(),
        ),
        reasons.into_column(),
        // one value for every row: a scalar column, not a million copies
        Column::new_scalar(
            "model_id".into(),
            Scalar::new(
                DataType::String,
                AnyValue::StringOwned(artifact.model_id.as_str().into()),
            ),
            n,
        ),
        Column::new(
            "status".into(),
            order
                .iter()
                .map(|i| unscored[ranked(i)].as_deref().unwrap_or(STATUS_SCORED))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "feature_coverage".into(),
            order
                .iter()
                .map(|&i| (cover[i as usize] * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
        ),
    ]);
    Ok(DataFrame::new(n, cols)?)
}

/// The (at most) three reason groups with the largest effect on this
/// account's probability, in percentage points against a typical account:
/// 100 (p - sigmoid(z - g)), largest magnitude first, ties to the lower
/// group. The effect grows with g on either side of zero (not strictly, in
/// floating point), so only the four largest positive, the four most
/// negative and the first three zero groups are evaluated: a handful of
/// sigmoids per account instead of one per group. When a group left out
/// could tie with the third (p rounds to 0 or 1 and effects flatten to the
/// same value), every group is evaluated, so the three are always those of
/// evaluating them all.
fn top_effects(groups: &[f64], z: f64, p: f64) -> ([(f64, usize); 3], usize) {
    const K: usize = 4;
    /// At most `N` (g, index), best-first by (|g| desc, index asc), on the stack.
    struct Best<const N: usize> {
        items: [(f64, usize); N],
        len: usize,
    }
    impl<const N: usize> Best<N> {
        fn new() -> Self {
            Best {
                items: [(0.0, 0); N],
                len: 0,
            }
        }
        fn offer(&mut self, g: f64, i: usize) {
            // full and not above the last kept: the common case, one compare
            if self.len == N && g.abs() <= self.items[N - 1].0.abs() {
                return;
            }
            let at = self.items[..self.len]
                .iter()
                .position(|&(h, _)| g.abs() > h.abs())
                .unwrap_or(self.len);
            if at < N {
                let end = self.len.min(N - 1);
                self.items.copy_within(at..end, at + 1);
                self.items[at] = (g, i);
                self.len = (self.len + 1).min(N);
            }
        }
    }
    let (mut pos, mut neg) = (Best::<K>::new(), Best::<K>::new());
    let mut zero = Best::<3>::new();
    let mut nan = Best::<3>::new();
    // how many of each kind: more than kept means some were left out
    let (mut n_pos, mut n_neg, mut n_zero) = (0, 0, 0);
    for (i, &g) in groups.iter().enumerate() {
        if g > 0.0 {
            pos.offer(g, i);
            n_pos += 1;
        } else if g < 0.0 {
            neg.offer(g, i);
            n_neg += 1;
        } else if g.is_nan() {
            nan.offer(0.0, i);
        } else {
            zero.offer(0.0, i);
            n_zero += 1;
        }
    }
    let effect = |g: usize| 100.0 * (p - sigmoid(z - groups[g]));
    let mut cands = [0usize; 2 * K + 6];
    let mut n = 0;
    for b in [
        &pos.items[..pos.len],
        &neg.items[..neg.len],
        &zero.items[..zero.len],
        &nan.items[..nan.len],
    ] {
        for &(_, i) in b {
            cands[n] = i;
            n += 1;
        }
    }
    cands[..n].sort_unstable();
    let mut top: [(f64, usize); 3] = [(f64::NAN, usize::MAX); 3];
    let mut len = 0;
    for &g in &cands[..n] {
        let e = effect(g);
        let before = |a: &(f64, usize)| e.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&g)).is_gt();
        let at = top[..len].iter().position(before).unwrap_or(len);
        if at < 3 {
            let end = len.min(2);
            top.copy_within(at..end, at + 1);
            top[at] = (e, g);
            len = (len + 1).min(3);
        }
    }
    // A group left out has an effect no larger than the last one kept of its
    // kind (zero groups: exactly 0). Unless the third is strictly larger
    // than every such bound, a left-out group could tie with it and win on
    // its lower index: evaluate them all.
    let mut bound = f64::NEG_INFINITY;
    if n_pos > K {
        bound = bound.max(effect(pos.items[K - 1].1).abs());
    }
    if n_neg > K {
        bound = bound.max(effect(neg.items[K - 1].1).abs());
    }
    if n_zero > 3 {
        bound = bound.max(0.0);
    }
    let settled = (len == 3 && top[2].0.abs() > bound) || (len < 3 && bound == f64::NEG_INFINITY);
    if !settled {
        let mut all: Vec<(f64, usize)> = (0..groups.len()).map(|g| (effect(g), g)).collect();
        all.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&b.1)));
        len = all.len().min(3);
        top[..len].copy_from_slice(&all[..len]);
    }
    (top, len)
}

/// An input column as its variable reads it.
enum Raw {
    Text(StringChunked),
    Number(Float64Chunked),
}

/// What the reasons are written from.
struct Describe<'a> {
    artifact: &'a ModelArtifact,
    codes: &'a Encoded,
    values: &'a [Raw],
    /// the words that do not depend on the account, made once: each
    /// variable's name, "name unknown", each kept level's "name = level",
    /// each interaction's "a and b" and "not (a and b)"
    names: Vec<String>,
    unknown: Vec<String>,
    levels: Vec<Vec<String>>,
    inside: Vec<String>,
    outside: Vec<String>,
}

impl<'a> Describe<'a> {
    fn new(artifact: &'a ModelArtifact, codes: &'a Encoded, values: &'a [Raw]) -> Describe<'a> {
        let spec = &artifact.model.spec;
        let names: Vec<String> = spec.variables.iter().map(|v| v.display_name()).collect();
        let unknown = names.iter().map(|n| format!("{n} unknown")).collect();
        let levels = spec
            .variables
            .iter()
            .zip(&names)
            .map(|(v, name)| match v {
                Variable::Categorical { levels, .. } => {
                    levels.iter().map(|l| format!("{name} = {l}")).collect()
                }
                Variable::Numeric { .. } => Vec::new(),
            })
            .collect();
        let inside: Vec<String> = spec
            .interactions
            .iter()
            .map(|it| {
                format!(
                    "{} and {}",
                    spec.describe_cell(&it.a),
                    spec.describe_cell(&it.b)
                )
            })
            .collect();
        let outside = inside.iter().map(|b| format!("not ({b})")).collect();
        Describe {
            artifact,
            codes,
            values,
            names,
            unknown,
            levels,
            inside,
            outside,
        }
    }

    /// Plain words for account `i`'s value of reason group `g`.
    fn describe(&self, g: usize, i: usize) -> std::borrow::Cow<'_, str> {
        let spec = &self.artifact.model.spec;
        let nv = spec.variables.len();
        if g < nv {
            return self.describe_value(g, i);
        }
        let k = g - nv;
        let it = &spec.interactions[k];
        if self.codes.in_cell(spec, &it.a, i) && self.codes.in_cell(spec, &it.b, i) {
            self.inside[k].as_str().into()
        } else {
            self.outside[k].as_str().into()
        }
    }

    fn describe_value(&self, var: usize, i: usize) -> std::borrow::Cow<'_, str> {
        let spec = &self.artifact.model.spec;
        let v = &spec.variables[var];
        let name = &self.names[var];
        let unknown = || self.unknown[var].as_str().into();
        match (v, &self.values[var]) {
            (Variable::Categorical { .. }, Raw::Text(t)) => match t.get(i) {
                None => unknown(),
                Some(s) => match self.codes.cell(var, i) {
                    Some(l) => self.levels[var][l as usize].as_str().into(),
                    None => format!("{name} = {s} (rare)").into(),
                },
            },
            (
                Variable::Numeric {
                    derived_age,
                    column,
                    ..
                },
                Raw::Number(x),
            ) => match x.get(i) {
                None => unknown(),
                Some(x) if *derived_age => {
                    let age = (spec.reference_year as f64 - x).max(0.0);
                    format!("{name} = {}", format_quantity("founded_year", age)).into()
                }
                Some(x) => format!("{name} = {}", format_quantity(column, x)).into(),
            },
            _ => unknown(),
        }
    }
}

/// Plain words for a cell, used by signals (re-exported for the brief).
pub fn describe_cell(a: &ModelArtifact, c: &Cell) -> String {
    a.model.spec.describe_cell(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluating every group, sorting and taking three: what
    /// [`top_effects`] must give.
    fn all_effects(groups: &[f64], z: f64, p: f64) -> Vec<(f64, usize)> {
        let mut e: Vec<(f64, usize)> = groups
            .iter()
            .enumerate()
            .map(|(g, v)| (100.0 * (p - sigmoid(z - v)), g))
            .collect();
        e.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&b.1)));
        e.truncate(3);
        e
    }

    #[test]
    fn saturated_probabilities_keep_the_lowest_groups_on_ties() {
        // p rounds to 1: every small group's effect is exactly 0, a tie that
        // the lowest group index wins (review finding)
        let groups = [0.1, 0.2, 0.3, 0.4, 98.0];
        let z = 100.0;
        let (top, len) = top_effects(&groups, z, sigmoid(z));
        let got: Vec<usize> = top[..len].iter().map(|t| t.1).collect();
        let want: Vec<usize> = all_effects(&groups, z, sigmoid(z))
            .iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(got, want);
        assert_eq!(got, vec![4, 0, 1]);
    }

    #[test]
    fn the_top_effects_are_those_of_evaluating_every_group() {
        let mut s: u64 = 99;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..20_000 {
            let n = 1 + case % 40;
            let groups: Vec<f64> = (0..n)
                .map(|_| match (next() * 10.0) as u32 {
                    0 => 0.0,
                    1 => 0.25, // repeated values: ties
                    2 => -0.25,
                    _ => (next() - 0.5) * 4.0,
                })
                .collect();
            // now and then saturated (p rounds to 0 or 1, effects tie at 0)
            let z = if case % 5 == 0 {
                (next() - 0.5) * 200.0
            } else {
                (next() - 0.5) * 6.0 + groups.iter().sum::<f64>()
            };
            let p = sigmoid(z);
            let (top, len) = top_effects(&groups, z, p);
            let want = all_effects(&groups, z, p);
            assert_eq!(&top[..len], &want[..], "{groups:?} z {z}");
        }
    }
}
