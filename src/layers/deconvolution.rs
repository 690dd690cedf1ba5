//! Deconvolution (Caffe's transposed convolution): the convolution's passes run the other
//! way round. Its forward pass is a convolution's input gradient, its input gradient a
//! convolution's forward pass, and its weight gradient a convolution's with inputs and
//! output gradients swapped; Caffe stores its weights as C_in × (num_output / group) × kh
//! × kw, exactly the layout of that convolution's (C_in outputs). Also holds [`ConvGeom`],
//! the kernel/stride/pad/dilation reading that Caffe's `BaseConvolutionLayer` shares among
//! Convolution, Deconvolution and Im2col.

use super::convolution::ConvOp;
use super::filler::Filler;
use super::param_mults;
use super::shape_only::{self, fmt_shape, param, span_of, uint};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::im2col::Geom;
use crate::engine::{Blob, Op, Param, Rng};
use crate::layers::filler::learned;
use crate::spec::{LayerSpec, Message};

/// Kernel geometry of a `convolution_param`, one entry per spatial axis (2 unless the
/// kernel is given with more values).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvGeom {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub pad: Vec<usize>,
    pub dilation: Vec<usize>,
    pub num_output: usize,
    pub group: usize,
    pub bias_term: bool,
    /// The channel axis (Caffe's `axis`, default 1).
    pub axis: i64,
}

fn per_axis(
    m: &Message,
    l: &LayerSpec,
    name: &str,
    h: &str,
    w: &str,
    n: usize,
    default: usize,
) -> Result<Vec<usize>, LayerError> {
    let list = m.usizes(name);
    let (hv, wv) = (m.usize(h), m.usize(w));
    if hv.is_some() || wv.is_some() {
        if !list.is_empty() {
            return Err(
                LayerError::new(format!("`{name}` and `{h}`/`{w}` are both given"))
                    .at(span_of(m, h, &span_of(m, w, &l.name_span)))
                    .help(format!("give either `{name}` or both `{h}` and `{w}`")),
            );
        }
        if n != 2 {
            return Err(
                LayerError::new(format!("`{h}`/`{w}` only work for 2-D convolutions")).at(span_of(
                    m,
                    h,
                    &l.name_span,
                )),
            );
        }
        return match (hv, wv) {
            (Some(a), Some(b)) => Ok(vec![a, b]),
            _ => Err(
                LayerError::new(format!("`{h}` and `{w}` must be given together")).at(span_of(
                    m,
                    h,
                    &span_of(m, w, &l.name_span),
                )),
            ),
        };
    }
    match list.len() {
        0 => Ok(vec![default; n]),
        1 => Ok(vec![list[0]; n]),
        k if k == n => Ok(list),
        k => {
            Err(
                LayerError::new(format!("`{name}` has {k} values for {n} spatial axes"))
                    .at(span_of(m, name, &l.name_span)),
            )
        }
    }
}

impl ConvGeom {
    /// Reads `convolution_param` for a blob with `spatial` spatial axes.
    pub fn read(l: &LayerSpec, spatial: usize) -> Result<ConvGeom, LayerError> {
        let g = Self::read_geometry(l, spatial)?;
        let m = param(l, "convolution_param");
        if g.num_output == 0 {
            return Err(
                LayerError::new("num_output must be set and positive").at(span_of(
                    m,
                    "num_output",
                    &l.name_span,
                )),
            );
        }
        if g.num_output % g.group != 0 {
            return Err(LayerError::new(format!(
                "num_output ({}) must be a multiple of group ({})",
                g.num_output, g.group
            ))
            .at(span_of(m, "group", &l.name_span)));
        }
        Ok(g)
    }

    /// The kernel geometry alone (Im2col has no num_output), 2-D.
    pub fn read_kernel_only(l: &LayerSpec) -> Result<ConvGeom, LayerError> {
        Self::read_geometry(l, 2)
    }

