//! Stage 7: classification. A run folder from `netc train` holds everything needed: the
//! spec (its deploy net), the labels, the preprocessing and the snapshots. [`Model`] builds
//! the deploy net with a snapshot's weights and turns image files into probabilities exactly
//! as training saw them; [`classify_all`] runs one or several models over a list of images
//! and scores them when the list has labels; [`stats`] looks inside the net for one image.

pub mod bench;
pub mod list;
pub mod pictures;
pub mod stats;

use std::path::{Path, PathBuf};

use image::DynamicImage;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

use crate::commands::usage;
use crate::data::{self, bad};
use crate::engine::net::Net;
use crate::engine::Rng;
use crate::feed::Preprocess;
use crate::layers::ShapeCtx;
use crate::spec::NetState;
use crate::train::{self, snapshot};
use list::Entry;

/// A run's deploy net with a snapshot's weights, ready to classify.
#[derive(Debug)]
pub struct Model {
    pub info: ModelInfo,
    pub labels: Vec<String>,
    pub pre: Preprocess,
    pub net: Net,
    /// The blob the caller fills (the deploy net's Input or data layer top).
    pub input: usize,
    /// The blob holding the scores.
    pub output: usize,
    /// Whether `output` already holds probabilities (a Softmax top); otherwise classify
    /// applies a softmax to it.
    pub output_is_probability: bool,
    /// The deploy net on a candle device, when classification runs there.
    pub candle: Option<crate::engine::candle::CandleNet>,
}

/// Where a model came from, for reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelInfo {
    /// A short name for tables: the run folder's name (with `@eN` when an epoch was asked).
    pub name: String,
    pub run: String,
    pub snapshot: String,
    pub epoch: Option<usize>,
    pub classes: usize,
    pub parameters: usize,
}

/// One of the top predictions for an image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    /// 0..1
    pub probability: f32,
}

/// Finds the run folder and the snapshot `path` names: a run folder (its newest snapshot,
/// or the newest of epoch `epoch`) or a snapshot file inside a run folder.
pub fn resolve(
    path: &Path,
    epoch: Option<usize>,
) -> miette::Result<(PathBuf, PathBuf, Option<usize>)> {
    if !path.exists() {
        return Err(usage(
            format!("the run `{}` does not exist", path.display()),
            Some("give a run folder written by `netc train` (runs/...) or a snapshot file inside one".into()),
        ));
    }
    let (run, snap) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else if path.extension().is_none_or(|e| e != "safetensors") {
        // An image (or anything else) where the run should be: the first path names it.
        return Err(usage(
            format!(
                "`{}` is not a run: the first path names the run folder (or a snapshot file) to classify with",
                path.display()
            ),
            Some(if crate::data::folder::is_image(path) {
                format!("put the run first: netc classify runs/NAME {}", path.display())
            } else {
                "give a run folder written by `netc train` (runs/NAME) or one of its snapshot-e*.safetensors files first".into()
            }),
        ));
    } else {
        if epoch.is_some() {
            return Err(usage(
                format!(
                    "--epoch picks a snapshot of a run folder, but `{}` is already a snapshot file",
                    path.display()
                ),
                Some("give the run folder with --epoch, or the snapshot file alone".into()),
            ));
        }
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            Some(path.to_path_buf()),
        )
    };
    if !run.join("spec.net").is_file() {
        return Err(usage(
            format!(
                "`{}` is not a netc run folder (it has no spec.net)",
                run.display()
            ),
            Some("give a folder written by `netc train`, or a snapshot file inside one".into()),
        ));
    }
    let snaps = snapshot::list(&run);
    if let Some(s) = snap {
        let name = s.file_name();
        let ep = snaps
            .iter()
            .find(|(_, _, p)| p.file_name() == name)
            .map(|(e, _, _)| *e);
        return Ok((run, s, ep));
    }
    if snaps.is_empty() {
        return Err(usage(
            format!("the run folder `{}` has no snapshot", run.display()),
            Some("the run stopped before its first snapshot (at the end of its first epoch); train it again, with `netc train SPEC --out` a new folder".into()),
        ));
    }
    let pick = match epoch {
        Some(e) => snaps.iter().rev().find(|(ep, _, _)| *ep == e),
        None => snaps.last(),
    };
    match pick {
        Some((ep, _, p)) => Ok((run, p.clone(), Some(*ep))),
        None => {
            let mut have: Vec<String> = snaps.iter().map(|(ep, _, _)| ep.to_string()).collect();
            // A snapshot written mid-epoch (at Ctrl-C) shares its epoch with the one at
            // the epoch's end.
            have.dedup();
            Err(usage(
                format!(
                    "the run folder `{}` has no snapshot of epoch {}",
                    run.display(),
                    epoch.unwrap_or(0)
                ),
                Some(format!("its snapshots are of epochs {}", have.join(", "))),
            ))
        }
    }
}

