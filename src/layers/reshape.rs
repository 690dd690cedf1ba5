//! Reshape: Caffe's `reshape_param { shape { dim } axis num_axes }` with 0 (copy) and -1
//! (infer); cannot run in place; netc cannot train it yet.

use super::shape_only::{self, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::spec::Span;

#[derive(Debug)]
pub struct Reshape {
    dims: Vec<i64>,
    axis: i64,
    num_axes: i64,
    span: Span,
}

pub static TYPE: LayerType = LayerType {
    name: "Reshape",
    kind: Kind::Other,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: true,
    build: |l| {
        let m = param(l, "reshape_param");
        let dims: Vec<i64> = m
            .msg("shape")
            .map(|s| s.ints("dim").into_iter().map(|d| d as i64).collect())
            .unwrap_or_default();
        let span = m
            .get("shape")
            .map(|f| f.value_span.clone())
            .unwrap_or_else(|| l.name_span.clone());
        if dims.iter().filter(|&&d| d == -1).count() > 1 {
            return Err(LayerError::new("at most one dim may be -1 (inferred)").at(span));
        }
        if let Some(d) = dims.iter().find(|&&d| d < -1) {
            return Err(LayerError::new(format!(
                "dim {d} is invalid: use a size, 0 to copy or -1 to infer"
            ))
            .at(span));
        }
        let num_axes = shape_only::int(m, "num_axes", -1);
        if num_axes < -1 {
            return Err(LayerError::new("num_axes must be -1 or more").at(span_of(
                m,
                "num_axes",
                &l.name_span,
            )));
        }
        Ok(Box::new(Reshape {
            dims,
            axis: shape_only::int(m, "axis", 0),
            num_axes,
            span,
        }))
    },
};

impl Layer for Reshape {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        let n = s.len() as i64;
        // Caffe allows axis == num_axes here (appending axes).
        let start = if self.axis < 0 {
            n + self.axis + 1
        } else {
            self.axis
        };
        if start < 0 || start > n {
            return Err(LayerError::new(format!(
                "axis {} is out of range for {}",
                self.axis,
                fmt_shape(s)
            )));
        }
        let end = if self.num_axes == -1 {
            n
        } else {
            start + self.num_axes
        };
        if end > n {
            return Err(LayerError::new(format!(
                "axis + num_axes goes past the {} axes of {}",
                n,
                fmt_shape(s)
            )));
        }
        let (start, end) = (start as usize, end as usize);
        let mut out = s[..start].to_vec();
        let mut infer = None;
        for (i, &d) in self.dims.iter().enumerate() {
            match d {
                0 => out.push(*s.get(start + i).ok_or_else(|| {
                    LayerError::new(format!(
                        "dim {i} is 0 (copy), but {} has no axis {}",
                        fmt_shape(s),
                        start + i
                    ))
                    .at(self.span.clone())
                })?),
                -1 => {
                    infer = Some(out.len());
                    out.push(1);
                }
                d => out.push(d as usize),
            }
        }
        out.extend(&s[end..]);
        let count: usize = s.iter().product();
        let known: usize = out.iter().product();
        if let Some(i) = infer {
            if known == 0 || !count.is_multiple_of(known) {
                return Err(LayerError::new(format!(
                    "cannot infer the -1 dim: {} elements do not divide into {}",
                    count,
                    fmt_shape(&out)
                ))
                .at(self.span.clone()));
            }
            out[i] = count / known;
        }
        if out.iter().product::<usize>() != count {
            return Err(LayerError::new(format!(
                "{} has {count} elements, the new shape {} has {}",
                fmt_shape(s),
                fmt_shape(&out),
                out.iter().product::<usize>()
            ))
            .at(self.span.clone()));
        }
        Ok(vec![out])
    }
    fn details(&self) -> Vec<String> {
        vec![self
            .dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")]
    }
    fn lower(
        &self,
        _b: &[Shape],
        _c: &ShapeCtx,
        _r: &mut crate::engine::Rng,
    ) -> Result<Box<dyn crate::engine::Op>, LayerError> {
        Ok(Box::new(super::flatten::CopyOp))
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let shape = self
            .shapes(&[bottoms[0].dims().to_vec()], &ShapeCtx::default())?
            .remove(0);
        Ok(vec![bottoms[0]
            .reshape(shape)
            .map_err(super::candle_err)?])
    }
}
