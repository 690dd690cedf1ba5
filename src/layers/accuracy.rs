//! `Accuracy`: the fraction of samples whose label is among the `top_k` highest scores
//! (Caffe's rule, ties counted against the label), with an optional per-class top.

use super::softmax::split_at_axis;
use super::{first, positive, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

pub static TYPE: LayerType = LayerType {
    name: "Accuracy",
    kind: Kind::Loss,
    bottoms: Arity::Exactly(2),
    tops: Arity::Range(1, 2),
    in_place: false,
    runnable: true,
    build: |spec| {
        let empty = crate::spec::Message::default();
        let p = spec.msg.msg("accuracy_param").unwrap_or(&empty);
        Ok(Box::new(Accuracy {
            top_k: positive(p, "top_k")?.unwrap_or(1),
            axis: p.int("axis").unwrap_or(1),
            ignore_label: p.int("ignore_label").map(|v| v as i64),
            tops: spec.tops.len(),
            top_k_span: p.get("top_k").map(|f| f.value_span.clone()),
        }))
    },
};

#[derive(Debug, Clone)]
pub struct Accuracy {
    pub top_k: usize,
    pub axis: i128,
    pub ignore_label: Option<i64>,
    pub tops: usize,
    top_k_span: Option<crate::spec::Span>,
}

impl Layer for Accuracy {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let b = first(bottoms)?;
        let (outer, ch, inner) = split_at_axis(b, self.axis)?;
        if self.top_k > ch {
            let mut e = LayerError::new(format!("top_k {} is above the {ch} classes", self.top_k))
                .help(format!("use top_k between 1 and {ch}"));
            if let Some(s) = &self.top_k_span {
                e = e.at(s.clone());
            }
            return Err(e);
        }
        if let Some(l) = bottoms.get(1) {
            if l.iter().product::<usize>() != outer * inner {
                return Err(LayerError::new(
                    "the label blob must have one label per prediction",
                ));
            }
        }
        let mut t = vec![vec![1]];
        if self.tops > 1 {
            t.push(vec![ch]);
        }
        Ok(t)
    }
    fn details(&self) -> Vec<String> {
        if self.top_k != 1 {
            vec![format!("top {}", self.top_k)]
        } else {
            vec![]
        }
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _c: &ShapeCtx,
        _r: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(AccuracyOp {
            dims: split_at_axis(first(bottoms)?, self.axis)?,
            top_k: self.top_k,
            ignore: self.ignore_label,
        }))
    }
}

#[derive(Debug)]
pub struct AccuracyOp {
    dims: (usize, usize, usize),
    top_k: usize,
    ignore: Option<i64>,
}

impl Op for AccuracyOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let (outer, ch, inner) = self.dims;
        let (x, labels) = (&bottoms[0].data, &bottoms[1].data);
        let mut hits = 0usize;
        let mut count = 0usize;
        let mut per_class = vec![(0usize, 0usize); ch];
        for o in 0..outer {
            for i in 0..inner {
                let l = labels[o * inner + i] as i64;
                if Some(l) == self.ignore || l < 0 || l as usize >= ch {
                    continue;
                }
                let at = |c: usize| x[o * ch * inner + c * inner + i];
                let truth = at(l as usize);
                let better = (0..ch)
                    .filter(|&c| c != l as usize && at(c) >= truth)
                    .count();
                let hit = !truth.is_nan() && better < self.top_k;
                hits += hit as usize;
                count += 1;
                per_class[l as usize].1 += 1;
                per_class[l as usize].0 += hit as usize;
            }
        }
        tops[0].data[0] = if count == 0 {
            0.0
        } else {
            hits as f32 / count as f32
        };
        if let Some(t) = tops.get_mut(1) {
            for (v, (h, n)) in t.data.iter_mut().zip(per_class) {
                *v = if n == 0 { 0.0 } else { h as f32 / n as f32 };
            }
        }
    }
    fn backward(&mut self, _t: &[&Blob], _b: &mut [&mut Blob], _p: &[bool]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_and_top2_with_ties_against_the_label() {
        let mut x = Blob::zeros(&[3, 3]);
        x.data = vec![
            0.1, 0.7, 0.2, /* */ 0.5, 0.5, 0.0, /* */ 0.3, 0.2, 0.5,
        ];
        let mut l = Blob::zeros(&[3]);
        l.data = vec![1.0, 0.0, 1.0];
        let mut t = Blob::zeros(&[1]);
        let mut per = Blob::zeros(&[3]);
        let mut a = AccuracyOp {
            dims: (3, 3, 1),
            top_k: 1,
            ignore: None,
        };
        a.forward(&[&x, &l], &mut [&mut t, &mut per], false);
        // Sample 0 right; sample 1 a tie (counted wrong, as Caffe does); sample 2 wrong.
        assert!((t.data[0] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(per.data, vec![0.0, 0.5, 0.0]);
        let mut a2 = AccuracyOp {
            dims: (3, 3, 1),
            top_k: 2,
            ignore: None,
        };
        a2.forward(&[&x, &l], &mut [&mut t], false);
        assert!((t.data[0] - 2.0 / 3.0).abs() < 1e-6);
    }
}
