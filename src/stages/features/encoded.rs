//! The frozen encoding applied once per frame: per variable, a small integer
//! cell code per row (and, for a numeric variable, its transformed value).
//!
//! Why: the design matrix, the interaction screen, the logits and the
//! reasons all read the same few facts per row (which level, which band,
//! missing or not). Evaluating the polars expressions of
//! [`FeatureSpec::exprs`] for each of them compared strings per level per
//! row and recomputed each transform per band, a few times per run. The
//! expressions stay the definition (SQL export, tests); this module must
//! give the same numbers to the last bit, which `tests` below hold.

use ndarray::{Array2, ArrayView1, ShapeBuilder};
use polars::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::linear::LinearModel;
use super::sparse::Sparse;
use super::{Cell, Feature, FeatureSpec, Variable, cube_above, log_scale, spline_term};
use crate::error::Result;

/// One variable's codes over the rows of a frame.
#[derive(Debug, Clone)]
pub enum Coded {
    /// kept level index; `levels.len()` for a rare value, `+ 1` for missing
    Categorical { code: Vec<u32>, n_levels: u32 },
    /// `x` transformed and imputed as the features see it, `band` its bin,
    /// `missing` whether the raw value was null
    Numeric {
        x: Vec<f64>,
        band: Vec<u32>,
        missing: Vec<bool>,
    },
}

/// Every variable of a spec, coded over the rows of one frame.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub n: usize,
    pub vars: Vec<Coded>,
}

/// A feature resolved against the codes: what makes it non-zero.
#[derive(Debug, Clone, Copy)]
enum Term {
    Code {
        var: usize,
        code: u32,
    },
    Linear {
        var: usize,
        mean: f64,
        inv_sd: f64,
    },
    Band {
        var: usize,
        band: u32,
    },
    Missing {
        var: usize,
    },
    Both {
        a: (usize, u32),
        b: (usize, u32),
    },
    /// sum of weight * max(x - knot, 0)^3 over three (knot, weight) pairs
    Spline {
        var: usize,
        parts: [(f64, f64); 3],
    },
}

/// A cell as (variable, code): a level's index or a band. A level the spec
/// does not keep matches nothing.
fn cell_key(spec: &FeatureSpec, cell: &Cell) -> (usize, u32) {
    match cell {
        Cell::Level { var, level } => (
            *var,
            spec.level_index(*var, level).map_or(u32::MAX, |i| i as u32),
        ),
        Cell::Bin { var, bin } => (*var, *bin as u32),
    }
}

fn terms(spec: &FeatureSpec) -> Vec<Term> {
    spec.features
        .iter()
        .map(|f| match f {
            Feature::Level { var, level } => Term::Code {
                var: *var,
                code: spec.level_index(*var, level).map_or(u32::MAX, |i| i as u32),
            },
            Feature::Other { var } => match &spec.variables[*var] {
                Variable::Categorical { levels, .. } => Term::Code {
                    var: *var,
                    code: levels.len() as u32,
                },
                Variable::Numeric { .. } => Term::Code {
                    var: *var,
                    code: u32::MAX,
                },
            },
            Feature::Missing { var } => Term::Missing { var: *var },
            Feature::Linear { var } => match &spec.variables[*var] {
                Variable::Numeric { mean, sd, .. } => Term::Linear {
                    var: *var,
                    mean: *mean,
                    // polars divides by a scalar as a product with its
                    // reciprocal; so does this, for the same bits
                    inv_sd: 1.0 / *sd,
                },
                Variable::Categorical { .. } => Term::Code {
                    var: *var,
                    code: u32::MAX,
                },
            },
            Feature::Bin { var, bin } => Term::Band {
                var: *var,
                band: *bin as u32,
            },
            Feature::Spline { var, term } => match &spec.variables[*var] {
                Variable::Numeric { knots, .. } => Term::Spline {
                    var: *var,
                    parts: spline_term(knots, *term),
                },
                Variable::Categorical { .. } => Term::Code {
                    var: *var,
                    code: u32::MAX,
                },
            },
            Feature::Interaction { index } => {
                let it = &spec.interactions[*index];
                Term::Both {
                    a: cell_key(spec, &it.a),
                    b: cell_key(spec, &it.b),
                }
            }
        })
        .collect()
}

