//! Account ids as row numbers, interned once per run: deals, customers and
//! scores then meet accounts by index lookups instead of each stage building
//! its own string-keyed maps over a million ids.

use polars::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::Result;

/// Each account id's row in the accounts table (ids are unique there: the
/// loader rejects duplicates).
pub struct AccountIndex<'a> {
    row: FxHashMap<&'a str, u32>,
    n: usize,
}

impl<'a> AccountIndex<'a> {
    /// `ids`: the accounts' `account_id` column as text, in row order.
    pub fn new(ids: &'a StringChunked) -> AccountIndex<'a> {
        let mut row = FxHashMap::with_capacity_and_hasher(ids.len(), Default::default());
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                row.entry(id).or_insert(i as u32);
            }
        }
        AccountIndex { row, n: ids.len() }
    }

    /// Accounts (rows) in the table.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.row.get(id).copied()
    }

    /// The account row of each value of another table's id column (None for
    /// a null or an id the accounts do not hold).
    pub fn rows_of(&self, df: &DataFrame, column: &str) -> Result<Vec<Option<u32>>> {
        let ids = text(df, column)?;
        Ok(ids.iter().map(|a| a.and_then(|a| self.get(a))).collect())
    }
}

/// A column as text (any dtype is cast), one chunk.
pub fn text(df: &DataFrame, name: &str) -> Result<StringChunked> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::String)?
        .str()?
        .rechunk()
        .into_owned())
}

/// Bytes (a digest) as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_their_rows_and_unknown_ids_to_none() {
        let accounts = df!["account_id" => ["A3", "A1", "A2"]].expect("frame");
        let ids = text(&accounts, "account_id").expect("text");
        let index = AccountIndex::new(&ids);
        assert_eq!(index.len(), 3);
        let deals = df!["account_id" => [Some("A2"), None, Some("A9"), Some("A3")]].expect("frame");
        assert_eq!(
            index.rows_of(&deals, "account_id").expect("rows"),
            vec![Some(2), None, None, Some(0)]
        );
    }
}
