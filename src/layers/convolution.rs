//! `Convolution`: 2-D convolution with pad, stride, dilation, group and bias, as Caffe
//! computes it: the input unrolled (im2col), then matrix products with the weights.

use crate::layers::filler::learned;
use rayon::prelude::*;

use super::filler::Filler;
use super::window::{conv_out, Window};
use super::{
    first, param_mults, positive, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape,
    ShapeCtx,
};
use crate::engine::direct;
use crate::engine::im2col::{col2im_panel, im2col_panel, runs, Geom, Run};
use crate::engine::kernels::{panel_dot_acc, panel_outer_acc, panel_product, Isa, PackedA, NR};
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
            ))
            .help("choose a group that divides the input channels (and num_output)"));
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
            _ => {
                // A dilated kernel spans (k − 1)·d + 1 input pixels.
                let span = |k: usize, d: usize| (k.max(1) - 1) * d + 1;
                let (sh, sw) = (
                    span(geom.kernel_h, geom.dilation_h),
                    span(geom.kernel_w, geom.dilation_w),
                );
                let dilated = if (sh, sw) != (geom.kernel_h, geom.kernel_w) {
                    format!(
                        " (dilated {}×{}: it spans {sh}×{sw})",
                        geom.dilation_h, geom.dilation_w
                    )
                } else {
                    String::new()
                };
                Err(LayerError::new(format!(
                    "the {}×{} kernel{dilated} does not fit the {}×{} input (with pad {}×{})",
                    w.kernel[0], w.kernel[1], geom.height, geom.width, w.pad[0], w.pad[1]
                ))
                .help(if dilated.is_empty() {
                    "use a smaller kernel, more padding, or a larger input"
                } else {
                    "use a smaller kernel or dilation, more padding, or a larger input"
                }))
            }
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
        let params = learned(
            &shapes,
            &[&self.weight_filler, &self.bias_filler],
            &self.mults,
            rng,
        );
        Ok(Box::new(ConvOp::new(
            geom,
            self.num_output,
            self.group,
            params,
            b[0],
        )))
    }
}

/// Convolution over column panels (see [`crate::engine::kernels`]), split over threads:
/// each worker takes a share of the batch, unrolls its pixels [`NR`] at a time into
/// panels and multiplies each panel by the weights while it is in cache. The backward
/// pass unrolls the input again rather than keeping the forward pass's columns: kept,
/// they were written to and read back from memory (LeNet's conv2: 8 MB a batch), and a
/// LeNet step took 10% longer (`netc time specs/lenet.net`, three of three pairs). There
/// is no synchronisation inside a pass; the workers' weight gradients are summed at the
/// end.
#[derive(Debug)]
pub struct ConvOp {
    geom: Geom,
    out: usize,
    group: usize,
    params: Vec<Param>,
    workers: Vec<Worker>,
    isa: Isa,
    /// Each group's weights packed for the forward product (rows: outputs) and their
    /// transposes for the input gradient (rows: unrolled input rows).
    wf: Vec<PackedA>,
    wb: Vec<PackedA>,
    /// Panels per chunk in the backward pass (see [`CHUNK_VALUES`]).
    chunk: usize,
    /// Whether the forward pass and the weight gradient take the direct kernels
    /// ([`crate::engine::direct`]) instead of panels.
    direct: bool,
}