/// The labels of a run (`labels.txt`, one a line).
pub fn read_labels(path: &Path) -> miette::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| data::io_err("read the labels", path, e))?;
    let labels: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let n = labels
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    if n == 0 {
        return Err(bad(
            format!("`{}` lists no labels", path.display()),
            "the run folder is damaged; train again",
        ));
    }
    Ok(labels[..n].to_vec())
}

impl Model {
    /// Opens a run folder or snapshot file (see [`resolve`]) with a deploy net of `batch`
    /// images.
    pub fn open(path: &Path, epoch: Option<usize>, batch: usize) -> miette::Result<Model> {
        let (run, snap, ep) = resolve(path, epoch)?;
        let labels = read_labels(&run.join("labels.txt"))?;
        let pre: Preprocess = train::read_yaml(&run.join("preprocess.yaml"))?;
        let spec = train::load_spec(&run.join("spec.net"))?;
        if pre.channels != 1 && pre.channels != 3 {
            return Err(bad(
                format!(
                    "`{}` asks for {} channels; images have 1 or 3",
                    run.join("preprocess.yaml").display(),
                    pre.channels
                ),
                "the run folder is damaged; train again",
            ));
        }
        let ctx = ShapeCtx {
            batch: Some(batch.max(1)),
            data_chw: Some([pre.channels, pre.height, pre.width]),
            num_classes: Some(labels.len()),
        };
        let mut rng = Rng::seed_from_u64(0);
        let mut net = train::build_net(&spec, &NetState::deploy(), &ctx, &mut rng, "deploy")?;
        let spec_file = run.join("spec.net");
        let Some(input) = net.feeds.first().and_then(|f| f.tops.first().copied()) else {
            return Err(bad(
                format!(
                    "the deploy net of `{}` has no input layer",
                    spec_file.display()
                ),
                "add an Input layer with include { stage: \"deploy\" } (see specs/lenet.net)",
            ));
        };
        let mut want = vec![batch.max(1)];
        want.extend(pre.output_chw());
        if net.blobs[input].shape != want {
            return Err(bad(
                format!(
                    "the deploy input of `{}` is {} but the run's images are {} after preprocessing",
                    spec_file.display(),
                    dims(&net.blobs[input].shape[1..]),
                    dims(&want[1..])
                ),
                "make the Input layer's shape match the dataset the run was trained on",
            ));
        }
        let weights = snapshot::load(&snap)?;
        let rep = snapshot::apply(&weights, &mut net);
        if !rep.skipped.is_empty() {
            let what: Vec<String> = rep
                .skipped
                .iter()
                .map(|(k, why)| format!("{k}: {why}"))
                .collect();
            return Err(bad(
                format!(
                    "the snapshot `{}` does not fit the spec of its run ({})",
                    snap.display(),
                    what.join("; ")
                ),
                format!("the run's spec.net or labels.txt ({} classes now) was changed after training, or the snapshot comes from another run; use the snapshot, spec.net and labels.txt of one run", labels.len()),
            ));
        }
        let (output, output_is_probability) = output_blob(&net).ok_or_else(|| {
            bad(
                format!("the deploy net of `{}` has no output", spec_file.display()),
                "add a Softmax layer in the deploy stage",
            )
        })?;
        let classes = net.blobs[output].count() / batch.max(1);
        if classes != labels.len() {
            return Err(bad(
                format!(
                    "the deploy net of `{}` gives {classes} scores per image but the run has {} labels",
                    spec_file.display(),
                    labels.len()
                ),
                "the last layer's num_output must be the number of classes",
            ));
        }
        let name = run.file_name().map_or_else(
            || run.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        // A snapshot written mid-epoch (at Ctrl-C): short of its epoch's last iteration
        // (run.yaml's iterations per epoch), or, without run.yaml, another of its epoch
        // comes later.
        let snaps = snapshot::list(&run);
        let plan: Option<(u64, u64)> = std::fs::read_to_string(run.join("run.yaml"))
            .ok()
            .and_then(|t| serde_yaml::from_str::<crate::train::RunInfo>(&t).ok())
            .map(|i| (i.iterations_per_epoch, i.max_iter));
        let mid_epoch = snaps
            .iter()
            .find(|(_, _, p)| *p == snap)
            .filter(|&&(e, it, _)| match plan {
                Some((ipe, max_iter)) => it < e as u64 * ipe && it != max_iter,
                None => snaps.iter().any(|&(e2, it2, _)| e2 == e && it2 > it),
            })
            .map(|&(_, it, _)| it);
        let info = ModelInfo {
            // A snapshot file named instead of its run gets its epoch too (its iteration
            // when it was written mid-epoch), so that a run and one of its own snapshots
            // side by side have columns of their own.
            name: match (epoch, path.is_file(), ep, mid_epoch) {
                (Some(_), _, _, Some(it)) | (None, true, _, Some(it)) => format!("{name}@i{it}"),
                (Some(e), _, _, _) | (None, true, Some(e), _) => format!("{name}@e{e}"),
                _ => name,
            },
            run: run.display().to_string(),
            snapshot: snap.display().to_string(),
            epoch: ep,
            classes,
            parameters: net.param_count(),
        };
        Ok(Model {
            info,
            labels,
            pre,
            net,
            input,
            output,
            output_is_probability,
            candle: None,
        })
    }

    /// Runs the forward passes on `device` (`cpu`, `cuda`, `cuda:N`, `auto`) through the
    /// candle lowering instead of netc's CPU engine; `cpu` and `auto` without a GPU keep
    /// the engine.
    pub fn use_device(&mut self, device: &str) -> miette::Result<()> {
        let dev = crate::engine::candle::device(device)
            .map_err(|m| crate::commands::usage(m, Some("classify with --device cpu".into())))?;
        if dev.is_cpu() {
            self.candle = None;
            return Ok(());
        }
        let spec = train::load_spec(&Path::new(&self.info.run).join("spec.net"))?;
        let ctx = ShapeCtx {
            batch: Some(self.batch()),
            data_chw: Some([self.pre.channels, self.pre.height, self.pre.width]),
            num_classes: Some(self.labels.len()),
        };
        let (_, ir) = train::build_net_ir(
            &spec,
            &NetState::deploy(),
            &ctx,
            &mut Rng::seed_from_u64(0),
            "deploy",
        )?;
        let cn = crate::engine::candle::CandleNet::new(ir, &self.net, dev)
            .map_err(|e| miette::miette!("cannot run the deploy net on {device}: {e}"))?;
        self.candle = Some(cn);
        Ok(())
    }

    /// Images per forward pass.
    pub fn batch(&self) -> usize {
        self.net.blobs[self.input]
            .shape
            .first()
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    /// A decoded image as the network sees it (see [`prepare`]).
    pub fn prepare(&self, img: &DynamicImage) -> Vec<f32> {
        prepare(&self.pre, img)
    }

    /// A dataset image (`C×H×W` u8 at the dataset's size) as the network sees it.
    pub fn prepare_u8(&self, chw: &[u8]) -> Vec<f32> {
        prepare_u8(&self.pre, chw)
    }

    /// Probabilities for prepared inputs, `batch()` at a time, the last batch padded with
    /// zeros. Every forward pass has the same size: the engine computes each sample on its
    /// own, but its matrix products (gemm) round differently for different batch sizes, so a
    /// fixed size is what makes an image's probabilities independent of the list around it
    /// and of its position in it.
    pub fn classify<T: AsRef<[f32]>>(&mut self, inputs: &[T]) -> Vec<Vec<f32>> {
        let batch = self.batch();
        let per = self.pre.output_len();
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(batch) {
            let data = &mut self.net.blobs[self.input].data;
            data.fill(0.0);
            for (k, x) in chunk.iter().enumerate() {
                data[k * per..(k + 1) * per].copy_from_slice(x.as_ref());
            }
            let on_device;
            let scores: &[f32] = match &self.candle {
                Some(cn) => {
                    let blobs = cn.forward(&[(self.input, data.clone())]);
                    on_device = blobs
                        .ok()
                        .and_then(|b| {
                            b[self.output]
                                .as_ref()
                                .and_then(|t| crate::engine::candle::values(t).ok())
                        })
                        .unwrap_or_else(|| vec![f32::NAN; self.net.blobs[self.output].count()]);
                    &on_device
                }
                None => {
                    self.net.forward(false);
                    &self.net.blobs[self.output].data
                }
            };
            let c = scores.len() / batch;
            for k in 0..chunk.len() {
                let row = &scores[k * c..(k + 1) * c];
                out.push(if self.output_is_probability {
                    row.to_vec()
                } else {
                    softmax(row)
                });
            }
        }
        out
    }

    /// The `k` most probable labels, most probable first.
    pub fn top(&self, probs: &[f32], k: usize) -> Vec<Prediction> {
        top_k(probs, k)
            .into_iter()
            .map(|(i, p)| Prediction {
                index: i,
                label: self.labels[i].clone(),
                probability: p,
            })
            .collect()
    }
}

/// A decoded image as a network trained with `pre` sees it: fitted to the dataset's size,
/// channels and resize mode, then cropped, mean-subtracted and scaled as in validation. Noise
/// for `fill` resizing is seeded per image, so an image always gets the same input.
pub fn prepare(pre: &Preprocess, img: &DynamicImage) -> Vec<f32> {
    let mut rng = Rng::seed_from_u64(0);
    let chw = data::image::fit_image(
        img,
        pre.channels,
        pre.height,
        pre.width,
        pre.resize,
        &mut rng,
    );
    prepare_u8(pre, &chw)
}

/// A dataset image (`C×H×W` u8 at the dataset's size) as a network trained with `pre` sees it.
pub fn prepare_u8(pre: &Preprocess, chw: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; pre.output_len()];
    pre.apply(chw, &mut out, false, &mut Rng::seed_from_u64(0));
    out
}

/// `1×28×28`.
pub fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// The deploy net's answer: the last Softmax's top, else the scores a loss layer reads,
/// else the last layer's top.
fn output_blob(net: &Net) -> Option<(usize, bool)> {
    if let Some(s) = net.steps.iter().rev().find(|s| s.ty == "Softmax") {
        return Some((*s.tops.first()?, true));
    }
    if let Some((scores, _)) = train::scores_and_labels(net) {
        return Some((scores, false));
    }
    let s = net.steps.iter().rev().find(|s| !s.op.is_feed())?;
    Some((*s.tops.first()?, false))
}

/// A numerically stable softmax.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = row.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// Indices and values of the `k` largest values, largest first; equal values keep index
/// order; NaN counts as smallest.
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    idx.sort_by(|&a, &b| key(probs[b]).total_cmp(&key(probs[a])).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, probs[i])).collect()
}

