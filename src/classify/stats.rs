//! "Show visualizations and statistics" for one image: per layer, in spec order, the
//! activations it produces and the blobs it learned, each with its shape, mean, standard
//! deviation, range and a 20-bin histogram, and the learned parameter counts.
//!
//! Blobs are SSA values in netc's IR, so an in-place layer (`relu1` with top `ip1` =
//! bottom `ip1`) has its own output blob: the statistics shown for `relu1` are of the
//! post-ReLU values, and `ip1`'s are of the pre-ReLU ones, as the network computed them.

use serde::Serialize;

use super::{dims, Model, ModelInfo, Prediction};

/// Histogram bins.
pub const BINS: usize = 20;

/// Figures of one tensor.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Values in the tensor.
    pub count: usize,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f32,
    pub max: f32,
    /// NaN and infinite values, left out of every other figure.
    pub nonfinite: usize,
    /// Bin `i` holds values in `[min + i·w, min + (i+1)·w)` with `w = (max − min)/20`; the
    /// last bin also holds `max`. When all values are equal they are in bin 0.
    pub histogram: Vec<usize>,
}

/// Mean, standard deviation, range and histogram of `v`.
pub fn summarize(v: &[f32]) -> Summary {
    let finite = || v.iter().copied().filter(|x| x.is_finite());
    let n = finite().count();
    let (min, max) = finite().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (min, max) = if n == 0 { (0.0, 0.0) } else { (min, max) };
    let mean = if n == 0 {
        0.0
    } else {
        finite().map(f64::from).sum::<f64>() / n as f64
    };
    let var = if n == 0 {
        0.0
    } else {
        finite().map(|x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64
    };
    let mut histogram = vec![0usize; BINS];
    let span = max as f64 - min as f64;
    for x in finite() {
        let bin = if span > 0.0 {
            ((x as f64 - min as f64) / span * BINS as f64) as usize
        } else {
            0
        };
        histogram[bin.min(BINS - 1)] += 1;
    }
    // `+ 0.0` turns -0 (a ReLU of a negative value) into 0.
    Summary {
        count: v.len(),
        mean,
        std: var.sqrt(),
        min: min + 0.0,
        max: max + 0.0,
        nonfinite: v.len() - n,
        histogram,
    }
}

/// A histogram as a compact terminal bar, one character a bin, scaled to the fullest bin.
pub fn bar(histogram: &[usize]) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = histogram.iter().copied().max().unwrap_or(0).max(1);
    histogram
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                LEVELS[((c * 8).div_ceil(top)).clamp(1, 8) - 1]
            }
        })
        .collect()
}

/// One tensor of a layer: an output or a learned blob.
#[derive(Debug, Clone, Serialize)]
pub struct TensorStats {
    /// "output", "weights", "bias" or "blob N".
    pub role: String,
    /// The blob's name for outputs; `<layer>.<index>` for learned blobs (as in snapshots).
    pub name: String,
    /// An output of an in-place layer: it replaced the blob of the same name, and these are
    /// the values after this layer.
    pub in_place: bool,
    /// For outputs, batch 1.
    pub shape: Vec<usize>,
    #[serde(flatten)]
    pub summary: Summary,
    /// The histogram picture, relative to the output folder.
    pub histogram_png: Option<String>,
}

