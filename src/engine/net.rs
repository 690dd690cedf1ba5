//! A lowered net: ops in execution order over preallocated blobs, with Caffe's rules for
//! which layers need a backward pass, and splits where a blob's gradient has several
//! sources.

use std::collections::HashMap;

use super::{Blob, Op, Param, Rng};
use crate::ir::NetIr;
use crate::layers::data::InputSpec;
use crate::layers::{split::SplitOp, ShapeCtx};

/// One op of the plan.
#[derive(Debug)]
pub struct Step {
    /// The layer's name in the spec (splits get `<blob>_split`).
    pub name: String,
    pub ty: &'static str,
    pub op: Box<dyn Op>,
    pub bottoms: Vec<usize>,
    pub tops: Vec<usize>,
    /// Whether backward runs for this step (it leads to a loss and has something to
    /// train below it).
    pub backward: bool,
    pub prop_down: Vec<bool>,
}

/// A data layer's tops, which the caller fills before each forward pass.
#[derive(Debug, Clone)]
pub struct Feed {
    pub layer: String,
    pub input: InputSpec,
    pub tops: Vec<usize>,
}

#[derive(Debug)]
pub struct Net {
    pub steps: Vec<Step>,
    pub blobs: Vec<Blob>,
    pub blob_names: Vec<String>,
    pub feeds: Vec<Feed>,
    /// (blob, loss weight) of every top that adds to the loss.
    pub losses: Vec<(usize, f32)>,
}

/// A layer that could not be lowered, with its name.
#[derive(Debug, Clone)]
pub struct LowerError {
    pub layer: String,
    pub message: String,
    pub help: Option<String>,
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "layer \"{}\": {}", self.layer, self.message)
    }
}

impl Net {
    /// Lowers every layer of `ir` and plans the backward pass.
    pub fn from_ir(ir: &NetIr, ctx: &ShapeCtx, rng: &mut Rng) -> Result<Net, LowerError> {
        check_memory(ir, ctx)?;
        let mut blobs = Vec::with_capacity(ir.blobs.len());
        let mut blob_names = Vec::with_capacity(ir.blobs.len());
        for b in &ir.blobs {
            let Some(shape) = &b.shape else {
                let layer = ir
                    .layers
                    .get(b.producer)
                    .map_or(String::new(), |l| l.name.clone());
                return Err(LowerError {
                    layer,
                    message: format!("the shape of blob \"{}\" is not known", b.name),
                    help: None,
                });
            };
            blobs.push(Blob::zeros(shape));
            blob_names.push(b.name.clone());
        }
        let mut steps = Vec::with_capacity(ir.layers.len());
        let mut feeds = Vec::new();
        let mut losses = Vec::new();
        for l in &ir.layers {
            let bshapes: Vec<_> = l.bottoms.iter().map(|&b| blobs[b].shape.clone()).collect();
            let op = l.layer.lower(&bshapes, ctx, rng).map_err(|e| LowerError {
                layer: l.name.clone(),
                message: e.message,
                help: e.help,
            })?;
            if let Some(input) = l.layer.input() {
                feeds.push(Feed {
                    layer: l.name.clone(),
                    input: input.clone(),
                    tops: l.tops.clone(),
                });
            }
            for (i, w) in l.layer.loss_weights().iter().enumerate() {
                if *w != 0.0 {
                    if let Some(&t) = l.tops.get(i) {
                        losses.push((t, *w));
                    }
                }
            }
            steps.push(Step {
                name: l.name.clone(),
                ty: l.layer.ty().name,
                op,
                bottoms: l.bottoms.clone(),
                tops: l.tops.clone(),
                backward: false,
                prop_down: vec![false; l.bottoms.len()],
            });
        }
        let mut net = Net {
            steps,
            blobs,
            blob_names,
            feeds,
            losses,
        };
        net.plan_backward();
        net.insert_splits();
        Ok(net)
    }

    /// Caffe's rules: a step runs backward when one of its tops reaches a loss and it has
    /// a trainable parameter or a bottom that needs a gradient.
    fn plan_backward(&mut self) {
        let n = self.blobs.len();
        let mut reaches_loss = vec![false; n];
        for &(b, _) in &self.losses {
            reaches_loss[b] = true;
        }
        let mut contributes = vec![false; self.steps.len()];
        for (i, s) in self.steps.iter().enumerate().rev() {
            if s.tops.iter().any(|&t| reaches_loss[t]) {
                contributes[i] = true;
                for &b in &s.bottoms {
                    reaches_loss[b] = true;
                }
            }
        }
        let mut needs_grad = vec![false; n];
        for (i, s) in self.steps.iter_mut().enumerate() {
            let trains = s.op.params().iter().any(|p| p.lr_mult != 0.0);
            let below = s.bottoms.iter().any(|&b| needs_grad[b]);
            s.backward = contributes[i] && !s.op.is_feed() && (trains || below);
            s.prop_down = s
                .bottoms
                .iter()
                .map(|&b| s.backward && needs_grad[b])
                .collect();
            if s.backward {
                for &t in &s.tops {
                    needs_grad[t] = true;
                }
            }
        }
    }

