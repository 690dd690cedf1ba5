//! `SoftmaxWithLoss`: softmax and multinomial logistic loss in one pass, with Caffe's
//! `ignore_label` and normalization (VALID by default).

use super::softmax::{softmax, split_at_axis};
use super::{
    first, loss_weights_of, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx,
};
use crate::engine::{Blob, Op, Rng};
use crate::spec::LayerSpec;

pub static TYPE: LayerType = LayerType {
    name: "SoftmaxWithLoss",
    kind: Kind::Loss,
    bottoms: Arity::Exactly(2),
    tops: Arity::Range(1, 2),
    in_place: false,
    runnable: true,
    build: |spec| Ok(Box::new(SoftmaxWithLoss::parse(spec)?)),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    Full,
    Valid,
    BatchSize,
    None,
}

#[derive(Debug, Clone)]
pub struct SoftmaxWithLoss {
    pub axis: i128,
    pub ignore_label: Option<i64>,
    pub normalization: Normalization,
    pub loss_weights: Vec<f32>,
}

impl SoftmaxWithLoss {
    fn parse(spec: &LayerSpec) -> Result<SoftmaxWithLoss, LayerError> {
        let axis = spec
            .msg
            .msg("softmax_param")
            .and_then(|p| p.int("axis"))
            .unwrap_or(1);
        let mut ignore_label = None;
        let mut normalization = Normalization::Valid;
        if let Some(p) = spec.msg.msg("loss_param") {
            ignore_label = p.int("ignore_label").map(|v| v as i64);
            if p.has("normalization") {
                normalization = match p.ident("normalization") {
                    Some("FULL") => Normalization::Full,
                    Some("VALID") => Normalization::Valid,
                    Some("BATCH_SIZE") => Normalization::BatchSize,
                    Some("NONE") => Normalization::None,
                    _ => {
                        return Err(LayerError::new("unknown loss normalization")
                            .at(span_of(p, "normalization"))
                            .help("use FULL, VALID, BATCH_SIZE or NONE"))
                    }
                };
            } else if p.boolean("normalize") == Some(false) {
                normalization = Normalization::BatchSize;
            }
        }
        Ok(SoftmaxWithLoss {
            axis,
            ignore_label,
            normalization,
            loss_weights: loss_weights_of(spec, 1.0),
        })
    }
}

impl Layer for SoftmaxWithLoss {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let b = first(bottoms)?;
        let (outer, _, inner) = split_at_axis(b, self.axis)?;
        if let Some(l) = bottoms.get(1) {
            let n: usize = l.iter().product();
            if n != outer * inner {
                return Err(LayerError::new(format!(
                    "{n} labels for {} predictions (shape {:?})",
                    outer * inner,
                    b
                ))
                .help("the label blob must have one label per prediction"));
            }
        }
        let mut tops = vec![vec![1]];
        if self.loss_weights.len() > 1 {
            tops.push(b.clone());
        }
        Ok(tops)
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
        if self.axis != 1 || self.ignore_label.is_some() || bottoms[0].rank() != 2 {
            return Err(LayerError::new(
                "the candle path computes SoftmaxWithLoss over N×C scores without ignore_label",
            ));
        }
        let e = super::candle_err;
        let labels = bottoms[1]
            .flatten_all()
            .and_then(|l| l.to_dtype(candle_core::DType::U32))
            .map_err(e)?;
        let logp = candle_nn::ops::log_softmax(&bottoms[0], 1).map_err(e)?;
        let picked = logp
            .gather(&labels.unsqueeze(1).map_err(e)?, 1)
            .map_err(e)?;
        let loss = picked
            .mean_all()
            .and_then(|m| m.neg())
            .and_then(|m| m.reshape(1))
            .map_err(e)?;
        Ok(vec![loss])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _c: &ShapeCtx,
        _r: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let b = first(bottoms)?;
        let dims = split_at_axis(b, self.axis)?;
        Ok(Box::new(SoftmaxLossOp {
            dims,
            ignore: self.ignore_label,
            normalization: self.normalization,
            prob: vec![0.0; b.iter().product()],
            normalizer: 1.0,
        }))
    }
}

