//! Caffe's fillers (`weight_filler { type: "xavier" }`): how learned blobs start.

use rand::Rng as _;
use rand_distr::{Distribution, Normal, Uniform};

use super::{span_of, LayerError};
use crate::engine::Rng;
use crate::spec::Message;

/// Which fan `xavier` and `msra` divide by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VarianceNorm {
    FanIn,
    FanOut,
    Average,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filler {
    Constant(f32),
    Uniform { min: f32, max: f32 },
    Gaussian { mean: f32, std: f32 },
    Xavier(VarianceNorm),
    Msra(VarianceNorm),
    PositiveUnitball,
    Bilinear,
}

impl Default for Filler {
    /// Caffe's FillerParameter default: constant 0.
    fn default() -> Self {
        Filler::Constant(0.0)
    }
}

impl Filler {
    /// Reads `msg.<field> { type: ... }`; absent means `default`.
    pub fn parse(msg: &Message, field: &str, default: Filler) -> Result<Filler, LayerError> {
        let Some(f) = msg.msg(field) else {
            return Ok(default);
        };
        let g = |name: &str, d: f64| f.float(name).unwrap_or(d) as f32;
        let norm = match f.ident("variance_norm") {
            None | Some("FAN_IN") => VarianceNorm::FanIn,
            Some("FAN_OUT") => VarianceNorm::FanOut,
            Some("AVERAGE") => VarianceNorm::Average,
            Some(other) => {
                return Err(LayerError::new(format!("unknown variance_norm {other}"))
                    .at(span_of(f, "variance_norm"))
                    .help("use FAN_IN, FAN_OUT or AVERAGE"))
            }
        };
        let ty = f.str("type").unwrap_or("constant");
        Ok(match ty {
            "constant" => Filler::Constant(g("value", 0.0)),
            "uniform" => {
                let (min, max) = (g("min", 0.0), g("max", 1.0));
                if min > max {
                    return Err(LayerError::new(format!(
                        "uniform filler with min {min} above max {max}"
                    ))
                    .at(f.span.clone()));
                }
                Filler::Uniform { min, max }
            }
            "gaussian" => {
                let std = g("std", 1.0);
                if std.is_nan() || std < 0.0 {
                    return Err(
                        LayerError::new("gaussian filler needs std >= 0").at(span_of(f, "std"))
                    );
                }
                Filler::Gaussian {
                    mean: g("mean", 0.0),
                    std,
                }
            }
            "xavier" => Filler::Xavier(norm),
            "msra" => Filler::Msra(norm),
            "positive_unitball" => Filler::PositiveUnitball,
            "bilinear" => Filler::Bilinear,
            other => {
                let known = [
                    "constant",
                    "uniform",
                    "gaussian",
                    "xavier",
                    "msra",
                    "positive_unitball",
                    "bilinear",
                ];
                let best = known
                    .iter()
                    .min_by_key(|k| strsim::levenshtein(k, other))
                    .copied()
                    .unwrap_or("xavier");
                return Err(LayerError::new(format!("unknown filler type \"{other}\""))
                    .at(span_of(f, "type"))
                    .help(format!(
                        "did you mean \"{best}\"? Fillers: {}",
                        known.join(", ")
                    )));
            }
        })
    }

    /// Fills `data` (a blob of `shape`, Caffe's layout) as Caffe's filler does.
    pub fn fill(&self, shape: &[usize], data: &mut [f32], rng: &mut Rng) {
        let count = data.len();
        let fan_in = if shape.is_empty() {
            1
        } else {
            count / shape[0].max(1)
        };
        let fan_out = if shape.len() > 1 {
            count / shape[1].max(1)
        } else {
            count
        };
        let fan = |norm: VarianceNorm| -> f32 {
            match norm {
                VarianceNorm::FanIn => fan_in as f32,
                VarianceNorm::FanOut => fan_out as f32,
                VarianceNorm::Average => (fan_in + fan_out) as f32 / 2.0,
            }
            .max(1.0)
        };
        match *self {
            Filler::Constant(v) => data.fill(v),
            Filler::Uniform { min, max } => uniform(data, min, max, rng),
            Filler::Gaussian { mean, std } => gaussian(data, mean, std, rng),
            Filler::Xavier(norm) => {
                let scale = (3.0 / fan(norm)).sqrt();
                uniform(data, -scale, scale, rng)
            }
            Filler::Msra(norm) => gaussian(data, 0.0, (2.0 / fan(norm)).sqrt(), rng),
            Filler::PositiveUnitball => {
                uniform(data, 0.0, 1.0, rng);
                let rows = shape.first().copied().unwrap_or(1).max(1);
                for row in data.chunks_mut((count / rows).max(1)) {
                    let sum: f32 = row.iter().sum();
                    if sum > 0.0 {
                        row.iter_mut().for_each(|x| *x /= sum);
                    }
                }
            }
            Filler::Bilinear => {
                // Caffe's BilinearFiller: a bilinear upsampling kernel per (out, in) pair.
                let (h, w) = match shape.len() {
                    n if n >= 2 => (shape[n - 2], shape[n - 1]),
                    _ => (1, count.max(1)),
                };
                let f = (w as f32 / 2.0).ceil();
                let c = (2.0 * f - 1.0 - f % 2.0) / (2.0 * f);
                for (i, x) in data.iter_mut().enumerate() {
                    let xx = (i % w) as f32;
                    let yy = ((i / w) % h) as f32;
                    *x = (1.0 - (xx / f - c).abs()) * (1.0 - (yy / f - c).abs());
                }
            }
        }
    }
}

