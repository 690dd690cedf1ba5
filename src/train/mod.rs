//! Stage 6: training. Opens the dataset a spec's data layer names, lowers the TRAIN and
//! validation nets, and runs the solver over the in-memory dataset epoch by epoch,
//! recording metrics, curves and snapshots in a run folder.

pub mod record;
pub mod snapshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::commands::usage;
use crate::data::{Dataset, Split};
use crate::diag::Severity;
use crate::engine::net::Net;
use crate::engine::parallel::Replicas;
use crate::engine::Rng;
use crate::feed::Preprocess;
use crate::ir;
use crate::layers::ShapeCtx;
use crate::solver::{apply_update, SolverConfig, SolverState};
use crate::spec::{NetSpec, NetState};
use record::EpochRecord;

/// What `netc train` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub spec: PathBuf,
    pub solver: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub epochs: Option<f64>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    pub out: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    /// No progress bar, no per-epoch lines (tests).
    pub quiet: bool,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (empty: `auto`).
    pub device: String,
    /// Train through candle's autograd even on the CPU (the path `--device cuda` takes).
    pub candle: bool,
}

/// How a run ended.
#[derive(Debug)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub records: Vec<EpochRecord>,
    pub interrupted: bool,
    pub seconds: f64,
}

static STOP: AtomicBool = AtomicBool::new(false);

fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    });
}

/// A spec read and checked, with its problems printed.
pub fn load_spec(path: &Path) -> miette::Result<NetSpec> {
    let src = crate::front::read_source(path)?;
    let (spec, diags) = crate::front::load_net(&src);
    if !diags.is_empty() {
        crate::front::print_diagnostics(&diags);
    }
    match spec {
        Some(s) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(s),
        _ => Err(miette::miette!(
            help = format!("run `netc check {}` for the details", path.display()),
            "{} has errors",
            path.display()
        )),
    }
}

/// The dataset the spec's TRAIN data layer names (relative to the spec), or `--data`.
pub fn dataset_path(
    spec: &NetSpec,
    spec_path: &Path,
    data: Option<&Path>,
) -> miette::Result<PathBuf> {
    if let Some(d) = data {
        return Ok(d.to_path_buf());
    }
    let layer = spec
        .layers_for(&NetState::train())
        .into_iter()
        .find(|l| l.ty == "Data")
        .ok_or_else(|| {
            usage(
                format!(
                    "{} has no Data layer in the TRAIN phase",
                    spec_path.display()
                ),
                Some("add a Data layer with include { phase: TRAIN } (see specs/lenet.net); --data only replaces the dataset its data_param names".into()),
            )
        })?;
    let source = layer
        .msg
        .msg("data_param")
        .and_then(|d| d.str("source"))
        .ok_or_else(|| {
            usage(
                format!("the Data layer \"{}\" has no data_param.source", layer.name),
                Some(
                    "add data_param { source: \"path/to/dataset\" } or pass --data DATASET".into(),
                ),
            )
        })?;
    let dir = spec_path.parent().unwrap_or(Path::new("."));
    let path = dir.join(source);
    if !path.exists() {
        let at = layer
            .msg
            .msg("data_param")
            .map(|d| crate::layers::span_of(d, "source").start)
            .unwrap_or(layer.msg.span.start);
        let (line, col) = crate::front::line_col(&spec.source.text, at);
        return Err(usage(
            format!(
                "dataset `{}` does not exist: it is the data_param.source \"{source}\" of layer \"{}\" at {}:{line}:{col}, read from the spec's folder",
                path.display(),
                layer.name,
                spec_path.display()
            ),
            Some("pass --data DATASET (a folder made by `netc data create`, MNIST's IDX files or class folders), or correct the source in the spec".into()),
        ));
    }
    Ok(path)
}

/// `.lock` in a run folder while a `netc train` writes it: the file is locked (`flock`) for
/// as long as the process lives and holds its process id for the message. A second `netc
/// train` of the same folder (two `--resume`s, or two new runs given one `--out` at once)
/// is refused: they overwrote each other's snapshots. A `.lock` left by a process that is
/// gone (killed with -9, a crash) holds no lock any more and is taken over.
pub struct RunLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl RunLock {
    pub fn take(run_dir: &Path) -> miette::Result<RunLock> {
        use std::io::Write;
        let path = run_dir.join(".lock");
        let err = |e| crate::data::io_err("lock the run folder", run_dir, e);
        // A holder that lets go removes the file: the one locked must still be the one
        // the path names, or it is taken again.
        for _ in 0..8 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(err)?;
            if !try_lock(&file).map_err(err)? {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = pid.trim();
                let who = if pid.is_empty() {
                    "another netc process is training it".to_string()
                } else {
                    format!("netc process {pid} is training it")
                };
                let stop = if pid.is_empty() {
                    "stop it".to_string()
                } else {
                    format!("stop it (Ctrl-C or `kill {pid}` writes a snapshot)")
                };
                return Err(usage(
                    format!("{} is in use: {who}", run_dir.display()),
                    Some(format!("wait for it to finish, or {stop} and resume then")),
                ));
            }
            if same_file(&file, &path) {
                file.set_len(0).map_err(err)?;
                write!(file, "{}", std::process::id()).map_err(err)?;
                return Ok(RunLock { path, _file: file });
            }
        }
        Err(usage(
            format!("cannot lock {}", run_dir.display()),
            Some("another netc keeps taking and leaving it; try again".into()),
        ))
    }
}

