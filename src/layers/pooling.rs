//! `Pooling`: MAX and AVE over 2-D windows with Caffe's output size (rounding up by
//! default, `round_mode: FLOOR`, global pooling) and its exact window clipping.

use rayon::prelude::*;

use super::window::Window;
use super::{first, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::kernels::Isa;
use crate::engine::{Blob, Op, Rng};
use crate::spec::{LayerSpec, Span};

pub static TYPE: LayerType = LayerType {
    name: "Pooling",
    kind: Kind::Pooling,
    bottoms: Arity::Exactly(1),
    tops: Arity::Range(1, 2),
    in_place: false,
    runnable: true,
    build: |spec| Ok(Box::new(Pooling::parse(spec)?)),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Max,
    Ave,
    Stochastic,
}

#[derive(Debug, Clone)]
pub struct Pooling {
    pub method: Method,
    /// `None` for global pooling (the window is the whole map).
    pub window: Option<Window>,
    pub ceil: bool,
    /// 2 when the layer also outputs the MAX mask.
    pub tops: usize,
    /// Where `pool:` is written, for messages about the method.
    pub method_span: Option<Span>,
}

/// The resolved geometry of one pooling over a C×H×W map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    pub height: usize,
    pub width: usize,
    pub kernel: [usize; 2],
    pub pad: [usize; 2],
    pub stride: [usize; 2],
    pub out_h: usize,
    pub out_w: usize,
}

