//! Caffe types whose output shapes netc does not infer: Python layers (their shapes are
//! whatever the Python code says), recurrent layers, data-dependent Filter and
//! BatchReindex, HDF5Output. They are parsed, checked for arity and drawn; their tops get
//! unknown shapes with a warning.

use super::shape_only::cannot_train;
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Opaque {
    ty: super::shape_only::TypeRef,
    details: Vec<String>,
}

impl Layer for Opaque {
    fn ty(&self) -> &'static LayerType {
        self.ty.0
    }
    fn shapes(&self, _bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        if self.ty.0.tops == Arity::Exactly(0) {
            return Ok(Vec::new());
        }
        Err(LayerError::new(format!(
            "netc does not infer the shapes of {} layers",
            self.ty.0.name
        )))
    }
    fn details(&self) -> Vec<String> {
        self.details.clone()
    }
    cannot_train!();
}

macro_rules! opaque {
    ($stat:ident, $name:literal, $kind:expr, $b:expr, $t:expr, |$l:ident| $details:expr) => {
        pub static $stat: LayerType = LayerType {
            name: $name,
            kind: $kind,
            bottoms: $b,
            tops: $t,
            in_place: false,
            runnable: false,
            build: |$l| {
                Ok(Box::new(Opaque {
                    ty: super::shape_only::TypeRef(&$stat),
                    details: $details,
                }))
            },
        };
    };
}

opaque!(
    PYTHON,
    "Python",
    Kind::Other,
    Arity::AtLeast(0),
    Arity::AtLeast(0),
    |l| {
        let m = super::shape_only::param(l, "python_param");
        match (m.str("module"), m.str("layer")) {
            (Some(module), Some(layer)) => vec![format!("{module}.{layer}")],
            _ => Vec::new(),
        }
    }
);
opaque!(
    LSTM,
    "LSTM",
    Kind::Other,
    Arity::Range(2, 3),
    Arity::AtLeast(1),
    |_l| Vec::new()
);
opaque!(
    RNN,
    "RNN",
    Kind::Other,
    Arity::Range(2, 3),
    Arity::AtLeast(1),
    |_l| Vec::new()
);
opaque!(
    RECURRENT,
    "Recurrent",
    Kind::Other,
    Arity::Range(2, 3),
    Arity::AtLeast(1),
    |_l| Vec::new()
);
opaque!(
    FILTER,
    "Filter",
    Kind::Other,
    Arity::AtLeast(2),
    Arity::AtLeast(1),
    |_l| Vec::new()
);
opaque!(
    BATCH_REINDEX,
    "BatchReindex",
    Kind::Other,
    Arity::Exactly(2),
    Arity::Exactly(1),
    |_l| Vec::new()
);
opaque!(
    HDF5_OUTPUT,
    "HDF5Output",
    Kind::Other,
    Arity::Exactly(2),
    Arity::Exactly(0),
    |_l| Vec::new()
);

pub static ALL: &[&LayerType] = &[
    &PYTHON,
    &LSTM,
    &RNN,
    &RECURRENT,
    &FILTER,
    &BATCH_REINDEX,
    &HDF5_OUTPUT,
];
