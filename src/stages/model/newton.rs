//! L2-penalised logistic regression by Newton's method (iteratively
//! reweighted least squares), the default solver.
//!
//! The objective is linfa-logistic's exactly: the sum of log-losses plus
//! alpha/2 * ||w||^2, intercept unpenalised. Why not linfa-logistic's L-BFGS:
//! this design puts one-hot levels, bins and linear terms of the same
//! variable side by side (nearly collinear) and cross-validation usually picks
//! a weak penalty, so L-BFGS needed thousands of loss evaluations per fit and
//! the fits were about 70% of a run (BENCHMARKS.md). A Newton step costs one
//! pass over the deals that also builds the (p+1)^2 Hessian, and the
//! conditioning hardly matters to it: 2 to 5 steps per fit on the benchmark
//! data.
//!
//! Deterministic whatever the thread count: deals are cut into fixed-size
//! blocks, evaluated in parallel, and the block sums added in block order.

use ndarray::Array2;
use rayon::prelude::*;

use crate::stages::features::Rows;

/// Deals per block: enough work per task to amortise its (p+1)^2 Hessian,
/// few enough blocks that summing those stays cheap.
const BLOCK: usize = 8_192;
/// Armijo constant of the backtracking line search.
const ARMIJO: f64 = 1e-4;

/// A solution and how it was reached.
#[derive(Debug, Clone)]
pub struct Solution {
    pub coef: Vec<f64>,
    pub intercept: f64,
    pub iterations: u64,
    pub converged: bool,
}

/// Loss, gradient and (optionally) Hessian at one point, penalty included.
struct Eval {
    loss: f64,
    grad: Vec<f64>,
    hess: Option<Array2<f64>>,
}

/// Minimise sum_i logloss(y_i, x_i . w + b) + alpha/2 ||w||^2 from `start`
/// (or zero). Stops when the Newton decrement says the loss is within
/// 1e-10 per deal of the optimum, when no step lowers it any more, or after
/// `max_iterations` steps.
pub fn fit(
    x: Rows<'_>,
    y: &[bool],
    alpha: f64,
    max_iterations: u64,
    start: Option<(&[f64], f64)>,
) -> Solution {
    let p = x.ncols();
    let n = x.nrows().max(1) as f64;
    let mut theta: Vec<f64> = match start {
        Some((c, b)) => c.iter().copied().chain(std::iter::once(b)).collect(),
        None => vec![0.0; p + 1],
    };
    let tol = 1e-10 * n;
    let mut cur = evaluate(x, y, alpha, &theta, true);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations {
        let hess = cur
            .hess
            .as_ref()
            .expect("full evaluations carry the Hessian");
        let Some(step) = solve_spd(hess, &cur.grad) else {
            break;
        };
        let decrement: f64 = step.iter().zip(&cur.grad).map(|(s, g)| s * g).sum();
        if !decrement.is_finite() {
            break;
        }
        if decrement / 2.0 <= tol {
            converged = true;
            break;
        }
        iterations += 1;
        // trials carry the Hessian: the full step is nearly always taken, and
        // its evaluation is then the next step's, one pass over the deals
        let mut t = 1.0;
        let mut next = None;
        for _ in 0..40 {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, d)| a - t * d).collect();
            let e = evaluate(x, y, alpha, &trial, true);
            if e.loss <= cur.loss - ARMIJO * t * decrement {
                next = Some((trial, e));
                break;
            }
            t /= 2.0;
        }
        let Some((trial, e)) = next else {
            // no step lowers the loss: at the optimum to rounding
            converged = true;
            break;
        };
        theta = trial;
        cur = e;
    }
    let intercept = theta[p];
    theta.truncate(p);
    Solution {
        coef: theta,
        intercept,
        iterations,
        converged,
    }
}

fn evaluate(x: Rows<'_>, y: &[bool], alpha: f64, theta: &[f64], hessian: bool) -> Eval {
    let (n, p) = (x.nrows(), x.ncols());
    let blocks: Vec<(usize, usize)> = (0..n)
        .step_by(BLOCK)
        .map(|s| (s, (s + BLOCK).min(n)))
        .collect();
    let parts: Vec<Eval> = blocks
        .par_iter()
        .map(|&(s0, s1)| evaluate_block(x.slice(s0, s1), &y[s0..s1], theta, hessian))
        .collect();
    let mut total = Eval {
        loss: 0.0,
        grad: vec![0.0; p + 1],
        hess: hessian.then(|| Array2::zeros((p + 1, p + 1))),
    };
    for part in parts {
        total.loss += part.loss;
        for (t, g) in total.grad.iter_mut().zip(&part.grad) {
            *t += g;
        }
        if let (Some(t), Some(h)) = (total.hess.as_mut(), part.hess.as_ref()) {
            *t += h;
        }
    }
    let w = &theta[..p];
    total.loss += 0.5 * alpha * w.iter().map(|v| v * v).sum::<f64>();
    for (g, wj) in total.grad.iter_mut().zip(w) {
        *g += alpha * wj;
    }
    if let Some(h) = total.hess.as_mut() {
        for j in 0..p {
            h[[j, j]] += alpha;
        }
        // the blocks filled the upper triangle
        for a in 0..=p {
            for b in 0..a {
                h[[a, b]] = h[[b, a]];
            }
        }
    }
    total
}