fn uniform(data: &mut [f32], min: f32, max: f32, rng: &mut Rng) {
    if min == max {
        data.fill(min);
        return;
    }
    match Uniform::new(min, max) {
        Ok(d) => data.iter_mut().for_each(|x| *x = d.sample(rng)),
        Err(_) => data.fill(min),
    }
}

fn gaussian(data: &mut [f32], mean: f32, std: f32, rng: &mut Rng) {
    match Normal::new(mean, std) {
        Ok(d) => data.iter_mut().for_each(|x| *x = d.sample(rng)),
        Err(_) => data.fill(mean),
    }
}

/// A fresh generator for one op (dropout masks), drawn from the net's generator so a seed
/// fixes every op's numbers.
/// A layer's learned blobs as Caffe makes them: blob `i` has `shapes[i]`, is filled by
/// `fillers[i]` (the weights', then the bias's) and learns with `mults[i]`
/// (`lr_mult`, `decay_mult`).
pub fn learned(
    shapes: &[Vec<usize>],
    fillers: &[&Filler],
    mults: &[(f32, f32)],
    rng: &mut Rng,
) -> Vec<crate::engine::Param> {
    shapes
        .iter()
        .zip(fillers)
        .zip(mults)
        .map(|((shape, filler), &(lr_mult, decay_mult))| {
            let mut blob = crate::engine::Blob::zeros(shape);
            filler.fill(shape, &mut blob.data, rng);
            crate::engine::Param {
                blob,
                lr_mult,
                decay_mult,
            }
        })
        .collect()
}

pub fn child_rng(rng: &mut Rng) -> Rng {
    use rand::SeedableRng;
    Rng::seed_from_u64(rng.random())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn stats(v: &[f32]) -> (f32, f32) {
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n;
        (mean, var)
    }

    #[test]
    fn xavier_has_caffe_variance() {
        // Caffe: uniform(-s, s), s = sqrt(3 / fan_in), so variance = 1 / fan_in.
        let shape = [50, 20, 5, 5];
        let mut d = vec![0.0; 50 * 500];
        Filler::Xavier(VarianceNorm::FanIn).fill(&shape, &mut d, &mut Rng::seed_from_u64(1));
        let (mean, var) = stats(&d);
        assert!(mean.abs() < 0.003, "{mean}");
        assert!((var - 1.0 / 500.0).abs() < 0.0002, "{var}");
        let s = (3.0f32 / 500.0).sqrt();
        assert!(d.iter().all(|x| x.abs() <= s));
    }

    #[test]
    fn msra_and_gaussian_and_unitball() {
        let shape = [64, 32, 3, 3];
        let mut d = vec![0.0; 64 * 288];
        Filler::Msra(VarianceNorm::FanOut).fill(&shape, &mut d, &mut Rng::seed_from_u64(2));
        let (_, var) = stats(&d);
        assert!((var - 2.0 / (64.0 * 9.0)).abs() < 0.0004, "{var}");
        Filler::Gaussian {
            mean: 1.0,
            std: 0.5,
        }
        .fill(&shape, &mut d, &mut Rng::seed_from_u64(3));
        let (mean, var) = stats(&d);
        assert!((mean - 1.0).abs() < 0.02 && (var - 0.25).abs() < 0.02);
        Filler::PositiveUnitball.fill(&[4, 10], &mut d[..40], &mut Rng::seed_from_u64(4));
        for row in d[..40].chunks(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(row.iter().all(|x| *x >= 0.0));
        }
    }

    #[test]
    fn bilinear_matches_caffe_kernel() {
        // Caffe's 4×4 bilinear kernel (factor 2): rows/cols 0.25 0.75 0.75 0.25.
        let mut d = vec![0.0; 16];
        Filler::Bilinear.fill(&[1, 1, 4, 4], &mut d, &mut Rng::seed_from_u64(0));
        let w = [0.25, 0.75, 0.75, 0.25];
        for i in 0..16 {
            assert!((d[i] - w[i / 4] * w[i % 4]).abs() < 1e-6);
        }
    }
}
