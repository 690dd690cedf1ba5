//! `Convolution`: 2-D convolution with pad, stride, dilation, group and bias, as Caffe
//! computes it (im2col, then one matrix product per sample and group).

use rayon::prelude::*;

use super::filler::Filler;
use super::window::{conv_out, Window};
use super::{
    first, param_mults, positive, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape,
    ShapeCtx,
};
use crate::engine::blas::{sgemm_ld, Mat, T};
use crate::engine::im2col::{col2im_plane, im2col_plane, Geom};
use crate::engine::{Blob, Op, Param, Rng};
use crate::spec::LayerSpec;

pub static TYPE: LayerType = LayerType {
    name: "Convolution",
    kind: Kind::Convolution,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: true,
    build: |spec| Ok(Box::new(Convolution::parse(spec)?)),
};

#[derive(Debug, Clone)]
pub struct Convolution {
    pub num_output: usize,
    pub window: Window,
    pub group: usize,
    pub bias_term: bool,
    pub weight_filler: Filler,
    pub bias_filler: Filler,
    /// (lr_mult, decay_mult) for the weights and the bias.
    pub mults: Vec<(f32, f32)>,
}

impl Convolution {
    fn parse(spec: &LayerSpec) -> Result<Convolution, LayerError> {
        let p = spec.msg.msg("convolution_param").ok_or_else(|| {
            LayerError::new("a Convolution layer needs convolution_param")
                .at(spec.type_span.clone())
                .help("add convolution_param { num_output: 20 kernel_size: 5 }")
        })?;
        let num_output = positive(p, "num_output")?.ok_or_else(|| {
            LayerError::new("convolution_param needs num_output").at(p.span.clone())
        })?;
        let window = Window::parse(p, true)?.ok_or_else(|| {
            LayerError::new("convolution_param needs a kernel")
                .at(p.span.clone())
                .help("add kernel_size: 3 (or kernel_h and kernel_w)")
        })?;
        let group = positive(p, "group")?.unwrap_or(1);
        if !num_output.is_multiple_of(group) {
            return Err(LayerError::new(format!(
                "num_output {num_output} is not a multiple of group {group}"
            ))
            .at(span_of(p, "group")));
        }
        if let Some(axis) = p.int("axis") {
            if axis != 1 && axis != -3 {
                return Err(
                    LayerError::new("netc convolves over axis 1 only").at(span_of(p, "axis"))
                );
            }
        }
        let bias_term = p.boolean("bias_term").unwrap_or(true);
        Ok(Convolution {
            num_output,
            window,
            group,
            bias_term,
            weight_filler: Filler::parse(p, "weight_filler", Filler::default())?,
            bias_filler: Filler::parse(p, "bias_filler", Filler::default())?,
            mults: param_mults(spec, if bias_term { 2 } else { 1 }),
        })
    }

    fn geom(&self, bottom: &Shape) -> Result<Geom, LayerError> {
        if bottom.len() != 4 {
            return Err(LayerError::new(format!(
                "Convolution needs an N×C×H×W input, got {} axes",
                bottom.len()
            )));
        }
        let w = &self.window;
        let channels = bottom[1];
        if !channels.is_multiple_of(self.group) {
            return Err(LayerError::new(format!(
                "{channels} input channels are not a multiple of group {}",
                self.group
            )));
        }
        let geom = Geom {
            channels,
            height: bottom[2],
            width: bottom[3],
            kernel_h: w.kernel[0],
            kernel_w: w.kernel[1],
            pad_h: w.pad[0],
            pad_w: w.pad[1],
            stride_h: w.stride[0],
            stride_w: w.stride[1],
            dilation_h: w.dilation[0],
            dilation_w: w.dilation[1],
        };
        let oh = conv_out(
            geom.height,
            geom.kernel_h,
            geom.pad_h,
            geom.stride_h,
            geom.dilation_h,
        );
        let ow = conv_out(
            geom.width,
            geom.kernel_w,
            geom.pad_w,
            geom.stride_w,
            geom.dilation_w,
        );
        match (oh, ow) {
            (Some(a), Some(b)) if a > 0 && b > 0 => Ok(geom),
            _ => Err(LayerError::new(format!(
                "the {}×{} kernel does not fit the {}×{} input (with pad {}×{})",
                w.kernel[0], w.kernel[1], geom.height, geom.width, w.pad[0], w.pad[1]
            ))
            .help("use a smaller kernel, more padding, or a larger input")),
        }
    }
}