/// Takes the exclusive lock on `file` without waiting: false when another holds it.
#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process owns (alive for the call).
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Without flock, the `.lock` file only marks the folder (no second run is refused).
#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> std::io::Result<bool> {
    Ok(true)
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

impl Drop for RunLock {
    /// Removes the file while it is still locked (the lock goes when the file closes).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the candle path cannot run, refused before a run folder is made (it failed at the
/// first step, after writing the folder): a layer type without a candle lowering (one
/// forward pass of zeros finds it) or a solver other than SGD and Nesterov.
fn check_candle(
    spec: &NetSpec,
    ctx: &ShapeCtx,
    net: &Net,
    feeds: &[usize],
    cfg: &SolverConfig,
    device: &candle_core::Device,
) -> miette::Result<()> {
    let help = || {
        Some("train on netc's engine: --engine native on the CPU (it trains every layer type and solver the README lists)".to_string())
    };
    if !matches!(
        cfg.solver_type,
        crate::solver::SolverType::Sgd | crate::solver::SolverType::Nesterov
    ) {
        return Err(usage(
            format!(
                "the candle path trains with SGD and Nesterov only, not {:?}",
                cfg.solver_type
            ),
            help(),
        ));
    }
    let (Some(ir), _) = ir::build(spec, &NetState::train(), ctx) else {
        return Ok(());
    };
    let zeros: Vec<(usize, Vec<f32>)> = feeds
        .iter()
        .map(|&b| (b, vec![0.0; net.blobs[b].data.len()]))
        .collect();
    crate::engine::candle::CandleNet::new(ir, net, device.clone())
        .and_then(|c| c.forward(&zeros))
        .map(|_| ())
        .map_err(|e| usage(format!("cannot train on candle: {e}"), help()))
}

/// A deploy Input whose shape is not the dataset's (LeNet's 1×28×28 trained on 3×32×32
/// pictures) would make every snapshot of the run unusable by `netc classify`: refused
/// before training. Specs without a deploy stage pass (classify takes the data shape).
fn check_deploy_input(spec: &NetSpec, ctx: &ShapeCtx, pre: &Preprocess) -> miette::Result<()> {
    let (Some(ir), _) = ir::build(spec, &NetState::deploy(), ctx) else {
        return Ok(());
    };
    let want = pre.output_chw();
    for l in ir.layers.iter().filter(|l| l.layer.input().is_some()) {
        let Some(&top) = l.tops.first() else {
            continue;
        };
        let Some(shape) = ir.blobs[top].shape.as_ref() else {
            continue;
        };
        if shape.len() == 4 && shape[1..] != want[..] {
            let dims = |d: &[usize]| {
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("×")
            };
            return Err(usage(
                format!(
                    "the deploy Input `{}` of {} takes {} images, but the dataset's are {} after preprocessing: the trained net could not classify",
                    l.name,
                    spec.source.path.display(),
                    dims(&shape[1..]),
                    dims(&want)
                ),
                Some(format!(
                    "set the Input layer's shape to {{ dim: 1 dim: {} }}, or train on a dataset of {} images",
                    want.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" dim: "),
                    dims(&shape[1..])
                )),
            ));
        }
        return Ok(());
    }
    Ok(())
}

/// Builds one phase's IR, printing its problems; `None` when the phase has no data layer
/// (a spec without validation layers).
pub fn build_net(
    spec: &NetSpec,
    state: &NetState,
    ctx: &ShapeCtx,
    rng: &mut Rng,
    what: &str,
) -> miette::Result<Net> {
    build_net_ir(spec, state, ctx, rng, what).map(|(net, _)| net)
}

/// [`build_net`], keeping the IR (the candle path lowers it again).
pub fn build_net_ir(
    spec: &NetSpec,
    state: &NetState,
    ctx: &ShapeCtx,
    rng: &mut Rng,
    what: &str,
) -> miette::Result<(Net, ir::NetIr)> {
    let (ir, diags) = ir::build(spec, state, ctx);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    let Some(ir) = ir.filter(|_| errors.is_empty()) else {
        crate::front::print_diagnostics(&errors);
        return Err(miette::miette!(
            "the {what} net of {} has errors",
            spec.source.path.display()
        ));
    };
    let net = Net::from_ir(&ir, ctx, rng).map_err(|e| {
        miette::miette!(
            help = e.help.clone().unwrap_or_default(),
            "cannot build the {what} net: {e}"
        )
    })?;
    Ok((net, ir))
}

/// The blob a net's SoftmaxWithLoss (or Accuracy) scores, with its label blob.
pub fn scores_and_labels(net: &Net) -> Option<(usize, usize)> {
    net.steps
        .iter()
        .find(|s| s.ty == "SoftmaxWithLoss")
        .or_else(|| net.steps.iter().find(|s| s.ty == "Accuracy"))
        .and_then(|s| Some((*s.bottoms.first()?, *s.bottoms.get(1)?)))
}

