//! `netc train SPEC`: train a network on the dataset its data layer names.

use std::path::PathBuf;

use super::CmdResult;
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
    /// Carry on a run from its newest snapshot, with the spec, dataset, solver, batch size
    /// and seed it was started with; --epochs sets where it ends.
    #[arg(long, conflicts_with_all = ["out", "weights", "spec", "data", "solver", "batch_size", "lr", "seed"])]
    pub resume: Option<PathBuf>,
    /// Start from another run's weights (a run folder or a snapshot), copying the layers
    /// whose names and shapes match.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// `native` (netc's CPU engine) or `candle` (candle's autograd; what CUDA runs).
    #[arg(long, default_value = "native", value_parser = ["native", "candle"])]
    pub engine: String,
    /// Print no progress and no per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args) -> CmdResult {
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
        device: a.device,
        candle: a.engine == "candle",
    };
    let outcome = train(&opts)?;
    Ok(if outcome.interrupted { 130 } else { 0 })
}
