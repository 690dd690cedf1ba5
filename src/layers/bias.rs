//! Bias: adds a learned (or second-bottom) bias broadcast from `axis` over `num_axes`
//! axes; netc cannot train it yet.

use super::scale::{check_second, factor_shape};
use super::shape_only::{self, cannot_train, param};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Bias {
    axis: i64,
    num_axes: i64,
}

pub static TYPE: LayerType = LayerType {
    name: "Bias",
    kind: Kind::Normalization,
    bottoms: Arity::Range(1, 2),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: false,
    build: |l| {
        let m = param(l, "bias_param");
        Ok(Box::new(Bias {
            axis: shape_only::int(m, "axis", 1),
            num_axes: shape_only::int(m, "num_axes", 1),
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
    cannot_train!();
}
