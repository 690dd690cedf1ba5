//! Concat: joins its bottoms along `axis` (Caffe's `concat_param`); netc cannot train it yet.

use super::shape_only::{self, cannot_train, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::spec::Span;

#[derive(Debug)]
pub struct Concat {
    axis: i64,
    axis_span: Option<Span>,
}

pub static TYPE: LayerType = LayerType {
    name: "Concat",
    kind: Kind::Other,
    bottoms: Arity::AtLeast(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "concat_param");
        // `concat_dim` is the legacy spelling of `axis`.
        let (axis, name) = match (m.int("axis"), m.int("concat_dim")) {
            (Some(_), Some(_)) => {
                return Err(LayerError::new("`axis` and `concat_dim` are both given")
                    .at(span_of(m, "concat_dim", &l.name_span))
                    .help("keep `axis`"))
            }
            (None, Some(d)) => (d as i64, "concat_dim"),
            _ => (shape_only::int(m, "axis", 1), "axis"),
        };
        Ok(Box::new(Concat {
            axis,
            axis_span: m.get(name).map(|f| f.value_span.clone()),
        }))
    },
};

impl Layer for Concat {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let first = shape_only::first(bottoms)?;
        let axis = shape_only::axis(self.axis, first.len(), self.axis_span.clone())?;
        let mut out = first.clone();
        for (k, s) in bottoms.iter().enumerate().skip(1) {
            let same =
                s.len() == first.len() && (0..s.len()).all(|i| i == axis || s[i] == first[i]);
            if !same {
                return Err(LayerError::new(format!(
                    "bottom {} has shape {}, which does not match bottom 1's {} outside axis {axis}",
                    k + 1,
                    fmt_shape(s),
                    fmt_shape(first)
                ))
                .help("all inputs of a Concat must agree on every axis except the one they are joined along"));
            }
            out[axis] += s[axis];
        }
        Ok(vec![out])
    }
    fn details(&self) -> Vec<String> {
        if self.axis == 1 {
            Vec::new()
        } else {
            vec![format!("axis {}", self.axis)]
        }
    }
    cannot_train!();
}
