//! Stage 5: the engine. A validated [`crate::ir::NetIr`] is lowered to a plan of ops over
//! preallocated blobs (as Caffe's layers do): every blob and gradient buffer is allocated
//! once, and a training step is a forward and a backward sweep over the plan.

pub mod candle;
pub mod direct;
#[cfg(test)]
pub mod gradcheck;
pub mod im2col;
pub mod kernels;
pub mod net;
pub mod parallel;

use crate::layers::Shape;

pub type Rng = rand_chacha::ChaCha8Rng;

/// Data and gradient of one blob.
#[derive(Debug, Clone, Default)]
pub struct Blob {
    pub shape: Shape,
    pub data: Vec<f32>,
    pub diff: Vec<f32>,
}

impl Blob {
    pub fn zeros(shape: &[usize]) -> Self {
        let n = shape.iter().product();
        Blob {
            shape: shape.to_vec(),
            data: vec![0.0; n],
            diff: vec![0.0; n],
        }
    }
    pub fn count(&self) -> usize {
        self.data.len()
    }
}

/// A learned blob with Caffe's per-blob `param { lr_mult decay_mult }`.
#[derive(Debug, Clone)]
pub struct Param {
    pub blob: Blob,
    pub lr_mult: f32,
    pub decay_mult: f32,
}

/// One lowered layer. Ops overwrite their tops in `forward` and overwrite the diffs of
/// the bottoms with `prop_down` set in `backward` (the engine inserts splits where a blob
/// feeds several layers, so no op has to accumulate). As in Caffe, `backward` follows the
/// `forward` of the same bottoms: ops keep what they need from it (pooling's argmax,
/// convolution's unrolled columns).
pub trait Op: Send + std::fmt::Debug {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], train: bool);
    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]);
    fn params(&self) -> &[Param] {
        &[]
    }
    /// Data layers' ops: the engine writes their tops.
    fn is_feed(&self) -> bool {
        false
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
}
