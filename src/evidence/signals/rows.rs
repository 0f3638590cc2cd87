//! The deals and accounts as rows of interned cells and bit sets: what the
//! exclusion matches and the refined ICP count on, one pass per criterion
//! instead of one join.

use rustc_hash::FxHashMap as HashMap;

use polars::prelude::*;

use crate::domain::Outcome;
use crate::error::Result;
use crate::stages::features::Cell;
use crate::util::frame::{f64_col, flag_col, str_col, text_col};

/// Name of variable `i`'s cell-code column in the frames of the signals.
pub fn code_col(i: usize) -> String {
    format!("__c{i}")
}

/// Column of [`super::conditions::account_codes`] holding the account's row number.
pub const ACCOUNT_ROW: &str = "__acc";

/// Each variable's cell codes, interned, for a set of rows (deals or accounts).
#[derive(Debug, Clone, Default)]
pub struct Coded {
    dict: Vec<HashMap<String, u32>>,
    /// per variable and code, the rows in that cell: a condition's rows are
    /// the AND of one or two of these (a word at a time, not a row at a time)
    bits: Vec<Vec<Bits>>,
    rows: usize,
}

impl Coded {
    /// From a frame with the code columns of [`code_col`].
    pub fn from_frame(df: &DataFrame, n_vars: usize) -> Result<Coded> {
        use rayon::prelude::*;
        let rows = df.height();
        let cols: Vec<StringChunked> = (0..n_vars)
            .map(|i| {
                Ok(df
                    .column(&code_col(i))?
                    .as_materialized_series()
                    .cast(&DataType::String)?
                    .str()?
                    .clone())
            })
            .collect::<Result<_>>()?;
        // one variable per task: each dictionary is in first-seen order of
        // its own column, so the result does not depend on the threads
        let per: Vec<(HashMap<String, u32>, Vec<Bits>)> = cols
            .par_iter()
            .map(|s| {
                let mut d: HashMap<String, u32> = HashMap::default();
                let mut b: Vec<Bits> = Vec::new();
                for (r, x) in s.iter().enumerate() {
                    let Some(x) = x else { continue };
                    let k = match d.get(x) {
                        Some(k) => *k,
                        None => {
                            let next = d.len() as u32;
                            d.insert(x.to_string(), next);
                            b.push(Bits::new(rows));
                            next
                        }
                    };
                    b[k as usize].set(r);
                }
                (d, b)
            })
            .collect();
        let (dict, bits) = per.into_iter().unzip();
        Ok(Coded { dict, bits, rows })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows in every cell of a condition, as a bit set.
    pub fn mask(&self, cells: &[Cell]) -> Bits {
        let mut want: Vec<(usize, u32)> = Vec::with_capacity(cells.len());
        for c in cells {
            let (var, code) = match c {
                Cell::Level { var, level } => (*var, level.clone()),
                Cell::Bin { var, bin } => (*var, bin.to_string()),
            };
            match self.dict.get(var).and_then(|d| d.get(&code)) {
                Some(k) => want.push((var, *k)),
                None => return Bits::new(self.rows),
            }
        }
        let Some(((v0, k0), rest)) = want.split_first() else {
            return Bits::new(self.rows);
        };
        let mut b = self.bits[*v0][*k0 as usize].clone();
        for (v, k) in rest {
            b.and_with(&self.bits[*v][*k as usize]);
        }
        b
    }
}

/// A fixed-size bit set over rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Bits(Vec<u64>, usize);

impl Bits {
    pub fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)], n)
    }
    pub fn from_bools(v: &[bool]) -> Bits {
        let mut b = Bits::new(v.len());
        for (i, x) in v.iter().enumerate() {
            if *x {
                b.set(i);
            }
        }
        b
    }
    /// Every row.
    pub fn full(n: usize) -> Bits {
        let mut b = Bits(vec![u64::MAX; n.div_ceil(64)], n);
        if !n.is_multiple_of(64)
            && let Some(last) = b.0.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        b
    }
    /// self & o
    pub fn and(&self, o: &Bits) -> Bits {
        Bits(
            self.0.iter().zip(&o.0).map(|(a, b)| a & b).collect(),
            self.1,
        )
    }
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn and_with(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a &= b;
        }
    }
    pub fn or_with(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    /// |self & o|
    pub fn and_count(&self, o: &Bits) -> usize {
        self.0
            .iter()
            .zip(&o.0)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }
    /// self & !o
    pub fn and_not(&self, o: &Bits) -> Bits {
        Bits(
            self.0.iter().zip(&o.0).map(|(a, b)| a & !b).collect(),
            self.1,
        )
    }
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut x = word;
            std::iter::from_fn(move || {
                if x == 0 {
                    return None;
                }
                let t = x.trailing_zeros() as usize;
                x &= x - 1;
                Some(w * 64 + t)
            })
        })
    }
}