impl Encoded {
    /// Code every variable of `spec` over `df`'s rows (variables in parallel).
    pub fn of(spec: &FeatureSpec, df: &DataFrame) -> Result<Encoded> {
        let vars = spec
            .variables
            .par_iter()
            .map(|v| code_variable(spec, v, df))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoded {
            n: df.height(),
            vars,
        })
    }

    /// The cell of variable `var` at row `i`, as the cell
    /// code gives it: a kept level's index (None for rare and missing values), or
    /// the band of the imputed value.
    pub fn cell(&self, var: usize, i: usize) -> Option<u32> {
        match &self.vars[var] {
            Coded::Categorical { code, n_levels } => (code[i] < *n_levels).then_some(code[i]),
            Coded::Numeric { band, .. } => Some(band[i]),
        }
    }

    fn has(&self, (var, c): (usize, u32), i: usize) -> bool {
        match &self.vars[var] {
            Coded::Categorical { code, .. } => code[i] == c,
            Coded::Numeric { band, .. } => band[i] == c,
        }
    }

    /// Whether row `i` is in `cell`.
    pub fn in_cell(&self, spec: &FeatureSpec, cell: &Cell, i: usize) -> bool {
        self.has(cell_key(spec, cell), i)
    }

    #[inline]
    fn value(&self, t: &Term, i: usize) -> f64 {
        let on = |b: bool| if b { 1.0 } else { 0.0 };
        match *t {
            Term::Code { var, code } => on(self.has((var, code), i)),
            Term::Linear { var, mean, inv_sd } => match &self.vars[var] {
                Coded::Numeric { x, .. } => (x[i] - mean) * inv_sd,
                Coded::Categorical { .. } => 0.0,
            },
            Term::Band { var, band } => on(self.has((var, band), i)),
            Term::Missing { var } => on(match &self.vars[var] {
                Coded::Categorical { code, n_levels } => code[i] == n_levels + 1,
                Coded::Numeric { missing, .. } => missing[i],
            }),
            Term::Both { a, b } => on(self.has(a, i) && self.has(b, i)),
            Term::Spline { var, parts } => match &self.vars[var] {
                Coded::Numeric { x, .. } => {
                    let [(t0, c0), (t1, c1), (t2, c2)] = parts;
                    let x = x[i];
                    c0 * cube_above(x, t0) + c1 * cube_above(x, t1) + c2 * cube_above(x, t2)
                }
                Coded::Categorical { .. } => 0.0,
            },
        }
    }

    /// One design column: feature `j`'s value per row.
    fn column(&self, t: &Term, out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.value(t, i);
        }
    }

    /// The design matrix, column-major: bit for bit what
    /// [`FeatureSpec::design`] builds from the frame these codes came from.
    pub fn design(&self, spec: &FeatureSpec) -> Array2<f64> {
        let ts = terms(spec);
        let n = self.n;
        let mut x = Array2::<f64>::zeros((n, ts.len()).f());
        if n > 0 {
            let buf = x
                .as_slice_memory_order_mut()
                .expect("a fresh array is contiguous");
            buf.par_chunks_mut(n)
                .zip(ts.par_iter())
                .for_each(|(col, t)| self.column(t, col));
        }
        x
    }

    /// The design's non-zero entries by row: the values of
    /// [`Encoded::design`] without its zeros.
    pub fn sparse(&self, spec: &FeatureSpec) -> Sparse {
        const CHUNK: usize = 65_536;
        let ts = terms(spec);
        let starts: Vec<usize> = (0..self.n).step_by(CHUNK).collect();
        let parts: Vec<(Vec<u32>, Vec<u32>, Vec<f64>)> = starts
            .par_iter()
            .map(|&s| {
                let e = (s + CHUNK).min(self.n);
                let (mut len, mut col, mut val) =
                    (Vec::with_capacity(e - s), Vec::new(), Vec::new());
                for i in s..e {
                    let before = col.len();
                    for (j, t) in ts.iter().enumerate() {
                        let v = self.value(t, i);
                        if v != 0.0 {
                            col.push(j as u32);
                            val.push(v);
                        }
                    }
                    len.push((col.len() - before) as u32);
                }
                (len, col, val)
            })
            .collect();
        let total: usize = parts.iter().map(|p| p.1.len()).sum();
        let mut start = Vec::with_capacity(self.n + 1);
        let (mut col, mut val) = (Vec::with_capacity(total), Vec::with_capacity(total));
        start.push(0);
        for (len, c, v) in parts {
            for l in len {
                start.push(start[start.len() - 1] + l as usize);
            }
            col.extend(c);
            val.extend(v);
        }
        Sparse::from_parts(start, col, val, ts.len())
    }

    /// Each feature's mean over these rows, summed as
    /// [`super::column_means`] sums a design column (without the matrix).
    pub fn means(&self, spec: &FeatureSpec) -> Vec<f64> {
        let n = self.n.max(1) as f64;
        terms(spec)
            .par_iter()
            .map(|t| {
                let mut col = vec![0.0; self.n];
                self.column(t, &mut col);
                ArrayView1::from(&col[..]).sum() / n
            })
            .collect()
    }
}

