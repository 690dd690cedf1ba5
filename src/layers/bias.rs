//! Bias: adds a learned bias (or, with two bottoms, the second bottom) broadcast from `axis`
//! over `num_axes` axes. The learned bias starts at 0 unless a filler is given, as in Caffe.

use super::filler::Filler;
use super::param_mults;
use super::scale::{check_second, factor_shape};
use super::shape_only::{self, param};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Param, Rng};
use crate::layers::filler::learned;

#[derive(Debug)]
pub struct Bias {
    axis: i64,
    num_axes: i64,
    filler: Filler,
    mults: Vec<(f32, f32)>,
}

pub static TYPE: LayerType = LayerType {
    name: "Bias",
    kind: Kind::Normalization,
    bottoms: Arity::Range(1, 2),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |l| {
        let m = param(l, "bias_param");
        Ok(Box::new(Bias {
            axis: shape_only::int(m, "axis", 1),
            num_axes: shape_only::int(m, "num_axes", 1),
            filler: Filler::parse(m, "filler", Filler::Constant(0.0))?,
            mults: param_mults(l, 1),
        }))
    },
};

impl Layer for Bias {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        factor_shape(s, self.axis, self.num_axes)?;
        check_second(bottoms, self.axis)?;
        Ok(vec![s.clone()])
    }
    fn param_shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        match bottoms {
            [s] => factor_shape(s, self.axis, self.num_axes)
                .map(|f| vec![f])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let s = shape_only::first(bottoms)?;
        self.shapes(bottoms, ctx)?;
        // The bias's shape: the learned one's, or the second bottom's.
        let f = match bottoms {
            [_, b] => b.clone(),
            _ => factor_shape(s, self.axis, self.num_axes)?,
        };
        let a = if s.is_empty() {
            0
        } else {
            shape_only::axis(self.axis, s.len(), None)?
        };
        let dim: usize = f.iter().product();
        let inner: usize = s[(a + f.len()).min(s.len())..].iter().product();
        // A second bottom is the bias; otherwise it is learned.
        let shapes = if bottoms.len() == 1 {
            vec![f]
        } else {
            Vec::new()
        };
        let params = learned(&shapes, &[&self.filler], &self.mults, rng);
        Ok(Box::new(BiasOp { dim, inner, params }))
    }
}

/// y = x + b, b (learned, or the second bottom) broadcast over the outer axes and `inner`.
#[derive(Debug)]
pub struct BiasOp {
    dim: usize,
    inner: usize,
    params: Vec<Param>,
}

impl Op for BiasOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let b = match self.params.first() {
            Some(p) => &p.blob.data,
            None => &bottoms[1].data,
        };
        let rows = tops[0]
            .data
            .chunks_mut(self.inner.max(1))
            .zip(bottoms[0].data.chunks(self.inner.max(1)));
        for (k, (y, x)) in rows.enumerate() {
            let shift = b[k % self.dim];
            y.iter_mut().zip(x).for_each(|(y, x)| *y = x + shift);
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let dy = &tops[0].diff;
        let mut db = vec![0.0f32; self.dim];
        for (k, g) in dy.chunks(self.inner.max(1)).enumerate() {
            db[k % self.dim] += g.iter().sum::<f32>();
        }
        match self.params.first_mut() {
            Some(p) => p.blob.diff.copy_from_slice(&db),
            None => {
                if prop_down.get(1).copied().unwrap_or(false) {
                    bottoms[1].diff.copy_from_slice(&db);
                }
            }
        }
        if prop_down.first().copied().unwrap_or(false) {
            bottoms[0].diff.copy_from_slice(dy);
        }
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_op, check_op_with};
    use rand::SeedableRng;

    fn bias() -> Bias {
        Bias {
            axis: 1,
            num_axes: 1,
            filler: Filler::Constant(0.0),
            mults: vec![(1.0, 1.0)],
        }
    }

    #[test]
    fn learned_bias_starts_at_zero_and_gradients_match() {
        let b = vec![vec![2, 3, 2, 2]];
        let mut op = bias()
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        let x = Blob {
            data: (0..24).map(|i| i as f32).collect(),
            ..Blob::zeros(&b[0])
        };
        let mut y = Blob::zeros(&b[0]);
        op.forward(&[&x], &mut [&mut y], true);
        assert_eq!(y.data, x.data);
        op.params_mut()[0].blob.data = vec![0.5, -1.0, 2.0];
        op.forward(&[&x], &mut [&mut y], true);
        assert_eq!((y.data[0], y.data[4], y.data[8]), (0.5, 3.0, 10.0));
        check_op(op.as_mut(), &b, &b);
    }

    #[test]
    fn a_second_bottom_is_the_bias() {
        let b = vec![vec![2, 3, 2, 2], vec![3]];
        let mut op = bias()
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        assert!(op.params().is_empty());
        check_op_with(op.as_mut(), &b, &[b[0].clone()], &[true, true], true);
    }
}
