//! The IR lowered to candle tensor ops: the forward pass on any candle device (the CPU, or
//! an NVIDIA GPU with the `cuda` feature). It shares the engine's learned blobs, so the two
//! paths check each other (see the tests), and a snapshot runs on either.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::net::{LowerError, Net};
use crate::ir::NetIr;

/// Picks a candle device from `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when this build has
/// it and a GPU answers, else the CPU). The message says what is missing.
pub fn device(spec: &str) -> Result<Device, String> {
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "auto" => {
            return Ok(if cfg!(feature = "cuda") {
                Device::cuda_if_available(0).unwrap_or(Device::Cpu)
            } else {
                Device::Cpu
            })
        }
        "cuda" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(format!("unknown device \"{s}\": use cpu, cuda, cuda:N or auto")),
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "device cuda:{ordinal}: this netc was built without CUDA support; rebuild with `--features cuda` (scripts/build-cuda.sh)"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        format!("device cuda:{ordinal} is not usable: {e} (is the NVIDIA driver installed and a GPU present? `nvidia-smi` tells)")
    })
}

/// One phase's IR with its learned blobs on a candle device.
pub struct CandleNet<'a> {
    ir: &'a NetIr,
    pub device: Device,
    params: HashMap<String, Vec<Tensor>>,
}

fn err(layer: &str, e: impl std::fmt::Display) -> LowerError {
    LowerError { layer: layer.to_string(), message: e.to_string(), help: None }
}

impl<'a> CandleNet<'a> {
    /// Copies the learned blobs of `net` (the engine's net for the same spec) to `device`.
    pub fn new(ir: &'a NetIr, net: &Net, device: Device) -> Result<CandleNet<'a>, LowerError> {
        let mut params: HashMap<String, Vec<Tensor>> = HashMap::new();
        for (layer, _, p) in net.params() {
            let t = Tensor::from_slice(&p.blob.data, p.blob.shape.as_slice(), &device).map_err(|e| err(layer, e))?;
            params.entry(layer.to_string()).or_default().push(t);
        }
        Ok(CandleNet { ir, device, params })
    }

    /// Runs the forward pass with the data layers' tops given as (blob id, values); returns
    /// every blob (by IR blob id) that was computed.
    pub fn forward(&self, inputs: &[(usize, Vec<f32>)]) -> Result<Vec<Option<Tensor>>, LowerError> {
        let mut blobs: Vec<Option<Tensor>> = vec![None; self.ir.blobs.len()];
        for (id, values) in inputs {
            let shape = self.ir.blobs[*id].shape.clone().unwrap_or_default();
            let t = Tensor::from_slice(values, shape.as_slice(), &self.device).map_err(|e| err("input", e))?;
            blobs[*id] = Some(t);
        }
        for l in &self.ir.layers {
            if l.layer.input().is_some() {
                continue;
            }
            let bottoms: Vec<Tensor> = l
                .bottoms
                .iter()
                .map(|&b| blobs[b].clone().ok_or_else(|| err(&l.name, format!("blob \"{}\" was not computed", self.ir.blobs[b].name))))
                .collect::<Result<_, _>>()?;
            let params = self.params.get(&l.name).map(Vec::as_slice).unwrap_or(&[]);
            let tops = l.layer.forward_candle(&bottoms, params).map_err(|e| LowerError {
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

/// A tensor's values as a flat f32 vector (copied back from the device).
pub fn values(t: &Tensor) -> Result<Vec<f32>, candle_core::Error> {
    t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ShapeCtx;
    use crate::spec::{NetState, Source};
    use rand::{Rng as _, SeedableRng};

    /// Engine and candle forward passes of `text`'s deploy net agree on every blob.
    fn agree(text: &str, batch: usize) {
        let src = Source { path: "test.net".into(), text: text.into() };
        let (spec, diags) = crate::front::load_net(&src);
        let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
        let ctx = ShapeCtx { batch: Some(batch), data_chw: None, num_classes: Some(10) };
        let (ir, diags) = crate::ir::build(&spec, &NetState::deploy(), &ctx);
        let ir = ir.unwrap_or_else(|| panic!("{}", crate::front::render_with(&diags, false)));
        let mut rng = crate::engine::Rng::seed_from_u64(7);
        let mut net = Net::from_ir(&ir, &ctx, &mut rng).expect("lowers");
        let input = net.feeds[0].tops[0];
        let values: Vec<f32> = (0..net.blobs[input].count()).map(|_| rng.random::<f32>() - 0.3).collect();
        net.blobs[input].data.copy_from_slice(&values);
        net.forward(false);
        let cn = CandleNet::new(&ir, &net, Device::Cpu).expect("candle net");
        let out = cn.forward(&[(input, values)]).expect("candle forward");
        for (id, b) in ir.blobs.iter().enumerate() {
            let Some(t) = &out[id] else { continue };
            let got = super::values(t).unwrap();
            let want = &net.blobs[id].data;
            assert_eq!(got.len(), want.len(), "blob {}", b.name);
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "blob {} [{i}]: candle {g} vs engine {w}", b.name);
            }
        }
    }

    #[test]
    fn lenet_agrees_with_the_engine() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/lenet.net")).unwrap();
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