/// Caffe's pooled size along one axis.
pub fn pooled(input: usize, k: usize, pad: usize, stride: usize, ceil: bool) -> Option<usize> {
    let span = (input + 2 * pad).checked_sub(k)?;
    let mut out = if ceil {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    // The last window must start inside the image (not only in the padding).
    if pad > 0 && (out - 1) * stride >= input + pad {
        out -= 1;
    }
    Some(out)
}

impl Pooling {
    fn parse(spec: &LayerSpec) -> Result<Pooling, LayerError> {
        let Some(p) = spec.msg.msg("pooling_param") else {
            return Err(LayerError::new("a Pooling layer needs pooling_param")
                .at(spec.type_span.clone())
                .help("add pooling_param { pool: MAX kernel_size: 2 stride: 2 }"));
        };
        let method = match p.ident("pool") {
            None | Some("MAX") => Method::Max,
            Some("AVE") => Method::Ave,
            Some("STOCHASTIC") => Method::Stochastic,
            Some(other) => {
                return Err(LayerError::new(format!("unknown pooling method {other}"))
                    .at(span_of(p, "pool"))
                    .help("use MAX or AVE"))
            }
        };
        let global = p.boolean("global_pooling").unwrap_or(false);
        let window = Window::parse(p, false)?;
        if global && window.is_some() && (p.has("kernel_size") || p.has("kernel_h")) {
            return Err(LayerError::new("global pooling takes no kernel size")
                .at(span_of(p, "kernel_size"))
                .help("remove kernel_size, or global_pooling"));
        }
        if !global && window.is_none() {
            return Err(LayerError::new(
                "pooling_param needs kernel_size (or global_pooling: true)",
            )
            .at(p.span.clone()));
        }
        if let Some(w) = &window {
            if w.pad[0] >= w.kernel[0] || w.pad[1] >= w.kernel[1] {
                return Err(LayerError::new("the pad must be smaller than the kernel")
                    .at(span_of(p, "pad"))
                    .help("lower the pad (Caffe refuses a pad as large as the kernel)"));
            }
        }
        let ceil = !matches!(p.ident("round_mode"), Some("FLOOR"));
        Ok(Pooling {
            method,
            window: if global { None } else { window },
            ceil,
            tops: spec.tops.len().max(1),
            method_span: p.has("pool").then(|| span_of(p, "pool")),
        })
    }

    pub fn geom(&self, b: &Shape) -> Result<PoolGeom, LayerError> {
        if b.len() != 4 {
            return Err(LayerError::new(format!(
                "Pooling needs an N×C×H×W input, got {} axes",
                b.len()
            )));
        }
        let (h, w) = (b[2], b[3]);
        let Some(win) = self.window else {
            return Ok(PoolGeom {
                height: h,
                width: w,
                kernel: [h, w],
                pad: [0, 0],
                stride: [1, 1],
                out_h: 1,
                out_w: 1,
            });
        };
        let oh = pooled(h, win.kernel[0], win.pad[0], win.stride[0], self.ceil);
        let ow = pooled(w, win.kernel[1], win.pad[1], win.stride[1], self.ceil);
        match (oh, ow) {
            (Some(out_h), Some(out_w)) if out_h > 0 && out_w > 0 => Ok(PoolGeom {
                height: h,
                width: w,
                kernel: win.kernel,
                pad: win.pad,
                stride: win.stride,
                out_h,
                out_w,
            }),
            _ => Err(LayerError::new(format!(
                "the {}×{} pooling window does not fit the {h}×{w} input",
                win.kernel[0], win.kernel[1]
            ))
            .help("use a smaller kernel or a larger input")),
        }
    }
}

impl Layer for Pooling {
    fn cannot_run(&self) -> Option<LayerError> {
        (self.method == Method::Stochastic).then(|| {
            let e =
                LayerError::new("netc cannot train STOCHASTIC pooling yet").help("use MAX or AVE");
            match &self.method_span {
                Some(s) => e.at(s.clone()),
                None => e,
            }
        })
    }
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let b = first(bottoms)?;
        let g = self.geom(b)?;
        let top = vec![b[0], b[1], g.out_h, g.out_w];
        Ok(vec![top; self.tops])
    }
    /// Pooling compares or adds but multiplies nothing: 0 multiply-accumulates, which
    /// gives Caffe's LeNet its golden 2,293,000 MACs per image (conv and ip only).
    fn macs(&self, _bottoms: &[Shape], _tops: &[Shape]) -> u64 {
        0
    }
    fn details(&self) -> Vec<String> {
        let m = match self.method {
            Method::Max => "MAX",
            Method::Ave => "AVE",
            Method::Stochastic => "STOCHASTIC",
        };
        match self.window {
            None => vec![m.into(), "global".into()],
            Some(w) => {
                let mut d = vec![
                    m.to_string(),
                    format!("kernel {}", w.kernel[0]),
                    format!("stride {}", w.stride[0]),
                ];
                if w.pad != [0, 0] {
                    d.push(format!("pad {}", w.pad[0]));
                }
                d
            }
        }
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        use candle_core::Tensor;
        let e = super::candle_err;
        let x = &bottoms[0];
        let g = self.geom(&x.dims().to_vec())?;
        let fill = if self.method == Method::Max {
            f32::NEG_INFINITY
        } else {
            0.0
        };
        // Pad so every window Caffe takes (padding and ceil rounding) lies inside.
        // (Enough on the right that each of the k strided views below has `out` windows.)
        let pad_axis =
            |x: Tensor, axis: usize, size: usize, pad: usize, k: usize, s: usize, out: usize| {
                let right = (out * s + k - 1).saturating_sub(size + pad);
                let mut parts = Vec::new();
                let mut dims = x.dims().to_vec();
                if pad > 0 {
                    dims[axis] = pad;
                    parts.push(Tensor::full(fill, dims.clone(), x.device())?);
                }
                parts.push(x.clone());
                if right > 0 {
                    dims[axis] = right;
                    parts.push(Tensor::full(fill, dims, x.device())?);
                }
                Tensor::cat(&parts, axis)
            };
        let x = pad_axis(
            x.clone(),
            2,
            g.height,
            g.pad[0],
            g.kernel[0],
            g.stride[0],
            g.out_h,
        )
        .and_then(|x| pad_axis(x, 3, g.width, g.pad[1], g.kernel[1], g.stride[1], g.out_w))
        .map_err(e)?;
        let (k, s) = ((g.kernel[0], g.kernel[1]), (g.stride[0], g.stride[1]));
        if self.method == Method::Max {
            // The maximum of the kh·kw strided views, one per window offset: unlike
            // candle's max_pool2d, whose backward scales by 1/(kh·kw) and needs
            // kernel == stride, its gradient is Caffe's for any kernel and stride.
            let (n, c, hp, wp) = x.dims4().map_err(e)?;
            let (oh, ow) = (g.out_h, g.out_w);
            let view = |ki: usize, kj: usize| -> candle_core::Result<Tensor> {
                x.narrow(2, ki, oh * s.0)?
                    .reshape((n, c, oh, s.0, wp))?
                    .narrow(3, 0, 1)?
                    .reshape((n, c, oh, wp))?
                    .narrow(3, kj, ow * s.1)?
                    .reshape((n, c, oh, ow, s.1))?
                    .narrow(4, 0, 1)?
                    .reshape((n, c, oh, ow))
            };
            let _ = hp;
            let mut y = view(0, 0).map_err(e)?;
            for ki in 0..k.0 {
                for kj in 0..k.1 {
                    if ki + kj > 0 {
                        y = y.maximum(&view(ki, kj).map_err(e)?).map_err(e)?;
                    }
                }
            }
            return Ok(vec![y]);
        }
        let y = x
            .avg_pool2d_with_stride(k, s)
            .and_then(|y| y.narrow(2, 0, g.out_h)?.narrow(3, 0, g.out_w))
            .map_err(e)?;
        // Caffe divides by the window clipped to the padded image, not by k².
        let mut div = Vec::with_capacity(g.out_h * g.out_w);
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                div.push((g.kernel[0] * g.kernel[1]) as f32 / g.window(oy, ox).2 as f32);
            }
        }
        let div = Tensor::from_vec(div, (1, 1, g.out_h, g.out_w), y.device()).map_err(e)?;
        Ok(vec![y.broadcast_mul(&div).map_err(e)?])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _ctx: &ShapeCtx,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let b = first(bottoms)?;
        let geom = self.geom(b)?;
        if let Some(e) = self.cannot_run() {
            return Err(e);
        }
        let method = self.method;
        let count = b[0] * b[1] * geom.out_h * geom.out_w;
        Ok(Box::new(PoolOp {
            geom,
            method,
            argmax: vec![0; if method == Method::Max { count } else { 0 }],
        }))
    }
}

