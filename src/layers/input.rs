//! `Input`: a blob the caller fills (deploy nets), with its shape given in the spec
//! (`input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } }`).

use super::data::{Feed, InputSpec, Transform};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Op, Rng};
use crate::spec::LayerSpec;

pub static TYPE: LayerType = LayerType {
    name: "Input",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: true,
    build: |spec| Ok(Box::new(Input::parse(spec)?)),
};

#[derive(Debug, Clone)]
pub struct Input {
    pub input: InputSpec,
    pub tops: usize,
}

impl Input {
    fn parse(spec: &LayerSpec) -> Result<Input, LayerError> {
        let mut shapes = Vec::new();
        if let Some(p) = spec.msg.msg("input_param") {
            for s in p.msgs("shape") {
                let dims = s.ints("dim");
                if dims.iter().any(|d| *d < 0 || *d > u32::MAX as i128) {
                    return Err(LayerError::new(
                        "a dim of input_param.shape is negative or too large",
                    )
                    .at(s.span.clone()));
                }
                shapes.push(dims.into_iter().map(|d| d as usize).collect());
            }
        }
        if shapes.is_empty() {
            return Err(
                LayerError::new("an Input layer needs input_param { shape { dim: ... } }")
                    .at(spec.span.clone())
                    .help("e.g. input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } }"),
            );
        }
        if shapes.len() != 1 && shapes.len() != spec.tops.len() {
            return Err(LayerError::new(format!(
                "{} shapes for {} tops: give one shape, or one per top",
                shapes.len(),
                spec.tops.len()
            ))
            .at(spec.span.clone()));
        }
        Ok(Input {
            input: InputSpec {
                source: None,
                batch_size: None,
                transform: Transform::parse(&spec.msg)?,
                shapes,
            },
            tops: spec.tops.len(),
        })
    }
}

impl Layer for Input {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, _bottoms: &[Shape], ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok((0..self.tops)
            .map(|i| {
                let mut s = self.input.shapes[i.min(self.input.shapes.len() - 1)].clone();
                if let (Some(b), Some(first)) = (ctx.batch, s.first_mut()) {
                    *first = b;
                }
                s
            })
            .collect())
    }
    fn details(&self) -> Vec<String> {
        self.input
            .shapes
            .iter()
            .map(|s| {
                s.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("×")
            })
            .collect()
    }
    fn input(&self) -> Option<&InputSpec> {
        Some(&self.input)
    }
    fn lower(&self, _b: &[Shape], _c: &ShapeCtx, _r: &mut Rng) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(Feed))
    }
}
