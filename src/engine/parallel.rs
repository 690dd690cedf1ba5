//! Data parallelism for training: the batch is split into one share per thread, and each
//! thread runs a replica of the net on its share from the first layer to the last, with
//! no synchronisation between layers (as Caffe trains on several GPUs). The replicas'
//! gradients are then combined into the first replica's, the solver updates its weights,
//! and the new weights are copied to the others: one pass over each chunk of the learned
//! blobs ([`Replicas::update`]; three passes cost 0.04–0.08 ms more of a 5.5 ms LeNet step).
//!
//! Per layer, a LeNet batch of 64 is small work: split over two threads layer by layer,
//! every layer waited for the slower thread and the second core added only 1.6–1.8× (the
//! per-layer figures of `netc time`); whole replicas keep each core busy and each share's
//! activations in its own core's cache.
//!
//! A replica's loss is its share's mean, so the batch's loss and gradient are the
//! replicas' weighted by their share of the batch: exact for the mean losses netc has
//! (SoftmaxWithLoss and EuclideanLoss over every sample). Two things differ from one net
//! over the whole batch, as they do in Caffe on several GPUs: BatchNorm's batch statistics
//! are each share's, and a SoftmaxWithLoss with `ignore_label` normalises each share by
//! its own count of valid labels. Blobs that are not trained (lr_mult 0, such as
//! BatchNorm's running averages) are averaged over the replicas after each step.

use rayon::prelude::*;

use super::net::Net;
use super::Param;
use crate::solver::{apply_update_with, SolverConfig, SolverState, UPDATE_CHUNK};

/// Values per task when combining gradients and copying weights in parallel.
const CHUNK: usize = 16 << 10;

/// `batch` split over `threads` (or fewer, so that every share has two samples or more):
/// (first sample, samples) per share, as even as possible.
pub fn shares(batch: usize, threads: usize) -> Vec<(usize, usize)> {
    let k = threads.min(batch / 2).max(1);
    let (base, extra) = (batch / k, batch % k);
    (0..k)
        .map(|i| (i * base + i.min(extra), base + usize::from(i < extra)))
        .collect()
}

pub struct Replicas {
    /// One net per share, built for that share's batch.
    pub nets: Vec<Net>,
    /// (first sample, samples) of each share.
    pub shares: Vec<(usize, usize)>,
    batch: usize,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("shares", &self.shares)
            .finish()
    }
}

impl Replicas {
    /// Splits `batch` over `threads` and builds a replica per share with `build(samples)`.
    /// Each replica is built as if for one thread, so its layers do not split their work
    /// further. `None` when there is nothing to split (one thread, or a batch too small).
    pub fn new<E: Send>(
        batch: usize,
        threads: usize,
        build: impl Fn(usize) -> Result<Net, E> + Sync,
    ) -> Result<Option<Replicas>, E> {
        let shares = shares(batch, threads);
        if shares.len() < 2 {
            return Ok(None);
        }
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
        let mut nets = Vec::with_capacity(shares.len());
        for &(_, b) in &shares {
            let net = match &one {
                Some(pool) => pool.install(|| build(b))?,
                None => build(b)?,
            };
            // A data layer that fixes its own batch cannot take a share.
            if net.batch() != b {
                return Ok(None);
            }
            nets.push(net);
        }
        Ok(Some(Replicas {
            nets,
            shares,
            batch,
        }))
    }

    /// Copies the main net's learned blobs into every replica (after the solver's update,
    /// a snapshot's load, or fine-tuning's copy), in parallel chunks.
    pub fn copy_from(&mut self, main: &Net) {
        let mut tasks: Vec<(&[f32], &mut [f32])> = Vec::new();
        for r in &mut self.nets {
            for ((_, _, p), (_, _, q)) in r.params_mut().zip(main.params()) {
                if p.blob.shape == q.blob.shape {
                    tasks.extend(q.blob.data.chunks(CHUNK).zip(p.blob.data.chunks_mut(CHUNK)));
                }
            }
        }
        tasks
            .into_par_iter()
            .for_each(|(s, d)| d.copy_from_slice(s));
    }

    /// Runs `f` on every replica at once, each on its own thread.
    pub fn run<R: Send>(&mut self, f: impl Fn(usize, &mut Net) -> R + Sync) -> Vec<R> {
        self.nets
            .par_iter_mut()
            .enumerate()
            .map(|(i, net)| f(i, net))
            .collect()
    }

    /// The first replica: between steps it holds the trained blobs, which the solver
    /// updates in place ([`Replicas::broadcast`] then copies them to the others).
    pub fn first(&mut self) -> &mut Net {
        &mut self.nets[0]
    }

    /// Copies the trained blobs into `net` (for validation and snapshots).
    pub fn copy_to(&self, net: &mut Net) {
        net.copy_params_from(&self.nets[0]);
    }

