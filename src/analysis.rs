//! What `check`, `summary` and `visualize` report about a spec: per-layer facts over all
//! phases (phases, per-sample shapes, parameters, MACs), the "netc cannot train" check,
//! and the JSON form of both.

use serde_json::{json, Value};

use crate::diag::{Diagnostic, Severity};
use crate::ir::NetIr;
use crate::layers::{self, ShapeCtx};
use crate::spec::NetSpec;

/// One layer of the spec in file order, with what the first phase that holds it says.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub name: String,
    pub ty: String,
    pub bottom: Vec<String>,
    pub top: Vec<String>,
    /// `train`, `test`, `deploy`: the phases that include the layer.
    pub phases: Vec<&'static str>,
    /// Per-sample shape of each top (the batch axis dropped), where known.
    pub output: Vec<Option<Vec<usize>>>,
    pub params: Option<u64>,
    pub macs: Option<u64>,
    pub in_place: bool,
}

/// Rows for every layer of `spec`, from the IRs of [`crate::ir::check_all`].
pub fn rows(spec: &NetSpec, irs: &[(&'static str, NetIr)], ctx: &ShapeCtx) -> Vec<LayerRow> {
    // Each phase's IR layer of a spec layer (looked up per layer, this was quadratic).
    let index: Vec<std::collections::HashMap<usize, usize>> = irs
        .iter()
        .map(|(_, ir)| {
            // In reverse, so that the first of a spec index wins.
            ir.layers
                .iter()
                .enumerate()
                .rev()
                .map(|(li, l)| (l.spec_index, li))
                .collect()
        })
        .collect();
    spec.layers
        .iter()
        .enumerate()
        .map(|(si, l)| {
            let mut row = LayerRow {
                name: l.name.clone(),
                ty: l.ty.clone(),
                bottom: l.bottoms.clone(),
                top: l.tops.clone(),
                phases: Vec::new(),
                output: vec![None; l.tops.len()],
                params: None,
                macs: None,
                in_place: false,
            };
            let mut filled = false;
            for ((phase, ir), index) in irs.iter().zip(&index) {
                if !l.included_in(&ir.state) {
                    continue;
                }
                row.phases.push(phase);
                let Some(&li) = index.get(&si) else {
                    continue;
                };
                // The first phase with shapes fills the row.
                let tops = ir.top_shapes(li);
                if filled || (tops.is_none() && row.params.is_some()) {
                    continue;
                }
                row.in_place = ir.layers[li].in_place;
                row.output = ir.layers[li]
                    .tops
                    .iter()
                    .map(|&b| ir.blobs[b].shape.as_ref().map(|s| per_sample(s)))
                    .collect();
                row.params = ir.params(li, ctx);
                row.macs = ir.macs(li);
                filled = tops.is_some();
            }
            row
        })
        .collect()
}

/// A shape without its batch axis.
pub fn per_sample(s: &[usize]) -> Vec<usize> {
    s.iter().skip(1).copied().collect()
}

/// One error per layer type that netc knows but cannot train, at its first layer, and one
/// per layer of a type it trains with a parameter it cannot run (STOCHASTIC pooling).
pub fn cannot_train(spec: &NetSpec) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut out_params: Vec<Diagnostic> = Vec::new();
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for l in &spec.layers {
        let Some(t) = layers::lookup(&l.ty) else {
            continue;
        };
        if t.runnable {
            // A type netc runs, with a parameter it cannot run yet.
            if let Some(e) = (t.build)(l).ok().and_then(|layer| layer.cannot_run()) {
                out_params.push(Diagnostic {
                    severity: Severity::Error,
                    code: "netc::cannot_train",
                    message: format!("layer `{}`: {}", l.name, e.message),
                    labels: vec![(
                        e.span.unwrap_or_else(|| l.type_span.clone()),
                        "here".to_string(),
                    )],
                    help: e.help,
                    source: Some(spec.source.clone()),
                });
            }
            continue;
        }
        match seen.iter_mut().find(|(n, _)| *n == t.name) {
            Some((_, count)) => *count += 1,
            None => {
                seen.push((t.name, 1));
                out.push(Diagnostic {
                    severity: Severity::Error,
                    code: "netc::cannot_train",
                    message: format!("netc cannot train {} layers yet", t.name),
                    labels: vec![(l.type_span.clone(), format!("layer `{}`", l.name))],
                    help: None,
                    source: Some(spec.source.clone()),
                });
            }
        }
    }
    for (d, (_, count)) in out.iter_mut().zip(&seen) {
        let more = if *count > 1 {
            format!(" ({count} layers of this type)")
        } else {
            String::new()
        };
        d.help = Some(format!("`netc summary` and `netc visualize` work on this net{more}; `netc train` needs types it can run"));
    }
    out.extend(out_params);
    out
}

/// A diagnostic as JSON: severity, code, message, line, column, end, help, labels.
pub fn diagnostic_json(d: &Diagnostic) -> Value {
    let pos = |offset: usize| {
        d.source.as_ref().map(|s| {
            let (l, c) = crate::front::line_col(&s.text, offset);
            json!({ "line": l, "column": c })
        })
    };
    let (line, column, end) = match d.labels.first() {
        Some((span, _)) => {
            let start = pos(span.start);
            (
                start.as_ref().map(|p| p["line"].clone()),
                start.as_ref().map(|p| p["column"].clone()),
                pos(span.end),
            )
        }
        None => (None, None, None),
    };
    json!({
        "severity": d.severity,
        "code": d.code,
        "message": d.message,
        "file": d.source.as_ref().map(|s| s.path.display().to_string()),
        "line": line,
        "column": column,
        "end": end,
        "help": d.help,
        "labels": d.labels.iter().map(|(span, label)| {
            let p = pos(span.start);
            json!({ "label": label, "line": p.as_ref().map(|p| p["line"].clone()), "column": p.as_ref().map(|p| p["column"].clone()) })
        }).collect::<Vec<_>>(),
    })
}

pub fn row_json(r: &LayerRow) -> Value {
    json!({
        "name": r.name,
        "type": r.ty,
        "bottom": r.bottom,
        "top": r.top,
        "phases": r.phases,
        "output": r.output,
        "params": r.params,
        "macs": r.macs,
        "in_place": r.in_place,
    })
}

/// The context shapes are inferred in: the dataset's C×H×W and class count when given.
pub fn parse_chw(s: &str) -> Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split([',', 'x', '×'])
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{p}` is not a size"))
        })
        .collect::<Result<_, _>>()?;
    match v[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err("give channels,height,width, e.g. 1,28,28".into()),
    }
}

/// Options that feed shape inference, shared by `check`, `summary` and `visualize`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ShapeArgs {
    /// Channels, height and width of the images Data layers read (e.g. 1,28,28), when
    /// the dataset is not at hand.
    #[arg(long, value_name = "C,H,W", value_parser = parse_chw)]
    pub input: Option<[usize; 3]>,
    /// Number of classes (an InnerProduct without num_output takes it).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub classes: Option<usize>,
}

impl ShapeArgs {
    /// The context from the flags alone.
    pub fn ctx(&self) -> ShapeCtx {
        ShapeCtx {
            batch: None,
            data_chw: self.input,
            num_classes: self.classes,
        }
    }

    /// [`ShapeArgs::ctx`], with what is not given read from the dataset the spec's Data
    /// layer names (as Caffe's Data layer reads its first datum), when it can be opened.
    pub fn ctx_for(&self, spec: &NetSpec) -> ShapeCtx {
        let mut ctx = self.ctx();
        if ctx.data_chw.is_none() || ctx.num_classes.is_none() {
            if let Some((chw, classes)) = crate::train::dataset_path(spec, &spec.source.path, None)
                .ok()
                .and_then(|p| crate::data::peek(&p))
            {
                ctx.data_chw = ctx.data_chw.or(Some(chw));
                ctx.num_classes = ctx.num_classes.or(Some(classes));
            }
        }
        ctx
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}
