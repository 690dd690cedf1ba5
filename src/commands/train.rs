//! `netc train SPEC`: train a network on the dataset its data layer names.

use std::path::PathBuf;

use super::{usage, CmdResult};
use crate::train::{train, TrainOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The network spec (e.g. specs/lenet.net).
    #[arg(required_unless_present = "resume")]
    pub spec: Option<PathBuf>,
    /// Solver file (YAML or Caffe solver.prototxt); default: SPEC's `<name>.solver.yaml`.
    #[arg(long)]
    pub solver: Option<PathBuf>,
    /// Dataset folder (from `netc data create`, MNIST IDX files, or class folders);
    /// default: the Data layer's data_param.source, relative to the spec.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Run folder (default: runs/<spec>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Carry on a run from its newest snapshot.
    #[arg(long, conflicts_with_all = ["out", "weights"])]
    pub resume: Option<PathBuf>,
    /// Start from another run's weights (a run folder or a snapshot), copying the layers
    /// whose names and shapes match.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Print no progress and no per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Checks `--device`; the training engine runs on the CPU in this build.
pub fn check_device(device: &str) -> Result<(), miette::Report> {
    match device {
        "cpu" | "auto" => Ok(()),
        d if d == "cuda" || d.starts_with("cuda:") => {
            if d != "cuda" && d[5..].parse::<usize>().is_err() {
                return Err(usage(format!("bad device \"{d}\""), Some("use cpu, cuda, cuda:N or auto".into())));
            }
            if cfg!(feature = "cuda") {
                Err(usage(
                    format!("--device {d}: netc's training engine has no CUDA kernels yet"),
                    Some("train with --device cpu".into()),
                ))
            } else {
                Err(usage(
                    format!("--device {d}: this netc was built without CUDA support"),
                    Some("rebuild with `cargo build --release --features cuda` (see scripts/build-cuda.sh), or use --device cpu".into()),
                ))
            }
        }
        d => Err(usage(format!("unknown device \"{d}\""), Some("use cpu, cuda, cuda:N or auto".into()))),
    }
}

pub fn run(a: Args) -> CmdResult {
    check_device(&a.device)?;
    let opts = TrainOptions {
        spec: a.spec.unwrap_or_default(),
        solver: a.solver,
        data: a.data,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        seed: a.seed,
        out: a.out,
        resume: a.resume,
        weights: a.weights,
        quiet: a.quiet,
    };
    let outcome = train(&opts)?;
    Ok(if outcome.interrupted { 130 } else { 0 })
}