/// One image's result: its top predictions under each model.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// The path as written (list line or argument).
    pub path: String,
    /// The list line, for `--list`.
    pub line: Option<usize>,
    pub truth: Option<usize>,
    pub truth_label: Option<String>,
    /// Top predictions, one list per model (in the order the models were given).
    pub predictions: Vec<Vec<Prediction>>,
    /// Every class's probability, one row per model.
    #[serde(skip)]
    pub probabilities: Vec<Vec<f32>>,
}

/// A line (or argument) that was not classified, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    pub line: Option<usize>,
    pub path: String,
    pub reason: String,
}

/// Accuracy of one model over the labelled images.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Accuracy {
    pub model: String,
    pub images: usize,
    /// In %.
    pub top1: f64,
    /// In % (top-k with k = min(5, classes)).
    pub top5: f64,
    /// `confusion[truth][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub per_class: Vec<ClassAccuracy>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassAccuracy {
    pub label: String,
    pub images: usize,
    pub correct: usize,
    /// In %; `None` when the class has no image.
    pub accuracy: Option<f64>,
}

/// What `netc classify` found, for one or several models.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub models: Vec<ModelInfo>,
    pub images: Vec<ImageResult>,
    pub skipped: Vec<Skipped>,
    /// One per model, when some images have labels.
    pub accuracy: Vec<Accuracy>,
}

