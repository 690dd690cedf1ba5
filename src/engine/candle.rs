//! The IR lowered to candle tensor ops: the forward pass on any candle device (the CPU, or
//! an NVIDIA GPU with the `cuda` feature). It shares the engine's learned blobs, so the two
//! paths check each other (see the tests), and a snapshot runs on either.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};

use super::net::{LowerError, Net};
use crate::ir::NetIr;
use crate::solver::{SolverConfig, SolverState, SolverType};

/// Picks a candle device from `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when this build has
/// it and a GPU answers, else the CPU). The message says what is missing.
pub fn device(spec: &str) -> Result<Device, String> {
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "auto" => {
            if !cfg!(feature = "cuda") {
                return Ok(Device::Cpu);
            }
            // A CUDA build on a machine without a usable GPU says why it runs on the CPU.
            return Ok(Device::new_cuda(0).unwrap_or_else(|e| {
                eprintln!(
                    "note: --device auto: no usable GPU ({}), running on the CPU",
                    message(&e)
                );
                Device::Cpu
            }));
        }
        "cuda" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(format!(
                    "unknown device \"{s}\": use cpu, cuda, cuda:N or auto"
                ))
            }
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "device cuda:{ordinal}: this netc was built without CUDA support; rebuild with `--features cuda` (scripts/build-cuda.sh)"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        let e = message(&e);
        let why = if e.contains("CUDA_ERROR_STUB_LIBRARY") {
            "libcuda.so.1 is the build's stub driver: on a GPU machine leave the stub off LD_LIBRARY_PATH so the NVIDIA driver's library loads"
        } else {
            "is the NVIDIA driver installed and a GPU present? `nvidia-smi` tells"
        };
        format!("device cuda:{ordinal} is not usable: {e} ({why})")
    })
}

/// A candle error's message without the backtrace candle attaches when `RUST_BACKTRACE`
/// is set: users get the cause, not forty frames of candle's and rayon's internals.
pub fn message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => message(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", message(inner)),
        candle_core::Error::WithPath { inner, path } => {
            format!("{}: {}", path.display(), message(inner))
        }
        e => e.to_string(),
    }
}

/// One phase's IR with its learned blobs on a candle device (as variables, so the same
/// net can be trained with candle's autograd).
pub struct CandleNet {
    pub ir: NetIr,
    pub device: Device,
    params: HashMap<String, Vec<Var>>,
    /// (layer, blob index, lr_mult, decay_mult) in the engine's parameter order.
    order: Vec<(String, usize, f32, f32)>,
}

/// What a lowering error can be made of: our own words or a candle error.
trait ErrText {
    fn text(self) -> String;
}

impl ErrText for &str {
    fn text(self) -> String {
        self.to_string()
    }
}

impl ErrText for String {
    fn text(self) -> String {
        self
    }
}

impl ErrText for candle_core::Error {
    fn text(self) -> String {
        message(&self)
    }
}

fn err(layer: &str, e: impl ErrText) -> LowerError {
    LowerError {
        layer: layer.to_string(),
        message: e.text(),
        help: None,
    }
}

impl std::fmt::Debug for CandleNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CandleNet({} layers on {:?})",
            self.ir.layers.len(),
            self.device
        )
    }
}

impl CandleNet {
    /// Copies the learned blobs of `net` (the engine's net for the same spec) to `device`.
    pub fn new(ir: NetIr, net: &Net, device: Device) -> Result<CandleNet, LowerError> {
        let mut params: HashMap<String, Vec<Var>> = HashMap::new();
        let mut order = Vec::new();
        for (layer, i, p) in net.params() {
            let t = Var::from_slice(&p.blob.data, p.blob.shape.as_slice(), &device)
                .map_err(|e| err(layer, e))?;
            params.entry(layer.to_string()).or_default().push(t);
            order.push((layer.to_string(), i, p.lr_mult, p.decay_mult));
        }
        Ok(CandleNet {
            ir,
            device,
            params,
            order,
        })
    }

    /// Runs the forward pass with the data layers' tops given as (blob id, values); returns
    /// every blob (by IR blob id) that was computed.
    pub fn forward(&self, inputs: &[(usize, Vec<f32>)]) -> Result<Vec<Option<Tensor>>, LowerError> {
        self.run(inputs, false)
    }

