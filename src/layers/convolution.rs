//! `Convolution`: 2-D convolution with pad, stride, dilation, group and bias, as Caffe
//! computes it (im2col, then one matrix product per sample and group).

use rayon::prelude::*;

use super::filler::Filler;
use super::window::{conv_out, Window};
use super::{
    first, param_mults, positive, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape,
    ShapeCtx,
};
use crate::engine::blas::{sgemm_serial, T};
use crate::engine::im2col::{col2im, im2col, Geom};
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
        if num_output % group != 0 {
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
        if channels % self.group != 0 {
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
        )))
    }
}

/// Convolution over preallocated column buffers, one per worker.
#[derive(Debug)]
pub struct ConvOp {
    geom: Geom,
    out: usize,
    group: usize,
    params: Vec<Param>,
    /// One im2col buffer per worker.
    cols: Vec<Vec<f32>>,
    /// Per-worker partial weight gradients, summed after the backward pass.
    partial: Vec<Vec<f32>>,
    /// A 1×1 kernel with stride 1 and no pad: the input is its own column buffer.
    pointwise: bool,
}

impl ConvOp {
    pub fn new(geom: Geom, out: usize, group: usize, params: Vec<Param>) -> ConvOp {
        let workers = rayon::current_num_threads().max(1);
        let col = geom.col_rows() * geom.col_cols();
        let wcount = params[0].blob.count();
        let pointwise = geom.kernel_h == 1
            && geom.kernel_w == 1
            && geom.stride_h == 1
            && geom.stride_w == 1
            && geom.pad_h == 0
            && geom.pad_w == 0;
        ConvOp {
            geom,
            out,
            group,
            params,
            cols: vec![vec![0.0; if pointwise { 0 } else { col }]; workers],
            partial: vec![vec![0.0; wcount]; workers],
            pointwise,
        }
    }

    fn chunk(&self, n: usize) -> usize {
        n.div_ceil(self.cols.len()).max(1)
    }
}

impl Op for ConvOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let g = self.geom;
        let n = bottoms[0].shape[0];
        let in_per = g.channels * g.height * g.width;
        let hw = g.col_cols();
        let out_per = self.out * hw;
        let (og, kg) = (self.out / self.group, g.col_rows() / self.group);
        let chunk = self.chunk(n);
        let weight = &self.params[0].blob.data;
        let bias = self.params.get(1).map(|p| &p.blob.data);
        let (group, pointwise) = (self.group, self.pointwise);
        let x = &bottoms[0].data;
        tops[0]
            .data
            .par_chunks_mut(chunk * out_per)
            .zip(x.par_chunks(chunk * in_per))
            .zip(self.cols.par_iter_mut())
            .for_each(|((y, x), col)| {
                for (y, x) in y.chunks_mut(out_per).zip(x.chunks(in_per)) {
                    let col: &[f32] = if pointwise {
                        x
                    } else {
                        im2col(&g, x, col);
                        col
                    };
                    for gi in 0..group {
                        sgemm_serial(
                            T::N,
                            T::N,
                            og,
                            hw,
                            kg,
                            &weight[gi * og * kg..],
                            &col[gi * kg * hw..],
                            &mut y[gi * og * hw..],
                            false,
                        );
                    }
                    if let Some(b) = bias {
                        for (o, row) in y.chunks_mut(hw).enumerate() {
                            let bo = b[o];
                            row.iter_mut().for_each(|v| *v += bo);
                        }
                    }
                }
            });
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let g = self.geom;
        let n = tops[0].shape[0];
        let in_per = g.channels * g.height * g.width;
        let hw = g.col_cols();
        let out_per = self.out * hw;
        let (og, kg) = (self.out / self.group, g.col_rows() / self.group);
        let chunk = self.chunk(n);
        let (group, pointwise) = (self.group, self.pointwise);
        let dy = &tops[0].diff;
        let bottom = &mut *bottoms[0];
        let x = &bottom.data;
        // Bias: sum of the output gradient over samples and positions.
        if self.params.len() > 1 {
            let db = &mut self.params[1].blob.diff;
            db.fill(0.0);
            for y in dy.chunks(out_per) {
                for (o, row) in y.chunks(hw).enumerate() {
                    db[o] += row.iter().sum::<f32>();
                }
            }
        }
        // Weights: per worker, sum over its samples of dy · colᵀ.
        self.partial
            .par_iter_mut()
            .zip(self.cols.par_iter_mut())
            .zip(
                dy.par_chunks(chunk * out_per)
                    .zip(x.par_chunks(chunk * in_per)),
            )
            .for_each(|((dw, col), (dy, x))| {
                dw.fill(0.0);
                for (dy, x) in dy.chunks(out_per).zip(x.chunks(in_per)) {
                    let col: &[f32] = if pointwise {
                        x
                    } else {
                        im2col(&g, x, col);
                        col
                    };
                    for gi in 0..group {
                        sgemm_serial(
                            T::N,
                            T::T,
                            og,
                            kg,
                            hw,
                            &dy[gi * og * hw..],
                            &col[gi * kg * hw..],
                            &mut dw[gi * og * kg..],
                            true,
                        );
                    }
                }
            });
        let dw = &mut self.params[0].blob.diff;
        dw.copy_from_slice(&self.partial[0]);
        let workers = n.div_ceil(chunk);
        for p in &self.partial[1..workers.max(1)] {
            dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        // Input: colᵀ-gradient Wᵀ · dy, folded back with col2im.
        let weight = &self.params[0].blob.data;
        bottom
            .diff
            .par_chunks_mut(chunk * in_per)
            .zip(dy.par_chunks(chunk * out_per))
            .zip(self.cols.par_iter_mut())
            .for_each(|((dx, dy), col)| {
                for (dx, dy) in dx.chunks_mut(in_per).zip(dy.chunks(out_per)) {
                    let col_grad = |target: &mut [f32]| {
                        for gi in 0..group {
                            sgemm_serial(
                                T::T,
                                T::N,
                                kg,
                                hw,
                                og,
                                &weight[gi * og * kg..],
                                &dy[gi * og * hw..],
                                &mut target[gi * kg * hw..],
                                false,
                            );
                        }
                    };
                    if pointwise {
                        col_grad(dx);
                    } else {
                        col_grad(col);
                        dx.fill(0.0);
                        col2im(&g, col, dx);
                    }
                }
            });
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

    fn op(
        c: usize,
        h: usize,
        w: usize,
        out: usize,
        k: usize,
        pad: usize,
        stride: usize,
        group: usize,
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
        )
    }

    #[test]
    fn forward_matches_direct_convolution() {
        let mut o = op(2, 5, 4, 3, 3, 1, 2, 1);
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
            &mut op(2, 6, 5, 3, 3, 1, 1, 1),
            &[vec![3, 2, 6, 5]],
            &[vec![3, 3, 6, 5]],
        );
        check_op(
            &mut op(4, 5, 5, 4, 2, 0, 2, 2),
            &[vec![2, 4, 5, 5]],
            &[vec![2, 4, 2, 2]],
        );
        check_op(
            &mut op(3, 4, 4, 2, 1, 0, 1, 1),
            &[vec![2, 3, 4, 4]],
            &[vec![2, 2, 4, 4]],
        );
    }
}
