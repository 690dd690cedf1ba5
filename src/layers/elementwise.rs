//! Caffe's element-wise neuron layers that train: Sigmoid, TanH, AbsVal, Power, Exp, Log,
//! ELU and BNLL, with Caffe's parameters (`power_param`, `exp_param`, `log_param`,
//! `elu_param`). One op computes any of them from the bottom and top values.

use rayon::prelude::*;

use super::{first, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Blob, Op, Rng};
use crate::spec::LayerSpec;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Sigmoid,
    TanH,
    AbsVal,
    /// `(shift + scale·x)^power`
    Power {
        power: f32,
        scale: f32,
        shift: f32,
    },
    /// `outer · e^(inner·x)`, Caffe's `base^(shift + scale·x)`
    Exp {
        inner: f32,
        outer: f32,
    },
    /// `ln(shift + scale·x) / ln(base)`
    Log {
        scale: f32,
        shift: f32,
        inv_ln_base: f32,
    },
    Elu {
        alpha: f32,
    },
    Bnll,
}

fn num(spec: &LayerSpec, msg: &str, field: &str, default: f64) -> f32 {
    spec.msg
        .msg(msg)
        .and_then(|m| m.float(field))
        .unwrap_or(default) as f32
}

/// Caffe's `base: -1` means e.
fn ln_base(spec: &LayerSpec, msg: &str) -> Result<f32, LayerError> {
    let base = num(spec, msg, "base", -1.0);
    if base == -1.0 {
        return Ok(1.0);
    }
    if base.is_nan() || base <= 0.0 {
        return Err(LayerError::new(format!(
            "{msg}.base must be positive (or -1 for e), not {base}"
        )));
    }
    Ok(base.ln())
}

fn parse(spec: &LayerSpec, name: &str) -> Result<Func, LayerError> {
    Ok(match name {
        "Sigmoid" => Func::Sigmoid,
        "TanH" => Func::TanH,
        "AbsVal" => Func::AbsVal,
        "Power" => Func::Power {
            power: num(spec, "power_param", "power", 1.0),
            scale: num(spec, "power_param", "scale", 1.0),
            shift: num(spec, "power_param", "shift", 0.0),
        },
        "Exp" => {
            let lb = ln_base(spec, "exp_param")?;
            let (scale, shift) = (
                num(spec, "exp_param", "scale", 1.0),
                num(spec, "exp_param", "shift", 0.0),
            );
            Func::Exp {
                inner: scale * lb,
                outer: (shift * lb).exp(),
            }
        }
        "Log" => {
            let lb = ln_base(spec, "log_param")?;
            Func::Log {
                scale: num(spec, "log_param", "scale", 1.0),
                shift: num(spec, "log_param", "shift", 0.0),
                inv_ln_base: 1.0 / lb,
            }
        }
        "ELU" => Func::Elu {
            alpha: num(spec, "elu_param", "alpha", 1.0),
        },
        _ => Func::Bnll,
    })
}

macro_rules! elementwise {
    ($stat:ident, $name:literal, $in_place:expr) => {
        pub static $stat: LayerType = LayerType {
            name: $name,
            kind: Kind::Neuron,
            bottoms: Arity::Exactly(1),
            tops: Arity::Exactly(1),
            in_place: $in_place,
            runnable: true,
            build: |spec| {
                Ok(Box::new(Elementwise {
                    ty: &$stat,
                    f: parse(spec, $name)?,
                }))
            },
        };
    };
}

elementwise!(SIGMOID, "Sigmoid", true);
elementwise!(TANH, "TanH", true);
// Caffe's AbsValLayer checks that top and bottom differ.
elementwise!(ABSVAL, "AbsVal", false);
elementwise!(POWER, "Power", true);
elementwise!(EXP, "Exp", true);
elementwise!(LOG, "Log", true);
elementwise!(ELU, "ELU", true);
elementwise!(BNLL, "BNLL", true);

pub struct Elementwise {
    ty: &'static LayerType,
    pub f: Func,
}

impl std::fmt::Debug for Elementwise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({:?})", self.ty.name, self.f)
    }
}

