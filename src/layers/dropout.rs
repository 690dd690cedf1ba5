//! `Dropout`: in training, zeroes each value with probability `dropout_ratio` and scales
//! the rest by 1/(1 − ratio) (Caffe's inverted dropout); at test time, the identity.

use rand::Rng as _;

use super::filler::child_rng;
use super::{first, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

pub static TYPE: LayerType = LayerType {
    name: "Dropout",
    kind: Kind::Neuron,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |spec| {
        let p = spec.msg.msg("dropout_param");
        let ratio = p.and_then(|p| p.float("dropout_ratio")).unwrap_or(0.5);
        if !(0.0..1.0).contains(&ratio) {
            let mut e = LayerError::new(format!("dropout_ratio must be in [0, 1), not {ratio}"))
                .help("the fraction of values dropped in training, e.g. 0.5");
            if let Some(p) = p {
                e = e.at(span_of(p, "dropout_ratio"));
            }
            return Err(e);
        }
        Ok(Box::new(Dropout {
            ratio: ratio as f32,
        }))
    },
};

#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub ratio: f32,
}

impl Layer for Dropout {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![first(bottoms)?.clone()])
    }
    fn details(&self) -> Vec<String> {
        vec![format!("ratio {}", self.ratio)]
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        if train && self.ratio > 0.0 {
            // Inverted dropout, as Caffe: kept values are scaled by 1/(1 − ratio).
            let y = candle_nn::ops::dropout(&bottoms[0], self.ratio).map_err(super::candle_err)?;
            return Ok(vec![y]);
        }
        // Inference: the identity.
        Ok(vec![bottoms[0].clone()])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _c: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let n = first(bottoms)?.iter().product();
        Ok(Box::new(DropoutOp {
            ratio: self.ratio,
            mask: vec![0.0; n],
            rng: child_rng(rng),
            trained: false,
        }))
    }
}

#[derive(Debug)]
pub struct DropoutOp {
    ratio: f32,
    /// 0 or 1/(1 − ratio) per value, drawn in the last training forward pass.
    mask: Vec<f32>,
    rng: Rng,
    trained: bool,
}

impl Op for DropoutOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], train: bool) {
        let (x, y) = (&bottoms[0].data, &mut tops[0].data);
        self.trained = train;
        if !train {
            y.copy_from_slice(x);
            return;
        }
        let scale = 1.0 / (1.0 - self.ratio);
        for ((y, x), m) in y.iter_mut().zip(x).zip(self.mask.iter_mut()) {
            *m = if self.rng.random::<f32>() >= self.ratio {
                scale
            } else {
                0.0
            };
            *y = x * *m;
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let (dy, dx) = (&tops[0].diff, &mut bottoms[0].diff);
        if !self.trained {
            dx.copy_from_slice(dy);
            return;
        }
        for ((dx, dy), m) in dx.iter_mut().zip(dy).zip(&self.mask) {
            *dx = dy * m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drops_about_the_ratio_and_scales_the_rest() {
        let mut op = DropoutOp {
            ratio: 0.25,
            mask: vec![0.0; 10_000],
            rng: Rng::seed_from_u64(9),
            trained: false,
        };
        let mut x = Blob::zeros(&[100, 100]);
        x.data.fill(2.0);
        let mut y = Blob::zeros(&[100, 100]);
        op.forward(&[&x], &mut [&mut y], true);
        let kept = y.data.iter().filter(|v| **v != 0.0).count();
        assert!((7300..7700).contains(&kept), "{kept}");
        assert!(y
            .data
            .iter()
            .all(|v| *v == 0.0 || (*v - 2.0 / 0.75).abs() < 1e-6));
        y.diff.fill(1.0);
        op.backward(&[&y], &mut [&mut x], &[true]);
        assert_eq!(
            x.diff
                .iter()
                .zip(&y.data)
                .filter(|(d, v)| (**d == 0.0) != (**v == 0.0))
                .count(),
            0
        );
        op.forward(&[&x], &mut [&mut y], false);
        assert!(y.data.iter().all(|v| *v == 2.0), "identity at test time");
    }
}