    /// Runs forward and backward on every replica at once (their data feeds filled), then
    /// leaves the batch's gradient in the first replica's learned blobs and returns the
    /// batch's loss.
    pub fn step(&mut self) -> f32 {
        let loss = self.pass(|_, _| {});
        self.combine();
        loss
    }

    /// `prepare` (filling the data feeds of replica `i`), forward and backward on every
    /// replica at once, each on its own thread; the batch's loss. Each replica keeps its
    /// share's gradient, for [`Replicas::update`] (or [`Replicas::combine`]).
    pub fn pass(&mut self, prepare: impl Fn(usize, &mut Net) + Sync) -> f32 {
        let losses = self.run(|i, net| {
            prepare(i, net);
            let loss = net.forward(true);
            net.backward();
            loss
        });
        self.loss(&losses)
    }

    /// Each share's part of the batch.
    fn weights(&self) -> Vec<f32> {
        self.shares
            .iter()
            .map(|&(_, b)| b as f32 / self.batch as f32)
            .collect()
    }

    /// The batch's loss from the replicas' `losses`.
    pub fn loss(&self, losses: &[f32]) -> f32 {
        losses.iter().zip(self.weights()).map(|(l, w)| l * w).sum()
    }

    /// The end of a training step in one pass over each chunk of the learned blobs while
    /// it is in cache: the replicas' gradients weighted into the first replica's, the
    /// solver's update of its weights, and the new weights copied to the other replicas.
    /// (Untrained blobs, such as BatchNorm's running averages, are averaged and copied
    /// first.) The same arithmetic as [`Replicas::combine`], `apply_update` on the first
    /// replica and [`Replicas::broadcast`].
    pub fn update(&mut self, cfg: &SolverConfig, state: &mut SolverState, rate: f64) {
        self.combine_untrained();
        let weights = self.weights();
        let (first, rest) = self.nets.split_first_mut().expect("two replicas or more");
        // Per learned blob of the others: (gradient, weights to write).
        let mut others: Vec<_> = rest
            .iter_mut()
            .map(|n| {
                n.params_mut()
                    .map(|(_, _, p)| {
                        let b = &mut p.blob;
                        (b.diff.chunks(UPDATE_CHUNK), b.data.chunks_mut(UPDATE_CHUNK))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Per learned blob of the first, per chunk: the others' (gradient, weights).
        let params = first.params_mut().enumerate().map(|(i, (_, _, p))| {
            let chunks = p.blob.data.len().div_ceil(UPDATE_CHUNK);
            let ts: Vec<Vec<(&[f32], &mut [f32])>> = (0..chunks)
                .map(|_| {
                    others
                        .iter_mut()
                        .filter_map(|o| {
                            let (g, w) = &mut o[i];
                            Some((g.next()?, w.next()?))
                        })
                        .collect()
                })
                .collect();
            (p, ts)
        });
        let (w0, ws) = (weights[0], &weights[1..]);
        apply_update_with(
            cfg,
            state,
            params,
            rate,
            |srcs, g| {
                g.iter_mut().for_each(|g| *g *= w0);
                for ((src, _), w) in srcs.iter().zip(ws) {
                    g.iter_mut().zip(*src).for_each(|(g, s)| *g += w * s);
                }
            },
            |dsts, w| {
                for (_, d) in dsts {
                    d.copy_from_slice(w);
                }
            },
        );
    }

    /// Blobs that are not trained (running averages): the replicas' weighted mean, in
    /// every replica.
    fn combine_untrained(&mut self) {
        let weights = self.weights();
        let (first, rest) = self.nets.split_first_mut().expect("two replicas or more");
        let untrained: Vec<usize> = first
            .params()
            .enumerate()
            .filter(|(_, (_, _, p))| p.lr_mult == 0.0)
            .map(|(i, _)| i)
            .collect();
        if untrained.is_empty() {
            return;
        }
        let mut mine: Vec<&mut Param> = first.params_mut().map(|(_, _, p)| p).collect();
        let mut theirs: Vec<Vec<&mut Param>> = rest
            .iter_mut()
            .map(|n| n.params_mut().map(|(_, _, p)| p).collect())
            .collect();
        for i in untrained {
            let d = &mut mine[i].blob.data;
            d.iter_mut().for_each(|d| *d *= weights[0]);
            for (t, w) in theirs.iter().zip(&weights[1..]) {
                d.iter_mut()
                    .zip(&t[i].blob.data)
                    .for_each(|(d, s)| *d += w * s);
            }
            for t in &mut theirs {
                t[i].blob.data.copy_from_slice(d);
            }
        }
    }

    /// The replicas' gradients (and untrained blobs) weighted into the first replica's.
    pub fn combine(&mut self) {
        let weights = self.weights();
        let (first, rest) = self.nets.split_first_mut().expect("two replicas or more");
        let others: Vec<Vec<&Param>> = rest
            .iter()
            .map(|n| n.params().map(|(_, _, p)| p).collect())
            .collect();
        // (chunk of the first replica's blob, the others' chunks): trained blobs get the
        // weighted gradient, the others (running averages) the weighted values.
        let mut tasks: Vec<(&mut [f32], Vec<&[f32]>)> = Vec::new();
        for (i, (_, _, p)) in first.params_mut().enumerate() {
            let trained = p.lr_mult != 0.0;
            let into = if trained {
                &mut p.blob.diff
            } else {
                &mut p.blob.data
            };
            for (c, d) in into.chunks_mut(CHUNK).enumerate() {
                let srcs = others
                    .iter()
                    .map(|reps| {
                        let q = reps[i];
                        let src = if trained { &q.blob.diff } else { &q.blob.data };
                        &src[c * CHUNK..c * CHUNK + d.len()]
                    })
                    .collect();
                tasks.push((d, srcs));
            }
        }
        let w0 = weights[0];
        tasks.into_par_iter().for_each(|(d, srcs)| {
            d.iter_mut().for_each(|d| *d *= w0);
            for (src, w) in srcs.iter().zip(&weights[1..]) {
                d.iter_mut().zip(*src).for_each(|(d, s)| *d += w * s);
            }
        });
    }

    /// Copies the first replica's learned blobs to the others (after the solver's update).
    pub fn broadcast(&mut self) {
        let (first, rest) = self.nets.split_first_mut().expect("two replicas or more");
        let mut tasks: Vec<(&[f32], &mut [f32])> = Vec::new();
        for r in rest {
            for ((_, _, p), (_, _, q)) in r.params_mut().zip(first.params()) {
                tasks.extend(q.blob.data.chunks(CHUNK).zip(p.blob.data.chunks_mut(CHUNK)));
            }
        }
        tasks
            .into_par_iter()
            .for_each(|(s, d)| d.copy_from_slice(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ShapeCtx;
    use crate::spec::{NetState, Source};
    use rand::{Rng as _, SeedableRng};

    #[test]
    fn shares_split_the_batch_evenly() {
        assert_eq!(shares(64, 2), vec![(0, 32), (32, 32)]);
        assert_eq!(shares(7, 2), vec![(0, 4), (4, 3)]);
        assert_eq!(shares(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(shares(3, 2), vec![(0, 3)]);
        assert_eq!(shares(64, 1), vec![(0, 64)]);
    }

    /// A small convolutional net, its Input's batch left to the context; `BN` marks where
    /// a BatchNorm goes (whose running averages are blobs that are not trained).
    const TEXT: &str = r#"
        layer { name: "in" type: "Input" top: "data" top: "label"
                input_param { shape { dim: 1 dim: 2 dim: 10 dim: 10 } shape { dim: 1 } } }
        layer { name: "c" type: "Convolution" bottom: "data" top: "c"
                convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } bias_filler { type: "uniform" } } }
        BN
        layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
        layer { name: "ip" type: "InnerProduct" bottom: "p" top: "ip"
                inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    "#;

    fn build(text: &str, batch: usize) -> Result<Net, String> {
        let src = Source {
            path: "t.net".into(),
            text: text.into(),
        };
        let (spec, d) = crate::front::load_net(&src);
        let spec = spec.ok_or(format!("{d:?}"))?;
        let ctx = ShapeCtx {
            batch: Some(batch),
            ..ShapeCtx::default()
        };
        let (ir, d) = crate::ir::build(&spec, &NetState::train(), &ctx);
        let ir = ir.ok_or(crate::front::render_with(&d, false))?;
        let mut rng = crate::engine::Rng::seed_from_u64(3);
        Net::from_ir(&ir, &ctx, &mut rng).map_err(|e| e.to_string())
    }

    /// The whole batch of 8 in one net, and in replicas of 3, 3 and 2, with the same
    /// weights and inputs.
    fn setup(text: &str) -> (Net, Replicas) {
        let mut whole = build(text, 8).unwrap();
        let mut reps = Replicas::new(8, 3, |b| build(text, b))
            .unwrap()
            .expect("three replicas");
        assert_eq!(reps.shares, vec![(0, 3), (3, 3), (6, 2)]);
        reps.copy_from(&whole);
        let mut rng = crate::engine::Rng::seed_from_u64(11);
        let (x, l) = (whole.feeds[0].tops[0], whole.feeds[0].tops[1]);
        let per = whole.blobs[x].count() / 8;
        let xv: Vec<f32> = (0..8 * per).map(|_| rng.random::<f32>()).collect();
        let lv: Vec<f32> = (0..8).map(|i| (i % 5) as f32).collect();
        whole.blobs[x].data.copy_from_slice(&xv);
        whole.blobs[l].data.copy_from_slice(&lv);
        for (r, &(at, n)) in reps.nets.iter_mut().zip(&reps.shares) {
            r.blobs[x]
                .data
                .copy_from_slice(&xv[at * per..(at + n) * per]);
            r.blobs[l].data.copy_from_slice(&lv[at..at + n]);
        }
        (whole, reps)
    }

    #[test]
    fn replicas_give_the_whole_batchs_loss_and_gradient() {
        let (mut whole, mut reps) = setup(&TEXT.replace("BN", ""));
        let want = whole.forward(true);
        whole.backward();
        let got = reps.step();
        assert!((want - got).abs() < 1e-5, "loss {got} vs {want}");
        let mut compared = 0;
        for ((name, i, a), (_, _, b)) in whole.params().zip(reps.first().params()) {
            for (u, v) in a.blob.diff.iter().zip(&b.blob.diff) {
                assert!(
                    (u - v).abs() < 1e-5 * u.abs().max(1.0),
                    "{name}.{i}: {u} vs {v}"
                );
                compared += 1;
            }
        }
        assert_eq!(compared, whole.param_count());
        // After the solver's update, every replica gets the first one's weights.
        reps.first()
            .params_mut()
            .for_each(|(_, _, p)| p.blob.data.iter_mut().for_each(|v| *v += 1.0));
        reps.broadcast();
        for r in &reps.nets[1..] {
            for ((_, _, a), (_, _, b)) in r.params().zip(reps.nets[0].params()) {
                assert_eq!(a.blob.data, b.blob.data);
            }
        }
    }

    /// With BatchNorm each share has its own batch statistics (as in Caffe on several
    /// GPUs), and the running averages come out as the replicas' weighted mean.
    #[test]
    fn batchnorm_running_averages_are_the_replicas_weighted_mean() {
        let bn = r#"layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }"#;
        let (_, mut reps) = setup(&TEXT.replace("BN", bn));
        reps.pass(|_, _| {});
        let stats = |n: &Net| -> Vec<f32> {
            n.params()
                .filter(|(l, _, _)| *l == "bn")
                .flat_map(|(_, _, p)| p.blob.data.clone())
                .collect()
        };
        let each: Vec<Vec<f32>> = reps.nets.iter().map(stats).collect();
        assert_ne!(each[0], each[1], "the shares' statistics differ");
        reps.combine();
        let got = stats(&reps.nets[0]);
        for (k, g) in got.iter().enumerate() {
            let want = (3.0 * each[0][k] + 3.0 * each[1][k] + 2.0 * each[2][k]) / 8.0;
            assert!((g - want).abs() < 1e-5, "{k}: {g} vs {want}");
        }
    }

    /// The fused end of a step gives every replica the weights (and running averages)
    /// that combining, updating the first replica and copying give, to the bit, with and
    /// without BatchNorm's untrained blobs and gradient clipping (which needs the whole
    /// gradient before the rule).
    #[test]
    fn update_is_combine_then_the_solver_then_broadcast() {
        let bn = r#"layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }"#;
        for (text, clip) in [
            (TEXT.replace("BN", ""), -1.0),
            (TEXT.replace("BN", bn), -1.0),
            (TEXT.replace("BN", ""), 0.01),
        ] {
            let cfg = SolverConfig {
                momentum: 0.9,
                weight_decay: 5e-4,
                clip_gradients: clip,
                ..SolverConfig::default()
            };
            let (_, mut a) = setup(&text);
            let (_, mut b) = setup(&text);
            let mut sa = SolverState::new(a.nets[0].params().map(|(_, _, p)| p));
            let mut sb = sa.clone();
            for _ in 0..2 {
                let la = a.pass(|_, _| {});
                a.combine();
                let params = a.first().params_mut().map(|(_, _, p)| p);
                crate::solver::apply_update(&cfg, &mut sa, params, 0.1);
                a.broadcast();
                let lb = b.pass(|_, _| {});
                b.update(&cfg, &mut sb, 0.1);
                assert_eq!(la, lb);
            }
            let mut checked = 0;
            for (ra, rb) in a.nets.iter().zip(&b.nets) {
                for ((name, i, pa), (_, _, pb)) in ra.params().zip(rb.params()) {
                    assert_eq!(pa.blob.data, pb.blob.data, "{name}.{i} (clip {clip})");
                    checked += pa.blob.count();
                }
            }
            assert!(checked > 3 * 100, "{checked} values");
            // And the weights did move.
            let (_, fresh) = setup(&text);
            assert_ne!(
                fresh.nets[0]
                    .params()
                    .next()
                    .map(|(_, _, p)| p.blob.data.clone()),
                b.nets[0]
                    .params()
                    .next()
                    .map(|(_, _, p)| p.blob.data.clone())
            );
        }
    }
}