/// One thread's buffers.
#[derive(Debug, Clone, Default)]
struct Worker {
    /// One chunk's column panels (K rows of NR each).
    col: Vec<f32>,
    /// One chunk's output (forward) or output-gradient (backward) panels: O rows each.
    ypan: Vec<f32>,
    /// One panel of column gradients.
    dcol: Vec<f32>,
    runs: Vec<Run>,
    segs: Vec<Run>,
    /// One chunk's output-gradient panels transposed: NR rows of `ldt` values (each
    /// group's outputs padded to a multiple of NR with zeros).
    yt: Vec<f32>,
    /// This worker's share of the weight gradient, transposed per group (kg rows of
    /// `ogpad`; as stored, O rows of K, on the direct path), and of the bias gradient.
    dwt: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// The backward pass takes panels in chunks of about this many values of unrolled input
/// and transposed output gradients together, so that both stay in cache while the weight
/// gradient sums over the chunk's panels in registers.
const CHUNK_VALUES: usize = 32 << 10;

/// The geometry and sizes a worker needs, copied out of the op.
#[derive(Clone, Copy)]
struct Dims {
    g: Geom,
    out: usize,
    group: usize,
    /// Output pixels per sample.
    hw: usize,
    in_per: usize,
    out_per: usize,
    og: usize,
    kg: usize,
    /// Values per column panel (K·NR) and per output panel (O·NR).
    kp: usize,
    op: usize,
    /// Panels per chunk in the backward pass.
    chunk: usize,
    /// A group's outputs rounded up to a multiple of 16, and a transposed panel's row.
    ogpad: usize,
    ldt: usize,
    /// The weight gradient of a group's first `vec_cols` outputs goes through
    /// [`panel_outer_acc`]'s vectors (columns past `og` are zeros); that of the `dot`
    /// outputs left (fewer than 8) through [`panel_dot_acc`], so that 50 outputs take
    /// 48 lanes and two dot products rather than 64 lanes.
    vec_cols: usize,
    dot: usize,
}

/// The widths of [`panel_outer_acc`]'s column blocks over `cols` (a multiple of 16):
/// two vectors where they fit, three or one to end.
fn col_blocks(cols: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let left = cols - at;
        let w = match left {
            0 => return None,
            48 => 48,
            l if l >= 80 => 48,
            l if l >= 32 => 32,
            _ => 16,
        };
        at += w;
        Some((at - w, w))
    })
}

impl ConvOp {
    pub fn new(geom: Geom, out: usize, group: usize, params: Vec<Param>, batch: usize) -> ConvOp {
        let batch = batch.max(1);
        let threads = rayon::current_num_threads().clamp(1, batch);
        let mut op = ConvOp {
            geom,
            out,
            group,
            params,
            workers: vec![Worker::default(); threads],
            isa: Isa::detect(),
            wf: vec![PackedA::default(); group],
            wb: vec![PackedA::default(); group],
            chunk: 1,
            direct: false,
        };
        op.direct = direct::applies(op.isa, &geom, group);
        let og = out / group;
        let ldt = group * og.div_ceil(16) * 16;
        op.chunk = (CHUNK_VALUES / (geom.col_rows() * NR + NR * ldt)).max(1);
        let d = op.dims();
        for w in &mut op.workers {
            w.col = vec![0.0; d.kp * d.chunk];
            w.ypan = vec![0.0; d.op * d.chunk];
            w.yt = vec![0.0; NR * d.ldt * d.chunk];
            w.dcol = vec![0.0; d.kp];
            w.dwt = vec![0.0; d.group * d.kg * d.ogpad];
            if op.direct {
                w.dw = vec![0.0; out * d.kg];
            }
            w.db = vec![0.0; out];
        }
        op
    }

    fn dims(&self) -> Dims {
        let g = self.geom;
        let hw = g.col_cols();
        let kp = g.col_rows() * NR;
        let og = self.out / self.group;
        let ogpad = og.div_ceil(16) * 16;
        let (vec_cols, dot) = if og % 16 < 8 {
            (og - og % 16, og % 16)
        } else {
            (ogpad, 0)
        };
        Dims {
            g,
            out: self.out,
            group: self.group,
            hw,
            in_per: g.channels * g.height * g.width,
            out_per: self.out * hw,
            og: self.out / self.group,
            kg: g.col_rows() / self.group,
            kp,
            op: self.out * NR,
            chunk: self.chunk,
            ogpad,
            ldt: self.group * ogpad,
            vec_cols,
            dot,
        }
    }

    /// Samples per worker for a batch of `n`.
    fn share(&self, n: usize) -> usize {
        n.div_ceil(self.workers.len()).max(1)
    }
}

/// The runs of panel `j` (pixels `j·NR..`, of `pixels` in all) that stay inside rows of
/// `row` pixels: output rows for the unrolling, whole maps for copying outputs.
fn panel_runs(d: &Dims, row: usize, j: usize, pixels: usize, out: &mut Vec<Run>) {
    runs(d.hw, row, j * NR, pixels.min((j + 1) * NR), out);
}

impl Worker {
    /// Where panel `j` of the share lives in `col`.
    fn col_at(&self, d: &Dims, j: usize) -> usize {
        (j % d.chunk) * d.kp
    }