/// Fills a net's data feed with images `idx` of `split` (and their labels).
fn fill(net: &mut Net, split: &Split, idx: &[usize], pre: &Preprocess, train: bool, rng: &mut Rng) {
    let Some(feed) = net.feeds.first().cloned() else {
        return;
    };
    let per = pre.output_len();
    if let Some(&t) = feed.tops.first() {
        let data = &mut net.blobs[t].data;
        for (k, &i) in idx.iter().enumerate() {
            pre.apply(
                split.image(i),
                &mut data[k * per..(k + 1) * per],
                train,
                rng,
            );
        }
    }
    if let Some(&t) = feed.tops.get(1) {
        let labels = &mut net.blobs[t].data;
        for (k, &i) in idx.iter().enumerate() {
            labels[k] = split.labels[i] as f32;
        }
    }
}

/// Validation figures over a whole split: (mean loss, top-1 %, top-5 %).
pub fn validate(
    net: &mut Net,
    split: &Split,
    pre: &Preprocess,
    classes: usize,
) -> (f64, f64, Option<f64>) {
    let batch = net.batch();
    let mut rng = Rng::seed_from_u64(0);
    let (mut loss, mut top1, mut top5, mut n) = (0.0f64, 0usize, 0usize, 0usize);
    let scores = scores_and_labels(net);
    for start in (0..split.len()).step_by(batch.max(1)) {
        let real = (split.len() - start).min(batch);
        let idx: Vec<usize> = (0..batch).map(|k| start + k.min(real - 1)).collect();
        fill(net, split, &idx, pre, false, &mut rng);
        let l = net.forward(false);
        let Some((s, _)) = scores else {
            loss += l as f64 * real as f64;
            n += real;
            continue;
        };
        let blob = &net.blobs[s];
        let ch = blob.count() / batch.max(1);
        for (k, &i) in idx.iter().enumerate().take(real) {
            let row = &blob.data[k * ch..(k + 1) * ch];
            let label = split.labels[i] as usize;
            let m = row.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)) as f64;
            let lse = row.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln() + m;
            let truth = row.get(label).copied().unwrap_or(f32::NEG_INFINITY);
            loss += lse - truth as f64;
            let better = row
                .iter()
                .enumerate()
                .filter(|(c, v)| *c != label && **v >= truth)
                .count();
            let ok = !truth.is_nan();
            top1 += (ok && better < 1) as usize;
            top5 += (ok && better < 5) as usize;
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    let t5 = (classes > 5).then_some(100.0 * top5 as f64 / n);
    (loss / n, 100.0 * top1 as f64 / n, t5)
}

/// The solver a spec trains with: `--solver`, else `<spec stem>.solver.yaml` beside the
/// spec, else `<stem up to the first '-'>.solver.yaml` there (so `lenet-custom.net` uses
/// `lenet.solver.yaml`), else `solver.yaml` there, else Caffe's defaults.
pub fn find_solver(
    spec_path: &Path,
    given: Option<&Path>,
) -> miette::Result<(SolverConfig, Option<PathBuf>)> {
    if let Some(p) = given {
        return Ok((SolverConfig::load(p)?, Some(p.to_path_buf())));
    }
    let dir = spec_path.parent().unwrap_or(Path::new("."));
    let stem = spec_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("net");
    // A variant `lenet-custom.net` trains with its family's `lenet.solver.yaml`.
    let family = stem.split('-').next().unwrap_or(stem);
    for cand in [
        dir.join(format!("{stem}.solver.yaml")),
        dir.join(format!("{family}.solver.yaml")),
        dir.join("solver.yaml"),
    ] {
        if cand.is_file() {
            return Ok((SolverConfig::load(&cand)?, Some(cand)));
        }
    }
    Ok((SolverConfig::default(), None))
}

fn now_stamp() -> String {
    stamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// `YYYYMMDD-HHMMSS` (UTC) of a Unix time, as run folders are named.
pub fn stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Everything a run folder holds besides snapshots and metrics.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub netc_version: String,
    pub spec: String,
    pub dataset: String,
    pub started: String,
    pub seed: u64,
    pub threads: usize,
    pub batch_size: usize,
    pub iterations_per_epoch: u64,
    pub max_iter: u64,
    pub epochs: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub classes: usize,
    pub parameters: usize,
    /// [`crate::data::Dataset::digest`] of the dataset as the run started (absent in runs
    /// of netc 0.1 before it was recorded: their resume compares counts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// `native` or `candle`: what the run trains on (runs of netc 0.1 before it was
    /// recorded read as native).
    #[serde(default = "native_engine")]
    pub engine: String,
}

fn native_engine() -> String {
    "native".into()
}