#[derive(Debug)]
pub struct PoolOp {
    geom: PoolGeom,
    method: Method,
    /// For MAX: the index inside its plane of each output's maximum.
    argmax: Vec<u32>,
}

impl PoolGeom {
    /// The clipped window of output (y, x): rows, columns, and Caffe's AVE divisor (which
    /// counts padding cells inside the image-plus-pad area).
    pub fn window(
        &self,
        y: usize,
        x: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>, usize) {
        let hs = (y * self.stride[0]) as isize - self.pad[0] as isize;
        let ws = (x * self.stride[1]) as isize - self.pad[1] as isize;
        let he = (hs + self.kernel[0] as isize).min((self.height + self.pad[0]) as isize);
        let we = (ws + self.kernel[1] as isize).min((self.width + self.pad[1]) as isize);
        let size = ((he - hs) * (we - ws)).max(1) as usize;
        let (hs, ws) = (hs.max(0) as usize, ws.max(0) as usize);
        let (he, we) = (
            (he as usize).min(self.height),
            (we as usize).min(self.width),
        );
        (hs..he, ws..we, size)
    }
}

/// Output values handled per thread task (small planes are grouped).
const TASK: usize = 1 << 14;

/// Row ranges per output row, column ranges per output column, AVE divisors.
type WindowTable = (Vec<(usize, usize)>, Vec<(usize, usize)>, Vec<f32>);

