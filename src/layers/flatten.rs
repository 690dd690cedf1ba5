//! Flatten: collapses axes `axis..=end_axis` into one; netc cannot train it yet.

use super::shape_only::{self, cannot_train, param};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Flatten {
    axis: i64,
    end_axis: i64,
}

pub static TYPE: LayerType = LayerType {
    name: "Flatten",
    kind: Kind::Other,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "flatten_param");
        Ok(Box::new(Flatten {
            axis: shape_only::int(m, "axis", 1),
            end_axis: shape_only::int(m, "end_axis", -1),
        }))
    },
};

impl Layer for Flatten {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let s = shape_only::first(bottoms)?;
        let a = shape_only::axis(self.axis, s.len(), None)?;
        let e = shape_only::axis(self.end_axis, s.len(), None)?;
        if e < a {
            return Err(LayerError::new(format!(
                "end_axis {e} comes before axis {a}"
            )));
        }
        let mut out = s[..a].to_vec();
        out.push(s[a..=e].iter().product());
        out.extend(&s[e + 1..]);
        Ok(vec![out])
    }
    cannot_train!();
}