    /// Where several steps send a gradient to one blob, a split gives each its own copy.
    fn insert_splits(&mut self) {
        let mut consumers: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (si, s) in self.steps.iter().enumerate() {
            for (bi, &b) in s.bottoms.iter().enumerate() {
                if s.prop_down[bi] {
                    consumers.entry(b).or_default().push((si, bi));
                }
            }
        }
        let mut after: HashMap<usize, Vec<Step>> = HashMap::new();
        let mut keys: Vec<_> = consumers.keys().copied().collect();
        keys.sort_unstable();
        for b in keys {
            let users = &consumers[&b];
            if users.len() < 2 {
                continue;
            }
            let producer = self
                .steps
                .iter()
                .position(|s| s.tops.contains(&b))
                .unwrap_or(0);
            let mut tops = Vec::new();
            for (k, &(si, bi)) in users.iter().enumerate() {
                let id = self.blobs.len();
                self.blobs.push(Blob::zeros(&self.blobs[b].shape.clone()));
                self.blob_names
                    .push(format!("{}_split_{k}", self.blob_names[b]));
                self.steps[si].bottoms[bi] = id;
                tops.push(id);
            }
            after.entry(producer).or_default().push(Step {
                name: format!("{}_split", self.blob_names[b]),
                ty: "Split",
                op: Box::new(SplitOp),
                bottoms: vec![b],
                tops,
                backward: true,
                prop_down: vec![true],
            });
        }
        if after.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.steps);
        for (i, s) in old.into_iter().enumerate() {
            self.steps.push(s);
            if let Some(extra) = after.remove(&i) {
                self.steps.extend(extra);
            }
        }
    }

    /// Runs step `i`'s forward pass (feeds excepted: they do nothing).
    pub fn run_forward(&mut self, i: usize, train: bool) {
        let step = &mut self.steps[i];
        let mut tops: Vec<Blob> = step
            .tops
            .iter()
            .map(|&t| std::mem::take(&mut self.blobs[t]))
            .collect();
        {
            let bottoms: Vec<&Blob> = step.bottoms.iter().map(|&b| &self.blobs[b]).collect();
            let mut trefs: Vec<&mut Blob> = tops.iter_mut().collect();
            step.op.forward(&bottoms, &mut trefs, train);
        }
        for (&t, blob) in step.tops.iter().zip(tops) {
            self.blobs[t] = blob;
        }
    }

    /// Runs every step's forward pass (data layers' tops must be filled); returns the
    /// weighted loss.
    pub fn forward(&mut self, train: bool) -> f32 {
        for i in 0..self.steps.len() {
            if !self.steps[i].op.is_feed() {
                self.run_forward(i, train);
            }
        }
        self.loss()
    }

    /// The weighted sum of the loss tops after a forward pass.
    pub fn loss(&self) -> f32 {
        self.losses
            .iter()
            .map(|&(b, w)| w * self.blobs[b].data.iter().sum::<f32>())
            .sum()
    }

    /// Backward from the losses; leaves every trained parameter's gradient in its diff.
    pub fn backward(&mut self) {
        self.seed_loss_diffs();
        for i in (0..self.steps.len()).rev() {
            self.run_backward(i);
        }
    }

    /// Sets each loss top's gradient to its loss weight (the start of backward).
    pub fn seed_loss_diffs(&mut self) {
        for &(b, w) in &self.losses {
            self.blobs[b].diff.fill(w);
        }
    }

    /// Runs step `i`'s backward pass, if it has one.
    pub fn run_backward(&mut self, i: usize) {
        if !self.steps[i].backward {
            return;
        }
        let step = &mut self.steps[i];
        let mut bottoms: Vec<Blob> = step
            .bottoms
            .iter()
            .map(|&b| std::mem::take(&mut self.blobs[b]))
            .collect();
        {
            let tops: Vec<&Blob> = step.tops.iter().map(|&t| &self.blobs[t]).collect();
            let mut brefs: Vec<&mut Blob> = bottoms.iter_mut().collect();
            step.op.backward(&tops, &mut brefs, &step.prop_down);
        }
        for (&b, blob) in step.bottoms.iter().zip(bottoms) {
            self.blobs[b] = blob;
        }
    }

    /// The newest blob called `name` (after in-place layers, the last version).
    pub fn blob(&self, name: &str) -> Option<&Blob> {
        self.blob_names
            .iter()
            .rposition(|n| n == name)
            .map(|i| &self.blobs[i])
    }

    /// Learned blobs as `(layer, index, param)`, in plan order.
    pub fn params(&self) -> impl Iterator<Item = (&str, usize, &Param)> {
        self.steps.iter().flat_map(|s| {
            s.op.params()
                .iter()
                .enumerate()
                .map(move |(i, p)| (s.name.as_str(), i, p))
        })
    }

    pub fn params_mut(&mut self) -> impl Iterator<Item = (&str, usize, &mut Param)> {
        self.steps.iter_mut().flat_map(|s| {
            let name = s.name.as_str();
            s.op.params_mut()
                .iter_mut()
                .enumerate()
                .map(move |(i, p)| (name, i, p))
        })
    }

    /// Copies learned values from `other` into layers with the same name and shapes (the
    /// validation net shares the training net's weights this way).
    pub fn copy_params_from(&mut self, other: &Net) {
        let src: HashMap<(&str, usize), &Param> =
            other.params().map(|(l, i, p)| ((l, i), p)).collect();
        for (l, i, p) in self.params_mut() {
            if let Some(s) = src.get(&(l, i)) {
                if s.blob.shape == p.blob.shape {
                    p.blob.data.copy_from_slice(&s.blob.data);
                }
            }
        }
    }

    /// Total learned values.
    pub fn param_count(&self) -> usize {
        self.params().map(|(_, _, p)| p.blob.count()).sum()
    }

    /// The batch size of the first feed.
    pub fn batch(&self) -> usize {
        self.feeds
            .first()
            .and_then(|f| f.tops.first())
            .and_then(|&t| self.blobs[t].shape.first().copied())
            .unwrap_or(1)
    }
}

