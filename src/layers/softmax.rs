//! `Softmax` along `axis` (default 1), with the numerically stable max shift.

use super::{canonical_axis, first, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

pub static TYPE: LayerType = LayerType {
    name: "Softmax",
    kind: Kind::Neuron,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |spec| {
        let axis = spec
            .msg
            .msg("softmax_param")
            .and_then(|p| p.int("axis"))
            .unwrap_or(1);
        Ok(Box::new(Softmax { axis }))
    },
};

#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    pub axis: i128,
}

/// (outer, channels, inner) of a blob split at `axis`.
pub fn split_at_axis(shape: &[usize], axis: i128) -> Result<(usize, usize, usize), LayerError> {
    let a = canonical_axis(axis, shape.len())?;
    Ok((
        shape[..a].iter().product(),
        shape[a],
        shape[a + 1..].iter().product(),
    ))
}

/// Softmax of `x` into `y` over the middle axis of (outer, channels, inner).
pub fn softmax(x: &[f32], y: &mut [f32], (outer, ch, inner): (usize, usize, usize)) {
    for o in 0..outer {
        let base = o * ch * inner;
        for i in 0..inner {
            let at = |c: usize| base + c * inner + i;
            let mut m = f32::NEG_INFINITY;
            for c in 0..ch {
                m = m.max(x[at(c)]);
            }
            let mut sum = 0.0;
            for c in 0..ch {
                let e = (x[at(c)] - m).exp();
                y[at(c)] = e;
                sum += e;
            }
            for c in 0..ch {
                y[at(c)] /= sum;
            }
        }
    }
}

impl Layer for Softmax {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let b = first(bottoms)?;
        canonical_axis(self.axis, b.len())?;
        Ok(vec![b.clone()])
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let axis = canonical_axis(self.axis, bottoms[0].rank())?;
        Ok(vec![
            candle_nn::ops::softmax(&bottoms[0], axis).map_err(super::candle_err)?
        ])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _c: &ShapeCtx,
        _r: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(SoftmaxOp {
            dims: split_at_axis(first(bottoms)?, self.axis)?,
        }))
    }
}

#[derive(Debug)]
pub struct SoftmaxOp {
    dims: (usize, usize, usize),
}

impl Op for SoftmaxOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        softmax(&bottoms[0].data, &mut tops[0].data, self.dims);
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        // dx = y ⊙ (dy − Σ_c dy·y)
        let (outer, ch, inner) = self.dims;
        let (y, dy) = (&tops[0].data, &tops[0].diff);
        let dx = &mut bottoms[0].diff;
        for o in 0..outer {
            for i in 0..inner {
                let at = |c: usize| o * ch * inner + c * inner + i;
                let dot: f32 = (0..ch).map(|c| dy[at(c)] * y[at(c)]).sum();
                for c in 0..ch {
                    dx[at(c)] = y[at(c)] * (dy[at(c)] - dot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;

    #[test]
    fn sums_to_one_and_gradients() {
        let mut y = vec![0.0; 6];
        softmax(&[1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0], &mut y, (2, 3, 1));
        assert!((y[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((y[2] - 0.665_240_9).abs() < 1e-5);
        assert!((y[3] - 1.0 / 3.0).abs() < 1e-6, "large logits stay finite");
        check_op(
            &mut SoftmaxOp { dims: (2, 5, 3) },
            &[vec![2, 5, 3]],
            &[vec![2, 5, 3]],
        );
    }
}
