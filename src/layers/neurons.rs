//! Caffe's element-wise neuron layers that netc can shape but not train yet (the ones it
//! trains are in `elementwise.rs`): the output
//! has the bottom's shape, there are no learned parameters, and (except AbsVal) they may
//! run in place. One static [`LayerType`] each; the key parameters are kept for drawings.

use super::shape_only::{self, cannot_train, param};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::spec::LayerSpec;

#[derive(Debug)]
pub struct Neuron {
    ty: super::shape_only::TypeRef,
    details: Vec<String>,
}

impl Layer for Neuron {
    fn ty(&self) -> &'static LayerType {
        self.ty.0
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![shape_only::first(bottoms)?.clone()])
    }
    fn details(&self) -> Vec<String> {
        self.details.clone()
    }
    cannot_train!();
}

/// `name: value` for each float field of `msg` that is set.
fn floats(l: &LayerSpec, msg: &str, fields: &[&str]) -> Vec<String> {
    let m = param(l, msg);
    fields
        .iter()
        .filter_map(|f| m.float(f).map(|v| format!("{f} {v}")))
        .collect()
}

macro_rules! neuron {
    ($stat:ident, $name:literal, $in_place:expr, |$l:ident| $details:expr) => {
        pub static $stat: LayerType = LayerType {
            name: $name,
            kind: Kind::Neuron,
            bottoms: Arity::Exactly(1),
            tops: Arity::Exactly(1),
            in_place: $in_place,
            runnable: false,
            build: |$l| {
                Ok(Box::new(Neuron {
                    ty: super::shape_only::TypeRef(&$stat),
                    details: $details,
                }))
            },
        };
    };
}

neuron!(THRESHOLD, "Threshold", true, |l| floats(
    l,
    "threshold_param",
    &["threshold"]
));
neuron!(CLIP, "Clip", true, |l| floats(
    l,
    "clip_param",
    &["min", "max"]
));
neuron!(SWISH, "Swish", true, |l| floats(
    l,
    "swish_param",
    &["beta"]
));
// MVN normalises each sample (and channel unless across_channels); shape unchanged.
pub static MVN: LayerType = LayerType {
    name: "MVN",
    kind: Kind::Normalization,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: false,
    build: |_l| {
        Ok(Box::new(Neuron {
            ty: super::shape_only::TypeRef(&MVN),
            details: Vec::new(),
        }))
    },
};

pub static ALL: &[&LayerType] = &[&THRESHOLD, &CLIP, &SWISH, &MVN];