/// Top-1/top-5 accuracy, confusion matrix and per-class accuracy of predictions
/// (`probs[i]` for an image of class `truth[i]`).
pub fn accuracy(model: &str, labels: &[String], truth: &[usize], probs: &[&[f32]]) -> Accuracy {
    let classes = labels.len();
    let k = classes.min(5);
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut top1, mut topk) = (0usize, 0usize);
    for (&t, p) in truth.iter().zip(probs) {
        let ranked = top_k(p, k);
        if let Some(&(best, _)) = ranked.first() {
            if let Some(row) = confusion.get_mut(t) {
                row[best] += 1;
            }
            top1 += (best == t) as usize;
        }
        topk += ranked.iter().any(|&(i, _)| i == t) as usize;
    }
    let n = truth.len();
    let pct = |c: usize, n: usize| {
        if n == 0 {
            0.0
        } else {
            100.0 * c as f64 / n as f64
        }
    };
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let images: usize = row.iter().sum();
            ClassAccuracy {
                label: labels[c].clone(),
                images,
                correct: row[c],
                accuracy: (images > 0).then(|| pct(row[c], images)),
            }
        })
        .collect();
    Accuracy {
        model: model.to_string(),
        images: n,
        top1: pct(top1, n),
        top5: pct(topk, n),
        confusion,
        per_class,
    }
}

