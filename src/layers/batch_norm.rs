//! BatchNorm: normalises over the batch (and spatial axes) per channel; Caffe stores the
//! running mean, variance and a scale factor as three blobs (usually with lr_mult 0) and
//! leaves the learned scale and shift to a following Scale layer. netc cannot train it yet.

use super::shape_only::{self, cannot_train, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct BatchNorm {
    global_stats: Option<bool>,
}

pub static TYPE: LayerType = LayerType {
    name: "BatchNorm",
    kind: Kind::Normalization,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: false,
    build: |l| {
        let m = param(l, "batch_norm_param");
        if let Some(f) = m.float("moving_average_fraction") {
            if !(0.0..=1.0).contains(&f) {
                return Err(
                    LayerError::new("moving_average_fraction must lie in [0, 1]").at(span_of(
                        m,
                        "moving_average_fraction",
                        &l.name_span,
                    )),
                );
            }
        }
        Ok(Box::new(BatchNorm {
            global_stats: m.boolean("use_global_stats"),
        }))
    },
};

impl Layer for BatchNorm {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![shape_only::first(bottoms)?.clone()])
    }
    fn param_shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        let c = bottoms
            .first()
            .map(|s| if s.len() > 1 { s[1] } else { 1 })
            .unwrap_or(1);
        vec![vec![c], vec![c], vec![1]]
    }
    fn details(&self) -> Vec<String> {
        match self.global_stats {
            Some(true) => vec!["global stats".into()],
            _ => Vec::new(),
        }
    }
    cannot_train!();
}
