//! BatchNorm: normalises over the batch (and spatial axes) per channel; Caffe stores the
//! running mean, variance and a scale factor as three blobs (usually with lr_mult 0) and
//! leaves the learned scale and shift to a following Scale layer. Training normalises with
//! the batch's statistics and updates the running ones; testing uses the running ones
//! (Caffe's `use_global_stats` default), exactly as Caffe's BatchNormLayer.

use super::shape_only::{self, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Param, Rng};

#[derive(Debug)]
pub struct BatchNorm {
    global_stats: Option<bool>,
    fraction: f32,
    eps: f32,
}

pub static TYPE: LayerType = LayerType {
    name: "BatchNorm",
    kind: Kind::Normalization,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |l| {
        let m = param(l, "batch_norm_param");
        if let Some(f) = m.float("moving_average_fraction") {
            if !(0.0..=1.0).contains(&f) {
                return Err(
                    LayerError::new("moving_average_fraction must lie in [0, 1]").at(span_of(
                        m,
                        "moving_average_fraction",
                        &l.name_span,
                    )),
                );
            }
        }
        Ok(Box::new(BatchNorm {
            global_stats: m.boolean("use_global_stats"),
            fraction: m.float("moving_average_fraction").unwrap_or(0.999) as f32,
            eps: m.float("eps").unwrap_or(1e-5) as f32,
        }))
    },
};

impl Layer for BatchNorm {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![shape_only::first(bottoms)?.clone()])
    }
    fn param_shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        let c = bottoms
            .first()
            .map(|s| if s.len() > 1 { s[1] } else { 1 })
            .unwrap_or(1);
        vec![vec![c], vec![c], vec![1]]
    }
    fn details(&self) -> Vec<String> {
        match self.global_stats {
            Some(true) => vec!["global stats".into()],
            _ => Vec::new(),
        }
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let s = shape_only::first(bottoms)?;
        let n = s.first().copied().unwrap_or(1);
        let c = if s.len() > 1 { s[1] } else { 1 };
        let spatial: usize = s.iter().skip(2).product();
        // Caffe sets these blobs' learning rates to 0: the layer updates them itself.
        let params = self
            .param_shapes(bottoms, ctx)
            .iter()
            .map(|shape| Param {
                blob: Blob::zeros(shape),
                lr_mult: 0.0,
                decay_mult: 0.0,
            })
            .collect();
        Ok(Box::new(BatchNormOp {
            n,
            c,
            spatial,
            global_stats: self.global_stats,
            fraction: self.fraction,
            eps: self.eps,
            params,
            inv_std: vec![0.0; c],
            used_global: false,
        }))
    }
}

#[derive(Debug)]
pub struct BatchNormOp {
    n: usize,
    c: usize,
    spatial: usize,
    global_stats: Option<bool>,
    fraction: f32,
    eps: f32,
    /// Running mean sum, running variance sum, and the normalising factor.
    params: Vec<Param>,
    inv_std: Vec<f32>,
    used_global: bool,
}

impl BatchNormOp {
    fn each(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).flat_map(move |n| {
            let base = (n * self.c + c) * self.spatial;
            base..base + self.spatial
        })
    }
}