impl PoolOp {
    /// Whether every window is 2×2 at even positions inside the plane (LeNet's pools):
    /// then loops without window bounds run.
    fn pairs(&self) -> bool {
        let (rows, cols, _) = self.table();
        rows.iter()
            .enumerate()
            .all(|(i, &(a, b))| a == 2 * i && b == a + 2)
            && cols
                .iter()
                .enumerate()
                .all(|(i, &(a, b))| a == 2 * i && b == a + 2)
    }

    /// Row ranges per output row, column ranges per output column, and the AVE divisor
    /// per output position, computed once per call instead of per output.
    fn table(&self) -> WindowTable {
        let g = self.geom;
        let rows: Vec<_> = (0..g.out_h)
            .map(|y| {
                let (r, _, _) = g.window(y, 0);
                (r.start, r.end)
            })
            .collect();
        let cols: Vec<_> = (0..g.out_w)
            .map(|x| {
                let (_, c, _) = g.window(0, x);
                (c.start, c.end)
            })
            .collect();
        let mut div = Vec::with_capacity(g.out_h * g.out_w);
        for y in 0..g.out_h {
            for x in 0..g.out_w {
                div.push(1.0 / g.window(y, x).2 as f32);
            }
        }
        (rows, cols, div)
    }
}

#[allow(clippy::needless_range_loop)] // the max loop keeps the column index for argmax
impl Op for PoolOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let g = self.geom;
        let (ip, op) = (g.height * g.width, g.out_h * g.out_w);
        let per_task = (TASK / op.max(1)).max(1);
        let (rows, cols, div) = self.table();
        let pairs = self.pairs();
        let isa = Isa::detect();
        let x = &bottoms[0].data;
        let (y, rest) = tops.split_first_mut().expect("pooling has a top");
        match self.method {
            Method::Max => {
                y.data
                    .par_chunks_mut(op * per_task)
                    .zip(self.argmax.par_chunks_mut(op * per_task))
                    .zip(x.par_chunks(ip * per_task))
                    .for_each(|((y, am), x)| {
                        for ((y, am), x) in
                            y.chunks_mut(op).zip(am.chunks_mut(op)).zip(x.chunks(ip))
                        {
                            if pairs {
                                match isa {
                                    #[cfg(target_arch = "x86_64")]
                                    // SAFETY: `Isa::Avx512` means the processor has it.
                                    Isa::Avx512 => unsafe {
                                        avx512::max_2x2(x, y, am, g.width, g.out_w)
                                    },
                                    _ => max_2x2(x, y, am, g.width, g.out_w),
                                }
                                continue;
                            }
                            for (oy, &(r0, r1)) in rows.iter().enumerate() {
                                for (ox, &(c0, c1)) in cols.iter().enumerate() {
                                    let (mut best, mut at) = (f32::NEG_INFINITY, r0 * g.width + c0);
                                    for r in r0..r1 {
                                        let line = &x[r * g.width..(r + 1) * g.width];
                                        for c in c0..c1 {
                                            if line[c] > best {
                                                best = line[c];
                                                at = r * g.width + c;
                                            }
                                        }
                                    }
                                    y[oy * g.out_w + ox] = best;
                                    am[oy * g.out_w + ox] = at as u32;
                                }
                            }
                        }
                    });
                if let Some(mask) = rest.first_mut() {
                    for (m, a) in mask.data.iter_mut().zip(&self.argmax) {
                        *m = *a as f32;
                    }
                }
            }
            _ => {
                y.data
                    .par_chunks_mut(op * per_task)
                    .zip(x.par_chunks(ip * per_task))
                    .for_each(|(y, x)| {
                        for (y, x) in y.chunks_mut(op).zip(x.chunks(ip)) {
                            for (oy, &(r0, r1)) in rows.iter().enumerate() {
                                for (ox, &(c0, c1)) in cols.iter().enumerate() {
                                    let mut s = 0.0;
                                    for r in r0..r1 {
                                        s += x[r * g.width + c0..r * g.width + c1]
                                            .iter()
                                            .sum::<f32>();
                                    }
                                    y[oy * g.out_w + ox] = s * div[oy * g.out_w + ox];
                                }
                            }
                        }
                    });
                if let Some(mask) = rest.first_mut() {
                    mask.data.fill(0.0);
                }
            }
        }
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let g = self.geom;
        let (ip, op) = (g.height * g.width, g.out_h * g.out_w);
        let per_task = (TASK / op.max(1)).max(1);
        let dy = &tops[0].diff;
        let dx = &mut bottoms[0].diff;
        match self.method {
            Method::Max => {
                #[cfg(target_arch = "x86_64")]
                if self.pairs() && Isa::detect() == Isa::Avx512 {
                    dx.par_chunks_mut(ip * per_task)
                        .zip(dy.par_chunks(op * per_task))
                        .zip(self.argmax.par_chunks(op * per_task))
                        .for_each(|((dx, dy), am)| {
                            for ((dx, dy), am) in
                                dx.chunks_mut(ip).zip(dy.chunks(op)).zip(am.chunks(op))
                            {
                                // SAFETY: the processor has AVX-512F.
                                unsafe { avx512::max_2x2_backward(dy, am, dx, g.width, g.out_w) };
                                // An odd height leaves a last row no window reads.
                                dx[2 * g.out_h * g.width..].fill(0.0);
                            }
                        });
                    return;
                }
                dx.par_chunks_mut(ip * per_task)
                    .zip(dy.par_chunks(op * per_task))
                    .zip(self.argmax.par_chunks(op * per_task))
                    .for_each(|((dx, dy), am)| {
                        dx.fill(0.0);
                        for ((dx, dy), am) in
                            dx.chunks_mut(ip).zip(dy.chunks(op)).zip(am.chunks(op))
                        {
                            for (d, a) in dy.iter().zip(am) {
                                dx[*a as usize] += d;
                            }
                        }
                    });
            }
            _ => {
                let (rows, cols, div) = self.table();
                dx.par_chunks_mut(ip * per_task)
                    .zip(dy.par_chunks(op * per_task))
                    .for_each(|(dx, dy)| {
                        dx.fill(0.0);
                        for (dx, dy) in dx.chunks_mut(ip).zip(dy.chunks(op)) {
                            for (oy, &(r0, r1)) in rows.iter().enumerate() {
                                for (ox, &(c0, c1)) in cols.iter().enumerate() {
                                    let d = dy[oy * g.out_w + ox] * div[oy * g.out_w + ox];
                                    for r in r0..r1 {
                                        dx[r * g.width + c0..r * g.width + c1]
                                            .iter_mut()
                                            .for_each(|v| *v += d);
                                    }
                                }
                            }
                        }
                    });
            }
        }
    }
}