    fn read_geometry(l: &LayerSpec, spatial: usize) -> Result<ConvGeom, LayerError> {
        let m = param(l, "convolution_param");
        let kernel = per_axis(m, l, "kernel_size", "kernel_h", "kernel_w", spatial, 0)?;
        if kernel.contains(&0) {
            return Err(LayerError::new("the kernel size must be positive")
                .at(span_of(
                    m,
                    "kernel_size",
                    &span_of(m, "kernel_h", &l.name_span),
                ))
                .help("set kernel_size (or kernel_h and kernel_w) to at least 1"));
        }
        let stride = per_axis(m, l, "stride", "stride_h", "stride_w", spatial, 1)?;
        if stride.contains(&0) {
            return Err(LayerError::new("the stride must be positive").at(span_of(
                m,
                "stride",
                &l.name_span,
            )));
        }
        let pad = per_axis(m, l, "pad", "pad_h", "pad_w", spatial, 0)?;
        let dilation = match m.usizes("dilation") {
            d if d.is_empty() => vec![1; spatial],
            d if d.len() == 1 => vec![d[0]; spatial],
            d if d.len() == spatial => d,
            d => {
                return Err(LayerError::new(format!(
                    "`dilation` has {} values for {spatial} spatial axes",
                    d.len()
                ))
                .at(span_of(m, "dilation", &l.name_span)))
            }
        };
        let num_output = uint(l, m, "num_output", 0)?;
        let group = uint(l, m, "group", 1)?;
        if group == 0 {
            return Err(LayerError::new("group must be positive").at(span_of(
                m,
                "group",
                &l.name_span,
            )));
        }
        Ok(ConvGeom {
            kernel,
            stride,
            pad,
            dilation,
            num_output,
            group,
            bias_term: m.boolean("bias_term").unwrap_or(true),
            axis: shape_only::int(m, "axis", 1),
        })
    }

    /// The number of spatial axes a `convolution_param` describes (2 unless more kernel
    /// sizes are given).
    pub fn spatial_axes(l: &LayerSpec) -> usize {
        param(l, "convolution_param")
            .usizes("kernel_size")
            .len()
            .max(2)
    }

    /// `k5 s1 p0` for drawings.
    pub fn describe(&self) -> String {
        let one = |v: &[usize]| {
            if v.iter().all(|&x| x == v[0]) {
                v[0].to_string()
            } else {
                fmt_shape(v)
            }
        };
        let mut s = format!("k{} s{}", one(&self.kernel), one(&self.stride));
        if self.pad.iter().any(|&p| p > 0) {
            s += &format!(" p{}", one(&self.pad));
        }
        if self.dilation.iter().any(|&d| d > 1) {
            s += &format!(" d{}", one(&self.dilation));
        }
        if self.group > 1 {
            s += &format!(" g{}", self.group);
        }
        s
    }
}

#[derive(Debug)]
pub struct Deconvolution {
    geom: ConvGeom,
    weight_filler: Filler,
    bias_filler: Filler,
    mults: Vec<(f32, f32)>,
}

pub static TYPE: LayerType = LayerType {
    name: "Deconvolution",
    kind: Kind::Convolution,
    bottoms: Arity::AtLeast(1),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: true,
    build: |l| {
        let geom = ConvGeom::read(l, ConvGeom::spatial_axes(l))?;
        let m = param(l, "convolution_param");
        Ok(Box::new(Deconvolution {
            weight_filler: Filler::parse(m, "weight_filler", Filler::default())?,
            bias_filler: Filler::parse(m, "bias_filler", Filler::default())?,
            mults: param_mults(l, if geom.bias_term { 2 } else { 1 }),
            geom,
        }))
    },
};

impl Deconvolution {
    fn split<'s>(&self, s: &'s Shape) -> Result<(usize, usize, &'s [usize]), LayerError> {
        let axis = shape_only::axis(self.geom.axis, s.len(), None)?;
        let spatial = &s[axis + 1..];
        if spatial.len() != self.geom.kernel.len() {
            return Err(LayerError::new(format!(
                "input {} has {} spatial axes, the kernel {}",
                fmt_shape(s),
                spatial.len(),
                self.geom.kernel.len()
            )));
        }
        Ok((axis, s[axis], spatial))
    }
}