impl Op for BatchNormOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], train: bool) {
        let x = &bottoms[0].data;
        let y = &mut tops[0].data;
        let global = self.global_stats.unwrap_or(!train);
        self.used_global = global;
        let m = (self.n * self.spatial) as f32;
        let factor = self.params[2].blob.data[0];
        let scale = if factor == 0.0 { 0.0 } else { 1.0 / factor };
        for c in 0..self.c {
            let (mean, var) = if global {
                (
                    self.params[0].blob.data[c] * scale,
                    self.params[1].blob.data[c] * scale,
                )
            } else {
                let mean = self.each(c).map(|i| x[i]).sum::<f32>() / m;
                let var = self
                    .each(c)
                    .map(|i| (x[i] - mean) * (x[i] - mean))
                    .sum::<f32>()
                    / m;
                (mean, var)
            };
            let inv = 1.0 / (var + self.eps).sqrt();
            self.inv_std[c] = inv;
            for i in self.each(c).collect::<Vec<_>>() {
                y[i] = (x[i] - mean) * inv;
            }
            if !global {
                let f = self.fraction;
                let correction = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
                self.params[0].blob.data[c] = f * self.params[0].blob.data[c] + mean;
                self.params[1].blob.data[c] = f * self.params[1].blob.data[c] + correction * var;
            }
        }
        if !global {
            self.params[2].blob.data[0] = self.params[2].blob.data[0] * self.fraction + 1.0;
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let (dy, y) = (&tops[0].diff, &tops[0].data);
        let m = (self.n * self.spatial) as f32;
        for c in 0..self.c {
            let idx: Vec<usize> = self.each(c).collect();
            let inv = self.inv_std[c];
            let dx = &mut bottoms[0].diff;
            if self.used_global {
                for &i in &idx {
                    dx[i] = dy[i] * inv;
                }
                continue;
            }
            // dx = (dy − mean(dy) − y·mean(dy·y)) / std.
            let mean_dy = idx.iter().map(|&i| dy[i]).sum::<f32>() / m;
            let mean_dyy = idx.iter().map(|&i| dy[i] * y[i]).sum::<f32>() / m;
            for &i in &idx {
                dx[i] = (dy[i] - mean_dy - y[i] * mean_dyy) * inv;
            }
        }
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op_with;
    use rand::SeedableRng;

    fn bn(global: Option<bool>) -> BatchNorm {
        BatchNorm {
            global_stats: global,
            fraction: 0.999,
            eps: 1e-5,
        }
    }

    #[test]
    fn normalises_per_channel_and_keeps_running_statistics() {
        let b = vec![vec![2, 2, 1, 2]];
        let mut op = bn(None)
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        let x = Blob {
            data: vec![1.0, 3.0, 10.0, 10.0, 1.0, 3.0, 20.0, 20.0],
            ..Blob::zeros(&b[0])
        };
        let mut y = Blob::zeros(&b[0]);
        op.forward(&[&x], &mut [&mut y], true);
        assert!(
            (y.data[0] + 1.0).abs() < 1e-3 && (y.data[1] - 1.0).abs() < 1e-3,
            "{:?}",
            y.data
        );
        assert!(
            (y.data[2] + 1.0).abs() < 1e-3 && (y.data[6] - 1.0).abs() < 1e-3,
            "{:?}",
            y.data
        );
        // Running sums after one batch: mean, unbiased variance (m = 4), factor 1.
        let p = op.params();
        assert_eq!(p[0].blob.data, vec![2.0, 15.0]);
        assert!((p[1].blob.data[0] - 4.0 / 3.0).abs() < 1e-5);
        assert_eq!(p[2].blob.data, vec![1.0]);
        // Testing uses them.
        op.forward(&[&x], &mut [&mut y], false);
        assert!((y.data[0] + 1.0 / (4.0f32 / 3.0 + 1e-5).sqrt()).abs() < 1e-4);
    }

    #[test]
    fn gradients_with_batch_statistics_and_with_running_ones() {
        let b = vec![vec![3, 2, 2, 2]];
        let mut op = bn(None)
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        check_op_with(op.as_mut(), &b, &b, &[true], true);
        // With running statistics the layer is affine: dx = dy / std.
        let mut op = bn(Some(true))
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        op.params_mut()[1].blob.data = vec![4.0, 0.25];
        op.params_mut()[2].blob.data = vec![1.0];
        let x = Blob::zeros(&b[0]);
        let mut y = Blob::zeros(&b[0]);
        op.forward(&[&x], &mut [&mut y], true);
        y.diff = vec![1.0; 24];
        let mut dx = Blob::zeros(&b[0]);
        op.backward(&[&y], &mut [&mut dx], &[true]);
        assert!(
            (dx.diff[0] - 0.5).abs() < 1e-4 && (dx.diff[4] - 2.0).abs() < 1e-3,
            "{:?}",
            dx.diff
        );
    }
}
