//! Eltwise: element-wise SUM (with optional coefficients), PROD or MAX of equally shaped
//! bottoms, forward and backward as Caffe computes them (MAX routes the gradient to the
//! first maximum).

use super::shape_only::{self, fmt_shape, param, span_of};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};

#[derive(Debug)]
pub struct Eltwise {
    op: String,
    coeffs: Vec<f64>,
}

pub static TYPE: LayerType =
    LayerType {
        name: "Eltwise",
        kind: Kind::Other,
        bottoms: Arity::AtLeast(2),
        tops: Arity::Exactly(1),
        in_place: false,
        runnable: true,
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
            Ok(Box::new(Eltwise { op, coeffs }))
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
    fn lower(
        &self,
        bottoms: &[Shape],
        _ctx: &ShapeCtx,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let coeffs = if self.coeffs.is_empty() {
            vec![1.0; bottoms.len()]
        } else {
            self.coeffs.iter().map(|&c| c as f32).collect()
        };
        let op = match self.op.as_str() {
            "SUM" => EltOp::Sum(coeffs),
            "PROD" => EltOp::Prod,
            "MAX" => EltOp::Max(Vec::new()),
            other => {
                return Err(LayerError::new(format!(
                    "unknown Eltwise operation {other}"
                )))
            }
        };
        Ok(Box::new(op))
    }
}

#[derive(Debug)]
pub enum EltOp {
    Sum(Vec<f32>),
    Prod,
    /// Index of the bottom holding each maximum.
    Max(Vec<usize>),
}

impl Op for EltOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let y = &mut tops[0].data;
        match self {
            EltOp::Sum(c) => {
                y.iter_mut()
                    .zip(&bottoms[0].data)
                    .for_each(|(y, x)| *y = c[0] * x);
                for (b, c) in bottoms.iter().zip(c.iter()).skip(1) {
                    y.iter_mut().zip(&b.data).for_each(|(y, x)| *y += c * x);
                }
            }
            EltOp::Prod => {
                y.copy_from_slice(&bottoms[0].data);
                for b in &bottoms[1..] {
                    y.iter_mut().zip(&b.data).for_each(|(y, x)| *y *= x);
                }
            }
            EltOp::Max(arg) => {
                arg.clear();
                arg.resize(y.len(), 0);
                y.copy_from_slice(&bottoms[0].data);
                for (k, b) in bottoms.iter().enumerate().skip(1) {
                    for (i, x) in b.data.iter().enumerate() {
                        if *x > y[i] {
                            y[i] = *x;
                            arg[i] = k;
                        }
                    }
                }
            }
        }
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let dy = &tops[0].diff;
        let y = &tops[0].data;
        for k in 0..bottoms.len() {
            if !prop_down.get(k).copied().unwrap_or(false) {
                continue;
            }
            match self {
                EltOp::Sum(c) => {
                    let c = c[k];
                    bottoms[k]
                        .diff
                        .iter_mut()
                        .zip(dy)
                        .for_each(|(d, g)| *d = c * g);
                }
                EltOp::Prod => {
                    // Product of the other bottoms, computed directly (no division by x).
                    let grads: Vec<f32> = (0..dy.len())
                        .map(|i| {
                            let others = bottoms.iter().enumerate().filter(|(j, _)| *j != k);
                            others.fold(dy[i], |p, (_, b)| p * b.data[i])
                        })
                        .collect();
                    bottoms[k].diff.copy_from_slice(&grads);
                }
                EltOp::Max(arg) => {
                    let _ = y;
                    for (i, d) in bottoms[k].diff.iter_mut().enumerate() {
                        *d = if arg[i] == k { dy[i] } else { 0.0 };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;
    use rand::SeedableRng;

    #[test]
    fn sum_with_coefficients_prod_and_max_gradients() {
        let b = vec![vec![2, 3, 2, 2], vec![2, 3, 2, 2]];
        for (op, coeffs) in [
            ("SUM", vec![1.0, -0.5]),
            ("SUM", vec![]),
            ("PROD", vec![]),
            ("MAX", vec![]),
        ] {
            let e = Eltwise {
                op: op.into(),
                coeffs,
            };
            let mut lowered = e
                .lower(&b, &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
                .expect("lowers");
            check_op(lowered.as_mut(), &b, &[b[0].clone()]);
        }
        let e = Eltwise {
            op: "SUM".into(),
            coeffs: vec![2.0, 1.0],
        };
        let mut op = e
            .lower(&b[..1], &ShapeCtx::default(), &mut Rng::seed_from_u64(0))
            .expect("lowers");
        let x = Blob {
            data: vec![1.5; 24],
            ..Blob::zeros(&b[0])
        };
        let z = Blob {
            data: vec![1.0; 24],
            ..Blob::zeros(&b[0])
        };
        let mut y = Blob::zeros(&b[0]);
        op.forward(&[&x, &z], &mut [&mut y], true);
        assert_eq!(y.data[5], 4.0);
    }
}
