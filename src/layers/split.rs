//! `Split`: copies a blob to several tops; backward sums their gradients. The engine
//! inserts one wherever a blob feeds more than one layer that needs its gradient.

use super::{first, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

pub static TYPE: LayerType = LayerType {
    name: "Split",
    kind: Kind::Other,
    bottoms: Arity::Exactly(1),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: true,
    build: |spec| {
        Ok(Box::new(Split {
            tops: spec.tops.len(),
        }))
    },
};

#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub tops: usize,
}

impl Layer for Split {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![first(bottoms)?.clone(); self.tops])
    }
    fn lower(&self, _b: &[Shape], _c: &ShapeCtx, _r: &mut Rng) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(SplitOp))
    }
}

#[derive(Debug)]
pub struct SplitOp;

impl Op for SplitOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        for t in tops.iter_mut() {
            t.data.copy_from_slice(&bottoms[0].data);
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let dx = &mut bottoms[0].diff;
        dx.copy_from_slice(&tops[0].diff);
        for t in &tops[1..] {
            dx.iter_mut().zip(&t.diff).for_each(|(a, b)| *a += b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;

    #[test]
    fn copies_and_sums() {
        check_op(
            &mut SplitOp,
            &[vec![3, 4]],
            &[vec![3, 4], vec![3, 4], vec![3, 4]],
        );
    }
}
