//! LRN: local response normalisation across or within channels; netc cannot train it yet.

use super::shape_only::{self, cannot_train, param, span_of, uint};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Lrn {
    local_size: usize,
    within: bool,
}

pub static TYPE: LayerType =
    LayerType {
        name: "LRN",
        kind: Kind::Normalization,
        bottoms: Arity::Exactly(1),
        tops: Arity::Exactly(1),
        in_place: false,
        runnable: false,
        build: |l| {
            let m = param(l, "lrn_param");
            let local_size = uint(l, m, "local_size", 5)?;
            if local_size % 2 == 0 {
                return Err(
                    LayerError::new(format!("local_size must be odd, not {local_size}"))
                        .at(span_of(m, "local_size", &l.name_span)),
                );
            }
            Ok(Box::new(Lrn {
                local_size,
                within: m.ident("norm_region") == Some("WITHIN_CHANNEL"),
            }))
        },
    };

impl Layer for Lrn {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        if s.len() != 4 {
            return Err(LayerError::new(format!(
                "LRN needs a 4-axis input (N×C×H×W), not {}",
                shape_only::fmt_shape(s)
            )));
        }
        Ok(vec![s.clone()])
    }
    fn details(&self) -> Vec<String> {
        vec![format!(
            "size {}{}",
            self.local_size,
            if self.within { " within" } else { "" }
        )]
    }
    cannot_train!();
}