/// Max pooling of one plane (rows `width` long) over the 2×2 windows at even positions,
/// `out_w` outputs a row; the argmax is the first maximum in row-major order, as Caffe's.
/// Without branches (which maximum wins is a coin toss that a branch predictor loses):
/// the better of each row's pair, then the better of the two, ties to the earlier.
fn max_2x2(x: &[f32], y: &mut [f32], am: &mut [u32], width: usize, out_w: usize) {
    for (oy, (yr, ar)) in y.chunks_mut(out_w).zip(am.chunks_mut(out_w)).enumerate() {
        let r0 = 2 * oy * width;
        let (top, bot) = (&x[r0..r0 + width], &x[r0 + width..r0 + 2 * width]);
        for (ox, (yv, av)) in yr.iter_mut().zip(ar.iter_mut()).enumerate() {
            let c = 2 * ox;
            let (a, b, p, q) = (top[c], top[c + 1], bot[c], bot[c + 1]);
            let (m1, i1) = if b > a { (b, c + 1) } else { (a, c) };
            let (m2, i2) = if q > p {
                (q, width + c + 1)
            } else {
                (p, width + c)
            };
            let (m, i) = if m2 > m1 { (m2, i2) } else { (m1, i1) };
            *yv = m;
            *av = (r0 + i) as u32;
        }
    }
}