impl Layer for Deconvolution {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let g = &self.geom;
        bottoms
            .iter()
            .map(|s| {
                let (axis, channels, spatial) = self.split(s)?;
                if channels % g.group != 0 {
                    return Err(LayerError::new(format!(
                        "{channels} input channels are not a multiple of group {}",
                        g.group
                    )));
                }
                let mut out = s[..axis].to_vec();
                out.push(g.num_output);
                for (i, &d) in spatial.iter().enumerate() {
                    // Caffe: stride·(in − 1) + dilation·(k − 1) + 1 − 2·pad.
                    let full =
                        g.stride[i] * d.saturating_sub(1) + g.dilation[i] * (g.kernel[i] - 1) + 1;
                    if d == 0 || full <= 2 * g.pad[i] {
                        return Err(LayerError::new(format!(
                            "input {} gives an empty output",
                            fmt_shape(s)
                        )));
                    }
                    out.push(full - 2 * g.pad[i]);
                }
                Ok(out)
            })
            .collect()
    }
    fn param_shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        let g = &self.geom;
        let Some(Ok((_, channels, _))) = bottoms.first().map(|s| self.split(s)) else {
            return Vec::new();
        };
        let mut w = vec![channels, g.num_output / g.group];
        w.extend(&g.kernel);
        let mut v = vec![w];
        if g.bias_term {
            v.push(vec![g.num_output]);
        }
        v
    }
    fn macs(&self, bottoms: &[Shape], _tops: &[Shape]) -> u64 {
        let g = &self.geom;
        let k: u64 = g.kernel.iter().map(|&k| k as u64).product();
        bottoms
            .iter()
            .filter_map(|s| self.split(s).ok())
            .map(|(axis, c, spatial)| {
                let inner: u64 = spatial.iter().map(|&d| d as u64).product();
                // Per sample when the channel axis is 1.
                let _ = axis;
                inner * c as u64 * (g.num_output / g.group) as u64 * k
            })
            .sum()
    }
    fn details(&self) -> Vec<String> {
        vec![self.geom.describe(), self.geom.num_output.to_string()]
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let g = &self.geom;
        let b = match bottoms {
            [b] if b.len() == 4 && g.kernel.len() == 2 && g.axis == 1 => b,
            _ => {
                return Err(LayerError::new(
                    "netc trains Deconvolution with one N×C×H×W bottom (2-D, axis 1)",
                ))
            }
        };
        let top = &self.shapes(bottoms, ctx)?[0];
        let shapes = self.param_shapes(bottoms, ctx);
        let params = learned(
            &shapes,
            &[&self.weight_filler, &self.bias_filler],
            &self.mults,
            rng,
        );
        // The convolution from this layer's output space back to its input space.
        let conv_geom = Geom {
            channels: g.num_output,
            height: top[2],
            width: top[3],
            kernel_h: g.kernel[0],
            kernel_w: g.kernel[1],
            pad_h: g.pad[0],
            pad_w: g.pad[1],
            stride_h: g.stride[0],
            stride_w: g.stride[1],
            dilation_h: g.dilation[0],
            dilation_w: g.dilation[1],
        };
        if (conv_geom.out_h(), conv_geom.out_w()) != (b[2], b[3]) {
            return Err(LayerError::new(format!(
                "the {}×{} input does not come back from the {}×{} output",
                b[2], b[3], top[2], top[3]
            )));
        }
        let placeholder = Param {
            blob: Blob::zeros(&shapes[0]),
            lr_mult: 1.0,
            decay_mult: 1.0,
        };
        let inner = ConvOp::new(conv_geom, b[1], g.group, vec![placeholder], b[0]);
        Ok(Box::new(DeconvOp {
            inner,
            params,
            out: g.num_output,
            out_hw: top[2] * top[3],
        }))
    }
}

/// A Deconvolution over the convolution that maps its output space to its input space.
#[derive(Debug)]
pub struct DeconvOp {
    inner: ConvOp,
    /// The weights (and bias), which the convolution borrows for each pass.
    params: Vec<Param>,
    out: usize,
    out_hw: usize,
}

impl DeconvOp {
    /// Runs `f` with the weights lent to the convolution.
    fn with_weights<R>(&mut self, f: impl FnOnce(&mut ConvOp) -> R) -> R {
        std::mem::swap(&mut self.params[0], &mut self.inner.params_mut()[0]);
        let r = f(&mut self.inner);
        std::mem::swap(&mut self.params[0], &mut self.inner.params_mut()[0]);
        r
    }
}

