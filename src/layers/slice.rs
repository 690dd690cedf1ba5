//! Slice: splits its bottom along `axis` at `slice_point`s (or evenly); netc cannot train
//! it yet.

use super::shape_only::{self, cannot_train, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::spec::Span;

#[derive(Debug)]
pub struct Slice {
    axis: i64,
    points: Vec<usize>,
    tops: usize,
    span: Span,
}

pub static TYPE: LayerType = LayerType {
    name: "Slice",
    kind: Kind::Other,
    bottoms: Arity::Exactly(1),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "slice_param");
        let axis = match m.int("slice_dim") {
            Some(d) if !m.has("axis") => d as i64,
            _ => shape_only::int(m, "axis", 1),
        };
        let points = m.usizes("slice_point");
        let span = span_of(m, "slice_point", &l.name_span);
        if !points.is_empty() && points.len() + 1 != l.tops.len() {
            return Err(LayerError::new(format!(
                "{} slice points for {} tops",
                points.len(),
                l.tops.len()
            ))
            .at(span)
            .help("give one slice point fewer than tops"));
        }
        if points.windows(2).any(|w| w[1] <= w[0]) {
            return Err(LayerError::new("slice points must increase").at(span));
        }
        Ok(Box::new(Slice {
            axis,
            points,
            tops: l.tops.len(),
            span,
        }))
    },
};

impl Layer for Slice {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        let axis = shape_only::axis(self.axis, s.len(), None)?;
        let dim = s[axis];
        let sizes: Vec<usize> = if self.points.is_empty() {
            if self.tops == 0 || dim % self.tops != 0 {
                return Err(LayerError::new(format!(
                    "axis {axis} of {} ({dim}) does not split evenly into {} tops",
                    fmt_shape(s),
                    self.tops
                )));
            }
            vec![dim / self.tops; self.tops]
        } else {
            if self.points.last().is_some_and(|&p| p >= dim) {
                return Err(LayerError::new(format!(
                    "slice point past the end of axis {axis} ({dim})"
                ))
                .at(self.span.clone()));
            }
            let mut prev = 0;
            let mut v = Vec::new();
            for &p in self.points.iter().chain(std::iter::once(&dim)) {
                v.push(p - prev);
                prev = p;
            }
            v
        };
        Ok(sizes
            .into_iter()
            .map(|n| {
                let mut o = s.clone();
                o[axis] = n;
                o
            })
            .collect())
    }
    cannot_train!();
}
