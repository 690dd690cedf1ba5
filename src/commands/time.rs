//! `netc time SPEC`: per-layer forward and backward times of the TRAIN net, like
//! `caffe time`, and training images per second (with the solver update).

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng as _, SeedableRng};

use super::CmdResult;
use crate::engine::net::Net;
use crate::engine::parallel::Replicas;
use crate::engine::Rng;
use crate::layers::ShapeCtx;
use crate::solver::{apply_update, SolverState};
use crate::spec::NetState;
use crate::train::{build_net, dataset_path, find_solver, load_spec};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub spec: PathBuf,
    /// Timed iterations (after 3 untimed ones).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The dataset that gives the input size and class count (default: the spec's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

#[derive(Debug, serde::Serialize)]
struct LayerTime {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    /// Means over the timed iterations, as `caffe time` reports them.
    forward_ms: f64,
    backward_ms: f64,
    /// Medians: steadier than the means on a shared machine.
    forward_median_ms: f64,
    backward_median_ms: f64,
}

pub fn run(a: Args) -> CmdResult {
    if a.batch_size == Some(0) {
        return Err(super::usage("--batch-size must be at least 1", None));
    }
    let spec = load_spec(&a.spec)?;
    let data = crate::data::open(&dataset_path(&spec, &a.spec, a.data.as_deref())?)?;
    let ctx = ShapeCtx {
        batch: a.batch_size,
        data_chw: Some([data.channels, data.height, data.width]),
        num_classes: Some(data.num_classes()),
    };
    let (cfg, _) = find_solver(&a.spec, None)?;
    let mut rng = Rng::seed_from_u64(cfg.random_seed);
    let mut net = build_net(&spec, &NetState::train(), &ctx, &mut rng, "TRAIN")?;
    let classes = data.num_classes().max(1);
    random_feeds(&mut net, classes, &mut rng);
    // With several threads, replicas train on shares of the batch, as `netc train` does;
    // the per-layer times are then the first replica's.
    let mut replicas = Replicas::new(net.batch(), rayon::current_num_threads(), |b| {
        let ctx = ShapeCtx {
            batch: Some(b),
            ..ctx.clone()
        };
        let mut rng = Rng::seed_from_u64(cfg.random_seed);
        let mut r = build_net(&spec, &NetState::train(), &ctx, &mut rng, "TRAIN")?;
        random_feeds(&mut r, classes, &mut rng);
        Ok::<_, miette::Report>(r)
    })?;
    if let Some(r) = replicas.as_mut() {
        r.copy_from(&net);
    }
    let mut state = SolverState::new(net.params().map(|(_, _, p)| p));
    let steps = net.steps.len();
    let iterations = a.iterations.max(1) as usize;
    // Per step and iteration: each layer reports its mean and its median.
    let mut fwd = vec![Vec::with_capacity(iterations); steps];
    let mut bwd = vec![Vec::with_capacity(iterations); steps];
    let mut update = Vec::with_capacity(iterations);
    // Whole iterations too: on a shared machine the median is steadier than the mean.
    let mut whole = Vec::with_capacity(iterations);
    for it in 0..iterations + 3 {
        let timed = it >= 3;
        let start = Instant::now();
        let (f, b) = match replicas.as_mut() {
            Some(r) => r.run(|_, net| timed_pass(net)).swap_remove(0),
            None => timed_pass(&mut net),
        };
        let t = Instant::now();
        let rate = cfg.base_lr * 1e-3;
        match replicas.as_mut() {
            // Summing the replicas' gradients, the update and copying the weights back.
            Some(r) => r.update(&cfg, &mut state, rate),
            None => apply_update(&cfg, &mut state, net.params_mut().map(|(_, _, p)| p), rate),
        }
        if timed {
            update.push(t.elapsed().as_secs_f64());
        }
        if timed {
            for (i, (f, b)) in f.into_iter().zip(b).enumerate() {
                fwd[i].push(f);
                bwd[i].push(b);
            }
            whole.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    whole.sort_by(f64::total_cmp);
    let (median, fastest) = (whole[whole.len() / 2], whole[0]);
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() * 1000.0 / v.len().max(1) as f64;
    let med = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0) * 1000.0
    };
    let layers: Vec<LayerTime> = net
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.op.is_feed())
        .map(|(i, s)| LayerTime {
            name: s.name.clone(),
            ty: s.ty.into(),
            forward_ms: mean(&fwd[i]),
            backward_ms: mean(&bwd[i]),
            forward_median_ms: med(&fwd[i]),
            backward_median_ms: med(&bwd[i]),
        })
        .collect();
    let (f, b, u) = (
        fwd.iter().map(mean).sum::<f64>(),
        bwd.iter().map(mean).sum::<f64>(),
        mean(&update),
    );
    let total = f + b + u;
    let batch = net.batch();
    let ips = batch as f64 * 1000.0 / total.max(1e-9);
    if a.format == "json" {
        let out = serde_json::json!({
            "batch_size": batch, "iterations": iterations, "threads": rayon::current_num_threads(),
            "layers": layers, "forward_ms": f, "backward_ms": b, "update_ms": u,
            "replicas": replicas.as_ref().map_or(1, |r| r.nets.len()), "total_ms": total,
            "images_per_second": ips, "median_ms": median, "fastest_ms": fastest,
            "median_images_per_second": batch as f64 * 1000.0 / median.max(1e-9),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(0);
    }
    println!(
        "{:<16} {:<18} {:>12} {:>8} {:>12} {:>8}",
        "layer", "type", "forward ms", "median", "backward ms", "median"
    );
    for l in &layers {
        println!(
            "{:<16} {:<18} {:>12.3} {:>8.3} {:>12.3} {:>8.3}",
            l.name, l.ty, l.forward_ms, l.forward_median_ms, l.backward_ms, l.backward_median_ms
        );
    }
    match &replicas {
        Some(r) => println!(
            "{} replicas of batch {} (times above: the first's), one a thread; the update sums their gradients and copies the weights back",
            r.nets.len(),
            r.shares.first().map_or(0, |s| s.1)
        ),
        None => match rayon::current_num_threads() {
            1 => println!("one net on 1 thread"),
            n => println!("one net on {n} threads"),
        },
    }
    println!("forward {f:.3} ms, backward {b:.3} ms, update {u:.3} ms, total {total:.3} ms per iteration (batch {batch})");
    println!(
        "{ips:.0} images/s (median iteration {median:.3} ms: {:.0} images/s; fastest {fastest:.3} ms)",
        batch as f64 * 1000.0 / median.max(1e-9)
    );
    Ok(0)
}

/// Random inputs and labels in every data feed.
fn random_feeds(net: &mut Net, classes: usize, rng: &mut Rng) {
    for f in net.feeds.clone() {
        if let Some(&t) = f.tops.first() {
            net.blobs[t]
                .data
                .iter_mut()
                .for_each(|v| *v = rng.random::<f32>());
        }
        if let Some(&t) = f.tops.get(1) {
            net.blobs[t]
                .data
                .iter_mut()
                .for_each(|v| *v = rng.random_range(0..classes) as f32);
        }
    }
}

/// One forward and backward pass over every step: the seconds of each.
fn timed_pass(net: &mut Net) -> (Vec<f64>, Vec<f64>) {
    let steps = net.steps.len();
    let (mut f, mut b) = (vec![0.0; steps], vec![0.0; steps]);
    for (i, f) in f.iter_mut().enumerate() {
        let t = Instant::now();
        net.run_forward(i, true);
        *f = t.elapsed().as_secs_f64();
    }
    net.seed_loss_diffs();
    for i in (0..steps).rev() {
        let t = Instant::now();
        net.run_backward(i);
        b[i] = t.elapsed().as_secs_f64();
    }
    (f, b)
}