/// The labelled deals, as the selection needs them.
pub struct DealRows {
    pub cells: Coded,
    /// account index of each deal (for counting distinct accounts)
    pub account: Vec<u32>,
    pub n_accounts: usize,
    pub velocity_win: Bits,
    /// deals of the model's time-based holdout: later deals, which choose
    /// no criterion and check every one
    pub holdout: Bits,
    /// lost deals, and their loss reason (None: blank)
    pub lost: Bits,
    pub loss_reason: Vec<Option<String>>,
}

/// Every account, for what a criterion would do to targeting.
pub struct AccountRows {
    pub cells: Coded,
    /// CRM status prospect (no customer record, no won or open deal; lost
    /// deals allowed): the accounts outbound targeting acts on, as the feed
    /// publishes them
    pub prospect: Bits,
    /// P(velocity win) from the model; NaN when unscored
    pub p: Vec<f64>,
    /// prospects the model puts in the High band
    pub prospect_high: Bits,
    /// won, not churned: a current customer
    pub customer: Bits,
    /// won revenue of each current customer (0 otherwise)
    pub customer_revenue: Vec<f64>,
    /// a customer note (customers.notes), verbatim
    pub note: Vec<Option<String>>,
    /// a buyer interview quote (interviews.csv), verbatim with who and when
    pub quote: Vec<Option<String>>,
}

/// The labelled deals as the refined-ICP selection reads them.
pub fn deal_rows(df: &DataFrame, n_accounts: usize, n_vars: usize) -> Result<DealRows> {
    let mut trace = crate::util::progress::Trace::start();
    let cells = Coded::from_frame(df, n_vars)?;
    trace.lap("deal rows: coded");
    // the account's row number (a deal of an unknown account, which the
    // loader rejects, would count as one more account)
    let account: Vec<u32> = df
        .column(ACCOUNT_ROW)?
        .as_materialized_series()
        .cast(&DataType::UInt32)?
        .u32()?
        .iter()
        .map(|r| r.unwrap_or(n_accounts as u32))
        .collect();
    let label = flag_col(df, "label")?;
    let holdout = flag_col(df, "holdout")?;
    let lost: Vec<bool> = text_col(df, "outcome")?
        .iter()
        .map(|o| o.and_then(Outcome::canonical) == Some(Outcome::Lost))
        .collect();
    Ok(DealRows {
        cells,
        n_accounts: n_accounts + 1,
        account,
        velocity_win: Bits::from_bools(&label),
        holdout: Bits::from_bools(&holdout),
        lost: Bits::from_bools(&lost),
        loss_reason: str_col(df, "loss_reason")?,
    })
}

