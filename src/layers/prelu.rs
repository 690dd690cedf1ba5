//! PReLU: ReLU with a learned negative slope per channel (or one shared by all channels),
//! `y = max(x, 0) + a·min(x, 0)`, the slopes starting at 0.25 as in Caffe.

use super::filler::Filler;
use super::param_mults;
use super::shape_only::{self, param, per_sample};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Param, Rng};
use crate::layers::filler::learned;

#[derive(Debug)]
pub struct PRelu {
    shared: bool,
    filler: Filler,
    mults: Vec<(f32, f32)>,
}

pub static TYPE: LayerType = LayerType {
    name: "PReLU",
    kind: Kind::Neuron,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: true,
    build: |l| {
        let m = param(l, "prelu_param");
        Ok(Box::new(PRelu {
            shared: m.boolean("channel_shared").unwrap_or(false),
            filler: Filler::parse(m, "filler", Filler::Constant(0.25))?,
            mults: param_mults(l, 1),
        }))
    },
};

impl Layer for PRelu {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        if s.len() < 2 {
            return Err(LayerError::new("PReLU needs an input with a channel axis"));
        }
        Ok(vec![s.clone()])
    }
    fn param_shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        let c = bottoms.first().and_then(|s| s.get(1).copied()).unwrap_or(1);
        vec![vec![if self.shared { 1 } else { c }]]
    }
    fn macs(&self, bottoms: &[Shape], _tops: &[Shape]) -> u64 {
        bottoms.first().map(per_sample).unwrap_or(0)
    }
    fn details(&self) -> Vec<String> {
        if self.shared {
            vec!["one slope".into()]
        } else {
            Vec::new()
        }
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let s = &self.shapes(bottoms, ctx)?[0];
        let params = learned(
            &self.param_shapes(bottoms, ctx),
            &[&self.filler],
            &self.mults,
            rng,
        );
        Ok(Box::new(PReluOp {
            channels: s[1],
            inner: s[2..].iter().product(),
            shared: self.shared,
            params,
        }))
    }
}

#[derive(Debug)]
pub struct PReluOp {
    channels: usize,
    inner: usize,
    shared: bool,
    params: Vec<Param>,
}

impl PReluOp {
    /// The slope of row `k` (one channel of one sample: `inner` values).
    fn slope(&self, k: usize) -> usize {
        if self.shared {
            0
        } else {
            k % self.channels
        }
    }
}

impl Op for PReluOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let a = &self.params[0].blob.data;
        let rows = tops[0]
            .data
            .chunks_mut(self.inner.max(1))
            .zip(bottoms[0].data.chunks(self.inner.max(1)));
        for (k, (y, x)) in rows.enumerate() {
            let a = a[self.slope(k)];
            y.iter_mut()
                .zip(x)
                .for_each(|(y, &x)| *y = if x > 0.0 { x } else { a * x });
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let inner = self.inner.max(1);
        let dy = &tops[0].diff;
        let x = &mut *bottoms[0];
        let mut da = vec![0.0f32; self.params[0].blob.count()];
        for (k, (g, x)) in dy.chunks(inner).zip(x.data.chunks(inner)).enumerate() {
            da[self.slope(k)] += g
                .iter()
                .zip(x)
                .map(|(g, &x)| if x > 0.0 { 0.0 } else { g * x })
                .sum::<f32>();
        }
        self.params[0].blob.diff.copy_from_slice(&da);
        if prop_down.first().copied().unwrap_or(false) {
            let a = &self.params[0].blob.data;
            let rows = x
                .diff
                .chunks_mut(inner)
                .zip(dy.chunks(inner))
                .zip(x.data.chunks(inner));
            for (k, ((dx, g), x)) in rows.enumerate() {
                let a = a[if self.shared { 0 } else { k % self.channels }];
                for ((dx, g), &x) in dx.iter_mut().zip(g).zip(x) {
                    *dx = if x > 0.0 { *g } else { a * g };
                }
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
    fn slopes_start_at_a_quarter_and_gradients_match() {
        for shared in [false, true] {
            let p = PRelu {
                shared,
                filler: Filler::Constant(0.25),
                mults: vec![(1.0, 1.0)],
            };
            let b = vec![vec![2, 3, 2, 2]];
            let mut op = p
                .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
                .expect("lowers");
            assert_eq!(op.params()[0].blob.count(), if shared { 1 } else { 3 });
            let x = Blob {
                data: (0..24).map(|i| i as f32 - 12.0).collect(),
                ..Blob::zeros(&b[0])
            };
            let mut y = Blob::zeros(&b[0]);
            op.forward(&[&x], &mut [&mut y], true);
            assert_eq!((y.data[0], y.data[23]), (-3.0, 11.0));
            if !shared {
                op.params_mut()[0].blob.data = vec![0.1, -0.5, 2.0];
            }
            check_op(op.as_mut(), &b, &b);
        }
    }
}
