//! Crop: crops bottom 1 to the size of bottom 2 from `axis` on, at `offset`; netc cannot
//! train it yet.

use super::shape_only::{self, cannot_train, fmt_shape, param};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Crop {
    axis: i64,
    offset: Vec<usize>,
}

pub static TYPE: LayerType = LayerType {
    name: "Crop",
    kind: Kind::Other,
    bottoms: Arity::Exactly(2),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "crop_param");
        Ok(Box::new(Crop {
            axis: shape_only::int(m, "axis", 2),
            offset: m.usizes("offset"),
        }))
    },
};

impl Layer for Crop {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let (a, b) = match bottoms {
            [a, b] => (a, b),
            _ => return Err(LayerError::new("Crop needs two bottoms")),
        };
        if a.len() != b.len() {
            return Err(LayerError::new(format!(
                "bottoms {} and {} have different numbers of axes",
                fmt_shape(a),
                fmt_shape(b)
            )));
        }
        let axis = shape_only::axis(self.axis, a.len(), None)?;
        let n = a.len() - axis;
        if !(self.offset.len() <= 1 || self.offset.len() == n) {
            return Err(LayerError::new(format!(
                "{} offsets for {n} cropped axes",
                self.offset.len()
            ))
            .help("give one offset, or one per axis from `axis` on"));
        }
        let mut out = a.clone();
        for i in axis..a.len() {
            let off = match self.offset.len() {
                0 => 0,
                1 => self.offset[0],
                _ => self.offset[i - axis],
            };
            if b[i] + off > a[i] {
                return Err(LayerError::new(format!(
                    "cannot crop axis {i} of {} to {} at offset {off}",
                    fmt_shape(a),
                    b[i]
                )));
            }
            out[i] = b[i];
        }
        Ok(vec![out])
    }
    cannot_train!();
}