/// Every account: its cells, whether it is a prospect or a current customer
/// (its CRM status, as the feed publishes it) and its won revenue, the
/// model's probability, its first customer note and interview quote.
// eight inputs, each a different table the rows are gathered from; a
// struct of them would only rename the list (the unit test builds them)
#[allow(clippy::too_many_arguments)]
pub fn account_rows(
    codes: &DataFrame,
    index: &crate::util::ids::AccountIndex,
    labels: &DataFrame,
    scored: &crate::stages::score::ByRow,
    customers: Option<&DataFrame>,
    interviews: Option<&DataFrame>,
    crm: &[crate::domain::CrmStatus],
    n_vars: usize,
) -> Result<AccountRows> {
    let mut trace = crate::util::progress::Trace::start();
    let cells = Coded::from_frame(codes, n_vars)?;
    trace.lap("account rows: coded");
    let n = index.len();
    if scored.p.len() != n || scored.band.len() != n || codes.height() != n || crm.len() != n {
        return Err(crate::error::IcpError::Internal(format!(
            "{} accounts indexed, {} scored, {} coded",
            n,
            scored.p.len(),
            codes.height()
        )));
    }
    let mut customer = vec![false; n];
    let mut revenue = vec![0.0; n];
    let l_out = text_col(labels, "outcome")?;
    let l_amt = f64_col(labels, "amount")?;
    for ((r, o), m) in index
        .rows_of(labels, "account_id")?
        .into_iter()
        .zip(l_out.iter())
        .zip(&l_amt)
    {
        let Some(r) = r else { continue };
        let r = r as usize;
        if o.and_then(Outcome::canonical) == Some(Outcome::Won) {
            revenue[r] += m.unwrap_or(0.0);
        }
    }
    // the first note of each account
    let mut note: Vec<Option<String>> = vec![None; n];
    if let Some(c) = customers
        && c.get_column_names().iter().any(|n| n.as_str() == "notes")
    {
        let notes = text_col(c, "notes")?;
        for (r, t) in index
            .rows_of(c, "account_id")?
            .into_iter()
            .zip(notes.iter())
        {
            if let (Some(r), Some(t)) = (r, t) {
                note[r as usize].get_or_insert_with(|| t.to_string());
            }
        }
    }
    // the first quote of each account, in date order (undated last)
    let mut quote: Vec<Option<String>> = vec![None; n];
    if let Some(iv) = interviews {
        let iv = iv
            .clone()
            .lazy()
            .sort(
                ["account_id", "date"],
                SortMultipleOptions::default().with_nulls_last(true),
            )
            .collect()?;
        let (ivid, d, r, q) = (
            str_col(&iv, "account_id")?,
            str_col(&iv, "date")?,
            str_col(&iv, "role")?,
            str_col(&iv, "quote")?,
        );
        for (i, acc) in index.rows_of(&iv, "account_id")?.into_iter().enumerate() {
            let (Some(acc), Some(text)) = (acc, q[i].as_deref()) else {
                continue;
            };
            let slot = &mut quote[acc as usize];
            if slot.is_some() {
                continue;
            }
            let mut who: Vec<String> = [r[i].clone(), d[i].clone()].into_iter().flatten().collect();
            // tied to its account, so a reader can look it up
            if let Some(id) = &ivid[i] {
                who.push(format!("account {id}"));
            }
            *slot = Some(if who.is_empty() {
                format!("\"{}\"", text.trim())
            } else {
                format!("\"{}\" ({})", text.trim(), who.join(", "))
            });
        }
    }
    trace.lap("account rows: by row");
    // one definition of each status, the feed's
    let prospect: Vec<bool> = crm
        .iter()
        .map(|c| *c == crate::domain::CrmStatus::Prospect)
        .collect();
    for (r, c) in crm.iter().enumerate() {
        customer[r] = *c == crate::domain::CrmStatus::Customer;
        if !customer[r] {
            revenue[r] = 0.0;
        }
    }
    let prospect_high: Vec<bool> = prospect
        .iter()
        .zip(&scored.band)
        .map(|(p, b)| *p && *b == Some(crate::domain::Band::High))
        .collect();
    Ok(AccountRows {
        cells,
        prospect: Bits::from_bools(&prospect),
        prospect_high: Bits::from_bools(&prospect_high),
        p: scored.p.clone(),
        customer: Bits::from_bools(&customer),
        customer_revenue: revenue,
        note,
        quote,
    })
}
