//! Flatten: collapses axes `axis..=end_axis` into one (a copy in netc's engine, a reshape
//! in candle).

use super::shape_only::{self, param};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Flatten {
    axis: i64,
    end_axis: i64,
}

pub static TYPE: LayerType = LayerType {
    name: "Flatten",
    kind: Kind::Other,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: true,
    build: |l| {
        let m = param(l, "flatten_param");
        Ok(Box::new(Flatten {
            axis: shape_only::int(m, "axis", 1),
            end_axis: shape_only::int(m, "end_axis", -1),
        }))
    },
};

impl Layer for Flatten {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        let a = shape_only::axis(self.axis, s.len(), None)?;
        let e = shape_only::axis(self.end_axis, s.len(), None)?;
        if e < a {
            return Err(LayerError::new(format!(
                "end_axis {e} comes before axis {a}"
            )));
        }
        let mut out = s[..a].to_vec();
        out.push(s[a..=e].iter().product());
        out.extend(&s[e + 1..]);
        Ok(vec![out])
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

/// Flatten's and Reshape's op: the same values under another shape.
#[derive(Debug)]
pub struct CopyOp;

impl crate::engine::Op for CopyOp {
    fn forward(
        &mut self,
        bottoms: &[&crate::engine::Blob],
        tops: &mut [&mut crate::engine::Blob],
        _train: bool,
    ) {
        tops[0].data.copy_from_slice(&bottoms[0].data);
    }
    fn backward(
        &mut self,
        tops: &[&crate::engine::Blob],
        bottoms: &mut [&mut crate::engine::Blob],
        prop_down: &[bool],
    ) {
        if prop_down.first().copied().unwrap_or(false) {
            bottoms[0].diff.copy_from_slice(&tops[0].diff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;

    #[test]
    fn flatten_shape_and_gradient() {
        let f = Flatten {
            axis: 1,
            end_axis: -1,
        };
        let ctx = ShapeCtx::default();
        assert_eq!(
            f.shapes(&[vec![2, 3, 4, 5]], &ctx).unwrap(),
            vec![vec![2, 60]]
        );
        check_op(&mut CopyOp, &[vec![2, 3, 4, 5]], &[vec![2, 60]]);
    }
}
