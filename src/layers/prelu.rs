//! PReLU: ReLU with a learned negative slope per channel (or one shared); netc cannot
//! train it yet.

use super::shape_only::{self, cannot_train, param, per_sample};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct PRelu {
    shared: bool,
}

pub static TYPE: LayerType = LayerType {
    name: "PReLU",
    kind: Kind::Neuron,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: false,
    build: |l| {
        Ok(Box::new(PRelu {
            shared: param(l, "prelu_param")
                .boolean("channel_shared")
                .unwrap_or(false),
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
    cannot_train!();
}
