//! `netc time SPEC`: per-layer forward and backward times of the TRAIN net, like
//! `caffe time`, and training images per second (with the solver update).

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng as _, SeedableRng};

use super::CmdResult;
use crate::engine::Rng;
use crate::layers::ShapeCtx;
use crate::solver::{apply_update, SolverState};
use crate::spec::NetState;
use crate::train::{build_net, dataset_path, find_solver, load_spec};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub spec: PathBuf,
    /// Timed iterations (after 3 untimed ones).
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The dataset that gives the input size and class count (default: the spec's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
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

#[allow(clippy::needless_range_loop)] // fwd[i] and bwd[i] are per step, in step order
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
    let mut state = SolverState::new(net.params().map(|(_, _, p)| p));
    let steps = net.steps.len();
    let iterations = a.iterations.max(1);
    // Per step and iteration: each layer reports its mean and its median.
    let mut fwd = vec![Vec::with_capacity(iterations); steps];
    let mut bwd = vec![Vec::with_capacity(iterations); steps];
    let mut update = Vec::with_capacity(iterations);
    // Whole iterations too: on a shared machine the median is steadier than the mean.
    let mut whole = Vec::with_capacity(iterations);
    for it in 0..iterations + 3 {
        let timed = it >= 3;
        let start = Instant::now();
        for i in 0..steps {
            let t = Instant::now();
            net.run_forward(i, true);
            if timed {
                fwd[i].push(t.elapsed().as_secs_f64());
            }
        }
        net.seed_loss_diffs();
        for i in (0..steps).rev() {
            let t = Instant::now();
            net.run_backward(i);
            if timed {
                bwd[i].push(t.elapsed().as_secs_f64());
            }
        }
        let t = Instant::now();
        apply_update(
            &cfg,
            &mut state,
            net.params_mut().map(|(_, _, p)| p),
            cfg.base_lr * 1e-3,
        );
        if timed {
            update.push(t.elapsed().as_secs_f64());
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
            "layers": layers, "forward_ms": f, "backward_ms": b, "update_ms": u, "total_ms": total,
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
    println!("forward {f:.3} ms, backward {b:.3} ms, update {u:.3} ms, total {total:.3} ms per iteration (batch {batch}, {} threads)", rayon::current_num_threads());
    println!(
        "{ips:.0} images/s (median iteration {median:.3} ms: {:.0} images/s; fastest {fastest:.3} ms)",
        batch as f64 * 1000.0 / median.max(1e-9)
    );
    Ok(0)
}