impl Layer for Convolution {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let b = first(bottoms)?;
        let g = self.geom(b)?;
        Ok(vec![vec![b[0], self.num_output, g.out_h(), g.out_w()]])
    }
    fn param_shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        let c = bottoms.first().and_then(|b| b.get(1)).copied().unwrap_or(0);
        let w = &self.window;
        let mut p = vec![vec![
            self.num_output,
            c / self.group,
            w.kernel[0],
            w.kernel[1],
        ]];
        if self.bias_term {
            p.push(vec![self.num_output]);
        }
        p
    }
    fn macs(&self, bottoms: &[Shape], tops: &[Shape]) -> u64 {
        let (Some(b), Some(t)) = (bottoms.first(), tops.first()) else {
            return 0;
        };
        if b.len() != 4 || t.len() != 4 {
            return 0;
        }
        let k = (b[1] / self.group * self.window.kernel[0] * self.window.kernel[1]) as u64;
        (t[1] * t[2] * t[3]) as u64 * k
    }
    fn details(&self) -> Vec<String> {
        let w = &self.window;
        let sq = |a: [usize; 2]| {
            if a[0] == a[1] {
                a[0].to_string()
            } else {
                format!("{}×{}", a[0], a[1])
            }
        };
        let mut d = vec![
            format!("{} outputs", self.num_output),
            format!("kernel {}", sq(w.kernel)),
        ];
        if w.stride != [1, 1] {
            d.push(format!("stride {}", sq(w.stride)));
        }
        if w.pad != [0, 0] {
            d.push(format!("pad {}", sq(w.pad)));
        }
        if w.dilation != [1, 1] {
            d.push(format!("dilation {}", sq(w.dilation)));
        }
        if self.group != 1 {
            d.push(format!("group {}", self.group));
        }
        d
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let w = &self.window;
        if w.stride[0] != w.stride[1] || w.dilation[0] != w.dilation[1] {
            return Err(LayerError::new(
                "candle convolves with equal strides and dilations only",
            ));
        }
        let x = bottoms[0]
            .pad_with_zeros(2, w.pad[0], w.pad[0])
            .and_then(|x| x.pad_with_zeros(3, w.pad[1], w.pad[1]))
            .map_err(super::candle_err)?;
        let mut y = x
            .conv2d(&params[0], 0, w.stride[0], w.dilation[0], self.group)
            .map_err(super::candle_err)?;
        if let Some(b) = params.get(1) {
            y = b
                .reshape((1, self.num_output, 1, 1))
                .and_then(|b| y.broadcast_add(&b))
                .map_err(super::candle_err)?;
        }
        Ok(vec![y])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let b = first(bottoms)?;
        let geom = self.geom(b)?;
        let shapes = self.param_shapes(bottoms, ctx);
        let mut params = Vec::new();
        for (i, shape) in shapes.iter().enumerate() {
            let mut blob = Blob::zeros(shape);
            let filler = if i == 0 {
                &self.weight_filler
            } else {
                &self.bias_filler
            };
            filler.fill(shape, &mut blob.data, rng);
            let (lr_mult, decay_mult) = self.mults[i];
            params.push(Param {
                blob,
                lr_mult,
                decay_mult,
            });
        }
        Ok(Box::new(ConvOp::new(
            geom,
            self.num_output,
            self.group,
            params,
            b[0],
        )))
    }
}

/// Convolution as Caffe's GPU path does it, split over threads: each worker unrolls its
/// share of the batch side by side into one column buffer (C·kh·kw rows of
/// samples·OH·OW), so each worker runs one large matrix product per group on its own
/// core, with no synchronisation inside the products.
#[derive(Debug)]
pub struct ConvOp {
    geom: Geom,
    out: usize,
    group: usize,
    params: Vec<Param>,
    workers: Vec<Worker>,
    /// Samples per worker pass.
    chunk: usize,
}