impl TensorStats {
    /// `ip1 (in place)` for the outputs of in-place layers.
    pub fn label(&self) -> String {
        if self.in_place {
            format!("{} (in place)", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// One layer of the deploy net.
#[derive(Debug, Clone, Serialize)]
pub struct LayerStats {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub outputs: Vec<TensorStats>,
    pub params: Vec<TensorStats>,
    /// Learned values in this layer.
    pub parameters: usize,
    /// A grid of the filters (convolutions).
    pub filters_png: Option<String>,
    /// A grid of the activation maps (convolutions and poolings).
    pub activations_png: Option<String>,
}

/// Everything `--stats` reports for one image.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub image: String,
    pub model: ModelInfo,
    pub predictions: Vec<Prediction>,
    /// The input as the network sees it (after preprocessing).
    pub input_png: Option<String>,
    pub layers: Vec<LayerStats>,
    /// Learned values in the whole net.
    pub parameters: usize,
    /// Every file written to the output folder, relative to it.
    pub files: Vec<String>,
    /// The output folder, when pictures were written.
    pub out: Option<String>,
}

fn role(ty: &str, i: usize) -> String {
    match (ty, i) {
        ("Convolution" | "Deconvolution" | "InnerProduct" | "Scale" | "PReLU", 0) => {
            "weights".into()
        }
        ("Convolution" | "Deconvolution" | "InnerProduct" | "Scale", 1) => "bias".into(),
        _ => format!("blob {i}"),
    }
}

/// Runs `input` (a prepared image) through the model and gathers every layer's figures.
/// Only the first image of a batch is looked at.
pub fn collect(model: &mut Model, input: &[f32], image: &str, top: usize) -> StatsReport {
    let probs = model.classify(&[input]);
    let predictions = probs.first().map_or_else(Vec::new, |p| model.top(p, top));
    let batch = model.batch();
    let net = &model.net;
    let mut layers = Vec::new();
    for step in &net.steps {
        let outputs = step
            .tops
            .iter()
            .map(|&t| {
                let blob = &net.blobs[t];
                let per = blob.count() / batch;
                let mut shape = blob.shape.clone();
                if let Some(b) = shape.first_mut() {
                    *b = 1;
                }
                let name = net.blob_names[t].clone();
                TensorStats {
                    role: "output".into(),
                    in_place: step.bottoms.iter().any(|&b| net.blob_names[b] == name),
                    name,
                    shape,
                    summary: summarize(&blob.data[..per]),
                    histogram_png: None,
                }
            })
            .collect();
        let params: Vec<TensorStats> = step
            .op
            .params()
            .iter()
            .enumerate()
            .map(|(i, p)| TensorStats {
                role: role(step.ty, i),
                name: format!("{}.{i}", step.name),
                in_place: false,
                shape: p.blob.shape.clone(),
                summary: summarize(&p.blob.data),
                histogram_png: None,
            })
            .collect();
        layers.push(LayerStats {
            name: step.name.clone(),
            ty: step.ty.to_string(),
            parameters: params.iter().map(|p| p.summary.count).sum(),
            outputs,
            params,
            filters_png: None,
            activations_png: None,
        });
    }
    StatsReport {
        image: image.to_string(),
        model: model.info.clone(),
        predictions,
        input_png: None,
        parameters: layers.iter().map(|l| l.parameters).sum(),
        layers,
        files: Vec::new(),
        out: None,
    }
}

/// The report as terminal text.
pub fn render(r: &StatsReport) -> String {
    let mut s = format!("{} with {} ({})\n", r.image, r.model.name, r.model.snapshot);
    for p in &r.predictions {
        s.push_str(&format!("  {:>7.3}%  {}\n", 100.0 * p.probability, p.label));
    }
    s.push('\n');
    s.push_str(&format!(
        "{:<12} {:<14} {:<8} {:<20} {:<14} {:>10} {:>10} {:>10} {:>10}  histogram ({} bins, min..max)\n",
        "layer", "type", "", "blob", "shape", "mean", "std", "min", "max", BINS
    ));
    for l in &r.layers {
        let mut first = true;
        for t in l.outputs.iter().chain(&l.params) {
            let (name, ty) = if first {
                (l.name.as_str(), l.ty.as_str())
            } else {
                ("", "")
            };
            first = false;
            let m = &t.summary;
            s.push_str(&format!(
                "{:<12} {:<14} {:<8} {:<20} {:<14} {:>10.4} {:>10.4} {:>10.4} {:>10.4}  |{}|{}\n",
                name,
                ty,
                t.role,
                t.label(),
                dims(&t.shape),
                m.mean,
                m.std,
                m.min,
                m.max,
                bar(&m.histogram),
                if m.nonfinite > 0 {
                    format!(" {} not finite", m.nonfinite)
                } else {
                    String::new()
                }
            ));
        }
    }
    s.push_str("\nlearned parameters\n");
    for l in r.layers.iter().filter(|l| l.parameters > 0) {
        s.push_str(&format!("  {:<12} {:>12}\n", l.name, group(l.parameters)));
    }
    s.push_str(&format!("  {:<12} {:>12}\n", "total", group(r.parameters)));
    if let Some(out) = &r.out {
        s.push_str(&format!(
            "\nwrote {} files to {out}; open {}\n",
            r.files.len(),
            std::path::Path::new(out).join("index.html").display()
        ));
    }
    s
}

/// `431080` → `431,080`.
pub fn group(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_figures_and_histogram_counts() {
        let v: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let s = summarize(&v);
        assert_eq!((s.count, s.min, s.max, s.nonfinite), (100, 0.0, 99.0, 0));
        assert!((s.mean - 49.5).abs() < 1e-9);
        assert!((s.std - (9999.0f64 / 12.0).sqrt()).abs() < 1e-9);
        assert_eq!(s.histogram.iter().sum::<usize>(), 100);
        assert_eq!(s.histogram[0], 5);
        // 95..=99 land in the last bin (max included).
        assert_eq!(s.histogram[19], 5);
    }

    #[test]
    fn constant_and_nonfinite_tensors() {
        let s = summarize(&[2.0, 2.0, f32::NAN, 2.0, f32::INFINITY]);
        assert_eq!((s.min, s.max, s.std, s.nonfinite), (2.0, 2.0, 0.0, 2));
        assert_eq!(s.histogram[0], 3);
        assert_eq!(s.histogram.iter().sum::<usize>() + s.nonfinite, s.count);
        let e = summarize(&[]);
        assert_eq!((e.count, e.histogram.iter().sum::<usize>()), (0, 0));
    }

    #[test]
    fn bars_scale_to_the_fullest_bin() {
        assert_eq!(bar(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(bar(&[0, 0]), "  ");
        assert_eq!(group(431080), "431,080");
        assert_eq!(group(7), "7");
    }
}
