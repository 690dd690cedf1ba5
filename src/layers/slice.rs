//! Slice: splits its bottom along `axis` at `slice_point`s (or evenly); backward puts each
//! top's gradient back in its part of the bottom's.

use super::concat::{join, split};
use super::shape_only::{self, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};
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
    runnable: true,
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
            return Err(LayerError::new("slice points must increase")
                .at(span)
                .help("list the slice points in increasing order, each where a top starts"));
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
                ))
                .help("give slice_point values, or as many tops as divide the axis"));
            }
            vec![dim / self.tops; self.tops]
        } else {
            if self.points.last().is_some_and(|&p| p >= dim) {
                return Err(LayerError::new(format!(
                    "slice point past the end of axis {axis} ({dim})"
                ))
                .at(self.span.clone())
                .help(format!(
                    "slice points must be below {dim}, the length of the axis"
                )));
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
    fn details(&self) -> Vec<String> {
        if self.axis == 1 {
            Vec::new()
        } else {
            vec![format!("axis {}", self.axis)]
        }
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let s = shape_only::first(bottoms)?;
        let tops = self.shapes(bottoms, ctx)?;
        let axis = shape_only::axis(self.axis, s.len(), None)?;
        Ok(Box::new(SliceOp {
            outer: s[..axis].iter().product(),
            widths: tops.iter().map(|t| t[axis..].iter().product()).collect(),
        }))
    }
}

/// Each outer index's run of the bottom, cut into one piece per top.
#[derive(Debug)]
pub struct SliceOp {
    outer: usize,
    /// Values per outer index that each top takes.
    widths: Vec<usize>,
}

impl Op for SliceOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let pieces = tops.iter_mut().map(|t| Some(t.data.as_mut_slice()));
        split(self.outer, &self.widths, &bottoms[0].data, pieces);
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let pieces = tops.iter().map(|t| t.diff.as_slice());
        join(self.outer, &self.widths, pieces, &mut bottoms[0].diff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;
    use rand::SeedableRng;

    #[test]
    fn slices_channels_at_points_and_evenly() {
        for (points, tops) in [(vec![1, 3], 3), (Vec::new(), 2)] {
            let sl = Slice {
                axis: 1,
                points,
                tops,
                span: 0..0,
            };
            let b = vec![vec![2, 4, 2, 3]];
            let shapes = sl.shapes(&b, &ShapeCtx::default()).unwrap();
            let mut op = sl
                .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
                .expect("lowers");
            check_op(op.as_mut(), &b, &shapes);
            let x = Blob {
                data: (0..48).map(|i| i as f32).collect(),
                ..Blob::zeros(&b[0])
            };
            let mut ys: Vec<Blob> = shapes.iter().map(|s| Blob::zeros(s)).collect();
            let mut refs: Vec<&mut Blob> = ys.iter_mut().collect();
            op.forward(&[&x], &mut refs, true);
            // The second sample's first channel opens the first top's second half.
            let per = ys[0].count() / 2;
            assert_eq!(ys[0].data[per], 24.0);
        }
    }
}
