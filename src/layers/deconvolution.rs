//! Deconvolution (Caffe's transposed convolution): shape, parameters and MACs; netc cannot
//! train it yet. Holds [`ConvGeom`], the kernel/stride/pad/dilation reading that Caffe's
//! `BaseConvolutionLayer` shares among Convolution, Deconvolution and Im2col.

use super::shape_only::{self, cannot_train, fmt_shape, param, span_of, uint};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
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
}

pub static TYPE: LayerType = LayerType {
    name: "Deconvolution",
    kind: Kind::Convolution,
    bottoms: Arity::AtLeast(1),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: false,
    build: |l| {
        Ok(Box::new(Deconvolution {
            geom: ConvGeom::read(l, ConvGeom::spatial_axes(l))?,
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
    cannot_train!();
}