    fn run(
        &self,
        inputs: &[(usize, Vec<f32>)],
        train: bool,
    ) -> Result<Vec<Option<Tensor>>, LowerError> {
        let mut blobs: Vec<Option<Tensor>> = vec![None; self.ir.blobs.len()];
        for (id, values) in inputs {
            let shape = self.ir.blobs[*id].shape.clone().unwrap_or_default();
            let t = Tensor::from_slice(values, shape.as_slice(), &self.device)
                .map_err(|e| err("input", e))?;
            blobs[*id] = Some(t);
        }
        for l in &self.ir.layers {
            if l.layer.input().is_some() {
                continue;
            }
            let bottoms: Vec<Tensor> = l
                .bottoms
                .iter()
                .map(|&b| {
                    blobs[b].clone().ok_or_else(|| {
                        err(
                            &l.name,
                            format!("blob \"{}\" was not computed", self.ir.blobs[b].name),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            let params: Vec<Tensor> = self
                .params
                .get(&l.name)
                .map(|v| v.iter().map(|p| p.as_tensor().clone()).collect())
                .unwrap_or_default();
            let tops = l
                .layer
                .forward_candle(&bottoms, &params, train)
                .map_err(|e| LowerError {
                    layer: l.name.clone(),
                    message: e.message,
                    help: e.help,
                })?;
            for (&t, v) in l.tops.iter().zip(tops) {
                blobs[t] = Some(v);
            }
        }
        Ok(blobs)
    }
}

/// Training through candle's autograd, on any candle device: forward, backward from the
/// losses, and the solver's update as tensor ops on the device.
pub struct CandleTrainer {
    pub net: CandleNet,
    /// (blob, loss weight) of the loss tops.
    losses: Vec<(usize, f32)>,
    history: Vec<Tensor>,
}

impl CandleTrainer {
    pub fn new(
        ir: NetIr,
        engine: &Net,
        state: &SolverState,
        device: Device,
    ) -> Result<CandleTrainer, LowerError> {
        let net = CandleNet::new(ir, engine, device)?;
        let mut losses = Vec::new();
        for l in &net.ir.layers {
            for (i, w) in l.layer.loss_weights().iter().enumerate() {
                if *w != 0.0 {
                    if let Some(&t) = l.tops.get(i) {
                        losses.push((t, *w));
                    }
                }
            }
        }
        let mut history = Vec::new();
        for (k, (layer, i, _, _)) in net.order.iter().enumerate() {
            let v = &net.params[layer][*i];
            let h = match state.history.get(k) {
                Some(h) if h.len() == v.elem_count() => {
                    Tensor::from_slice(h, v.shape(), &net.device)
                }
                _ => v.zeros_like(),
            }
            .map_err(|e| err(layer, e))?;
            history.push(h);
        }
        Ok(CandleTrainer {
            net,
            losses,
            history,
        })
    }

    /// One iteration at learning rate `rate`; returns the loss before the update.
    pub fn step(
        &mut self,
        inputs: &[(usize, Vec<f32>)],
        cfg: &SolverConfig,
        rate: f64,
    ) -> Result<f32, LowerError> {
        let e = |x: candle_core::Error| err("solver", x);
        if !matches!(cfg.solver_type, SolverType::Sgd | SolverType::Nesterov) {
            return Err(err(
                "solver",
                "the candle path runs SGD and Nesterov; use --device cpu for the other solvers",
            ));
        }
        let blobs = self.net.run(inputs, true)?;
        let mut loss: Option<Tensor> = None;
        for &(b, w) in &self.losses {
            let t = blobs[b]
                .as_ref()
                .ok_or_else(|| err("loss", "loss blob not computed"))?;
            let term = t
                .sum_all()
                .and_then(|s| s.affine(w as f64, 0.0))
                .map_err(e)?;
            loss = Some(match loss {
                Some(l) => (l + term).map_err(e)?,
                None => term,
            });
        }
        let loss = loss.ok_or_else(|| err("loss", "the net has no loss"))?;
        let value = loss.to_scalar::<f32>().map_err(e)?;
        let grads = loss.backward().map_err(e)?;
        let mut gs = Vec::with_capacity(self.net.order.len());
        for (layer, i, lr_mult, decay_mult) in &self.net.order {
            let v = &self.net.params[layer][*i];
            let g = match grads.get(v.as_tensor()) {
                Some(g) => g.clone(),
                None => v.zeros_like().map_err(e)?,
            };
            let decay = cfg.weight_decay * *decay_mult as f64;
            let g = if decay == 0.0 || *lr_mult == 0.0 {
                g
            } else if cfg.regularization_type == "L1" {
                {
                    let w = v.as_tensor();
                    let f = candle_core::DType::F32;
                    let sign = (w.gt(0.0).and_then(|t| t.to_dtype(f)).map_err(e)?
                        - w.lt(0.0).and_then(|t| t.to_dtype(f)).map_err(e)?)
                    .map_err(e)?;
                    (g + sign.affine(decay, 0.0).map_err(e)?).map_err(e)?
                }
            } else {
                (g + v.as_tensor().affine(decay, 0.0).map_err(e)?).map_err(e)?
            };
            gs.push(g);
        }
        if cfg.clip_gradients >= 0.0 {
            let mut sq = 0.0f64;
            for g in &gs {
                sq += g
                    .sqr()
                    .and_then(|x| x.sum_all())
                    .and_then(|x| x.to_scalar::<f32>())
                    .map_err(e)? as f64;
            }
            let norm = sq.sqrt();
            if norm > cfg.clip_gradients {
                let s = cfg.clip_gradients / norm;
                gs = gs
                    .into_iter()
                    .map(|g| g.affine(s, 0.0))
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
            }
        }
        let mom = cfg.momentum;
        for (k, g) in gs.into_iter().enumerate() {
            let (layer, i, lr_mult, _) = &self.net.order[k];
            if *lr_mult == 0.0 {
                continue;
            }
            let lr = rate * *lr_mult as f64;
            let v = &self.net.params[layer][*i];
            let prev = self.history[k].clone();
            let h =
                (prev.affine(mom, 0.0).map_err(e)? + g.affine(lr, 0.0).map_err(e)?).map_err(e)?;
            let update = match cfg.solver_type {
                SolverType::Nesterov => (h.affine(1.0 + mom, 0.0).map_err(e)?
                    - prev.affine(mom, 0.0).map_err(e)?)
                .map_err(e)?,
                _ => h.clone(),
            };
            v.set(&(v.as_tensor() - update).map_err(e)?).map_err(e)?;
            self.history[k] = h;
        }
        Ok(value)
    }

    /// Copies the learned blobs and the solver history back into the engine's net and
    /// state (for validation on the engine and for snapshots).
    pub fn write_back(&self, net: &mut Net, state: &mut SolverState) -> Result<(), LowerError> {
        for (k, (layer, i, p)) in net.params_mut().enumerate() {
            let v = &self
                .net
                .params
                .get(layer)
                .ok_or_else(|| err(layer, "missing"))?[i];
            let data = values(v.as_tensor()).map_err(|x| err(layer, x))?;
            p.blob.data.copy_from_slice(&data);
            if let (Some(h), Some(dst)) = (self.history.get(k), state.history.get_mut(k)) {
                dst.copy_from_slice(&values(h).map_err(|x| err(layer, x))?);
            }
        }
        Ok(())
    }
}

/// A tensor's values as a flat f32 vector (copied back from the device).
pub fn values(t: &Tensor) -> Result<Vec<f32>, candle_core::Error> {
    t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ShapeCtx;
    use crate::spec::{NetState, Source};
    use rand::{Rng as _, SeedableRng};

    /// Engine and candle forward passes of `text`'s deploy net agree on every blob.
    fn agree(text: &str, batch: usize) {
        let src = Source {
            path: "test.net".into(),
            text: text.into(),
        };
        let (spec, diags) = crate::front::load_net(&src);
        let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
        let ctx = ShapeCtx {
            batch: Some(batch),
            data_chw: None,
            num_classes: Some(10),
        };
        let (ir, diags) = crate::ir::build(&spec, &NetState::deploy(), &ctx);
        let ir = ir.unwrap_or_else(|| panic!("{}", crate::front::render_with(&diags, false)));
        let mut rng = crate::engine::Rng::seed_from_u64(7);
        let mut net = Net::from_ir(&ir, &ctx, &mut rng).expect("lowers");
        let input = net.feeds[0].tops[0];
        let values: Vec<f32> = (0..net.blobs[input].count())
            .map(|_| rng.random::<f32>() - 0.3)
            .collect();
        net.blobs[input].data.copy_from_slice(&values);
        net.forward(false);
        let cn = CandleNet::new(ir, &net, Device::Cpu).expect("candle net");
        let out = cn.forward(&[(input, values)]).expect("candle forward");
        for (id, b) in cn.ir.blobs.iter().enumerate() {
            let Some(t) = &out[id] else { continue };
            let got = super::values(t).unwrap();
            let want = &net.blobs[id].data;
            assert_eq!(got.len(), want.len(), "blob {}", b.name);
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "blob {} [{i}]: candle {g} vs engine {w}",
                    b.name
                );
            }
        }
    }

    #[test]
    fn lenet_agrees_with_the_engine() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/lenet.net"))
            .unwrap();
        agree(&text, 3);
    }

    #[test]
    fn padding_ceil_rounding_average_pooling_and_leaky_relu_agree() {
        let text = r#"
            layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 11 dim: 9 } } }
            layer { name: "c" type: "Convolution" bottom: "data" top: "c"
                    convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 1
                                        weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "uniform" } } }
            layer { name: "ave" type: "Pooling" bottom: "c" top: "ave" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
            layer { name: "max" type: "Pooling" bottom: "c" top: "max" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
            layer { name: "g" type: "Convolution" bottom: "max" top: "g"
                    convolution_param { num_output: 4 kernel_size: 1 group: 2 weight_filler { type: "xavier" } } }
            layer { name: "r" type: "ReLU" bottom: "g" top: "g" relu_param { negative_slope: 0.2 } }
            layer { name: "ip" type: "InnerProduct" bottom: "g" top: "ip"
                    inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
            layer { name: "ip_ave" type: "InnerProduct" bottom: "ave" top: "ip_ave"
                    inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
            layer { name: "p" type: "Softmax" bottom: "ip" top: "p" }
        "#;
        agree(text, 2);
    }
}

#[cfg(test)]
mod train_tests {
    use super::*;
    use crate::layers::ShapeCtx;
    use crate::solver::apply_update;
    use crate::spec::{NetState, Source};
    use rand::{Rng as _, SeedableRng};

    /// One SGD step through candle's autograd moves every weight as the engine's
    /// backward pass and update do.
    #[test]
    fn one_step_matches_the_engine() {
        step_matches(&TEXT.replace(r#"layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }"#, r#"layer { name: "p" type: "ReLU" bottom: "c" top: "p" }"#));
        step_matches(TEXT);
        // Overlapping windows (AlexNet's kernel 3, stride 2), which candle's own max_pool2d
        // cannot differentiate.
        step_matches(&TEXT.replace("kernel_size: 2 stride: 2", "kernel_size: 3 stride: 2"));
    }

    const TEXT: &str = r#"
            layer { name: "in" type: "Input" top: "data" top: "label"
                    input_param { shape { dim: 4 dim: 1 dim: 12 dim: 12 } shape { dim: 4 } } }
            layer { name: "c" type: "Convolution" bottom: "data" top: "c"
                    convolution_param { num_output: 3 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "uniform" } } }
            layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
            layer { name: "ip" type: "InnerProduct" bottom: "p" top: "ip"
                    inner_product_param { num_output: 6 weight_filler { type: "xavier" } bias_filler { type: "uniform" } } }
            layer { name: "r" type: "ReLU" bottom: "ip" top: "ip" }
            layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "ip2"
                    inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
            layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
        "#;

    fn step_matches(text: &str) {
        let src = Source {
            path: "t.net".into(),
            text: text.into(),
        };
        let (spec, d) = crate::front::load_net(&src);
        let spec = spec.unwrap_or_else(|| panic!("{d:?}"));
        let ctx = ShapeCtx::default();
        let (ir, d) = crate::ir::build(&spec, &NetState::train(), &ctx);
        let ir = ir.unwrap_or_else(|| panic!("{}", crate::front::render_with(&d, false)));
        let mut rng = crate::engine::Rng::seed_from_u64(3);
        let mut net = Net::from_ir(&ir, &ctx, &mut rng).unwrap();
        let (x, l) = (net.feeds[0].tops[0], net.feeds[0].tops[1]);
        let xv: Vec<f32> = (0..net.blobs[x].count())
            .map(|_| rng.random::<f32>())
            .collect();
        let lv = vec![0.0, 3.0, 1.0, 4.0];
        net.blobs[x].data.copy_from_slice(&xv);
        net.blobs[l].data.copy_from_slice(&lv);
        let cfg = SolverConfig {
            momentum: 0.0,
            weight_decay: 0.01,
            ..SolverConfig::default()
        };
        let mut state = SolverState::new(net.params().map(|(_, _, p)| p));
        let mut tr = CandleTrainer::new(ir, &net, &state, Device::Cpu).unwrap();
        let closs = tr.step(&[(x, xv), (l, lv)], &cfg, 0.1).unwrap();
        let eloss = net.forward(true);
        net.backward();
        apply_update(&cfg, &mut state, net.params_mut().map(|(_, _, p)| p), 0.1);
        assert!((closs - eloss).abs() < 1e-5, "{closs} vs {eloss}");
        let mut back =
            Net::from_ir(&tr.net.ir, &ctx, &mut crate::engine::Rng::seed_from_u64(99)).unwrap();
        let mut st2 = state.clone();
        tr.write_back(&mut back, &mut st2).unwrap();
        let mut bad = Vec::new();
        for ((name, i, a), (_, _, b)) in net.params().zip(back.params()) {
            let worst = a
                .blob
                .data
                .iter()
                .zip(&b.blob.data)
                .map(|(u, v)| (u - v).abs())
                .fold(0.0f32, f32::max);
            if worst > 1e-5 {
                bad.push(format!("{name}.{i}: {worst}"));
            }
        }
        assert!(bad.is_empty(), "{bad:?}");
    }
}
