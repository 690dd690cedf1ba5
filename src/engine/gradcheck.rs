//! Finite-difference checks of an op's backward pass (tests only).

use super::{Blob, Op};
use crate::layers::Shape;

fn fill(blob: &mut Blob, seed: usize) {
    for (i, v) in blob.data.iter_mut().enumerate() {
        // A deterministic spread of values without exact ties (ties break max pooling).
        *v = (((i + seed) as f32 * 0.7548777).fract() - 0.5) * 2.0 + (i as f32) * 1e-4;
    }
}

/// f = Σ top·r; checks d f / d bottom and d f / d param against central differences.
/// Bottoms that are labels (second bottom of a loss) are skipped with `prop`.
pub fn check_op_with(
    op: &mut dyn Op,
    bottoms: &[Shape],
    tops: &[Shape],
    prop: &[bool],
    train: bool,
) {
    let mut bs: Vec<Blob> = bottoms.iter().map(|s| Blob::zeros(s)).collect();
    for (i, b) in bs.iter_mut().enumerate() {
        fill(b, 17 * i + 3);
    }
    check_op_blobs(op, &mut bs, tops, prop, train)
}

pub fn check_op(op: &mut dyn Op, bottoms: &[Shape], tops: &[Shape]) {
    let prop = vec![true; bottoms.len()];
    check_op_with(op, bottoms, tops, &prop, true)
}

fn objective(op: &mut dyn Op, bs: &[Blob], ts: &mut [Blob], r: &[Vec<f32>], train: bool) -> f64 {
    let brefs: Vec<&Blob> = bs.iter().collect();
    let mut trefs: Vec<&mut Blob> = ts.iter_mut().collect();
    op.forward(&brefs, &mut trefs, train);
    ts.iter()
        .zip(r)
        .map(|(t, r)| {
            t.data
                .iter()
                .zip(r)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
        })
        .sum()
}

pub fn check_op_blobs(
    op: &mut dyn Op,
    bs: &mut [Blob],
    tops: &[Shape],
    prop: &[bool],
    train: bool,
) {
    let mut ts: Vec<Blob> = tops.iter().map(|s| Blob::zeros(s)).collect();
    let r: Vec<Vec<f32>> = ts
        .iter()
        .enumerate()
        .map(|(k, t)| {
            (0..t.count())
                .map(|i| (((i * 31 + k * 7) % 17) as f32 - 8.0) / 8.0)
                .collect()
        })
        .collect();
    objective(op, bs, &mut ts, &r, train);
    for (t, r) in ts.iter_mut().zip(&r) {
        t.diff.copy_from_slice(r);
    }
    {
        let trefs: Vec<&Blob> = ts.iter().collect();
        let mut brefs: Vec<&mut Blob> = bs.iter_mut().collect();
        op.backward(&trefs, &mut brefs, prop);
    }
    let eps = 1e-2f32;
    let close = |a: f64, n: f64, what: &str| {
        let tol = 2e-2 * a.abs().max(n.abs()) + 2e-3;
        assert!((a - n).abs() <= tol, "{what}: analytic {a} vs numeric {n}");
    };
    for bi in 0..bs.len() {
        if !prop[bi] {
            continue;
        }
        let analytic = bs[bi].diff.clone();
        let step = (analytic.len() / 40).max(1);
        for i in (0..analytic.len()).step_by(step) {
            let orig = bs[bi].data[i];
            bs[bi].data[i] = orig + eps;
            let fp = objective(op, bs, &mut ts, &r, train);
            bs[bi].data[i] = orig - eps;
            let fm = objective(op, bs, &mut ts, &r, train);
            bs[bi].data[i] = orig;
            close(
                analytic[i] as f64,
                (fp - fm) / (2.0 * eps as f64),
                &format!("bottom {bi}[{i}]"),
            );
        }
    }
    let nparams = op.params().len();
    for pi in 0..nparams {
        let analytic = op.params()[pi].blob.diff.clone();
        let step = (analytic.len() / 40).max(1);
        for i in (0..analytic.len()).step_by(step) {
            let orig = op.params()[pi].blob.data[i];
            op.params_mut()[pi].blob.data[i] = orig + eps;
            let fp = objective(op, bs, &mut ts, &r, train);
            op.params_mut()[pi].blob.data[i] = orig - eps;
            let fm = objective(op, bs, &mut ts, &r, train);
            op.params_mut()[pi].blob.data[i] = orig;
            close(
                analytic[i] as f64,
                (fp - fm) / (2.0 * eps as f64),
                &format!("param {pi}[{i}]"),
            );
        }
    }
}