/// One thread's buffers.
#[derive(Debug, Clone)]
struct Worker {
    /// The column buffers: one chunk's, or (with `cached`) every chunk of the worker's
    /// share side by side, kept from the forward pass for the backward pass.
    col: Vec<f32>,
    /// Whether `col` holds the whole share (so backward need not unroll again).
    cached: bool,
    /// With `cached`: one chunk's column gradient (without, `col` is reused for it).
    dcol: Vec<f32>,
    /// Outputs (forward) or output gradients (backward) of one chunk: O rows.
    ybuf: Vec<f32>,
    /// This worker's share of the weight and bias gradients.
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// A worker unrolls at most this many values at a time (1 MiB, so its column buffer stays
/// in cache between the unrolling and the products: measured with
/// `cargo run --release --example gemm_probe`, products over a few samples run 10–20%
/// faster than one product over the whole batch; `netc time specs/lenet.net` agreed in
/// three of three back-to-back pairs, 1677/1861/2969 against 1563/1345/2533 images/s).
const COL_LIMIT: usize = 256 << 10;

/// A worker keeps the columns of its whole share from forward to backward when they take
/// at most this many values (32 MiB): the backward pass then reads them instead of
/// unrolling the input a second time (LeNet: 1.5 M values for conv2 with 2 workers).
const CACHE_LIMIT: usize = 8 << 20;

/// The geometry and sizes a worker needs, copied out of the op.
#[derive(Clone, Copy)]
struct Dims {
    g: Geom,
    out: usize,
    group: usize,
    hw: usize,
    hw_in: usize,
    in_per: usize,
    out_per: usize,
    og: usize,
    kg: usize,
    kk: usize,
}

impl ConvOp {
    pub fn new(geom: Geom, out: usize, group: usize, params: Vec<Param>, batch: usize) -> ConvOp {
        let batch = batch.max(1);
        let threads = rayon::current_num_threads().clamp(1, batch);
        let per = geom.col_rows() * geom.col_cols();
        let share = batch.div_ceil(threads);
        let chunk = (COL_LIMIT / per.max(1)).clamp(1, share);
        let wcount = params[0].blob.count();
        let cached = per * share <= CACHE_LIMIT;
        let worker = Worker {
            col: vec![0.0; per * if cached { share } else { chunk }],
            cached,
            dcol: if cached {
                vec![0.0; per * chunk]
            } else {
                Vec::new()
            },
            ybuf: vec![0.0; out * geom.col_cols() * chunk],
            dw: vec![0.0; wcount],
            db: vec![0.0; out],
        };
        ConvOp {
            geom,
            out,
            group,
            params,
            workers: vec![worker; threads],
            chunk,
        }
    }

    fn dims(&self) -> Dims {
        let g = self.geom;
        let hw = g.col_cols();
        Dims {
            g,
            out: self.out,
            group: self.group,
            hw,
            hw_in: g.height * g.width,
            in_per: g.channels * g.height * g.width,
            out_per: self.out * hw,
            og: self.out / self.group,
            kg: g.col_rows() / self.group,
            kk: g.kernel_h * g.kernel_w,
        }
    }

    /// Samples per worker for a batch of `n`.
    fn share(&self, n: usize) -> usize {
        n.div_ceil(self.workers.len()).max(1)
    }
}

impl Worker {
    /// Where chunk `ci`'s columns start in `col`.
    fn col_at(&self, d: &Dims, ci: usize, chunk: usize) -> usize {
        if self.cached {
            ci * chunk * d.g.col_rows() * d.hw
        } else {
            0
        }
    }

    /// Unrolls `nb` samples of `x` (C×H×W each) into `col` from `at` on.
    fn unroll(&mut self, d: &Dims, x: &[f32], nb: usize, at: usize) {
        let ld = nb * d.hw;
        for c in 0..d.g.channels {
            let rows = &mut self.col[at + c * d.kk * ld..at + (c + 1) * d.kk * ld];
            for n in 0..nb {
                im2col_plane(
                    &d.g,
                    &x[n * d.in_per + c * d.hw_in..][..d.hw_in],
                    rows,
                    ld,
                    n * d.hw,
                );
            }
        }
    }