/// Refuses a net whose blobs and learned blobs would not fit in the memory this process
/// may use, before anything is allocated: a huge batch or layer would otherwise end the
/// process in an allocation failure. Blobs count values and gradients (4 bytes each);
/// learned blobs of a TRAIN net also the solver's history (up to two arrays), of others
/// values and gradients.
fn check_memory(ir: &NetIr, ctx: &ShapeCtx) -> Result<(), LowerError> {
    let count = |s: &[usize]| crate::ir::blob_count(s).and_then(|n| u64::try_from(n).ok());
    let mut total = Some(0u64);
    let mut learned = Some(0u64);
    let mut biggest = (0u64, String::new());
    for b in &ir.blobs {
        let n = b.shape.as_deref().map_or(Some(0), count);
        if let Some(n) = n {
            if n > biggest.0 {
                biggest = (
                    n,
                    ir.layers
                        .get(b.producer)
                        .map_or(String::new(), |l| l.name.clone()),
                );
            }
        }
        total = total.zip(n).and_then(|(t, n)| t.checked_add(n));
    }
    for l in &ir.layers {
        let shapes: Vec<_> = l
            .bottoms
            .iter()
            .map(|&b| ir.blobs[b].shape.clone().unwrap_or_default())
            .collect();
        for p in l.layer.param_shapes(&shapes, ctx) {
            let n = count(&p);
            if let Some(n) = n {
                if n > biggest.0 {
                    biggest = (n, l.name.clone());
                }
            }
            learned = learned.zip(n).and_then(|(t, n)| t.checked_add(n));
        }
    }
    let per_learned = if ir.state.phase == crate::spec::Phase::Train {
        16
    } else {
        8
    };
    let bytes = total
        .and_then(|t| t.checked_mul(8))
        .zip(learned.and_then(|l| l.checked_mul(per_learned)))
        .and_then(|(a, b)| a.checked_add(b));
    let limit = memory_bytes();
    if bytes.is_some_and(|b| b <= limit) {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    Err(LowerError {
        layer: biggest.1,
        message: match bytes {
            Some(b) => format!(
                "the net needs {:.1} GiB for its blobs, gradients and solver history, more than the {:.1} GiB this process may use (the machine's memory, or a limit set with ulimit -v or a cgroup)",
                gib(b),
                gib(limit)
            ),
            None => "the net's blobs are too large to count".into(),
        },
        help: Some(
            "use a smaller batch (--batch-size) or smaller layers; the layer named holds the largest blob"
                .into(),
        ),
    })
}

/// The machine's memory in bytes (from /proc/meminfo), or 1 TiB where it cannot be read.
/// The memory this process may use: the machine's, or less under `ulimit -v` or a cgroup
/// limit (1 TiB when nothing says).
fn memory_bytes() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(1 << 40, |kb| kb * 1024);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    total
        .min(cgroup.unwrap_or(u64::MAX))
        .min(address_space_limit())
}

#[cfg(unix)]
fn address_space_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0 && r.rlim_cur != libc::RLIM_INFINITY
    {
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
        {
            r.rlim_cur as u64
        }
    } else {
        u64::MAX
    }
}

#[cfg(not(unix))]
fn address_space_limit() -> u64 {
    u64::MAX
}
