//! Scale: multiplies by a learned (or second-bottom) factor broadcast from `axis` over
//! `num_axes` axes, optionally adding a learned bias; netc cannot train it yet.
//! MACs: one multiply per element.

use super::shape_only::{self, cannot_train, fmt_shape, param, per_sample};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Scale {
    axis: i64,
    num_axes: i64,
    bias: bool,
}

pub static TYPE: LayerType = LayerType {
    name: "Scale",
    kind: Kind::Normalization,
    bottoms: Arity::Range(1, 2),
    tops: Arity::Exactly(1),
    in_place: true,
    runnable: false,
    build: |l| {
        let m = param(l, "scale_param");
        Ok(Box::new(Scale {
            axis: shape_only::int(m, "axis", 1),
            num_axes: shape_only::int(m, "num_axes", 1),
            bias: m.boolean("bias_term").unwrap_or(false),
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
    cannot_train!();
}