impl Op for DeconvOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let n = bottoms[0].shape.first().copied().unwrap_or(0);
        let (x, y) = (&bottoms[0].data, &mut tops[0].data);
        self.with_weights(|c| c.gradients(None, x, Some(&mut y[..]), n));
        if let Some(b) = self.params.get(1) {
            for (k, row) in y.chunks_mut(self.out_hw.max(1)).enumerate() {
                let v = b.blob.data[k % self.out];
                row.iter_mut().for_each(|y| *y += v);
            }
        }
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let n = tops[0].shape.first().copied().unwrap_or(0);
        let dy = &tops[0].diff;
        let bottom = &mut *bottoms[0];
        let (x, dx) = (&bottom.data, &mut bottom.diff);
        let prop = prop_down.first().copied().unwrap_or(false);
        self.with_weights(|c| {
            if prop {
                c.convolve(dy, &mut dx[..], n);
            }
            c.gradients(Some(dy), x, None, n);
        });
        if let Some(b) = self.params.get_mut(1) {
            b.blob.diff.fill(0.0);
            for (k, row) in dy.chunks(self.out_hw.max(1)).enumerate() {
                b.blob.diff[k % self.out] += row.iter().sum::<f32>();
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
    use rand::SeedableRng;

    fn deconv(out: usize, k: usize, stride: usize, pad: usize, group: usize) -> Deconvolution {
        Deconvolution {
            geom: ConvGeom {
                kernel: vec![k, k],
                stride: vec![stride; 2],
                pad: vec![pad; 2],
                dilation: vec![1; 2],
                num_output: out,
                group,
                bias_term: true,
                axis: 1,
            },
            weight_filler: Filler::Uniform {
                min: -0.5,
                max: 0.5,
            },
            bias_filler: Filler::Uniform {
                min: -0.1,
                max: 0.1,
            },
            mults: vec![(1.0, 1.0); 2],
        }
    }

    /// The forward pass against the definition: every input value spreads its kernel
    /// over the output, offset by its position times the stride, less the padding.
    #[test]
    fn forward_scatters_each_input_through_the_kernel() {
        let d = deconv(3, 3, 2, 1, 1);
        let b = vec![vec![2, 2, 3, 4]];
        let top = d.shapes(&b, &ShapeCtx::default()).unwrap()[0].clone();
        assert_eq!(top, vec![2, 3, 5, 7]);
        let mut op = d
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(1))
            .expect("lowers");
        let mut x = Blob::zeros(&b[0]);
        x.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 * 0.3).sin());
        let mut y = Blob::zeros(&top);
        op.forward(&[&x], &mut [&mut y], true);
        let (w, bias) = (&op.params()[0].blob.data, &op.params()[1].blob.data);
        let mut want = vec![0.0f32; y.count()];
        for n in 0..2 {
            for o in 0..3 {
                for p in 0..5 * 7 {
                    want[(n * 3 + o) * 35 + p] = bias[o];
                }
                for c in 0..2 {
                    for iy in 0..3 {
                        for ix in 0..4 {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let oy = (iy * 2 + ky) as isize - 1;
                                    let ox = (ix * 2 + kx) as isize - 1;
                                    if oy < 0 || ox < 0 || oy >= 5 || ox >= 7 {
                                        continue;
                                    }
                                    want[(n * 3 + o) * 35 + oy as usize * 7 + ox as usize] += x
                                        .data[((n * 2 + c) * 3 + iy) * 4 + ix]
                                        * w[((c * 3 + o) * 3 + ky) * 3 + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
        for (g, w) in y.data.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (out, k, stride, pad, group, c) in
            [(3, 3, 2, 1, 1, 2), (4, 2, 1, 0, 2, 4), (2, 4, 2, 1, 1, 3)]
        {
            let d = deconv(out, k, stride, pad, group);
            let b = vec![vec![2, c, 3, 3]];
            let top = d.shapes(&b, &ShapeCtx::default()).unwrap();
            let mut op = d
                .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(2))
                .expect("lowers");
            check_op(op.as_mut(), &b, &top);
        }
    }
}
