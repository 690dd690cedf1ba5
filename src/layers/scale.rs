//! Scale: multiplies by a learned (or second-bottom) factor broadcast from `axis` over
//! `num_axes` axes, optionally adding a learned bias. The one-bottom form (learned γ, the
//! BatchNorm companion) runs; the two-bottom form is shaped and drawn only.
//! MACs: one multiply per element.

use super::filler::Filler;
use super::param_mults;
use super::shape_only::{self, fmt_shape, param, per_sample};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Param, Rng};
use crate::layers::filler::learned;

#[derive(Debug)]
pub struct Scale {
    axis: i64,
    num_axes: i64,
    bias: bool,
    filler: Filler,
    bias_filler: Filler,
    mults: Vec<(f32, f32)>,
}

pub static TYPE: LayerType = LayerType {
    name: "Scale",
    kind: Kind::Normalization,
    bottoms: Arity::Range(1, 2),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |l| {
        let m = param(l, "scale_param");
        let bias = m.boolean("bias_term").unwrap_or(false);
        Ok(Box::new(Scale {
            axis: shape_only::int(m, "axis", 1),
            num_axes: shape_only::int(m, "num_axes", 1),
            bias,
            // Caffe's ScaleLayer starts γ at 1 unless a filler is given.
            filler: Filler::parse(m, "filler", Filler::Constant(1.0))?,
            bias_filler: Filler::parse(m, "bias_filler", Filler::Constant(0.0))?,
            mults: param_mults(l, 1 + usize::from(bias)),
        }))
    },
};

/// The factor's shape for `s`: `axis` up to `axis + num_axes` (-1: to the end). Shared
/// with Bias.
pub fn factor_shape(s: &Shape, axis: i64, num_axes: i64) -> Result<Shape, LayerError> {
    let a = if s.is_empty() && axis == 0 {
        0
    } else {
        shape_only::axis(axis, s.len(), None)?
    };
    let end = if num_axes < 0 {
        s.len()
    } else {
        a + num_axes as usize
    };
    if end > s.len() {
        return Err(LayerError::new(format!(
            "axis {a} + num_axes {num_axes} goes past the axes of {}",
            fmt_shape(s)
        )));
    }
    Ok(s[a..end].to_vec())
}

/// With a second bottom, its shape must match the bottom's axes from `axis` on.
pub fn check_second(bottoms: &[Shape], axis: i64) -> Result<(), LayerError> {
    if let [a, b] = bottoms {
        let ax = shape_only::axis(axis, a.len(), None)?;
        if a.len() < ax + b.len() || a[ax..ax + b.len()] != b[..] {
            return Err(LayerError::new(format!(
                "bottom 2 ({}) does not match bottom 1 ({}) from axis {ax}",
                fmt_shape(b),
                fmt_shape(a)
            )));
        }
    }
    Ok(())
}

impl Layer for Scale {
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
        let Some(Ok(f)) = bottoms
            .first()
            .map(|s| factor_shape(s, self.axis, self.num_axes))
        else {
            return Vec::new();
        };
        let mut v = Vec::new();
        if bottoms.len() == 1 {
            v.push(f.clone());
        }
        if self.bias {
            v.push(f);
        }
        v
    }
    fn macs(&self, bottoms: &[Shape], _tops: &[Shape]) -> u64 {
        bottoms.first().map(per_sample).unwrap_or(0)
    }
    fn details(&self) -> Vec<String> {
        if self.bias {
            vec!["with bias".into()]
        } else {
            Vec::new()
        }
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        _ctx: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let s = match bottoms {
            [s] => s,
            _ => return Err(shape_only::cannot_train_error("two-bottom Scale")),
        };
        let f = factor_shape(s, self.axis, self.num_axes)?;
        let a = if s.is_empty() {
            0
        } else {
            shape_only::axis(self.axis, s.len(), None)?
        };
        let dim: usize = f.iter().product();
        let inner: usize = s[a + f.len()..].iter().product();
        let params = learned(
            &vec![f.clone(); 1 + usize::from(self.bias)],
            &[&self.filler, &self.bias_filler],
            &self.mults,
            rng,
        );
        Ok(Box::new(ScaleOp { dim, inner, params }))
    }
}

/// y = γ·x (+ β), γ and β broadcast over the outer axes and `inner`.
#[derive(Debug)]
pub struct ScaleOp {
    dim: usize,
    inner: usize,
    params: Vec<Param>,
}

impl Op for ScaleOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let g = &self.params[0].blob.data;
        let b = self.params.get(1).map(|p| &p.blob.data);
        let rows = tops[0]
            .data
            .chunks_mut(self.inner)
            .zip(bottoms[0].data.chunks(self.inner));
        for (k, (y, x)) in rows.enumerate() {
            let c = k % self.dim;
            let shift = b.map_or(0.0, |b| b[c]);
            y.iter_mut().zip(x).for_each(|(y, x)| *y = x * g[c] + shift);
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let dy = &tops[0].diff;
        let x = &mut *bottoms[0];
        let (dim, inner) = (self.dim, self.inner);
        let mut dg = vec![0.0f32; dim];
        let mut db = vec![0.0f32; dim];
        for (k, (g, x)) in dy.chunks(inner).zip(x.data.chunks(inner)).enumerate() {
            dg[k % dim] += g.iter().zip(x).map(|(g, x)| g * x).sum::<f32>();
            db[k % dim] += g.iter().sum::<f32>();
        }
        self.params[0].blob.diff.copy_from_slice(&dg);
        if let Some(p) = self.params.get_mut(1) {
            p.blob.diff.copy_from_slice(&db);
        }
        if prop_down.first().copied().unwrap_or(false) {
            let gamma = &self.params[0].blob.data;
            for (k, (dx, g)) in x.diff.chunks_mut(inner).zip(dy.chunks(inner)).enumerate() {
                dx.iter_mut()
                    .zip(g)
                    .for_each(|(dx, g)| *dx = g * gamma[k % dim]);
            }
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
    use crate::engine::gradcheck::check_op;
    use rand::SeedableRng;

    #[test]
    fn scale_with_bias_gradients_and_identity_start() {
        let s = Scale {
            axis: 1,
            num_axes: 1,
            bias: true,
            filler: Filler::Constant(1.0),
            bias_filler: Filler::Constant(0.0),
            mults: vec![(1.0, 1.0); 2],
        };
        let b = vec![vec![2, 3, 2, 2]];
        let mut op = s
            .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        let x = Blob {
            data: (0..24).map(|i| i as f32).collect(),
            ..Blob::zeros(&b[0])
        };
        let mut y = Blob::zeros(&b[0]);
        op.forward(&[&x], &mut [&mut y], true);
        assert_eq!(y.data, x.data, "γ = 1, β = 0 at the start");
        op.params_mut()[0].blob.data = vec![0.5, -1.0, 2.0];
        op.params_mut()[1].blob.data = vec![0.1, 0.2, 0.3];
        check_op(op.as_mut(), &b, &b);
        assert_eq!(
            s.param_shapes(&b, &ShapeCtx::default()),
            vec![vec![3], vec![3]]
        );
    }
}