/// Trains as `opts` says; returns the run folder and its records.
pub fn train(opts: &TrainOptions) -> miette::Result<TrainOutcome> {
    let started = Instant::now();
    // From the start: a Ctrl-C while the data loads stops the run after its first step,
    // with a snapshot.
    STOP.store(false, Ordering::SeqCst);
    install_ctrlc();
    let resume_dir = opts.resume.clone();
    // A resumed run reads everything from its folder.
    let spec_path = match &resume_dir {
        Some(r) => {
            let p = r.join("spec.net");
            if !r.exists() {
                return Err(usage(
                    format!("{} does not exist", r.display()),
                    Some("pass a run folder `netc train` wrote (runs/...)".into()),
                ));
            }
            if !p.is_file() {
                return Err(usage(
                    format!("{} is not a netc run folder (no spec.net)", r.display()),
                    Some("pass the folder `netc train` wrote (runs/...)".into()),
                ));
            }
            p
        }
        None => opts.spec.clone(),
    };
    let spec = load_spec(&spec_path)?;
    let (mut cfg, solver_path) = match &resume_dir {
        Some(r) => find_solver(&spec_path, Some(&r.join("solver.yaml")))?,
        None => find_solver(&spec_path, opts.solver.as_deref())?,
    };
    if let Some(e) = opts.epochs {
        cfg.epochs = Some(e);
    }
    if let Some(b) = opts.batch_size {
        cfg.batch_size = Some(b);
    }
    if let Some(lr) = opts.lr {
        cfg.base_lr = lr;
    }
    if let Some(s) = opts.seed {
        cfg.random_seed = s;
    }
    cfg.validate().map_err(|e| usage(e.0, None))?;
    let device = if opts.device.is_empty() {
        "auto"
    } else {
        opts.device.as_str()
    };
    let candle_device = crate::engine::candle::device(device)
        .map_err(|m| usage(m, Some("train with --device cpu".into())))?;
    let old_info: Option<RunInfo> = match &resume_dir {
        Some(r) => Some(read_yaml(&r.join("run.yaml"))?),
        None => None,
    };
    let data_path = match &old_info {
        Some(info) => {
            let p = PathBuf::from(&info.dataset);
            if !p.exists() {
                return Err(usage(
                    format!(
                        "the dataset this run was trained on, `{}` (run.yaml's dataset), does not exist any more",
                        p.display()
                    ),
                    Some("put it back where it was to resume, or start a new run on another dataset with --weights from this one".into()),
                ));
            }
            p
        }
        None => dataset_path(&spec, &spec_path, opts.data.as_deref())?,
    };
    let data = crate::data::open(&data_path)?;
    if let Some(info) = &old_info {
        let now = (
            data.train.len(),
            data.val.as_ref().map_or(0, |v| v.len()),
            data.num_classes(),
        );
        let then = (info.train_images, info.val_images, info.classes);
        if now != then {
            return Err(usage(
                format!(
                    "the dataset {} changed since the run started: {} train, {} val images and {} classes then, {} train, {} val images and {} classes now",
                    data_path.display(),
                    then.0, then.1, then.2, now.0, now.1, now.2
                ),
                Some("resume with the dataset the run started with, or start a new run on this one (--weights from the old run keeps what it learned)".into()),
            ));
        }
        let digest = info.dataset_digest.as_ref().map(|d| (d, data.digest()));
        if let Some((then, now)) = digest.as_ref().filter(|(t, n)| *t != n) {
            return Err(usage(
                format!(
                    "the dataset {} changed since the run started: the same counts, but other pixels or labels (fingerprint {then} then, {now} now)",
                    data_path.display(),
                ),
                Some("resume with the dataset the run started with, or start a new run on this one (--weights from the old run keeps what it learned)".into()),
            ));
        }
    }
    if data.train.is_empty() {
        return Err(usage(
            format!("the dataset {} has no training images", data_path.display()),
            None,
        ));
    }
    if let Some(b) = cfg.batch_size.filter(|&b| b > data.train.len()) {
        return Err(usage(
            format!(
                "the batch size {b} is larger than the {} training images of {}",
                data.train.len(),
                data_path.display()
            ),
            Some("use a smaller --batch-size".into()),
        ));
    }
    let chw = [data.channels, data.height, data.width];
    let ctx = ShapeCtx {
        batch: cfg.batch_size,
        data_chw: Some(chw),
        num_classes: Some(data.num_classes()),
    };
    let mut rng = Rng::seed_from_u64(cfg.random_seed);
    let (mut net, train_ir) = build_net_ir(&spec, &NetState::train(), &ctx, &mut rng, "TRAIN")?;
    let Some(feed) = net.feeds.first().cloned() else {
        return Err(usage(
            format!("{}: the TRAIN net has no data layer", spec_path.display()),
            Some("add a Data layer with include { phase: TRAIN }".into()),
        ));
    };
    if net.losses.is_empty() {
        return Err(usage(
            format!("{}: the TRAIN net has no loss layer", spec_path.display()),
            Some("add a SoftmaxWithLoss layer (a deploy spec, which ends in Softmax, only classifies)".into()),
        ));
    }
    check_outputs(&net, &data)?;
    let engine = if opts.candle || !candle_device.is_cpu() {
        "candle"
    } else {
        "native"
    };
    if engine == "candle" {
        check_candle(&spec, &ctx, &net, &feed.tops, &cfg, &candle_device)?;
    }
    let spec_dir = spec_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let pre = Preprocess::new(
        &feed.input.transform,
        chw,
        data.resize,
        &spec_dir,
        Some(&data),
    )?;
    check_deploy_input(&spec, &ctx, &pre)?;
    let mut val = match &data.val {
        Some(v) if !v.is_empty() && cfg.validation_interval > 0.0 => {
            let vnet = build_net(&spec, &NetState::val(), &ctx, &mut rng, "validation")?;
            (!vnet.feeds.is_empty()).then_some(vnet)
        }
        _ => None,
    };
    let val_pre = match val.as_ref().and_then(|v| v.feeds.first()) {
        Some(f) => Preprocess::new(&f.input.transform, chw, data.resize, &spec_dir, Some(&data))?,
        None => pre.clone(),
    };
    if val.is_none() && !opts.quiet {
        eprintln!("note: no validation (the dataset has no val split, or the spec no validation data layer)");
    }

    let batch = net.batch();
    let n = data.train.len();
    if batch > n {
        return Err(usage(
            format!(
                "the batch size {batch} is larger than the {n} training images of {}",
                data_path.display()
            ),
            Some("use a smaller --batch-size (or data_param.batch_size)".into()),
        ));
    }
    let ipe = n.div_ceil(batch) as u64;
    let max_iter = match (cfg.epochs, cfg.max_iter) {
        (Some(e), _) => (e * ipe as f64).round().max(1.0) as u64,
        (None, Some(m)) => m.max(1),
        (None, None) => 10 * ipe,
    };
    let epochs = max_iter.div_ceil(ipe) as usize;

    // The run folder.
    let run_dir = match (&resume_dir, &opts.out) {
        (Some(r), _) => r.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => {
            let stem = spec_path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("net");
            // Two runs started within one second get -2, -3, ...
            let base = format!("{stem}-{}", now_stamp());
            let mut dir = PathBuf::from("runs").join(&base);
            let mut k = 2;
            while dir.exists() {
                dir = PathBuf::from("runs").join(format!("{base}-{k}"));
                k += 1;
            }
            dir
        }
    };
    let mut state = SolverState::new(net.params().map(|(_, _, p)| p));
    let mut records = Vec::new();
    let mut start_epoch = 1usize;
    let mut start_batch = 0u64;
    let mut carried = (0.0f64, 0u64);
    let mut _lock = None;
    if let Some(r) = &resume_dir {
        _lock = Some(RunLock::take(r)?);
        let snaps = snapshot::list(r);
        if snaps.is_empty() {
            return Err(usage(
                format!("{} has no snapshot to resume from", r.display()),
                Some(format!(
                    "it was stopped before its first snapshot and holds no trained weights: remove it (rm -r {}) and start the run again",
                    r.display()
                )),
            ));
        }
        // The newest snapshot that reads back whole (weights and solver state); one that
        // does not (a damaged disk, a file edited by hand) is passed over with a warning,
        // and training writes that epoch's snapshot again.
        let mut loaded = None;
        let mut damaged = Vec::new();
        for (_, _, p) in snaps.iter().rev() {
            match snapshot::load(p).and_then(|w| {
                snapshot::load_state(p, &mut SolverState::new(net.params().map(|(_, _, q)| q)))
                    .map(|_| w)
            }) {
                Ok(w) => {
                    loaded = Some((p.clone(), w));
                    break;
                }
                Err(e) => {
                    // (The error names the file.)
                    eprintln!("warning: {e}; trying the snapshot before it");
                    damaged.push(p.clone());
                }
            }
        }
        let Some((newest, w)) = loaded else {
            return Err(usage(
                format!(
                    "no snapshot of {} reads back: {}",
                    r.display(),
                    damaged
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(format!(
                    "the run holds no usable weights: remove it (rm -r {}) and start the run again",
                    r.display()
                )),
            ));
        };
        let newest = &newest;
        let rep = snapshot::apply(&w, &mut net);
        if !rep.skipped.is_empty() {
            return Err(usage(
                format!(
                    "the snapshot {} does not fit the run's spec.net: {}",
                    newest.display(),
                    rep.skipped
                        .iter()
                        .map(|(k, why)| format!("{k}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Some("the run's spec.net was edited after the snapshot was written: put it back, or start a new run with --weights".into()),
            ));
        }
        let meta = snapshot::load_state(newest, &mut state)?;
        let epoch: usize = meta.get("epoch").and_then(|s| s.parse().ok()).unwrap_or(0);
        let done_in_epoch = state
            .iter
            .saturating_sub((epoch as u64).saturating_sub(1) * ipe);
        records = record::read_metrics(r);
        records.retain(|rec| rec.iteration <= state.iter);
        if done_in_epoch >= ipe {
            start_epoch = epoch + 1;
        } else {
            start_epoch = epoch.max(1);
            start_batch = done_in_epoch;
            carried = (
                meta.get("loss_sum")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0),
                meta.get("loss_count")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            );
        }
        if state.iter >= max_iter {
            // Nothing left to train: say so, and leave the run folder as it is.
            if !opts.quiet {
                let done = fmt_epochs(state.iter as f64 / ipe as f64);
                let plural = if done == "1" { "" } else { "s" };
                println!(
                    "{} has already trained {} iterations ({done} epoch{plural} of {ipe}), as many as its solver asks for ({max_iter}); nothing to resume. To train further, give --epochs above {done}.",
                    r.display(),
                    state.iter,
                );
            }
            return Ok(TrainOutcome {
                run_dir: r.clone(),
                records,
                interrupted: false,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        if !opts.quiet {
            eprintln!(
                "resuming {} from {} (epoch {epoch}, iteration {})",
                r.display(),
                newest.display(),
                state.iter
            );
        }
    } else {
        // Whether the folder holds anything but `.lock`, and the error when it does.
        let taken = |dir: &Path| {
            std::fs::read_dir(dir)
                .map(|d| d.flatten().any(|e| e.file_name() != ".lock"))
                .unwrap_or(false)
        };
        let taken_err = |dir: &Path| {
            usage(
                format!("{} already exists and is not empty", dir.display()),
                Some("choose another --out, or --resume it".into()),
            )
        };
        if taken(&run_dir) {
            return Err(taken_err(&run_dir));
        }
        // The weights first: a snapshot that gives this net nothing is refused before a
        // run folder exists.
        if let Some(w) = &opts.weights {
            let file = resolve_snapshot(w)?;
            let w = snapshot::load(&file)?;
            let rep = snapshot::apply(&w, &mut net);
            if rep.copied.is_empty() {
                let why: Vec<String> = rep
                    .skipped
                    .iter()
                    .take(4)
                    .map(|(k, why)| format!("{k}: {why}"))
                    .collect();
                return Err(usage(
                    format!(
                        "--weights {}: none of this net's {} learned blobs is in it with the same name and shape ({}{})",
                        file.display(),
                        rep.skipped.len(),
                        why.join("; "),
                        if rep.skipped.len() > why.len() { "; ..." } else { "" }
                    ),
                    Some("a layer is copied when the snapshot has a layer of its name with blobs of the same shapes: rename the layers to keep, or train without --weights".into()),
                ));
            }
            if !opts.quiet {
                eprintln!(
                    "fine-tuning: copied {} blobs ({})",
                    rep.copied.len(),
                    rep.copied.join(", ")
                );
                for (k, why) in &rep.skipped {
                    eprintln!("  not copied: {k}: {why}");
                }
            }
        }
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| crate::data::io_err("create the run folder", &run_dir, e))?;
        _lock = Some(RunLock::take(&run_dir)?);
        // Another netc given the same --out at the same moment may have passed the check
        // above too: whichever locked the folder first has it.
        if taken(&run_dir) {
            return Err(taken_err(&run_dir));
        }
        write_run_files(&run_dir, &spec, &cfg, &data, &data_path, &pre)?;
    }
    if let Some(old) = old_info.as_ref().filter(|i| i.engine != engine) {
        if !opts.quiet {
            eprintln!(
                "note: this run trained on the {} engine until now and carries on on the {engine} one (--engine {} keeps it)",
                old.engine, old.engine
            );
        }
    }
    let info = RunInfo {
        netc_version: env!("CARGO_PKG_VERSION").into(),
        engine: engine.into(),
        // A resumed run keeps the spec it was started from and its start time.
        spec: old_info
            .as_ref()
            .map_or_else(|| spec_path.display().to_string(), |i| i.spec.clone()),
        dataset: data_path
            .canonicalize()
            .unwrap_or(data_path.clone())
            .display()
            .to_string(),
        started: old_info
            .as_ref()
            .map_or_else(now_stamp, |i| i.started.clone()),
        seed: cfg.random_seed,
        threads: rayon::current_num_threads(),
        batch_size: batch,
        iterations_per_epoch: ipe,
        max_iter,
        epochs,
        train_images: n,
        val_images: data.val.as_ref().map_or(0, |v| v.len()),
        classes: data.num_classes(),
        parameters: net.param_count(),
        dataset_digest: match &old_info {
            Some(i) => i.dataset_digest.clone(),
            None => Some(data.digest()),
        },
    };
    snapshot::write_atomic(
        &run_dir.join("run.yaml"),
        serde_yaml::to_string(&info).unwrap_or_default().as_bytes(),
    )?;
    if !opts.quiet {
        eprintln!(
            "training {} on {} ({} train, {} val images, {} classes) for {} (batch {batch}), {} parameters; run folder {}",
            spec.name.as_deref().unwrap_or("net"),
            data_path.display(),
            n,
            info.val_images,
            info.classes,
            if max_iter % ipe == 0 {
                format!(
                    "{epochs} epoch{} of {ipe} iterations",
                    if epochs == 1 { "" } else { "s" }
                )
            } else {
                format!("{max_iter} iterations ({:.2} epochs of {ipe})", max_iter as f64 / ipe as f64)
            },
            info.parameters,
            run_dir.display()
        );
        match &solver_path {
            Some(p) => eprintln!("solver: {}", p.display()),
            None if opts.resume.is_none() => eprintln!(
                "solver: netc's defaults (SGD, base_lr {}, momentum 0, no weight decay, fixed rate): no <spec>.solver.yaml or solver.yaml beside the spec; --solver FILE names one",
                cfg.base_lr
            ),
            None => {}
        }
        if let candle_core::Device::Cuda(_) = &candle_device {
            eprintln!("device: {device} (candle's CUDA backend)");
        }
    }

    let title = format!(
        "{} — {}",
        spec.name.as_deref().unwrap_or("net"),
        data_path.display()
    );
    let mut meta: HashMap<String, String> = HashMap::new();
    meta.insert("netc_version".into(), info.netc_version.clone());
    meta.insert("net".into(), spec.name.clone().unwrap_or_default());
    let mut trainer = if engine == "candle" {
        let t = crate::engine::candle::CandleTrainer::new(train_ir, &net, &state, candle_device)
            .map_err(|e| miette::miette!("cannot train on candle: {e}"))?;
        if !opts.quiet {
            eprintln!("engine: candle on {:?}", t.net.device);
        }
        Some(t)
    } else {
        None
    };
    // With several threads, whole replicas of the net train on shares of each batch.
    let mut replicas = match trainer {
        Some(_) => None,
        None => Replicas::new(batch, rayon::current_num_threads(), |b| {
            let ctx = ShapeCtx {
                batch: Some(b),
                ..ctx.clone()
            };
            let mut rng = Rng::seed_from_u64(cfg.random_seed);
            build_net(&spec, &NetState::train(), &ctx, &mut rng, "TRAIN")
        })?,
    };
    if let Some(r) = replicas.as_mut() {
        r.copy_from(&net);
    }
    let mut interrupted = false;
    let bar = progress_bar(opts.quiet, ipe);
    for epoch in start_epoch..=epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut Rng::seed_from_u64(
            cfg.random_seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ));
        let mut aug = Rng::seed_from_u64(cfg.random_seed.wrapping_add(epoch as u64 * 7919));
        let (mut loss_sum, mut loss_count) = if epoch == start_epoch {
            carried
        } else {
            (0.0, 0)
        };
        let first_batch = if epoch == start_epoch { start_batch } else { 0 };
        let mut rate = cfg.learning_rate(state.iter, max_iter);
        if let Some(b) = &bar {
            b.reset();
            b.set_position(first_batch);
            b.set_message(format!("epoch {epoch}/{epochs}"));
        }
        let mut images = 0usize;
        for bi in first_batch..ipe {
            if state.iter >= max_iter {
                break;
            }
            let idx: Vec<usize> = (0..batch)
                .map(|k| order[(bi as usize * batch + k) % n])
                .collect();
            rate = cfg.learning_rate(state.iter, max_iter);
            let loss = match (trainer.as_mut(), replicas.as_mut()) {
                // Each replica prepares its share on its own thread, then runs forward and
                // backward on it, unless random crops or mirrors draw from the one
                // generator (in the batch's order, so that any thread count trains the
                // same).
                (None, Some(r)) if !pre.draws_random() => {
                    let shares = r.shares.clone();
                    r.pass(|i, rnet| {
                        let (at, len) = shares[i];
                        let mut unused = Rng::seed_from_u64(0);
                        fill(
                            rnet,
                            &data.train,
                            &idx[at..at + len],
                            &pre,
                            true,
                            &mut unused,
                        );
                    })
                }
                (None, Some(r)) => {
                    for (rnet, &(at, len)) in r.nets.iter_mut().zip(&r.shares) {
                        fill(rnet, &data.train, &idx[at..at + len], &pre, true, &mut aug);
                    }
                    r.pass(|_, _| {})
                }
                (None, None) => {
                    fill(&mut net, &data.train, &idx, &pre, true, &mut aug);
                    net.forward(true)
                }
                (Some(t), _) => {
                    fill(&mut net, &data.train, &idx, &pre, true, &mut aug);
                    let inputs: Vec<(usize, Vec<f32>)> = feed
                        .tops
                        .iter()
                        .map(|&b| (b, net.blobs[b].data.clone()))
                        .collect();
                    let l = t
                        .step(&inputs, &cfg, rate)
                        .map_err(|e| miette::miette!("candle training step: {e}"))?;
                    state.iter += 1;
                    l
                }
            };
            if !loss.is_finite() {
                return Err(miette::miette!(
                    help = "lower the learning rate (--lr, or base_lr in the solver), or check the input scale; the snapshots written so far stay valid",
                    "the loss became {loss} at epoch {epoch}, iteration {}",
                    state.iter + 1
                ));
            }
            if trainer.is_none() {
                match replicas.as_mut() {
                    // Combining the replicas' gradients, the update and copying the
                    // weights back, in one pass.
                    Some(r) => r.update(&cfg, &mut state, rate),
                    None => {
                        net.backward();
                        let params = net.params_mut().map(|(_, _, p)| p);
                        apply_update(&cfg, &mut state, params, rate);
                    }
                }
            }
            loss_sum += loss as f64;
            loss_count += 1;
            images += batch;
            if let Some(b) = &bar {
                b.set_position(bi + 1);
                b.set_message(format!(
                    "epoch {epoch}/{epochs} loss {:.4}",
                    loss_sum / loss_count as f64
                ));
            }
            if STOP.load(Ordering::SeqCst) {
                if let Some(r) = &replicas {
                    r.copy_to(&mut net);
                }
                if let Some(t) = &trainer {
                    t.write_back(&mut net, &mut state)
                        .map_err(|e| miette::miette!("{e}"))?;
                }
                let mut m = meta.clone();
                m.insert("loss_sum".into(), loss_sum.to_string());
                m.insert("loss_count".into(), loss_count.to_string());
                let p = snapshot::save(&run_dir, &net, &state, &m, epoch)?;
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                eprintln!(
                    "interrupted: wrote {}; carry on with `netc train --resume {}`",
                    p.display(),
                    run_dir.display()
                );
                interrupted = true;
                break;
            }
        }
        if interrupted {
            break;
        }
        if let Some(t) = &trainer {
            t.write_back(&mut net, &mut state)
                .map_err(|e| miette::miette!("{e}"))?;
        }
        if let Some(r) = &replicas {
            r.copy_to(&mut net);
        }
        let seconds = t0.elapsed().as_secs_f64();
        let (mut vl, mut va, mut v5) = (None, None, None);
        let val_due = cfg.validation_interval > 0.0
            && (epoch == epochs || epoch as f64 % cfg.validation_interval.max(1.0).round() == 0.0);
        if let (Some(vnet), Some(vsplit), true) = (val.as_mut(), data.val.as_ref(), val_due) {
            vnet.copy_params_from(&net);
            let (l, a, t5) = validate(vnet, vsplit, &val_pre, data.num_classes());
            (vl, va, v5) = (Some(l), Some(a), t5);
        }
        let rec = EpochRecord {
            epoch,
            iteration: state.iter,
            train_loss: loss_sum / loss_count.max(1) as f64,
            val_loss: vl,
            val_accuracy: va,
            val_top5: v5,
            learning_rate: rate,
            seconds,
            images_per_second: images as f64 / seconds.max(1e-9),
        };
        records.push(rec.clone());
        record::write_metrics(&run_dir, &records)?;
        record::draw_curves(&run_dir, &title, &records)?;
        let snap_due = epoch == epochs
            || (cfg.snapshot_interval > 0.0
                && epoch as f64 % cfg.snapshot_interval.max(1.0).round() == 0.0);
        if snap_due {
            snapshot::save(&run_dir, &net, &state, &meta, epoch)?;
        }
        if let Some(b) = &bar {
            b.suspend(|| print_epoch(&rec));
        } else if !opts.quiet {
            print_epoch(&rec);
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    if !opts.quiet && !interrupted {
        match record::best(&records) {
            Some(b) => println!(
                "done in {seconds:.1} s: best val accuracy {:.2}% at epoch {}; run folder {}",
                b.val_accuracy.unwrap_or(0.0),
                b.epoch,
                run_dir.display()
            ),
            None => println!("done in {seconds:.1} s; run folder {}", run_dir.display()),
        }
    }
    Ok(TrainOutcome {
        run_dir,
        records,
        interrupted,
        seconds,
    })
}

fn print_epoch(r: &EpochRecord) {
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    println!(
        "epoch {:>3}  train loss {:.4}  val loss {}  val acc {}%{}  lr {:.6}  {:.1} s  {:.0} img/s",
        r.epoch,
        r.train_loss,
        f(r.val_loss, 4),
        f(r.val_accuracy, 2),
        r.val_top5
            .map_or(String::new(), |t| format!(" (top-5 {t:.2}%)")),
        r.learning_rate,
        r.seconds,
        r.images_per_second
    );
}

fn progress_bar(quiet: bool, len: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} iters, ETA {eta}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    Some(b)
}

/// The network's class scores must cover every label of the dataset.
fn check_outputs(net: &Net, data: &Dataset) -> miette::Result<()> {
    if let Some((s, _)) = scores_and_labels(net) {
        let shape = &net.blobs[s].shape;
        let outputs = shape.get(1).copied().unwrap_or(0);
        if outputs < data.num_classes() {
            return Err(usage(
                format!(
                    "the network scores {outputs} classes but the dataset {} has {} (labels up to {})",
                    data.root.display(),
                    data.num_classes(),
                    data.num_classes() - 1
                ),
                Some("set the last InnerProduct's num_output to the class count, or leave it unset to take it from the dataset".into()),
            ));
        }
    }
    Ok(())
}

fn write_run_files(
    dir: &Path,
    spec: &NetSpec,
    cfg: &SolverConfig,
    data: &Dataset,
    data_path: &Path,
    pre: &Preprocess,
) -> miette::Result<()> {
    snapshot::write_atomic(&dir.join("spec.net"), spec.source.text.as_bytes())?;
    snapshot::write_atomic(
        &dir.join("solver.yaml"),
        serde_yaml::to_string(cfg).unwrap_or_default().as_bytes(),
    )?;
    snapshot::write_atomic(
        &dir.join("labels.txt"),
        (data.labels.join("\n") + "\n").as_bytes(),
    )?;
    snapshot::write_atomic(
        &dir.join("preprocess.yaml"),
        serde_yaml::to_string(pre).unwrap_or_default().as_bytes(),
    )?;
    let _ = data_path;
    Ok(())
}

pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> miette::Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::data::io_err("read", path, e))?;
    serde_yaml::from_str(&text).map_err(|e| {
        usage(
            format!("{} is not valid: {e}", path.display()),
            Some("netc writes this file when it trains: put back the one it wrote (or train the run again)".into()),
        )
    })
}

/// A snapshot file, or a run folder's newest snapshot.
pub fn resolve_snapshot(p: &Path) -> miette::Result<PathBuf> {
    if p.is_dir() {
        return snapshot::list(p).pop().map(|(_, _, p)| p).ok_or_else(|| {
            usage(
                format!("{} has no snapshot", p.display()),
                Some("train first, or name a .safetensors file".into()),
            )
        });
    }
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    Err(usage(
        format!("{} does not exist", p.display()),
        Some("--weights takes a run folder written by `netc train` (runs/NAME) or one of its snapshot-e*.safetensors files".into()),
    ))
}

/// Epochs as a user writes them: `10`, or `0.2`.
fn fmt_epochs(e: f64) -> String {
    if e.fract() == 0.0 {
        format!("{e:.0}")
    } else {
        format!("{e:.2}")
    }
}
