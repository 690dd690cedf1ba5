//! `ReLU`: `max(x, 0) + negative_slope · min(x, 0)`; runs in place.

use rayon::prelude::*;

use super::{first, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

pub static TYPE: LayerType = LayerType {
    name: "ReLU",
    kind: Kind::Neuron,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |spec| {
        let slope = spec
            .msg
            .msg("relu_param")
            .and_then(|p| p.float("negative_slope"))
            .unwrap_or(0.0) as f32;
        Ok(Box::new(Relu {
            negative_slope: slope,
        }))
    },
};

#[derive(Debug, Clone, Copy)]
pub struct Relu {
    pub negative_slope: f32,
}

/// Work split into pieces of this many values across threads.
const GRAIN: usize = 1 << 15;

impl Layer for Relu {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![first(bottoms)?.clone()])
    }
    fn details(&self) -> Vec<String> {
        if self.negative_slope != 0.0 {
            vec![format!("slope {}", self.negative_slope)]
        } else {
            vec![]
        }
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let x = &bottoms[0];
        let y = if self.negative_slope == 0.0 {
            x.relu()
        } else {
            // max(x, 0) + slope·min(x, 0) = relu(x) − slope·relu(−x)
            x.neg()
                .and_then(|n| n.relu())
                .and_then(|n| n.affine(self.negative_slope as f64, 0.0))
                .and_then(|n| x.relu()?.sub(&n))
        };
        Ok(vec![y.map_err(super::candle_err)?])
    }
    fn lower(&self, _b: &[Shape], _c: &ShapeCtx, _r: &mut Rng) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(*self))
    }
}

impl Op for Relu {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let s = self.negative_slope;
        tops[0]
            .data
            .par_chunks_mut(GRAIN)
            .zip(bottoms[0].data.par_chunks(GRAIN))
            .for_each(|(y, x)| {
                for (y, x) in y.iter_mut().zip(x) {
                    *y = if *x > 0.0 { *x } else { *x * s };
                }
            });
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let s = self.negative_slope;
        let b = &mut *bottoms[0];
        b.diff
            .par_chunks_mut(GRAIN)
            .zip(b.data.par_chunks(GRAIN))
            .zip(tops[0].diff.par_chunks(GRAIN))
            .for_each(|((dx, x), dy)| {
                for ((dx, x), dy) in dx.iter_mut().zip(x).zip(dy) {
                    *dx = if *x > 0.0 { *dy } else { *dy * s };
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op_blobs;

    #[test]
    fn values_and_gradients() {
        let mut r = Relu {
            negative_slope: 0.1,
        };
        let mut x = Blob::zeros(&[1, 4]);
        x.data = vec![-2.0, -0.5, 0.5, 3.0];
        let mut y = Blob::zeros(&[1, 4]);
        r.forward(&[&x], &mut [&mut y], true);
        assert_eq!(y.data, vec![-0.2, -0.05, 0.5, 3.0]);
        // Inputs kept away from the kink at 0, where finite differences are meaningless.
        for slope in [0.1, 0.0] {
            let mut x = Blob::zeros(&[2, 3, 4, 5]);
            for (i, v) in x.data.iter_mut().enumerate() {
                let s = (i as f32 * 0.618).fract();
                *v = if i % 2 == 0 { 0.05 + s } else { -0.05 - s };
            }
            let mut bs = vec![x];
            check_op_blobs(
                &mut Relu {
                    negative_slope: slope,
                },
                &mut bs,
                &[vec![2, 3, 4, 5]],
                &[true],
                true,
            );
        }
    }
}
