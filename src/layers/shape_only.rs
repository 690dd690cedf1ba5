//! Helpers shared by the layer types netc can shape, draw and summarise but not train yet
//! (Caffe's types beyond the trainable set): reading `*_param` fields with their spans,
//! axis rules, and the `lower` that says netc cannot train the type.

use super::{LayerError, Shape};
use crate::spec::{LayerSpec, Message, Span};

/// The `lower` error of a type netc cannot train.
pub fn cannot_train_error(ty: &str) -> LayerError {
    LayerError::new(format!("netc cannot train {ty} layers yet"))
        .help("netc can check, summarise and draw this net, but not train it; replace the layer to train with netc")
}

/// Implements [`super::Layer::lower`] for a type netc cannot train.
macro_rules! cannot_train {
    () => {
        fn lower(
            &self,
            _bottoms: &[$crate::layers::Shape],
            _ctx: &$crate::layers::ShapeCtx,
            _rng: &mut $crate::engine::Rng,
        ) -> Result<Box<dyn $crate::engine::Op>, $crate::layers::LayerError> {
            Err($crate::layers::shape_only::cannot_train_error(
                self.ty().name,
            ))
        }
    };
}
pub(crate) use cannot_train;

/// The layer's `name` sub-message (e.g. `concat_param`), or an empty one.
pub fn param<'a>(l: &'a LayerSpec, name: &str) -> &'a Message {
    static EMPTY: Message = Message {
        fields: Vec::new(),
        span: 0..0,
    };
    l.msg.msg(name).unwrap_or(&EMPTY)
}

/// Where field `name` of `m` is written (its value), or `fallback`.
pub fn span_of(m: &Message, name: &str, fallback: &Span) -> Span {
    m.get(name)
        .map(|f| f.value_span.clone())
        .unwrap_or_else(|| fallback.clone())
}

/// A non-negative integer field with a default; negative or huge values are errors.
pub fn uint(l: &LayerSpec, m: &Message, name: &str, default: usize) -> Result<usize, LayerError> {
    match m.get(name) {
        None => Ok(default),
        Some(f) => f
            .value
            .as_int()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| {
                LayerError::new(format!("`{name}` must be a non-negative integer")).at(span_of(
                    m,
                    name,
                    &l.name_span,
                ))
            }),
    }
}

/// An integer field (may be negative) with a default.
pub fn int(m: &Message, name: &str, default: i64) -> i64 {
    m.int(name)
        .and_then(|i| i64::try_from(i).ok())
        .unwrap_or(default)
}

/// Caffe's `CanonicalAxisIndex`: negative axes count from the end.
pub fn axis(axis: i64, num_axes: usize, span: Option<Span>) -> Result<usize, LayerError> {
    let n = num_axes as i64;
    if axis < -n || axis >= n {
        let e = LayerError::new(format!(
            "axis {axis} is out of range for a blob with {num_axes} axes"
        ));
        return Err(match span {
            Some(s) => e.at(s),
            None => e,
        });
    }
    Ok(if axis < 0 {
        (axis + n) as usize
    } else {
        axis as usize
    })
}

/// Elements per sample (all axes but the first).
pub fn per_sample(s: &Shape) -> u64 {
    s.iter().skip(1).map(|&d| d as u64).product()
}

/// `1×2×3` for messages.
pub fn fmt_shape(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// The single bottom's shape (arity is checked before shapes are asked for).
pub fn first(bottoms: &[Shape]) -> Result<&Shape, LayerError> {
    bottoms
        .first()
        .ok_or_else(|| LayerError::new("the layer needs a bottom"))
}

/// A layer type reference that prints as its name (for `Debug` on layer structs).
#[derive(Clone, Copy)]
pub struct TypeRef(pub &'static super::LayerType);

impl std::fmt::Debug for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}
