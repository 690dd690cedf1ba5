//! LRN: local response normalisation, as Caffe computes it.
//! - ACROSS_CHANNELS: `y = x · (k + α/n · Σ x²)^-β`, the sum over the n channels around
//!   each one (zeros past the ends).
//! - WITHIN_CHANNEL: `y = x · (1 + α · avg x²)^-β`, the average over an n×n window around
//!   each value with Caffe's average-pooling rule (padding (n−1)/2, the divisor counting
//!   the padded cells inside image plus padding); Caffe uses 1, not k, there.

use super::pooling::{pooled, PoolGeom};
use super::shape_only::{self, param, span_of, uint};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

#[derive(Debug, Clone)]
pub struct Lrn {
    local_size: usize,
    within: bool,
    alpha: f32,
    beta: f32,
    k: f32,
}

pub static TYPE: LayerType =
    LayerType {
        name: "LRN",
        kind: Kind::Normalization,
        bottoms: Arity::Exactly(1),
        tops: Arity::Exactly(1),
        in_place: false,
        runnable: true,
        build: |l| {
            let m = param(l, "lrn_param");
            let local_size = uint(l, m, "local_size", 5)?;
            if local_size % 2 == 0 {
                return Err(
                    LayerError::new(format!("local_size must be odd, not {local_size}"))
                        .at(span_of(m, "local_size", &l.name_span)),
                );
            }
            let f = |name: &str, d: f64| m.float(name).unwrap_or(d) as f32;
            Ok(Box::new(Lrn {
                local_size,
                within: m.ident("norm_region") == Some("WITHIN_CHANNEL"),
                alpha: f("alpha", 1.0),
                beta: f("beta", 0.75),
                k: f("k", 1.0),
            }))
        },
    };

impl Layer for Lrn {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        if s.len() != 4 {
            return Err(LayerError::new(format!(
                "LRN needs a 4-axis input (N×C×H×W), not {}",
                shape_only::fmt_shape(s)
            )));
        }
        Ok(vec![s.clone()])
    }
    fn details(&self) -> Vec<String> {
        vec![format!(
            "size {}{}",
            self.local_size,
            if self.within { " within" } else { "" }
        )]
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let s = &self.shapes(bottoms, ctx)?[0];
        let (h, w) = (s[2], s[3]);
        let n = self.local_size;
        let pad = (n - 1) / 2;
        let geom = PoolGeom {
            height: h,
            width: w,
            kernel: [n, n],
            pad: [pad, pad],
            stride: [1, 1],
            out_h: pooled(h, n, pad, 1, true).unwrap_or(h),
            out_w: pooled(w, n, pad, 1, true).unwrap_or(w),
        };
        Ok(Box::new(LrnOp {
            p: self.clone(),
            channels: s[1],
            geom,
            scale: vec![0.0; s.iter().product()],
        }))
    }
}

#[derive(Debug)]
pub struct LrnOp {
    p: Lrn,
    channels: usize,
    /// WITHIN_CHANNEL's averaging windows (stride 1: one per value).
    geom: PoolGeom,
    /// The forward pass's denominators before the power: k + α/n·Σx² (across) or
    /// 1 + α·avg x² (within), kept for backward.
    scale: Vec<f32>,
}

impl LrnOp {
    /// Per sample, the sums of squares over each value's window, into `scale`, turned into
    /// the denominators.
    fn scales(&mut self, x: &[f32]) {
        let (c, hw) = (self.channels, self.geom.height * self.geom.width);
        let n = self.p.local_size;
        let pre = (n - 1) / 2;
        let (alpha, k) = (self.p.alpha, self.p.k);
        let g = self.geom;
        for (xs, ss) in x.chunks(c * hw).zip(self.scale.chunks_mut(c * hw)) {
            if !self.p.within {
                for ch in 0..c {
                    let out = &mut ss[ch * hw..(ch + 1) * hw];
                    out.fill(0.0);
                    let lo = ch.saturating_sub(pre);
                    let hi = (ch + n - pre).min(c);
                    for src in lo..hi {
                        let xv = &xs[src * hw..(src + 1) * hw];
                        out.iter_mut().zip(xv).for_each(|(o, v)| *o += v * v);
                    }
                    out.iter_mut().for_each(|o| *o = k + alpha / n as f32 * *o);
                }
                continue;
            }
            for ch in 0..c {
                let xv = &xs[ch * hw..(ch + 1) * hw];
                let out = &mut ss[ch * hw..(ch + 1) * hw];
                for y in 0..g.out_h.min(g.height) {
                    for xx in 0..g.out_w.min(g.width) {
                        let (rows, cols, div) = g.window(y, xx);
                        let mut sum = 0.0f32;
                        for r in rows {
                            sum += xv[r * g.width + cols.start..r * g.width + cols.end]
                                .iter()
                                .map(|v| v * v)
                                .sum::<f32>();
                        }
                        out[y * g.width + xx] = 1.0 + alpha * sum / div as f32;
                    }
                }
            }
        }
    }
}