    /// Unrolls panel `j` (pixels `j·NR..`) of the samples in `x` into `col`.
    fn unroll(&mut self, d: &Dims, isa: Isa, x: &[f32], pixels: usize, j: usize) {
        panel_runs(d, d.g.out_w(), j, pixels, &mut self.runs);
        let at = self.col_at(d, j);
        im2col_panel(isa, &d.g, x, &self.runs, &mut self.col[at..at + d.kp], NR);
    }

    fn forward(
        &mut self,
        d: &Dims,
        isa: Isa,
        wf: &[PackedA],
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
    ) {
        let nb = x.len() / d.in_per.max(1);
        let pixels = nb * d.hw;
        let np = pixels.div_ceil(NR);
        for j in 0..np {
            self.unroll(d, isa, x, pixels, j);
            let at = self.col_at(d, j);
            let yp = &mut self.ypan[..d.op];
            for (gi, a) in wf.iter().enumerate() {
                panel_product(
                    isa,
                    a,
                    &self.col[at + gi * d.kg * NR..],
                    &mut yp[gi * d.og * NR..],
                );
            }
            panel_runs(d, d.hw, j, pixels, &mut self.segs);
            for s in &self.segs {
                for o in 0..d.out {
                    let b = bias.map_or(0.0, |b| b[o]);
                    let src = &yp[o * NR + s.at..][..s.len];
                    let dst = &mut y[s.n * d.out_per + o * d.hw + s.pos..][..s.len];
                    dst.iter_mut().zip(src).for_each(|(t, v)| *t = v + b);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// The gradients of `nb` samples from their output gradients `dy`: with their inputs
    /// `x`, this worker's share of the weight and bias gradients; with `dx`, the input
    /// gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        d: &Dims,
        isa: Isa,
        wb: &[PackedA],
        nb: usize,
        x: Option<&[f32]>,
        dy: &[f32],
        mut dx: Option<&mut [f32]>,
    ) {
        self.dwt.fill(0.0);
        self.db.fill(0.0);
        if let Some(dx) = dx.as_deref_mut() {
            dx.fill(0.0);
        }
        let pixels = nb * d.hw;
        let np = pixels.div_ceil(NR);
        for j0 in (0..np).step_by(d.chunk) {
            let j1 = np.min(j0 + d.chunk);
            // The chunk's output gradients as panels and transposed, and the bias gradient.
            for j in j0..j1 {
                let jj = j - j0;
                let yp = &mut self.ypan[jj * d.op..][..d.op];
                panel_runs(d, d.hw, j, pixels, &mut self.segs);
                if self.segs.iter().map(|s| s.len).sum::<usize>() < NR {
                    yp.fill(0.0);
                }
                for s in &self.segs {
                    for o in 0..d.out {
                        let src = &dy[s.n * d.out_per + o * d.hw + s.pos..][..s.len];
                        yp[o * NR + s.at..][..s.len].copy_from_slice(src);
                        self.db[o] += src.iter().sum::<f32>();
                    }
                }
                let Some(x) = x else {
                    continue;
                };
                let yt = &mut self.yt[jj * NR * d.ldt..][..NR * d.ldt];
                for gi in 0..d.group {
                    for o in 0..d.og.min(d.vec_cols) {
                        let row = &yp[(gi * d.og + o) * NR..][..NR];
                        for (t, v) in row.iter().enumerate() {
                            yt[t * d.ldt + gi * d.ogpad + o] = *v;
                        }
                    }
                }
                self.unroll(d, isa, x, pixels, j);
            }
            let base = self.col_at(d, j0);
            for gi in 0..d.group * usize::from(x.is_some()) {
                let col = &self.col[base + gi * d.kg * NR..];
                let dwt = &mut self.dwt[gi * d.kg * d.ogpad..];
                for (ob, width) in col_blocks(d.vec_cols) {
                    panel_outer_acc(
                        isa,
                        (d.kg, width),
                        j1 - j0,
                        col,
                        d.kp,
                        &self.yt[gi * d.ogpad + ob..],
                        NR * d.ldt,
                        d.ldt,
                        &mut dwt[ob..],
                        d.ogpad,
                    );
                }
                panel_dot_acc(
                    isa,
                    (d.kg, d.dot),
                    j1 - j0,
                    col,
                    d.kp,
                    &self.ypan[(gi * d.og + d.vec_cols) * NR..],
                    d.op,
                    &mut dwt[d.vec_cols..],
                    d.ogpad,
                );
            }
            let Some(dx) = dx.as_deref_mut() else {
                continue;
            };
            for j in j0..j1 {
                let yp = &self.ypan[(j - j0) * d.op..][..d.op];
                for (gi, a) in wb.iter().enumerate() {
                    panel_product(
                        isa,
                        a,
                        &yp[gi * d.og * NR..],
                        &mut self.dcol[gi * d.kg * NR..],
                    );
                }
                panel_runs(d, d.g.out_w(), j, pixels, &mut self.runs);
                col2im_panel(isa, &d.g, &self.dcol, &self.runs, NR, dx);
            }
        }
    }
}

impl ConvOp {
    /// `y = conv(x)` (plus the bias, when the layer has one) for the `n` samples of `x`.
    pub fn convolve(&mut self, x: &[f32], y: &mut [f32], n: usize) {
        let d = self.dims();
        let share = self.share(n);
        let weight = &self.params[0].blob.data;
        for (gi, a) in self.wf.iter_mut().enumerate() {
            a.pack(&weight[gi * d.og * d.kg..], d.kg, 1, d.og, d.kg);
        }
        let bias = self.params.get(1).map(|p| p.blob.data.as_slice());
        let (isa, wf) = (self.isa, &self.wf);
        let (x, y) = (&x[..n * d.in_per], &mut y[..n * d.out_per]);
        if self.direct {
            let g = &self.geom;
            y.par_chunks_mut(share * d.out_per)
                .zip(x.par_chunks(share * d.in_per))
                .for_each(|(y, x)| direct::forward(g, &wf[0], bias, x, y));
            return;
        }
        y.par_chunks_mut(share * d.out_per)
            .zip(x.par_chunks(share * d.in_per))
            .zip(self.workers.par_iter_mut())
            .for_each(|((y, x), w)| w.forward(&d, isa, wf, bias, x, y));
    }

    /// The gradients of the `n` samples whose output gradients are `dy`: given their
    /// inputs `x`, the weight and bias gradients, into the learned blobs' diffs; given
    /// `dx`, the input gradient. (Deconvolution runs its passes through these.)
    pub fn gradients(&mut self, x: Option<&[f32]>, dy: &[f32], dx: Option<&mut [f32]>, n: usize) {
        let d = self.dims();
        let share = self.share(n);
        let used = n.div_ceil(share).min(self.workers.len());
        let isa = self.isa;
        let dy = &dy[..n * d.out_per];
        let weights = x.is_some();
        if self.direct && dx.is_none() {
            if let Some(x) = x {
                let (g, out) = (&self.geom, self.out);
                x[..n * d.in_per]
                    .par_chunks(share * d.in_per)
                    .zip(dy.par_chunks(share * d.out_per))
                    .zip(self.workers.par_iter_mut())
                    .for_each(|((x, dy), w)| {
                        w.dw.fill(0.0);
                        w.db.fill(0.0);
                        direct::weight_grad(g, out, x, dy, &mut w.dw, &mut w.db);
                    });
                self.sum_gradients(&d, used, true);
            }
            return;
        }
        if dx.is_some() {
            let weight = &self.params[0].blob.data;
            for (gi, a) in self.wb.iter_mut().enumerate() {
                a.pack(&weight[gi * d.og * d.kg..], 1, d.kg, d.kg, d.og);
            }
        }
        // One task per worker: its samples' inputs, output gradients and input gradients.
        let mut dxs: Vec<Option<&mut [f32]>> = match dx {
            Some(dx) => dx[..n * d.in_per]
                .chunks_mut(share * d.in_per)
                .map(Some)
                .collect(),
            None => (0..used).map(|_| None).collect(),
        };
        let tasks: Vec<_> = self
            .workers
            .iter_mut()
            .zip(dy.chunks(share * d.out_per))
            .zip(dxs.drain(..))
            .enumerate()
            .map(|(i, ((w, dy), dx))| {
                let x = x.map(|x| {
                    &x[i * share * d.in_per..((i * share + dy.len() / d.out_per.max(1)) * d.in_per)]
                });
                (w, dy, dx, x)
            })
            .collect();
        let wb = &self.wb;
        tasks.into_par_iter().for_each(|(w, dy, dx, x)| {
            let nb = dy.len() / d.out_per.max(1);
            w.backward(&d, isa, wb, nb, x, dy, dx)
        });
        if weights {
            self.sum_gradients(&d, used, false);
        }
    }

    /// The workers' weight and bias gradients summed into the learned blobs' diffs
    /// (`direct`: the workers hold dW as stored, else transposed per group).
    fn sum_gradients(&mut self, d: &Dims, used: usize, direct: bool) {
        let Some((first, rest)) = self.workers[..used].split_first() else {
            // An empty batch: no gradient.
            self.params.iter_mut().for_each(|p| p.blob.diff.fill(0.0));
            return;
        };
        let dw = &mut self.params[0].blob.diff;
        if direct {
            dw.copy_from_slice(&first.dw);
            for w in rest {
                dw.iter_mut().zip(&w.dw).for_each(|(a, b)| *a += b);
            }
        } else {
            // dW[g][o][k] = Σ over workers of dWᵀ[g][k][o].
            for gi in 0..self.group {
                for o in 0..d.og {
                    for k in 0..d.kg {
                        let at = gi * d.kg * d.ogpad + k * d.ogpad + o;
                        dw[(gi * d.og + o) * d.kg + k] =
                            first.dwt[at] + rest.iter().map(|w| w.dwt[at]).sum::<f32>();
                    }
                }
            }
        }
        if let Some(b) = self.params.get_mut(1) {
            b.blob.diff.copy_from_slice(&first.db);
            for w in rest {
                b.blob.diff.iter_mut().zip(&w.db).for_each(|(a, x)| *a += x);
            }
        }
    }
}

impl Op for ConvOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let n = bottoms[0].shape.first().copied().unwrap_or(0);
        self.convolve(&bottoms[0].data, &mut tops[0].data, n);
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let n = tops[0].shape.first().copied().unwrap_or(0);
        let b = &mut *bottoms[0];
        let dx = prop_down
            .first()
            .copied()
            .unwrap_or(false)
            .then_some(&mut b.diff[..]);
        self.gradients(Some(&b.data), &tops[0].diff, dx, n);
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

    /// An input blob of `shape` with values that differ from one position to the next.
    fn input(shape: &[usize]) -> Blob {
        let mut x = Blob::zeros(shape);
        x.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 * 0.37).sin());
        x
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
        // Chunks of one panel, and the portable kernels: the same gradients.
        let mut one = op(2, 6, 5, 3, 3, 1, 1, 1, 3);
        one.chunk = 1;
        check_op(&mut one, &[vec![3, 2, 6, 5]], &[vec![3, 3, 6, 5]]);
        let mut portable = op(4, 5, 5, 4, 2, 0, 2, 2, 2);
        portable.isa = Isa::Portable;
        check_op(&mut portable, &[vec![2, 4, 5, 5]], &[vec![2, 4, 2, 2]]);
    }

