//! Eltwise: element-wise SUM (with optional coefficients), PROD or MAX of equally shaped
//! bottoms; netc cannot train it yet.

use super::shape_only::{self, cannot_train, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub struct Eltwise {
    op: String,
}

pub static TYPE: LayerType =
    LayerType {
        name: "Eltwise",
        kind: Kind::Other,
        bottoms: Arity::AtLeast(2),
        tops: Arity::Exactly(1),
        in_place: false,
        runnable: false,
        build: |l| {
            let m = param(l, "eltwise_param");
            let op = m.ident("operation").unwrap_or("SUM").to_string();
            let coeffs = m.floats("coeff");
            if !coeffs.is_empty() {
                if op != "SUM" {
                    return Err(LayerError::new("`coeff` only works with operation: SUM")
                        .at(span_of(m, "coeff", &l.name_span)));
                }
                if coeffs.len() != l.bottoms.len() {
                    return Err(LayerError::new(format!(
                        "{} coefficients for {} bottoms",
                        coeffs.len(),
                        l.bottoms.len()
                    ))
                    .at(span_of(m, "coeff", &l.name_span))
                    .help("give one `coeff` per bottom, or none"));
                }
            }
            Ok(Box::new(Eltwise { op }))
        },
    };

impl Layer for Eltwise {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let first = shape_only::first(bottoms)?;
        for (k, s) in bottoms.iter().enumerate().skip(1) {
            if s != first {
                return Err(LayerError::new(format!(
                    "bottom {} has shape {}, bottom 1 has {}",
                    k + 1,
                    fmt_shape(s),
                    fmt_shape(first)
                ))
                .help("Eltwise needs inputs of one shape; project the shortcut with a 1×1 convolution"));
            }
        }
        Ok(vec![first.clone()])
    }
    fn details(&self) -> Vec<String> {
        vec![self.op.clone()]
    }
    cannot_train!();
}