/// Entries decoded per round: enough to keep every thread busy, few enough to hold.
const CHUNK: usize = 512;

/// Classifies every entry with every model, `top` predictions per image, and scores each
/// model where entries have labels. A list's labels are indices into the first model's
/// classes; the other models are scored by class name (a model without that class is not
/// scored on that image). Files that are missing or cannot be decoded, and labels beyond the
/// first model's classes, are reported in `skipped` with their line.
pub fn classify_all(models: &mut [Model], entries: &[Entry], top: usize) -> Report {
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    let classes = models.first().map_or(0, |m| m.labels.len());
    for chunk in entries.chunks(CHUNK) {
        let decoded: Vec<_> = chunk
            .par_iter()
            .map(|e| data::image::decode(&e.path))
            .collect();
        let mut ok: Vec<(&Entry, DynamicImage)> = Vec::new();
        for (e, d) in chunk.iter().zip(decoded) {
            match d {
                Err(err) => skipped.push(Skipped {
                    line: e.line,
                    path: e.text.clone(),
                    reason: match e.text.rsplit_once(char::is_whitespace) {
                        // A last word that is no integer label was read as part of the path.
                        Some((_, last)) if e.line.is_some() && e.label.is_none() && !last.is_empty() => {
                            let what = if last.parse::<i64>().is_ok() {
                                "is a negative number (labels are class numbers, 0 and up)"
                            } else {
                                "is no integer"
                            };
                            format!(
                                "{err} (a line is a path, then optionally an integer label; `{last}` {what}, so the whole line was read as the path)"
                            )
                        }
                        _ => err.to_string(),
                    },
                }),
                Ok(_) if e.label.is_some_and(|l| l >= classes) => skipped.push(Skipped {
                    line: e.line,
                    path: e.text.clone(),
                    reason: format!(
                        "label {} is not a class of the model (labels 0 to {})",
                        e.label.unwrap_or(0),
                        classes.saturating_sub(1)
                    ),
                }),
                Ok(img) => ok.push((e, img)),
            }
        }
        let mut per_model: Vec<Vec<Vec<f32>>> = Vec::with_capacity(models.len());
        for m in models.iter_mut() {
            let pre = &m.pre;
            let inputs: Vec<Vec<f32>> = ok.par_iter().map(|(_, img)| prepare(pre, img)).collect();
            per_model.push(m.classify(&inputs));
        }
        for (i, (e, _)) in ok.iter().enumerate() {
            let probabilities: Vec<Vec<f32>> = per_model.iter().map(|p| p[i].clone()).collect();
            let predictions = models
                .iter()
                .zip(&probabilities)
                .map(|(m, p)| m.top(p, top))
                .collect();
            images.push(ImageResult {
                path: e.text.clone(),
                line: e.line,
                truth: e.label,
                truth_label: e
                    .label
                    .and_then(|l| models.first().and_then(|m| m.labels.get(l).cloned())),
                predictions,
                probabilities,
            });
        }
    }
    let labelled: Vec<&ImageResult> = images.iter().filter(|r| r.truth.is_some()).collect();
    let accuracy = if labelled.is_empty() {
        Vec::new()
    } else {
        models
            .iter()
            .enumerate()
            .map(|(k, m)| {
                // The first model's class name, as this model numbers it.
                let (truth, probs): (Vec<usize>, Vec<&[f32]>) = labelled
                    .iter()
                    .filter_map(|r| {
                        let name = r.truth_label.as_ref()?;
                        let t = m.labels.iter().position(|l| l == name)?;
                        Some((t, r.probabilities[k].as_slice()))
                    })
                    .unzip();
                accuracy(&m.info.name, &m.labels, &truth, &probs)
            })
            .collect()
    };
    Report {
        models: models.iter().map(|m| m.info.clone()).collect(),
        images,
        skipped,
        accuracy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability_then_index() {
        let p = [0.1, 0.3, 0.05, 0.3, 0.25];
        assert_eq!(top_k(&p, 3), vec![(1, 0.3), (3, 0.3), (4, 0.25)]);
        assert_eq!(top_k(&p, 10).len(), 5);
        assert_eq!(top_k(&[f32::NAN, 0.5], 2)[0], (1, 0.5));
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let s = softmax(&[1.0, 3.0, -2.0, 5.0]);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((s[3] / s[1] - 2f32.exp()).abs() < 1e-4);
        // Large scores do not overflow.
        let big = softmax(&[1000.0, 1000.0]);
        assert_eq!(big, vec![0.5, 0.5]);
        assert_eq!(
            top_k(&s, 4).iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![3, 1, 0, 2]
        );
    }

    #[test]
    fn confusion_matrix_on_a_made_up_case() {
        let labels: Vec<String> = ["cat", "dog", "fox"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Predicted classes: 0, 0, 1, 2, 2, 2 (second best is always the next class).
        let p = |c: usize| {
            let mut v = vec![0.1f32; 3];
            v[c] = 0.7;
            v[(c + 1) % 3] = 0.2;
            v
        };
        let rows = [p(0), p(0), p(1), p(2), p(2), p(2)];
        let probs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let truth = [0, 1, 1, 2, 2, 0];
        let a = accuracy("m", &labels, &truth, &probs);
        assert_eq!(
            a.confusion,
            vec![vec![1, 0, 1], vec![1, 1, 0], vec![0, 0, 2]]
        );
        assert_eq!(a.images, 6);
        assert!((a.top1 - 400.0 / 6.0).abs() < 1e-9);
        // With three classes top-5 means top-3: everything is right.
        assert_eq!(a.top5, 100.0);
        assert_eq!(a.per_class[0].images, 2);
        assert_eq!(a.per_class[0].correct, 1);
        assert_eq!(a.per_class[0].accuracy, Some(50.0));
        assert_eq!(a.per_class[2].accuracy, Some(100.0));
    }

    #[test]
    fn class_without_images_has_no_accuracy() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let row = [0.9f32, 0.1];
        let a = accuracy("m", &labels, &[0], &[&row]);
        assert_eq!(a.per_class[1].accuracy, None);
        assert_eq!(a.top1, 100.0);
    }
}
