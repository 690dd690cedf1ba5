//! `EuclideanLoss`: `Σ (a − b)² / (2N)` over a batch of N, with gradients to both bottoms.

use super::{first, loss_weights_of, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

pub static TYPE: LayerType = LayerType {
    name: "EuclideanLoss",
    kind: Kind::Loss,
    bottoms: Arity::Exactly(2),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: true,
    build: |spec| {
        Ok(Box::new(EuclideanLoss {
            loss_weights: loss_weights_of(spec, 1.0),
        }))
    },
};

#[derive(Debug, Clone)]
pub struct EuclideanLoss {
    pub loss_weights: Vec<f32>,
}

impl Layer for EuclideanLoss {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let a = first(bottoms)?;
        if let Some(b) = bottoms.get(1) {
            let (na, nb) = (a.iter().product::<usize>(), b.iter().product::<usize>());
            if na != nb {
                return Err(LayerError::new(format!(
                    "the two bottoms hold {na} and {nb} values; EuclideanLoss needs equal counts"
                )));
            }
        }
        Ok(vec![vec![1]])
    }
    fn loss_weights(&self) -> Vec<f32> {
        self.loss_weights.clone()
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let e = super::candle_err;
        let n = bottoms[0].dims().first().copied().unwrap_or(1).max(1);
        let b = bottoms[1].reshape(bottoms[0].shape()).map_err(e)?;
        let loss = (&bottoms[0] - &b)
            .and_then(|d| d.sqr())
            .and_then(|d| d.sum_all())
            .and_then(|d| d.affine(1.0 / (2.0 * n as f64), 0.0))
            .and_then(|d| d.reshape(1))
            .map_err(e)?;
        Ok(vec![loss])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _c: &ShapeCtx,
        _r: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let n = first(bottoms)?.first().copied().unwrap_or(1).max(1);
        Ok(Box::new(EuclideanOp {
            n,
            diff: vec![0.0; first(bottoms)?.iter().product()],
        }))
    }
}

#[derive(Debug)]
pub struct EuclideanOp {
    n: usize,
    /// a − b from the forward pass.
    diff: Vec<f32>,
}

impl Op for EuclideanOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let mut sum = 0.0f64;
        for ((d, a), b) in self
            .diff
            .iter_mut()
            .zip(&bottoms[0].data)
            .zip(&bottoms[1].data)
        {
            *d = a - b;
            sum += (*d as f64) * (*d as f64);
        }
        tops[0].data[0] = (sum / (2.0 * self.n as f64)) as f32;
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let scale = tops[0].diff[0] / self.n as f32;
        for (i, sign) in [(0usize, 1.0f32), (1, -1.0)] {
            if prop_down.get(i).copied().unwrap_or(false) {
                for (g, d) in bottoms[i].diff.iter_mut().zip(&self.diff) {
                    *g = sign * scale * d;
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
    fn value_and_gradients() {
        let mut op = EuclideanOp {
            n: 2,
            diff: vec![0.0; 6],
        };
        let mut a = Blob::zeros(&[2, 3]);
        a.data = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        let b = Blob::zeros(&[2, 3]);
        let mut t = Blob::zeros(&[1]);
        op.forward(&[&a, &b], &mut [&mut t], true);
        assert!((t.data[0] - 14.0 / 4.0).abs() < 1e-6);
        check_op(
            &mut EuclideanOp {
                n: 3,
                diff: vec![0.0; 12],
            },
            &[vec![3, 4], vec![3, 4]],
            &[vec![1]],
        );
    }
}