#[derive(Debug)]
pub struct SoftmaxLossOp {
    dims: (usize, usize, usize),
    ignore: Option<i64>,
    normalization: Normalization,
    prob: Vec<f32>,
    normalizer: f32,
}

impl Op for SoftmaxLossOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let (outer, ch, inner) = self.dims;
        softmax(&bottoms[0].data, &mut self.prob, self.dims);
        let labels = &bottoms[1].data;
        let mut loss = 0.0f64;
        let mut valid = 0usize;
        for o in 0..outer {
            for i in 0..inner {
                let l = labels[o * inner + i] as i64;
                if Some(l) == self.ignore {
                    continue;
                }
                let c = (l.max(0) as usize).min(ch - 1);
                let p = self.prob[o * ch * inner + c * inner + i];
                // NaN scores give a NaN loss (max() would hide them), so divergence shows.
                loss -= if p.is_nan() {
                    f64::NAN
                } else {
                    (p.max(f32::MIN_POSITIVE) as f64).ln()
                };
                valid += 1;
            }
        }
        self.normalizer = match self.normalization {
            Normalization::Full => (outer * inner) as f32,
            Normalization::Valid => valid as f32,
            Normalization::BatchSize => outer as f32,
            Normalization::None => 1.0,
        }
        .max(1.0);
        tops[0].data[0] = (loss / self.normalizer as f64) as f32;
        if let Some(t) = tops.get_mut(1) {
            t.data.copy_from_slice(&self.prob);
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let (outer, ch, inner) = self.dims;
        let scale = tops[0].diff[0] / self.normalizer;
        let labels = bottoms[1].data.clone();
        let dx = &mut bottoms[0].diff;
        dx.copy_from_slice(&self.prob);
        for o in 0..outer {
            for i in 0..inner {
                let l = labels[o * inner + i] as i64;
                if Some(l) == self.ignore {
                    for c in 0..ch {
                        dx[o * ch * inner + c * inner + i] = 0.0;
                    }
                    continue;
                }
                let c = (l.max(0) as usize).min(ch - 1);
                dx[o * ch * inner + c * inner + i] -= 1.0;
            }
        }
        dx.iter_mut().for_each(|v| *v *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op_blobs;

    fn op(n: usize, ch: usize, ignore: Option<i64>) -> SoftmaxLossOp {
        SoftmaxLossOp {
            dims: (n, ch, 1),
            ignore,
            normalization: Normalization::Valid,
            prob: vec![0.0; n * ch],
            normalizer: 1.0,
        }
    }

    #[test]
    fn loss_value_is_mean_negative_log_likelihood() {
        let mut o = op(2, 3, None);
        let mut x = Blob::zeros(&[2, 3]);
        x.data = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        let mut l = Blob::zeros(&[2]);
        l.data = vec![2.0, 0.0];
        let mut top = Blob::zeros(&[1]);
        o.forward(&[&x, &l], &mut [&mut top], true);
        let want = (-(0.665_240_9f32).ln() - (1.0f32 / 3.0).ln()) / 2.0;
        assert!(
            (top.data[0] - want).abs() < 1e-5,
            "{} vs {want}",
            top.data[0]
        );
    }

    #[test]
    fn gradients_match_finite_differences_with_ignored_labels() {
        for ignore in [None, Some(1)] {
            let mut o = op(4, 5, ignore);
            let mut x = Blob::zeros(&[4, 5]);
            x.data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i as f32 * 0.37).sin());
            let mut l = Blob::zeros(&[4]);
            l.data = vec![0.0, 1.0, 4.0, 2.0];
            let mut bs = vec![x, l];
            check_op_blobs(&mut o, &mut bs, &[vec![1]], &[true, false], true);
        }
    }
}