/// [`max_2x2`] and its backward pass with AVX-512, 16 outputs at a time: the even and odd
/// columns of a row pair are separated with permutes, compared lane by lane, and the
/// argmax built from lane indices; the backward pass writes every input gradient of a
/// row pair (the maximum's, or zero) instead of clearing the plane and scattering.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::engine::kernels;
    use std::arch::x86_64::*;

    /// The first `n` lanes of `v` into `dst` (see [`kernels::avx512::store_first`]).
    #[inline(always)]
    unsafe fn store_first(dst: &mut [f32], v: __m512, n: usize) {
        kernels::avx512::store_first(dst[..n].as_mut_ptr(), v, n)
    }

    #[inline(always)]
    unsafe fn store_first_u32(dst: &mut [u32], v: __m512i, n: usize) {
        let d = std::slice::from_raw_parts_mut(dst[..n].as_mut_ptr().cast::<f32>(), n);
        store_first(d, _mm512_castsi512_ps(v), n);
    }

    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// Values `c..c + 2n` of `row` (n ≤ 16) as two vectors; lanes past them are zero.
    #[inline(always)]
    unsafe fn load_pairs(row: &[f32], c: usize, n: usize) -> (__m512, __m512) {
        let p = row[c..c + 2 * n].as_ptr();
        let lo = _mm512_maskz_loadu_ps(mask(2 * n), p);
        let hi = if n > 8 {
            _mm512_maskz_loadu_ps(mask(2 * n - 16), p.add(16))
        } else {
            _mm512_setzero_ps()
        };
        (lo, hi)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn max_2x2(x: &[f32], y: &mut [f32], am: &mut [u32], width: usize, out_w: usize) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        let one = _mm512_set1_epi32(1);
        let below = _mm512_set1_epi32(width as i32);
        for (oy, (yr, ar)) in y.chunks_mut(out_w).zip(am.chunks_mut(out_w)).enumerate() {
            let r0 = 2 * oy * width;
            let (top, bot) = (&x[r0..r0 + width], &x[r0 + width..r0 + 2 * width]);
            let mut ox = 0;
            while ox < out_w {
                let n = (out_w - ox).min(16);
                let c = 2 * ox;
                let (t0, t1) = load_pairs(top, c, n);
                let (b0, b1) = load_pairs(bot, c, n);
                let (te, to) = (
                    _mm512_permutex2var_ps(t0, even, t1),
                    _mm512_permutex2var_ps(t0, odd, t1),
                );
                let (be, bo) = (
                    _mm512_permutex2var_ps(b0, even, b1),
                    _mm512_permutex2var_ps(b0, odd, b1),
                );
                // Index of each lane's top-left input inside the plane.
                let base = _mm512_add_epi32(_mm512_set1_epi32((r0 + c) as i32), even);
                let k1 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(to, te);
                let m1 = _mm512_mask_blend_ps(k1, te, to);
                let i1 = _mm512_mask_add_epi32(base, k1, base, one);
                let k2 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(bo, be);
                let m2 = _mm512_mask_blend_ps(k2, be, bo);
                let base2 = _mm512_add_epi32(base, below);
                let i2 = _mm512_mask_add_epi32(base2, k2, base2, one);
                let k = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m2, m1);
                store_first(&mut yr[ox..], _mm512_mask_blend_ps(k, m1, m2), n);
                store_first_u32(&mut ar[ox..], _mm512_mask_blend_epi32(k, i1, i2), n);
                ox += n;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn max_2x2_backward(
        dy: &[f32],
        am: &[u32],
        dx: &mut [f32],
        width: usize,
        out_w: usize,
    ) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let one = _mm512_set1_epi32(1);
        let below = _mm512_set1_epi32(width as i32);
        // Even and odd lanes interleaved back: lanes 0..8 of both, then 8..16.
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (oy, (dyr, ar)) in dy.chunks(out_w).zip(am.chunks(out_w)).enumerate() {
            let r0 = 2 * oy * width;
            let (top, bot) = dx[r0..r0 + 2 * width].split_at_mut(width);
            let mut ox = 0;
            while ox < out_w {
                let n = (out_w - ox).min(16);
                let c = 2 * ox;
                let d = _mm512_maskz_loadu_ps(mask(n), dyr[ox..ox + n].as_ptr());
                let a = _mm512_maskz_loadu_epi32(mask(n), ar[ox..ox + n].as_ptr().cast());
                let base = _mm512_add_epi32(_mm512_set1_epi32((r0 + c) as i32), even);
                let base2 = _mm512_add_epi32(base, below);
                let te = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, base), d);
                let to =
                    _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(base, one)), d);
                let be = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, base2), d);
                let bo = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(base2, one)),
                    d,
                );
                for (row, e, o) in [(&mut *top, te, to), (&mut *bot, be, bo)] {
                    let out = &mut row[c..c + 2 * n];
                    store_first(out, _mm512_permutex2var_ps(e, lo, o), (2 * n).min(16));
                    if n > 8 {
                        store_first(&mut out[16..], _mm512_permutex2var_ps(e, hi, o), 2 * n - 16);
                    }
                }
                ox += n;
            }
            // An odd width leaves a last column no window reads.
            top[2 * out_w..].fill(0.0);
            bot[2 * out_w..].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;

    #[test]
    fn caffe_output_sizes() {
        // LeNet: 24 → 12, 8 → 4; AlexNet: 55 → 27 (k3 s2); ceil rounding: 6 k3 s2 → 3 (floor 2).
        assert_eq!(pooled(24, 2, 0, 2, true), Some(12));
        assert_eq!(pooled(55, 3, 0, 2, true), Some(27));
        assert_eq!(pooled(6, 3, 0, 2, true), Some(3));
        assert_eq!(pooled(6, 3, 0, 2, false), Some(2));
        // A last window that would start in the padding is dropped: 5, k2 s2 p1 → 3.
        assert_eq!(pooled(5, 2, 1, 2, true), Some(3));
        assert_eq!(pooled(4, 2, 1, 2, true), Some(3));
        assert_eq!(pooled(1, 3, 0, 1, true), None);
    }

    fn op(
        method: Method,
        h: usize,
        k: usize,
        s: usize,
        p: usize,
        n: usize,
        c: usize,
    ) -> (PoolOp, Vec<usize>) {
        let pl = Pooling {
            method,
            window: Some(Window {
                kernel: [k, k],
                pad: [p, p],
                stride: [s, s],
                dilation: [1, 1],
            }),
            ceil: true,
            tops: 1,
            method_span: None,
        };
        let shape = vec![n, c, h, h];
        let g = pl.geom(&shape).unwrap();
        let top = vec![n, c, g.out_h, g.out_w];
        let count = top.iter().product();
        (
            PoolOp {
                geom: g,
                method,
                argmax: vec![0; count],
            },
            top,
        )
    }

    #[test]
    fn max_and_average_values() {
        let (mut o, top) = op(Method::Max, 4, 2, 2, 0, 1, 1);
        let mut x = Blob::zeros(&[1, 1, 4, 4]);
        x.data = (0..16).map(|i| i as f32).collect();
        let mut y = Blob::zeros(&top);
        o.forward(&[&x], &mut [&mut y], true);
        assert_eq!(y.data, vec![5.0, 7.0, 13.0, 15.0]);
        let (mut a, top) = op(Method::Ave, 4, 3, 2, 1, 1, 1);
        let mut y = Blob::zeros(&top);
        a.forward(&[&x], &mut [&mut y], true);
        // First window covers rows/cols -1..2 → cells (0,0),(0,1),(1,0),(1,1); divisor 9.
        assert!((y.data[0] - (0.0 + 1.0 + 4.0 + 5.0) / 9.0).abs() < 1e-6);
    }

    #[test]
    fn the_2x2_path_matches_the_windows_caffe_takes() {
        // Even planes take the 2×2 path, odd ones (a clipped last window) the general
        // one; both must give each window's first maximum in row-major order, ties too.
        for h in [8, 7] {
            let (mut o, top) = op(Method::Max, h, 2, 2, 0, 2, 3);
            let mut x = Blob::zeros(&[2, 3, h, h]);
            x.data = (0..x.count()).map(|i| ((i * 7) % 5) as f32).collect();
            let mut y = Blob::zeros(&top);
            o.forward(&[&x], &mut [&mut y], true);
            let oh = top[2];
            for p in 0..6 {
                for oy in 0..oh {
                    for ox in 0..oh {
                        let (mut best, mut at) = (f32::NEG_INFINITY, 0);
                        for r in 2 * oy..(2 * oy + 2).min(h) {
                            for c in 2 * ox..(2 * ox + 2).min(h) {
                                let v = x.data[p * h * h + r * h + c];
                                if v > best {
                                    (best, at) = (v, r * h + c);
                                }
                            }
                        }
                        let i = p * oh * oh + oy * oh + ox;
                        assert_eq!((y.data[i], o.argmax[i]), (best, at as u32), "h {h} at {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (m, h, k, s, p) in [
            (Method::Max, 6, 2, 2, 0),
            (Method::Max, 7, 3, 2, 1),
            (Method::Ave, 6, 3, 2, 1),
            (Method::Ave, 5, 2, 1, 0),
        ] {
            let (mut o, top) = op(m, h, k, s, p, 2, 3);
            check_op(&mut o, &[vec![2, 3, h, h]], &[top]);
        }
        // FLOOR rounding on an odd plane: the 2×2 path, with a last row and column that
        // no window reads (their gradient is zero).
        let pl = Pooling {
            method: Method::Max,
            window: Some(Window {
                kernel: [2, 2],
                pad: [0, 0],
                stride: [2, 2],
                dilation: [1, 1],
            }),
            ceil: false,
            tops: 1,
            method_span: None,
        };
        let g = pl.geom(&vec![2, 3, 7, 7]).unwrap();
        assert_eq!((g.out_h, g.out_w), (3, 3));
        let mut o = PoolOp {
            geom: g,
            method: Method::Max,
            argmax: vec![0; 2 * 3 * 9],
        };
        assert!(o.pairs());
        check_op(&mut o, &[vec![2, 3, 7, 7]], &[vec![2, 3, 3, 3]]);
    }

    /// The AVX-512 2×2 kernels against the plain ones on planes wider than one vector of
    /// outputs (40 columns: 20 outputs a row, a block of 16 and one of 4) with ties.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_2x2_matches_the_plain_loops() {
        if Isa::detect() != Isa::Avx512 {
            eprintln!("skipped: no AVX-512 here");
            return;
        }
        for (h, w) in [(6, 40), (4, 6), (8, 34)] {
            let (oh, ow) = (h / 2, w / 2);
            let x: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 13) as f32).collect();
            let (mut y1, mut a1) = (vec![0.0; oh * ow], vec![0u32; oh * ow]);
            let (mut y2, mut a2) = (vec![0.0; oh * ow], vec![0u32; oh * ow]);
            max_2x2(&x, &mut y1, &mut a1, w, ow);
            // SAFETY: AVX-512F was detected above.
            unsafe { avx512::max_2x2(&x, &mut y2, &mut a2, w, ow) };
            assert_eq!((&y1, &a1), (&y2, &a2), "{h}×{w}");
            let dy: Vec<f32> = (0..oh * ow).map(|i| i as f32 + 0.5).collect();
            let mut want = vec![0.0; h * w];
            for (d, a) in dy.iter().zip(&a1) {
                want[*a as usize] += d;
            }
            let mut got = vec![f32::NAN; h * w];
            // SAFETY: as above.
            unsafe { avx512::max_2x2_backward(&dy, &a1, &mut got, w, ow) };
            assert_eq!(got, want, "{h}×{w}");
        }
    }
}