impl Op for LrnOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let x = &bottoms[0].data;
        self.scales(x);
        let beta = self.p.beta;
        for ((y, x), s) in tops[0].data.iter_mut().zip(x).zip(&self.scale) {
            *y = x * s.powf(-beta);
        }
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let (c, hw) = (self.channels, self.geom.height * self.geom.width);
        let n = self.p.local_size;
        let pre = (n - 1) / 2;
        let (alpha, beta) = (self.p.alpha, self.p.beta);
        let g = self.geom;
        let (y, dy) = (&tops[0].data, &tops[0].diff);
        let b = &mut *bottoms[0];
        // r = dy·y/scale: the part of the gradient that flows through the denominators.
        let r: Vec<f32> = dy
            .iter()
            .zip(y)
            .zip(&self.scale)
            .map(|((g, y), s)| g * y / s)
            .collect();
        for ((dx, g), s) in b.diff.iter_mut().zip(dy).zip(&self.scale) {
            *dx = g * s.powf(-beta);
        }
        for ((dx, x), rs) in b
            .diff
            .chunks_mut(c * hw)
            .zip(b.data.chunks(c * hw))
            .zip(r.chunks(c * hw))
        {
            if !self.p.within {
                // dx[c] −= 2αβ/n · x[c] · Σ r[c'] over the c' whose window holds c.
                let f = 2.0 * alpha * beta / n as f32;
                for ch in 0..c {
                    let lo = (ch + pre + 1).saturating_sub(n);
                    let hi = (ch + pre + 1).min(c);
                    let mut acc = vec![0.0f32; hw];
                    for src in lo..hi {
                        acc.iter_mut()
                            .zip(&rs[src * hw..(src + 1) * hw])
                            .for_each(|(a, v)| *a += v);
                    }
                    let (d, xv) = (&mut dx[ch * hw..(ch + 1) * hw], &x[ch * hw..(ch + 1) * hw]);
                    for ((d, xv), a) in d.iter_mut().zip(xv).zip(&acc) {
                        *d -= f * xv * a;
                    }
                }
                continue;
            }
            // dx −= 2αβ · x · Pᵀ(r), Pᵀ spreading each window's value over its cells
            // with the window's divisor.
            for ch in 0..c {
                let rv = &rs[ch * hw..(ch + 1) * hw];
                let mut spread = vec![0.0f32; hw];
                for yy in 0..g.out_h.min(g.height) {
                    for xx in 0..g.out_w.min(g.width) {
                        let (rows, cols, div) = g.window(yy, xx);
                        let v = rv[yy * g.width + xx] / div as f32;
                        for row in rows {
                            spread[row * g.width + cols.start..row * g.width + cols.end]
                                .iter_mut()
                                .for_each(|s| *s += v);
                        }
                    }
                }
                let (d, xv) = (&mut dx[ch * hw..(ch + 1) * hw], &x[ch * hw..(ch + 1) * hw]);
                for ((d, xv), sp) in d.iter_mut().zip(xv).zip(&spread) {
                    *d -= 2.0 * alpha * beta * xv * sp;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;
    use rand::SeedableRng;

    fn op(within: bool, n: usize, shape: &[usize]) -> Box<dyn Op> {
        let l = Lrn {
            local_size: n,
            within,
            alpha: 0.3,
            beta: 0.75,
            k: 2.0,
        };
        l.lower(
            &[shape.to_vec()],
            &ShapeCtx::default(),
            &mut Rng::seed_from_u64(0),
        )
        .expect("lowers")
    }

    #[test]
    fn across_channels_value_and_gradients() {
        let shape = [2, 5, 2, 3];
        let mut o = op(false, 3, &shape);
        let x = Blob {
            data: (0..60).map(|i| (i as f32 * 0.37).sin()).collect(),
            ..Blob::zeros(&shape)
        };
        let mut y = Blob::zeros(&shape);
        o.forward(&[&x], &mut [&mut y], true);
        // Channel 0 of the first value: its window is channels 0 and 1 (the one before
        // lies past the end).
        let (a, b) = (x.data[0], x.data[6]);
        let want = a * (2.0 + 0.3 / 3.0 * (a * a + b * b)).powf(-0.75);
        assert!((y.data[0] - want).abs() < 1e-6, "{} vs {want}", y.data[0]);
        check_op(o.as_mut(), &[shape.to_vec()], &[shape.to_vec()]);
        // A window wider than the channels.
        let mut wide = op(false, 7, &shape);
        check_op(wide.as_mut(), &[shape.to_vec()], &[shape.to_vec()]);
    }

    #[test]
    fn within_channel_value_and_gradients() {
        let shape = [2, 2, 4, 5];
        let mut o = op(true, 3, &shape);
        let x = Blob {
            data: (0..80).map(|i| (i as f32 * 0.61).cos()).collect(),
            ..Blob::zeros(&shape)
        };
        let mut y = Blob::zeros(&shape);
        o.forward(&[&x], &mut [&mut y], true);
        // The corner value: a 2×2 window inside the image, divisor 9 (Caffe counts the
        // padding inside image plus pad), and 1, not k, in the denominator.
        let v = [x.data[0], x.data[1], x.data[5], x.data[6]];
        let sq: f32 = v.iter().map(|a| a * a).sum();
        let want = x.data[0] * (1.0 + 0.3 * sq / 9.0).powf(-0.75);
        assert!((y.data[0] - want).abs() < 1e-6, "{} vs {want}", y.data[0]);
        check_op(o.as_mut(), &[shape.to_vec()], &[shape.to_vec()]);
    }
}