/// A model's arithmetic on codes: per row, each reason group's contribution
/// (feature minus its training mean, times its weight, summed in feature
/// order) and the logit (base plus the groups in order), the same operations
/// in the same order as [`LinearModel::group_exprs`], so the same bits.
///
/// A categorical variable's group depends on its code alone, and an
/// interaction's on whether the row is in both cells: those groups are
/// tabled once per code (summed in the same order, so the same bits) and
/// looked up per row. Only a numeric variable's group is computed per row.
pub struct Scorer<'a> {
    codes: &'a Encoded,
    groups: Vec<Group>,
    base: f64,
}

/// How one reason group's contribution is found for a row.
enum Group {
    /// no feature of the model falls in this group
    Zero,
    /// by the variable's code
    ByCode { var: usize, table: Vec<f64> },
    /// by whether the row is in both cells: [outside, inside]
    ByPair {
        a: (usize, u32),
        b: (usize, u32),
        table: [f64; 2],
    },
    /// (term, mean, weight), in feature order
    Terms(Vec<(Term, f64, f64)>),
}

/// `terms` summed as the row loop sums a group: the first term as is, each
/// later one added, in feature order.
fn fold_group(terms: &[(Term, f64, f64)], value: impl Fn(&Term) -> f64) -> f64 {
    let mut it = terms.iter().map(|(t, mean, w)| (value(t) - mean) * w);
    let first = it.next().unwrap_or(0.0);
    it.fold(first, |g, term| g + term)
}

