//! The design matrix by rows, non-zero entries only.
//!
//! Why: a deal's row has one entry per categorical variable, two or three
//! per numeric one and the few interactions it falls in (about 20) out of
//! about 90 columns. Newton's method forms the Hessian from the rows: a
//! dense Gram matrix costs p^2 per row, these rows about 20^2 / 2, and the
//! matrix is a quarter of the memory.

use ndarray::{Array2, ArrayView2, ShapeBuilder};

/// Rows in compressed form: row `i`'s entries are
/// `col[start[i]..start[i + 1]]` (ascending) with values `val[..]`.
#[derive(Debug, Clone)]
pub struct Sparse {
    start: Vec<usize>,
    col: Vec<u32>,
    val: Vec<f64>,
    p: usize,
}

/// A range of a [`Sparse`] matrix's rows.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    start: &'a [usize],
    col: &'a [u32],
    val: &'a [f64],
    p: usize,
}

impl Sparse {
    /// From rows given as (column, value) entries with ascending columns.
    pub fn from_parts(start: Vec<usize>, col: Vec<u32>, val: Vec<f64>, p: usize) -> Sparse {
        debug_assert_eq!(col.len(), val.len());
        debug_assert_eq!(start.last().copied().unwrap_or(0), col.len());
        // the Hessian scatter fills the upper triangle: each row's columns
        // must be strictly ascending
        debug_assert!(
            start
                .windows(2)
                .all(|w| col[w[0]..w[1]].windows(2).all(|c| c[0] < c[1]))
        );
        Sparse { start, col, val, p }
    }

    /// The non-zero entries of a dense matrix (tests, and small designs).
    pub fn from_dense(x: ArrayView2<f64>) -> Sparse {
        let (n, p) = x.dim();
        let mut start = Vec::with_capacity(n + 1);
        let (mut col, mut val) = (Vec::new(), Vec::new());
        start.push(0);
        for row in x.rows() {
            for (j, v) in row.iter().enumerate() {
                if *v != 0.0 {
                    col.push(j as u32);
                    val.push(*v);
                }
            }
            start.push(col.len());
        }
        Sparse { start, col, val, p }
    }

    pub fn rows(&self) -> Rows<'_> {
        Rows {
            start: &self.start,
            col: &self.col,
            val: &self.val,
            p: self.p,
        }
    }
}

impl<'a> Rows<'a> {
    pub fn nrows(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    pub fn ncols(&self) -> usize {
        self.p
    }

    /// Rows `a..b` of this range.
    pub fn slice(&self, a: usize, b: usize) -> Rows<'a> {
        Rows {
            start: &self.start[a..=b],
            ..*self
        }
    }

    /// Row `i`'s (columns, values).
    #[inline]
    pub fn row(&self, i: usize) -> (&'a [u32], &'a [f64]) {
        let (a, b) = (self.start[i], self.start[i + 1]);
        (&self.col[a..b], &self.val[a..b])
    }

    /// `b + x_i . w`, summed from the intercept in column order (the order a
    /// dense column-by-column product adds the non-zero terms in).
    #[inline]
    pub fn linear(&self, i: usize, w: &[f64], b: f64) -> f64 {
        let (c, v) = self.row(i);
        c.iter().zip(v).fold(b, |z, (c, v)| z + w[*c as usize] * v)
    }

    /// The same rows as a dense column-major matrix (linfa's L-BFGS).
    pub fn to_dense(&self) -> Array2<f64> {
        let n = self.nrows();
        let mut x = Array2::<f64>::zeros((n, self.p).f());
        for i in 0..n {
            let (c, v) = self.row(i);
            for (c, v) in c.iter().zip(v) {
                x[[i, *c as usize]] = *v;
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_round_trip_and_slices() {
        let x = ndarray::array![
            [0.0, 1.0, 0.0],
            [2.5, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, -3.0]
        ];
        let s = Sparse::from_dense(x.view());
        let r = s.rows();
        assert_eq!((r.nrows(), r.ncols()), (4, 3));
        assert_eq!(r.to_dense(), x);
        let tail = r.slice(1, 4);
        assert_eq!(tail.nrows(), 3);
        assert_eq!(tail.row(2), (&[0u32, 1, 2][..], &[1.0, 1.0, -3.0][..]));
        assert_eq!(tail.row(1), (&[][..], &[][..]));
        assert_eq!(r.linear(3, &[1.0, 2.0, 0.5], 0.25), 0.25 + 1.0 + 2.0 - 1.5);
    }
}
