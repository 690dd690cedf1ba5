//! Caffe's loss layers beyond SoftmaxWithLoss: a scalar top (shape `[1]`, like
//! SoftmaxWithLoss), bottoms that must agree in their leading axes; netc cannot train
//! them yet.

use super::shape_only::{cannot_train, fmt_shape};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Loss {
    ty: super::shape_only::TypeRef,
}

impl Layer for Loss {
    fn ty(&self) -> &'static LayerType {
        self.ty.0
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let (a, b) = match bottoms {
            [a, b, ..] => (a, b),
            _ => return Err(LayerError::new("a loss needs predictions and targets")),
        };
        let count = |s: &Shape| s.iter().product::<usize>();
        match self.ty.0.name {
            "EuclideanLoss" | "SigmoidCrossEntropyLoss" if count(a) != count(b) => {
                return Err(LayerError::new(format!(
                    "predictions {} and targets {} have different sizes",
                    fmt_shape(a),
                    fmt_shape(b)
                )))
            }
            _ if a.first() != b.first() => {
                return Err(LayerError::new(format!(
                    "predictions {} and labels {} have different batch sizes",
                    fmt_shape(a),
                    fmt_shape(b)
                )))
            }
            _ => {}
        }
        // A second top (InfogainLoss' probabilities) has the predictions' shape.
        Ok(vec![vec![1], a.clone()])
    }
    cannot_train!();
}

macro_rules! loss {
    ($stat:ident, $name:literal, $bottoms:expr, $tops:expr) => {
        pub static $stat: LayerType = LayerType {
            name: $name,
            kind: Kind::Loss,
            bottoms: $bottoms,
            tops: $tops,
            in_place: false,
            runnable: false,
            build: |_l| {
                Ok(Box::new(Loss {
                    ty: super::shape_only::TypeRef(&$stat),
                }))
            },
        };
    };
}

loss!(
    SIGMOID_CE,
    "SigmoidCrossEntropyLoss",
    Arity::Exactly(2),
    Arity::Range(1, 2)
);
loss!(
    CONTRASTIVE,
    "ContrastiveLoss",
    Arity::Exactly(3),
    Arity::Exactly(1)
);
loss!(HINGE, "HingeLoss", Arity::Exactly(2), Arity::Exactly(1));
loss!(
    INFOGAIN,
    "InfogainLoss",
    Arity::Range(2, 3),
    Arity::Range(1, 2)
);
loss!(
    MULTINOMIAL,
    "MultinomialLogisticLoss",
    Arity::Exactly(2),
    Arity::Exactly(1)
);

pub static ALL: &[&LayerType] = &[&SIGMOID_CE, &CONTRASTIVE, &HINGE, &INFOGAIN, &MULTINOMIAL];