impl<'a> Scorer<'a> {
    pub fn new(model: &LinearModel, codes: &'a Encoded) -> Scorer<'a> {
        let spec = &model.spec;
        let nv = spec.variables.len();
        let mut by_group: Vec<Vec<(Term, f64, f64)>> = vec![Vec::new(); spec.n_groups()];
        for (j, (t, f)) in terms(spec).into_iter().zip(&spec.features).enumerate() {
            by_group[f.group(nv)].push((t, spec.means[j], model.coefficients[j]));
        }
        let on = |b: bool| if b { 1.0 } else { 0.0 };
        let groups = by_group
            .into_iter()
            .enumerate()
            .map(|(g, ts)| {
                if ts.is_empty() {
                    return Group::Zero;
                }
                if g >= nv {
                    if let [(Term::Both { a, b }, ..)] = ts[..] {
                        let table = [fold_group(&ts, |_| 0.0), fold_group(&ts, |_| 1.0)];
                        return Group::ByPair { a, b, table };
                    }
                    return Group::Terms(ts);
                }
                match &codes.vars[g] {
                    Coded::Categorical { n_levels, .. } => {
                        let n_levels = *n_levels;
                        // every code a row can have: levels, rare, missing
                        let table = (0..n_levels + 2)
                            .map(|c| {
                                fold_group(&ts, |t| match *t {
                                    Term::Code { var, code } if var == g => on(c == code),
                                    Term::Band { var, band } if var == g => on(c == band),
                                    Term::Missing { var } if var == g => on(c == n_levels + 1),
                                    // a numeric term on a categorical column is 0
                                    _ => 0.0,
                                })
                            })
                            .collect();
                        Group::ByCode { var: g, table }
                    }
                    Coded::Numeric { .. } => Group::Terms(ts),
                }
            })
            .collect();
        Scorer {
            codes,
            groups,
            base: model.base(),
        }
    }

    /// Row `i`'s group contributions into `groups` (length `n_groups`); returns its logit.
    #[inline]
    pub fn row(&self, i: usize, groups: &mut [f64]) -> f64 {
        for (out, g) in groups.iter_mut().zip(&self.groups) {
            *out = match g {
                Group::Zero => 0.0,
                Group::ByCode { var, table } => match &self.codes.vars[*var] {
                    Coded::Categorical { code, .. } => table[code[i] as usize],
                    Coded::Numeric { .. } => 0.0,
                },
                Group::ByPair { a, b, table } => {
                    table[(self.codes.has(*a, i) && self.codes.has(*b, i)) as usize]
                }
                Group::Terms(ts) => fold_group(ts, |t| self.codes.value(t, i)),
            };
        }
        groups.iter().fold(self.base, |z, g| z + g)
    }

    /// Every row's logit.
    pub fn logits(&self) -> Vec<f64> {
        (0..self.codes.n)
            .into_par_iter()
            .map_init(|| vec![0.0; self.groups.len()], |g, i| self.row(i, g))
            .collect()
    }
}

fn code_variable(spec: &FeatureSpec, v: &Variable, df: &DataFrame) -> Result<Coded> {
    let s = df.column(v.column())?.as_materialized_series();
    match v {
        Variable::Categorical { levels, .. } => {
            let text = s.cast(&DataType::String)?;
            let ca = text.str()?;
            let index: FxHashMap<&str, u32> = levels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i as u32))
                .collect();
            let l = levels.len() as u32;
            let code = ca
                .iter()
                .map(|v| match v {
                    None => l + 1,
                    Some(v) => index.get(v).copied().unwrap_or(l),
                })
                .collect();
            Ok(Coded::Categorical { code, n_levels: l })
        }
        Variable::Numeric {
            derived_age,
            log,
            median,
            edges,
            ..
        } => {
            let f = s.cast(&DataType::Float64)?;
            let ca = f.f64()?;
            let reference = spec.reference_year as f64;
            let n = ca.len();
            let (mut x, mut band, mut missing) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for raw in ca.iter() {
                let v = raw.map(|mut v| {
                    if *derived_age {
                        v = clip_low(reference - v);
                    }
                    if *log {
                        v = log_scale(v);
                    }
                    v
                });
                let xi = v.unwrap_or(*median);
                x.push(xi);
                band.push(edges.iter().filter(|e| xi >= **e).count() as u32);
                missing.push(raw.is_none());
            }
            Ok(Coded::Numeric { x, band, missing })
        }
    }
}