    /// The panel path's weight and bias gradients against plain loops, for output counts
    /// that take every mix of column blocks (48 + 2 as LeNet's conv2, 32 + 32, 16 + 2, 30
    /// padded to 32, 80 = 48 + 32, 5 through dot products only), in one and two groups,
    /// chunks of one panel or more.
    #[test]
    fn weight_gradients_match_plain_loops_for_any_output_count() {
        for (out, group, chunk1) in [
            (50, 1, false),
            (64, 1, true),
            (18, 1, false),
            (30, 1, false),
            (80, 1, false),
            (5, 1, true),
            (36, 2, false),
            (100, 2, true),
        ] {
            let (c, h, w, k, n) = (2 * group, 7, 6, 3, 3);
            let mut o = op(c, h, w, out, k, 0, 1, group, n);
            o.direct = false;
            if chunk1 {
                o.chunk = 1;
            }
            let (oh, ow) = (h - k + 1, w - k + 1);
            let mut x = input(&[n, c, h, w]);
            let mut y = Blob::zeros(&[n, out, oh, ow]);
            o.forward(&[&x], &mut [&mut y], true);
            y.diff
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i as f32 * 0.23).cos());
            o.backward(&[&y], &mut [&mut x], &[false]);
            let (cg, og) = (c / group, out / group);
            for m in 0..out {
                let gi = m / og;
                let mut db = 0.0f32;
                for b in 0..n {
                    for p in 0..oh * ow {
                        db += y.diff[(b * out + m) * oh * ow + p];
                    }
                }
                let got = o.params[1].blob.diff[m];
                assert!(
                    (got - db).abs() < 1e-3,
                    "out {out}: bias {m}: {got} vs {db}"
                );
                for ci in 0..cg {
                    for ky in 0..k {
                        for kx in 0..k {
                            let mut want = 0.0f32;
                            for b in 0..n {
                                for oy in 0..oh {
                                    for ox in 0..ow {
                                        let dy = y.diff[((b * out + m) * oh + oy) * ow + ox];
                                        let xc = gi * cg + ci;
                                        want +=
                                            dy * x.data[((b * c + xc) * h + oy + ky) * w + ox + kx];
                                    }
                                }
                            }
                            let got = o.params[0].blob.diff[((m * cg + ci) * k + ky) * k + kx];
                            assert!(
                                (got - want).abs() < 1e-3 * want.abs().max(1.0),
                                "out {out}, group {group}: dW[{m}][{ci}][{ky}][{kx}] {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn column_blocks_cover_the_vector_columns() {
        let widths = |cols| col_blocks(cols).map(|(_, w)| w).collect::<Vec<_>>();
        assert_eq!(widths(48), vec![48]);
        assert_eq!(widths(64), vec![32, 32]);
        assert_eq!(widths(80), vec![48, 32]);
        assert_eq!(widths(16), vec![16]);
        assert_eq!(widths(0), Vec::<usize>::new());
        assert_eq!(widths(112), vec![48, 32, 32]);
        assert_eq!(col_blocks(112).last(), Some((80, 32)));
    }

    /// The direct kernels (wide output rows) against the panel path: outputs, weight and
    /// bias gradients, for output rows of 24 (16 + 8 columns; in pairs, three vectors),
    /// 18 (pairs, and an odd last row), 21, 16, and 40 (two pieces), kernels of 5 and 7
    /// taps a row (taps in blocks of 5), odd output counts.
    #[test]
    fn direct_kernels_match_the_panels() {
        if Isa::detect() != Isa::Avx512 {
            eprintln!("skipped: no AVX-512 here");
            return;
        }
        for (c, h, w, out, k, n) in [
            (1, 28, 28, 20, 5, 3),
            (2, 9, 22, 13, 5, 2),
            (1, 20, 20, 3, 5, 2),
            (3, 8, 46, 5, 7, 2),
            (1, 12, 25, 7, 5, 2),
        ] {
            let mut direct = op(c, h, w, out, k, 0, 1, 1, n);
            assert!(direct.direct, "{c}×{h}×{w} k {k}");
            let mut panels = op(c, h, w, out, k, 0, 1, 1, n);
            panels.direct = false;
            let (oh, ow) = (h - k + 1, w - k + 1);
            let mut x = input(&[n, c, h, w]);
            let mut y1 = Blob::zeros(&[n, out, oh, ow]);
            let mut y2 = Blob::zeros(&[n, out, oh, ow]);
            direct.forward(&[&x], &mut [&mut y1], true);
            panels.forward(&[&x], &mut [&mut y2], true);
            for (a, b) in y1.data.iter().zip(&y2.data) {
                assert!((a - b).abs() < 1e-4, "forward {a} vs {b}");
            }
            y1.diff
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i as f32 * 0.11).cos());
            y2.diff.copy_from_slice(&y1.diff);
            direct.backward(&[&y1], &mut [&mut x], &[false]);
            panels.backward(&[&y2], &mut [&mut x], &[false]);
            for (p1, p2) in direct.params.iter().zip(&panels.params) {
                for (a, b) in p1.blob.diff.iter().zip(&p2.blob.diff) {
                    assert!(
                        (a - b).abs() < 1e-3 * a.abs().max(1.0),
                        "gradient {a} vs {b}"
                    );
                }
            }
        }
        // With the input's gradient too (the panel path's backward after the direct
        // forward pass): finite differences.
        let mut both = op(2, 6, 20, 3, 3, 0, 1, 1, 2);
        assert!(both.direct);
        check_op(&mut both, &[vec![2, 2, 6, 20]], &[vec![2, 3, 4, 18]]);
    }
}