impl Func {
    fn value(self, x: f32) -> f32 {
        match self {
            Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Func::TanH => x.tanh(),
            Func::AbsVal => x.abs(),
            Func::Power {
                power,
                scale,
                shift,
            } => (shift + scale * x).powf(power),
            Func::Exp { inner, outer } => outer * (inner * x).exp(),
            Func::Log {
                scale,
                shift,
                inv_ln_base,
            } => (shift + scale * x).ln() * inv_ln_base,
            Func::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * (x.exp() - 1.0)
                }
            }
            Func::Bnll => {
                if x > 0.0 {
                    x + (-x).exp().ln_1p()
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }

    /// d value / dx at `x`, where `y` is the value there.
    fn slope(self, x: f32, y: f32) -> f32 {
        match self {
            Func::Sigmoid => y * (1.0 - y),
            Func::TanH => 1.0 - y * y,
            Func::AbsVal => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Func::Power {
                power,
                scale,
                shift,
            } => {
                if power == 0.0 {
                    0.0
                } else {
                    power * scale * (shift + scale * x).powf(power - 1.0)
                }
            }
            Func::Exp { inner, .. } => y * inner,
            Func::Log {
                scale,
                shift,
                inv_ln_base,
            } => scale * inv_ln_base / (shift + scale * x),
            Func::Elu { alpha } => {
                if x > 0.0 {
                    1.0
                } else {
                    y + alpha
                }
            }
            Func::Bnll => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

const GRAIN: usize = 1 << 14;

impl Layer for Elementwise {
    fn ty(&self) -> &'static LayerType {
        self.ty
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Ok(vec![first(bottoms)?.clone()])
    }
    fn details(&self) -> Vec<String> {
        match self.f {
            Func::Power {
                power,
                scale,
                shift,
            } => vec![format!("({shift} + {scale}x)^{power}")],
            Func::Elu { alpha } => vec![format!("alpha {alpha}")],
            _ => vec![],
        }
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let x = &bottoms[0];
        let y = match self.f {
            Func::Sigmoid => candle_nn::ops::sigmoid(x),
            Func::TanH => x.tanh(),
            Func::AbsVal => x.abs(),
            Func::Power {
                power,
                scale,
                shift,
            } => x
                .affine(scale as f64, shift as f64)
                .and_then(|t| t.powf(power as f64)),
            Func::Exp { inner, outer } => x
                .affine(inner as f64, 0.0)
                .and_then(|t| t.exp())
                .and_then(|t| t.affine(outer as f64, 0.0)),
            Func::Log {
                scale,
                shift,
                inv_ln_base,
            } => x
                .affine(scale as f64, shift as f64)
                .and_then(|t| t.log())
                .and_then(|t| t.affine(inv_ln_base as f64, 0.0)),
            Func::Elu { alpha } => x.elu(alpha as f64),
            Func::Bnll => return Err(LayerError::new("BNLL has no candle lowering yet")),
        };
        Ok(vec![y.map_err(super::candle_err)?])
    }
    fn lower(&self, _b: &[Shape], _c: &ShapeCtx, _r: &mut Rng) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(ElementwiseOp { f: self.f }))
    }
}

#[derive(Debug)]
pub struct ElementwiseOp {
    pub f: Func,
}

impl Op for ElementwiseOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let f = self.f;
        tops[0]
            .data
            .par_chunks_mut(GRAIN)
            .zip(bottoms[0].data.par_chunks(GRAIN))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, x)| *y = f.value(*x)));
    }
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        if !prop_down.first().copied().unwrap_or(false) {
            return;
        }
        let f = self.f;
        let b = &mut *bottoms[0];
        b.diff
            .par_chunks_mut(GRAIN)
            .zip(b.data.par_chunks(GRAIN))
            .zip(
                tops[0]
                    .data
                    .par_chunks(GRAIN)
                    .zip(tops[0].diff.par_chunks(GRAIN)),
            )
            .for_each(|((dx, x), (y, dy))| {
                for (((dx, x), y), dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                    *dx = dy * f.slope(*x, *y);
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op_blobs;

    #[test]
    fn values_follow_caffe() {
        let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        close(Func::Sigmoid.value(0.0), 0.5);
        close(
            Func::Power {
                power: 2.0,
                scale: 3.0,
                shift: 1.0,
            }
            .value(2.0),
            49.0,
        );
        // exp_param { base: 2 scale: 1 shift: 1 }: 2^(1 + x)
        let lb = 2f32.ln();
        close(
            Func::Exp {
                inner: lb,
                outer: lb.exp(),
            }
            .value(3.0),
            16.0,
        );
        // log_param { base: 10 }: log10(x)
        close(
            Func::Log {
                scale: 1.0,
                shift: 0.0,
                inv_ln_base: 1.0 / 10f32.ln(),
            }
            .value(1000.0),
            3.0,
        );
        close(
            Func::Elu { alpha: 0.5 }.value(-1.0),
            0.5 * ((-1f32).exp() - 1.0),
        );
        close(Func::Bnll.value(0.0), 2f32.ln());
        close(Func::AbsVal.value(-3.0), 3.0);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let lb = 2f32.ln();
        for f in [
            Func::Sigmoid,
            Func::TanH,
            Func::AbsVal,
            Func::Power {
                power: 2.0,
                scale: 0.5,
                shift: 2.0,
            },
            Func::Exp {
                inner: lb * 0.5,
                outer: 1.5,
            },
            Func::Log {
                scale: 2.0,
                shift: 3.0,
                inv_ln_base: 1.0,
            },
            Func::Elu { alpha: 0.7 },
            Func::Bnll,
        ] {
            // Inputs away from 0 (AbsVal's kink) and inside every function's domain.
            let mut x = Blob::zeros(&[2, 3, 4]);
            for (i, v) in x.data.iter_mut().enumerate() {
                let s = 0.1 + (i as f32 * 0.618).fract();
                *v = if i % 2 == 0 { s } else { -s * 0.9 };
            }
            let mut bs = vec![x];
            check_op_blobs(
                &mut ElementwiseOp { f },
                &mut bs,
                &[vec![2, 3, 4]],
                &[true],
                true,
            );
        }
    }
}