/// polars' `clip(0, f64::MAX)` on a number.
fn clip_low(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::FeatureParams;

    /// A frame with what real data has: nulls in every column, rare levels,
    /// negative and zero values, a derived age, values on the bin edges.
    fn messy(n: usize) -> DataFrame {
        let industry: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                1 | 2 => Some("Retail"),
                3 => Some("Logistics"),
                4 if i % 91 == 4 => Some("Rare"),
                _ => Some("Software"),
            })
            .collect();
        let region: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 5 {
                0 => Some("EMEA"),
                1 if i % 3 == 0 => None,
                _ => Some("NA"),
            })
            .collect();
        let employees: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 11 != 0).then(|| ((i * 37) % 900) as f64 - 3.0))
            .collect();
        let founded: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 13 != 0).then(|| 1950 + ((i * 17) % 80) as i64))
            .collect();
        let ids: Vec<String> = (0..n).map(|i| format!("A{i:04}")).collect();
        df![
            "account_id" => ids,
            "industry" => industry,
            "region" => region,
            "employees" => employees,
            "founded_year" => founded,
        ]
        .expect("frame")
    }

    fn spec_of(df: &DataFrame) -> FeatureSpec {
        let params = FeatureParams {
            exclude: vec![],
            allow: vec![],
            min_level_count: 10,
            max_levels: 20,
            numeric_bins: 4,
            numeric_shape: crate::config::NumericShape::Auto,
            interactions: true,
            min_interaction_count: 1,
            max_features: 100,
        };
        let mut spec =
            super::super::fit_main_effects(df, &BTreeMap::new(), &params, 2026).expect("spec");
        // every candidate interaction, and one on a level that is not kept
        let mut cands = super::super::candidate_cells(&spec);
        cands.push((
            Cell::Level {
                var: 0,
                level: "Nowhere".into(),
            },
            Cell::Bin { var: 2, bin: 0 },
        ));
        for (a, b) in cands {
            spec.features.push(Feature::Interaction {
                index: spec.interactions.len(),
            });
            spec.interactions.push(super::super::Interaction {
                a,
                b,
                support: 0,
                chi2: 0.0,
            });
        }
        // and every numeric variable's spline terms
        for var in 0..spec.variables.len() {
            if let Variable::Numeric { knots, .. } = &spec.variables[var] {
                assert!(knots.len() >= 3, "the messy frame has curves to fit");
                for term in 0..knots.len() - 2 {
                    spec.features.push(Feature::Spline { var, term });
                }
            }
        }
        spec.means = super::super::column_means(&spec.design_by_exprs(df).expect("design"));
        spec
    }

    #[test]
    fn the_design_from_codes_is_the_expressions_design_bit_for_bit() {
        let df = messy(600);
        let spec = spec_of(&df);
        let want = spec.design_by_exprs(&df).expect("design");
        let codes = Encoded::of(&spec, &df).expect("codes");
        let got = codes.design(&spec);
        assert_eq!(want.dim(), got.dim());
        for ((ij, w), g) in want.indexed_iter().zip(got.iter()) {
            assert_eq!(w.to_bits(), g.to_bits(), "{ij:?} {:?}", spec.features[ij.1]);
        }
        let sparse = codes.sparse(&spec);
        assert_eq!(sparse.rows().to_dense(), got);
        let means = codes.means(&spec);
        for (w, g) in spec.means.iter().zip(&means) {
            assert_eq!(w.to_bits(), g.to_bits());
        }
    }

    #[test]
    fn logits_from_codes_are_the_expressions_logits_bit_for_bit() {
        let df = messy(600);
        let spec = spec_of(&df);
        let p = spec.features.len();
        let model = LinearModel {
            coefficients: (0..p)
                .map(|j| ((j * 7919) % 23) as f64 / 7.0 - 1.5)
                .collect(),
            intercept: -0.37,
            spec,
        };
        let want = model.logits_by_exprs(&df).expect("logits");
        let codes = Encoded::of(&model.spec, &df).expect("codes");
        let got = Scorer::new(&model, &codes).logits();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.to_bits(), g.to_bits(), "{w} {g}");
        }
    }

    #[test]
    fn cells_from_codes_are_the_cell_expressions() {
        let df = messy(400);
        let spec = spec_of(&df);
        let codes = Encoded::of(&spec, &df).expect("codes");
        for it in &spec.interactions {
            for cell in [&it.a, &it.b] {
                let want: Vec<bool> = df
                    .clone()
                    .lazy()
                    .select([spec.cell_expr(cell).alias("c")])
                    .collect()
                    .expect("collect")["c"]
                    .bool()
                    .expect("bool")
                    .iter()
                    .map(|v| v.unwrap_or(false))
                    .collect();
                let got: Vec<bool> = (0..df.height())
                    .map(|i| codes.in_cell(&spec, cell, i))
                    .collect();
                assert_eq!(got, want, "{cell:?}");
                // the screen's view of the same cells: the kept level's
                // index or the band, None for rare and missing values
                let (var, idx) = match cell {
                    Cell::Level { var, level } => match spec.level_index(*var, level) {
                        Some(l) => (*var, l as u32),
                        None => continue,
                    },
                    Cell::Bin { var, bin } => (*var, *bin as u32),
                };
                let screened: Vec<bool> = (0..df.height())
                    .map(|i| codes.cell(var, i) == Some(idx))
                    .collect();
                assert_eq!(screened, want, "{cell:?}");
            }
        }
    }
}