    fn forward(
        &mut self,
        d: &Dims,
        weight: &[f32],
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        chunk: usize,
    ) {
        // Sized for the planned share; a larger one (fewer workers) grows it once.
        let need = d.g.col_rows() * d.hw * x.len() / d.in_per.max(1);
        if self.cached && self.col.len() < need {
            self.col.resize(need, 0.0);
        }
        for (ci, (x, y)) in x
            .chunks(chunk * d.in_per)
            .zip(y.chunks_mut(chunk * d.out_per))
            .enumerate()
        {
            let nb = x.len() / d.in_per;
            let ld = nb * d.hw;
            let at = self.col_at(d, ci, chunk);
            self.unroll(d, x, nb, at);
            for gi in 0..d.group {
                sgemm_ld(
                    false,
                    d.og,
                    ld,
                    d.kg,
                    Mat {
                        data: &weight[gi * d.og * d.kg..],
                        ld: d.kg,
                        t: T::N,
                    },
                    Mat {
                        data: &self.col[at + gi * d.kg * ld..],
                        ld,
                        t: T::N,
                    },
                    &mut self.ybuf[gi * d.og * ld..],
                    ld,
                    false,
                );
            }
            for k in 0..nb {
                for o in 0..d.out {
                    let b = bias.map_or(0.0, |b| b[o]);
                    let src = &self.ybuf[o * ld + k * d.hw..][..d.hw];
                    let dst = &mut y[k * d.out_per + o * d.hw..][..d.hw];
                    dst.iter_mut().zip(src).for_each(|(t, s)| *t = s + b);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        d: &Dims,
        weight: &[f32],
        x: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        chunk: usize,
    ) {
        self.dw.fill(0.0);
        self.db.fill(0.0);
        let mut dx = dx;
        for (ci, (x, dy)) in x
            .chunks(chunk * d.in_per)
            .zip(dy.chunks(chunk * d.out_per))
            .enumerate()
        {
            let nb = x.len() / d.in_per;
            let ld = nb * d.hw;
            let at = self.col_at(d, ci, chunk);
            if !self.cached {
                self.unroll(d, x, nb, at);
            }
            for o in 0..d.out {
                let row = &mut self.ybuf[o * ld..(o + 1) * ld];
                for k in 0..nb {
                    let src = &dy[k * d.out_per + o * d.hw..][..d.hw];
                    row[k * d.hw..(k + 1) * d.hw].copy_from_slice(src);
                }
                self.db[o] += row.iter().sum::<f32>();
            }
            for gi in 0..d.group {
                sgemm_ld(
                    false,
                    d.og,
                    d.kg,
                    ld,
                    Mat {
                        data: &self.ybuf[gi * d.og * ld..],
                        ld,
                        t: T::N,
                    },
                    Mat {
                        data: &self.col[at + gi * d.kg * ld..],
                        ld,
                        t: T::T,
                    },
                    &mut self.dw[gi * d.og * d.kg..],
                    d.kg,
                    true,
                );
            }
            let Some(dx) = dx.as_deref_mut() else {
                continue;
            };
            let dcol = if self.cached {
                &mut self.dcol
            } else {
                &mut self.col
            };
            for gi in 0..d.group {
                sgemm_ld(
                    false,
                    d.kg,
                    ld,
                    d.og,
                    Mat {
                        data: &weight[gi * d.og * d.kg..],
                        ld: d.kg,
                        t: T::T,
                    },
                    Mat {
                        data: &self.ybuf[gi * d.og * ld..],
                        ld,
                        t: T::N,
                    },
                    &mut dcol[gi * d.kg * ld..],
                    ld,
                    false,
                );
            }
            let dx = &mut dx[ci * chunk * d.in_per..][..nb * d.in_per];
            dx.fill(0.0);
            for k in 0..nb {
                for c in 0..d.g.channels {
                    let plane = &mut dx[k * d.in_per + c * d.hw_in..][..d.hw_in];
                    col2im_plane(&d.g, &dcol[c * d.kk * ld..], ld, k * d.hw, plane);
                }
            }
        }
    }
}

impl Op for ConvOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let d = self.dims();
        let n = bottoms[0].shape[0];
        let share = self.share(n);
        let chunk = self.chunk.min(share);
        let weight = &self.params[0].blob.data;
        let bias = self.params.get(1).map(|p| p.blob.data.as_slice());
        tops[0]
            .data
            .par_chunks_mut(share * d.out_per)
            .zip(bottoms[0].data.par_chunks(share * d.in_per))
            .zip(self.workers.par_iter_mut())
            .for_each(|((y, x), w)| w.forward(&d, weight, bias, x, y, chunk));
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let d = self.dims();
        let n = tops[0].shape[0];
        let share = self.share(n);
        let chunk = self.chunk.min(share);
        let used = n.div_ceil(share);
        let weight = &self.params[0].blob.data;
        let dy = &tops[0].diff;
        let bottom = &mut *bottoms[0];
        let x = &bottom.data;
        if prop_down.first().copied().unwrap_or(false) {
            bottom
                .diff
                .par_chunks_mut(share * d.in_per)
                .zip(x.par_chunks(share * d.in_per))
                .zip(dy.par_chunks(share * d.out_per))
                .zip(self.workers.par_iter_mut())
                .for_each(|(((dx, x), dy), w)| w.backward(&d, weight, x, dy, Some(dx), chunk));
        } else {
            x.par_chunks(share * d.in_per)
                .zip(dy.par_chunks(share * d.out_per))
                .zip(self.workers.par_iter_mut())
                .for_each(|((x, dy), w)| w.backward(&d, weight, x, dy, None, chunk));
        }
        let Some((first, rest)) = self.workers[..used.min(self.workers.len())].split_first() else {
            // An empty batch: no gradient.
            self.params.iter_mut().for_each(|p| p.blob.diff.fill(0.0));
            return;
        };
        let dw = &mut self.params[0].blob.diff;
        dw.copy_from_slice(&first.dw);
        for w in rest {
            dw.iter_mut().zip(&w.dw).for_each(|(a, b)| *a += b);
        }
        if let Some(b) = self.params.get_mut(1) {
            b.blob.diff.copy_from_slice(&first.db);
            for w in rest {
                b.blob.diff.iter_mut().zip(&w.db).for_each(|(a, x)| *a += x);
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
    use crate::engine::gradcheck::check_op;

    #[allow(clippy::too_many_arguments)]
    fn op(
        c: usize,
        h: usize,
        w: usize,
        out: usize,
        k: usize,
        pad: usize,
        stride: usize,
        group: usize,
        batch: usize,
    ) -> ConvOp {
        let geom = Geom {
            channels: c,
            height: h,
            width: w,
            kernel_h: k,
            kernel_w: k,
            pad_h: pad,
            pad_w: pad,
            stride_h: stride,
            stride_w: stride,
            dilation_h: 1,
            dilation_w: 1,
        };
        let wshape = vec![out, c / group, k, k];
        let mut weight = Blob::zeros(&wshape);
        for (i, v) in weight.data.iter_mut().enumerate() {
            *v = ((i * 7 % 13) as f32 - 6.0) / 10.0;
        }
        let mut bias = Blob::zeros(&[out]);
        bias.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 * 0.1);
        ConvOp::new(
            geom,
            out,
            group,
            vec![
                Param {
                    blob: weight,
                    lr_mult: 1.0,
                    decay_mult: 1.0,
                },
                Param {
                    blob: bias,
                    lr_mult: 1.0,
                    decay_mult: 1.0,
                },
            ],
            batch,
        )
    }

    #[test]
    fn forward_matches_direct_convolution() {
        let mut o = op(2, 5, 4, 3, 3, 1, 2, 1, 2);
        let (oh, ow) = (o.geom.out_h(), o.geom.out_w());
        let mut x = Blob::zeros(&[2, 2, 5, 4]);
        x.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 * 0.3).sin());
        let mut y = Blob::zeros(&[2, 3, oh, ow]);
        o.forward(&[&x], &mut [&mut y], true);
        let w = &o.params[0].blob.data;
        for n in 0..2 {
            for m in 0..3 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = o.params[1].blob.data[m];
                        for c in 0..2 {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy * 2 + ky) as isize - 1;
                                    let ix = (ox * 2 + kx) as isize - 1;
                                    if iy < 0 || ix < 0 || iy >= 5 || ix >= 4 {
                                        continue;
                                    }
                                    s += w[((m * 2 + c) * 3 + ky) * 3 + kx]
                                        * x.data[((n * 2 + c) * 5 + iy as usize) * 4 + ix as usize];
                                }
                            }
                        }
                        let got = y.data[((n * 3 + m) * oh + oy) * ow + ox];
                        assert!((got - s).abs() < 1e-4, "{got} vs {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_op(
            &mut op(2, 6, 5, 3, 3, 1, 1, 1, 3),
            &[vec![3, 2, 6, 5]],
            &[vec![3, 3, 6, 5]],
        );
        check_op(
            &mut op(4, 5, 5, 4, 2, 0, 2, 2, 2),
            &[vec![2, 4, 5, 5]],
            &[vec![2, 4, 2, 2]],
        );
        check_op(
            &mut op(3, 4, 4, 2, 1, 0, 1, 1, 2),
            &[vec![2, 3, 4, 4]],
            &[vec![2, 2, 4, 4]],
        );
        // Batches split into chunks of one sample give the same gradients.
        let mut chunked = op(2, 6, 5, 3, 3, 1, 1, 1, 3);
        chunked.chunk = 1;
        chunked.workers.truncate(1);
        check_op(&mut chunked, &[vec![3, 2, 6, 5]], &[vec![3, 3, 6, 5]]);
    }
}