fn evaluate_block(x: Rows<'_>, y: &[bool], theta: &[f64], hessian: bool) -> Eval {
    let (m, p) = (x.nrows(), x.ncols());
    let mut loss = 0.0;
    let mut grad = vec![0.0; p + 1];
    let mut hess = hessian.then(|| Array2::<f64>::zeros((p + 1, p + 1)));
    for (i, &label) in y.iter().enumerate().take(m) {
        let z = x.linear(i, &theta[..p], theta[p]);
        let yi = if label { 1.0 } else { 0.0 };
        // one exp serves both: e = exp(-|z|)
        let e = (-z.abs()).exp();
        loss += z.max(0.0) + e.ln_1p() - yi * z;
        let pi = if z >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        let resid = pi - yi;
        let (cols, vals) = x.row(i);
        for (c, v) in cols.iter().zip(vals) {
            grad[*c as usize] += v * resid;
        }
        grad[p] += resid;
        if let Some(h) = hess.as_mut() {
            // the upper triangle of weight * [x 1]^T [x 1], scattered
            let weight = pi * (1.0 - pi);
            let h = h.as_slice_mut().expect("a fresh array is contiguous");
            let stride = p + 1;
            for (k, (ca, va)) in cols.iter().zip(vals).enumerate() {
                let wa = weight * va;
                let row = &mut h[*ca as usize * stride..(*ca as usize + 1) * stride];
                for (cb, vb) in cols[k..].iter().zip(&vals[k..]) {
                    row[*cb as usize] += wa * vb;
                }
                row[p] += wa;
            }
            h[p * stride + p] += weight;
        }
    }
    Eval { loss, grad, hess }
}

/// Solve H d = g for a symmetric positive definite H (Cholesky). A Hessian
/// that rounding made indefinite gets a small ridge and another try.
fn solve_spd(h: &Array2<f64>, g: &[f64]) -> Option<Vec<f64>> {
    let scale = (0..g.len()).map(|j| h[[j, j]].abs()).fold(0.0, f64::max);
    let mut ridge = 0.0;
    for _ in 0..6 {
        if let Some(d) = cholesky_solve(h, g, ridge) {
            return Some(d);
        }
        ridge = if ridge == 0.0 {
            1e-12 * scale.max(1e-300)
        } else {
            ridge * 100.0
        };
    }
    None
}

fn cholesky_solve(h: &Array2<f64>, g: &[f64], ridge: f64) -> Option<Vec<f64>> {
    let m = g.len();
    let mut l = Array2::<f64>::zeros((m, m));
    for j in 0..m {
        let mut d = h[[j, j]] + ridge;
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        l[[j, j]] = d;
        for i in j + 1..m {
            let mut v = h[[i, j]];
            for k in 0..j {
                v -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = v / d;
        }
    }
    // L z = g, then L^T d = z
    let mut z = vec![0.0; m];
    for i in 0..m {
        let mut v = g[i];
        for k in 0..i {
            v -= l[[i, k]] * z[k];
        }
        z[i] = v / l[[i, i]];
    }
    let mut d = vec![0.0; m];
    for i in (0..m).rev() {
        let mut v = z[i];
        for k in i + 1..m {
            v -= l[[k, i]] * d[k];
        }
        d[i] = v / l[[i, i]];
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::features::Sparse;
    use ndarray::ShapeBuilder;

    #[test]
    fn cholesky_solves_a_known_system() {
        let h = ndarray::array![[4.0, 2.0, 0.6], [2.0, 5.0, 1.0], [0.6, 1.0, 3.0]];
        let x = [1.0, -2.0, 0.5];
        let g: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| h[[i, j]] * x[j]).sum())
            .collect();
        let d = solve_spd(&h, &g).expect("positive definite");
        for (a, b) in d.iter().zip(&x) {
            assert!((a - b).abs() < 1e-12, "{d:?}");
        }
    }

    /// At the solution the penalised gradient vanishes, and the answer does
    /// not depend on how many threads evaluated it.
    #[test]
    fn solution_zeroes_the_gradient_and_is_thread_independent() {
        let n = 20_000;
        let mut x = Array2::<f64>::zeros((n, 4).f());
        let mut y = vec![false; n];
        let mut s: u64 = 12345;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..n {
            let a = next() - 0.5;
            let level = next() < 0.3;
            x[[i, 0]] = a;
            x[[i, 1]] = level as u8 as f64;
            x[[i, 2]] = (!level) as u8 as f64; // collinear with the intercept
            x[[i, 3]] = (next() < 0.5) as u8 as f64;
            let z = 1.5 * a + 0.8 * x[[i, 1]] - 0.7 * x[[i, 3]] - 0.4;
            y[i] = next() < 1.0 / (1.0 + (-z).exp());
        }
        let alpha = 1e-4 * n as f64;
        let sparse = Sparse::from_dense(x.view());
        let x = sparse.rows();
        let sol = fit(x, &y, alpha, 100, None);
        assert!(sol.converged, "{sol:?}");
        assert!(sol.iterations < 20, "{sol:?}");
        let mut theta = sol.coef.clone();
        theta.push(sol.intercept);
        let e = evaluate(x, &y, alpha, &theta, false);
        let gmax = e.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(gmax < 1e-6 * n as f64, "gradient {:?}", e.grad);
        assert!((sol.coef[0] - 1.5).abs() < 0.2, "{sol:?}");
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool")
            .install(|| fit(x, &y, alpha, 100, None));
        assert_eq!(one.coef, sol.coef);
        assert_eq!(one.intercept, sol.intercept);
    }
}
