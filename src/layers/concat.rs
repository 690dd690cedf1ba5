//! Concat: joins its bottoms along `axis` (Caffe's `concat_param`); backward hands each
//! bottom its slice of the gradient.

use super::shape_only::{self, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};
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
    runnable: true,
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
    fn lower(
        &self,
        bottoms: &[Shape],
        _ctx: &ShapeCtx,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let first = shape_only::first(bottoms)?;
        let axis = shape_only::axis(self.axis, first.len(), self.axis_span.clone())?;
        let outer = first[..axis].iter().product();
        // Elements per outer index that each bottom contributes.
        let widths = bottoms.iter().map(|s| s[axis..].iter().product()).collect();
        Ok(Box::new(ConcatOp { outer, widths }))
    }
}

#[derive(Debug)]
pub struct ConcatOp {
    outer: usize,
    widths: Vec<usize>,
}

/// Concat's forward and Slice's backward: each outer index's run of `whole` is the
/// pieces' runs (`widths[k]` values of piece k) one after another.
pub(crate) fn join<'a>(
    outer: usize,
    widths: &[usize],
    pieces: impl Iterator<Item = &'a [f32]>,
    whole: &mut [f32],
) {
    let total: usize = widths.iter().sum();
    let mut off = 0;
    for (p, &w) in pieces.zip(widths) {
        for o in 0..outer {
            whole[o * total + off..o * total + off + w].copy_from_slice(&p[o * w..(o + 1) * w]);
        }
        off += w;
    }
}

/// Slice's forward and Concat's backward, the other way round from [`join`]; a `None`
/// piece is skipped.
pub(crate) fn split<'a>(
    outer: usize,
    widths: &[usize],
    whole: &[f32],
    pieces: impl Iterator<Item = Option<&'a mut [f32]>>,
) {
    let total: usize = widths.iter().sum();
    let mut off = 0;
    for (p, &w) in pieces.zip(widths) {
        if let Some(p) = p {
            for o in 0..outer {
                p[o * w..(o + 1) * w].copy_from_slice(&whole[o * total + off..o * total + off + w]);
            }
        }
        off += w;
    }
}

impl Op for ConcatOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let pieces = bottoms.iter().map(|b| b.data.as_slice());
        join(self.outer, &self.widths, pieces, &mut tops[0].data);
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let pieces = bottoms.iter_mut().enumerate().map(|(k, b)| {
            prop_down
                .get(k)
                .copied()
                .unwrap_or(false)
                .then_some(b.diff.as_mut_slice())
        });
        split(self.outer, &self.widths, &tops[0].diff, pieces);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;
    use rand::SeedableRng;

    #[test]
    fn concat_channels_forward_and_gradient() {
        let c = Concat {
            axis: 1,
            axis_span: None,
        };
        let b = vec![vec![2, 1, 2, 2], vec![2, 3, 2, 2]];
        assert_eq!(
            c.shapes(&b, &ShapeCtx::default()),
            Ok(vec![vec![2, 4, 2, 2]])
        );
        let mut op = c
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        check_op(op.as_mut(), &b, &[vec![2, 4, 2, 2]]);
        let (x0, x1) = (
            Blob {
                data: vec![1.0; 8],
                ..Blob::zeros(&b[0])
            },
            Blob {
                data: vec![2.0; 24],
                ..Blob::zeros(&b[1])
            },
        );
        let mut y = Blob::zeros(&[2, 4, 2, 2]);
        op.forward(&[&x0, &x1], &mut [&mut y], true);
        assert_eq!(&y.data[..8], &[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
        assert_eq!(y.data[16], 1.0);
    }
}
