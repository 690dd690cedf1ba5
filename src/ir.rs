//! Stage 3: the graph IR. One node per layer of one phase, edges along blobs, every blob
//! carrying its inferred shape. Built by [`build`], which also runs validation and shape
//! inference and names the layer each problem belongs to.

use std::collections::{HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::diag::{Diagnostic, Severity};
use crate::layers::{self, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::spec::{LayerSpec, NetSpec, NetState, Phase, Span};

/// Index into [`NetIr::blobs`]. Blobs are in SSA form: an in-place layer (`top` equal to
/// its `bottom`) produces a new blob id with the same name, so every id has exactly one
/// producer and ids of a layer's bottoms are always smaller than ids of its tops.
pub type BlobId = usize;

#[derive(Debug, Clone)]
pub struct IrBlob {
    pub name: String,
    /// Full shape, batch first; `None` where it could not be inferred.
    pub shape: Option<Shape>,
    /// Index into [`NetIr::layers`] of the producer.
    pub producer: usize,
}

#[derive(Debug)]
pub struct IrLayer {
    /// Index into `NetSpec::layers`.
    pub spec_index: usize,
    pub name: String,
    pub layer: Box<dyn Layer>,
    pub bottoms: Vec<BlobId>,
    pub tops: Vec<BlobId>,
    /// Whether this layer writes into its bottom's name (ReLU in place).
    pub in_place: bool,
}

/// One phase of a net, validated, in execution (file) order.
#[derive(Debug)]
pub struct NetIr {
    pub state: NetState,
    pub layers: Vec<IrLayer>,
    pub blobs: Vec<IrBlob>,
    /// Layers as nodes (weights: layer index), blobs as edges (weights: blob id).
    pub graph: DiGraph<usize, BlobId>,
    pub nodes: Vec<NodeIndex>,
    /// Bottoms no earlier layer produces (only in an IR built by [`build_partial`] from a
    /// spec with errors): (layer index, blob name). They are not in `bottoms`.
    pub dangling: Vec<(usize, String)>,
}

impl NetIr {
    /// Shapes of layer `i`'s bottoms, when all are known.
    pub fn bottom_shapes(&self, i: usize) -> Option<Vec<Shape>> {
        self.layers[i]
            .bottoms
            .iter()
            .map(|&b| self.blobs[b].shape.clone())
            .collect()
    }
    /// Shapes of layer `i`'s tops, when all are known.
    pub fn top_shapes(&self, i: usize) -> Option<Vec<Shape>> {
        self.layers[i]
            .tops
            .iter()
            .map(|&b| self.blobs[b].shape.clone())
            .collect()
    }
    /// Learned parameters of layer `i` (element count), when its bottoms' shapes are known.
    pub fn params(&self, i: usize, ctx: &ShapeCtx) -> Option<u64> {
        let bottoms = self.bottom_shapes(i)?;
        if self.layers[i]
            .tops
            .iter()
            .any(|&t| self.blobs[t].shape.is_none())
        {
            return None;
        }
        let shapes = self.layers[i].layer.param_shapes(&bottoms, ctx);
        Some(
            shapes
                .iter()
                .map(|s| s.iter().product::<usize>() as u64)
                .sum(),
        )
    }
    /// Multiply-accumulates per sample of layer `i`, when its shapes are known.
    pub fn macs(&self, i: usize) -> Option<u64> {
        let bottoms = self.bottom_shapes(i)?;
        let tops = self.top_shapes(i)?;
        Some(self.layers[i].layer.macs(&bottoms, &tops))
    }
}

/// The most values a blob may hold (Caffe's INT_MAX).
const MAX_BLOB: u128 = i32::MAX as u128;

/// A shape's element count, unless it overflows.
pub fn blob_count(s: &[usize]) -> Option<u128> {
    s.iter().try_fold(1u128, |n, &d| n.checked_mul(d as u128))
}

/// Identifies one problem across phases: code, message (phase-neutral), labels.
type DiagKey = (&'static str, String, Vec<(Span, String)>);

/// The phases `check` looks at, with the names the CLI uses for them.
pub fn phases() -> [(&'static str, NetState); 3] {
    [
        ("train", NetState::train()),
        ("test", NetState::val()),
        ("deploy", NetState::deploy()),
    ]
}

/// The state for a CLI phase name (`train`, `test`/`val`, `deploy`).
pub fn state_named(name: &str) -> Option<NetState> {
    match name.to_ascii_lowercase().as_str() {
        "train" => Some(NetState::train()),
        "test" | "val" => Some(NetState::val()),
        "deploy" => Some(NetState::deploy()),
        _ => None,
    }
}

/// Builds and checks the net `spec` holds for `state`. Returns the IR when there was no
/// error (warnings may be present), and every diagnostic found either way.
pub fn build(spec: &NetSpec, state: &NetState, ctx: &ShapeCtx) -> (Option<NetIr>, Vec<Diagnostic>) {
    let (ir, diags) = build_partial(spec, state, ctx);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        (None, diags)
    } else {
        (Some(ir), diags)
    }
}

/// Checks every phase of `spec` (train, test, deploy) and merges diagnostics that repeat
/// across phases. Returns the (possibly partial) IR of each phase.
pub fn check_all(spec: &NetSpec, ctx: &ShapeCtx) -> (Vec<(&'static str, NetIr)>, Vec<Diagnostic>) {
    let mut irs = Vec::new();
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut index: HashMap<DiagKey, usize> = HashMap::new();
    for (name, state) in phases() {
        let (ir, diags) = build_partial(spec, &state, ctx);
        for d in diags {
            // The same problem in TRAIN and TEST differs only in the phase it names.
            let this = phase_name(state.phase);
            let other = if state.phase == Phase::Train {
                "TEST"
            } else {
                "TRAIN"
            };
            let norm = d
                .message
                .replace(&format!("the {this} phase"), "the PHASE phase");
            let key = (d.code, norm.clone(), d.labels.clone());
            match index.get(&key) {
                Some(&i) => {
                    if all[i].message.contains(&format!("the {other} phase")) {
                        all[i].message =
                            norm.replace("the PHASE phase", "the TRAIN and TEST phases");
                    }
                }
                None => {
                    index.insert(key, all.len());
                    all.push(d);
                }
            }
        }
        irs.push((name, ir));
    }
    all.sort_by_key(|d| d.labels.first().map(|l| l.0.start).unwrap_or(usize::MAX));
    (irs, all)
}

/// Like [`build`], but always returns an IR holding everything that could be built
/// (unknown types and layers with parameter errors become opaque layers without shapes;
/// bottoms nobody produces are listed in [`NetIr::dangling`]), for drawing a spec with
/// errors.
pub fn build_partial(spec: &NetSpec, state: &NetState, ctx: &ShapeCtx) -> (NetIr, Vec<Diagnostic>) {
    let mut b = Builder {
        spec,
        state,
        ctx,
        diags: Vec::new(),
        ir: NetIr {
            state: state.clone(),
            layers: Vec::new(),
            blobs: Vec::new(),
            graph: DiGraph::new(),
            nodes: Vec::new(),
            dangling: Vec::new(),
        },
        available: HashMap::new(),
    };
    b.run();
    (b.ir, b.diags)
}

struct Builder<'a> {
    spec: &'a NetSpec,
    state: &'a NetState,
    ctx: &'a ShapeCtx,
    diags: Vec<Diagnostic>,
    ir: NetIr,
    /// Blob name → the latest blob of that name, with the top span that made it.
    available: HashMap<String, (BlobId, Span)>,
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Train => "TRAIN",
        Phase::Test => "TEST",
    }
}

/// The closest of `candidates` to `word` by edit distance, if close enough to suggest.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase());
            (d, c)
        })
        .filter(|&(d, c)| {
            d <= (c.len().max(word.len()) / 3).max(1) || lower == c.to_ascii_lowercase()
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

impl Builder<'_> {
    fn diag(
        &mut self,
        severity: Severity,
        code: &'static str,
        message: String,
        labels: Vec<(Span, String)>,
        help: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            code,
            message,
            labels,
            help,
            source: Some(self.spec.source.clone()),
        });
    }
    fn error(
        &mut self,
        code: &'static str,
        message: String,
        labels: Vec<(Span, String)>,
        help: Option<String>,
    ) {
        self.diag(Severity::Error, code, message, labels, help);
    }

    fn line_of(&self, offset: usize) -> usize {
        let text = &self.spec.source.text;
        text[..offset.min(text.len())].matches('\n').count() + 1
    }

    fn run(&mut self) {
        let spec = self.spec;
        let state = self.state;
        let phase = phase_name(state.phase);
        let active: Vec<usize> = (0..spec.layers.len())
            .filter(|&i| spec.layers[i].included_in(state))
            .collect();

        // Rules that hold whatever the phase, reported once per phase and merged later.
        for &i in &active {
            let l = &spec.layers[i];
            if !l.include.is_empty() && !l.exclude.is_empty() {
                self.error(
                    "netc::include_and_exclude",
                    format!("layer `{}` has both include and exclude rules", l.name),
                    vec![(l.exclude[0].span.clone(), "exclude given here".into()), (l.include[0].span.clone(), "include given here".into())],
                    Some("Caffe allows one or the other: keep the include rules, or the exclude rules".into()),
                );
            }
        }

        // Duplicate names within the phase (judged once the layers' learned blobs are
        // known, below).
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        for &i in &active {
            let l = &spec.layers[i];
            match names.get(l.name.as_str()) {
                Some(&first) => duplicates.push((first, i)),
                None => {
                    names.insert(&l.name, i);
                }
            }
        }

        let cycle_members = self.find_cycles(&active);

        for &i in &active {
            self.add_layer(i, &cycle_members);
        }

        // Caffe accepts two layers of one name (BVLC's mnist_autoencoder has two `loss`
        // layers); netc names learned blobs `<layer>.<index>` in snapshots, so two of one
        // name that both learn (or may: shapes unknown) would overwrite each other.
        for (first, second) in duplicates {
            // Shapes unknown: whether its kind may learn (losses, data and pooling never do).
            let learns = |si: usize| {
                let Some(li) = self.ir.layers.iter().position(|l| l.spec_index == si) else {
                    return true;
                };
                match self.ir.params(li, self.ctx) {
                    Some(n) => n > 0,
                    None => !matches!(
                        self.ir.layers[li].layer.ty().kind,
                        Kind::Loss | Kind::Data | Kind::Pooling
                    ),
                }
            };
            let (f, l) = (&spec.layers[first], &spec.layers[second]);
            let labels = vec![
                (l.name_span.clone(), "second layer with this name".into()),
                (f.name_span.clone(), "first one".into()),
            ];
            if learns(first) && learns(second) {
                self.error(
                    "netc::duplicate_name",
                    format!("two layers with learned blobs are named `{}` in the {phase} phase: their blobs would share the names `{}.0`, ... in snapshots", l.name, l.name),
                    labels,
                    Some("rename one of them, or keep them in different phases with include { phase: ... }".into()),
                );
            } else {
                self.diag(
                    Severity::Warning,
                    "netc::duplicate_name",
                    format!("two layers are named `{}` in the {phase} phase", l.name),
                    labels,
                    Some("Caffe accepts this, but tables and pictures of layers will show the name twice: rename one of them".into()),
                );
            }
        }

        // The graph: nodes are layers, edges follow blobs from producer to consumer.
        for li in 0..self.ir.layers.len() {
            let n = self.ir.graph.add_node(li);
            self.ir.nodes.push(n);
        }
        for li in 0..self.ir.layers.len() {
            for &b in &self.ir.layers[li].bottoms {
                let p = self.ir.blobs[b].producer;
                self.ir
                    .graph
                    .add_edge(self.ir.nodes[p], self.ir.nodes[li], b);
            }
        }
    }

    /// Layers that take part in a cycle of forward references, reported as one error per
    /// cycle. Returns the spec indices in cycles.
    fn find_cycles(&mut self, active: &[usize]) -> HashSet<usize> {
        let spec = self.spec;
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<NodeIndex> = active.iter().map(|&i| g.add_node(i)).collect();
        // Each blob's producers, in order (positions in `active`).
        let mut producers_of: HashMap<&str, Vec<usize>> = HashMap::new();
        for (pi, &i) in active.iter().enumerate() {
            for t in &spec.layers[i].tops {
                let list = producers_of.entry(t.as_str()).or_default();
                if list.last() != Some(&pi) {
                    list.push(pi);
                }
            }
        }
        for (ci, &i) in active.iter().enumerate() {
            for b in &spec.layers[i].bottoms {
                let producers = producers_of
                    .get(b.as_str())
                    .map_or(&[][..], |v| v.as_slice());
                // A consumer reads the latest earlier producer; only when there is none
                // can a later one be meant, and that is where cycles come from.
                match producers.partition_point(|&pi| pi < ci) {
                    0 => {
                        for &pi in producers.iter().filter(|&&pi| pi != ci) {
                            g.add_edge(nodes[pi], nodes[ci], ());
                        }
                    }
                    n => {
                        g.add_edge(nodes[producers[n - 1]], nodes[ci], ());
                    }
                }
            }
        }
        let mut members = HashSet::new();
        for scc in petgraph::algo::tarjan_scc(&g) {
            let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            let mut idx: Vec<usize> = scc.iter().map(|&n| g[n]).collect();
            idx.sort_unstable();
            members.extend(idx.iter().copied());
            let path: Vec<String> = idx
                .iter()
                .chain(idx.first())
                .map(|&i| format!("`{}`", spec.layers[i].name))
                .collect();
            let labels = idx
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    (
                        spec.layers[i].name_span.clone(),
                        if k == 0 {
                            "this layer depends on itself".to_string()
                        } else {
                            "part of the cycle".to_string()
                        },
                    )
                })
                .collect();
            self.error(
                "netc::cycle",
                format!("layers {} form a cycle", path.join(" → ")),
                labels,
                Some("a net is a directed acyclic graph: make one of these layers read a blob produced before it".into()),
            );
        }
        members
    }

    fn add_layer(&mut self, si: usize, cycle_members: &HashSet<usize>) {
        let spec = self.spec;
        let l: &LayerSpec = &spec.layers[si];
        let li = self.ir.layers.len();
        let ty = layers::lookup(&l.ty);
        if ty.is_none() {
            let help = match did_you_mean(&l.ty, layers::type_names()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "see `netc check --help` for the layer types netc knows".to_string(),
            };
            self.error(
                "netc::unknown_layer_type",
                format!("unknown layer type `{}` (layer `{}`)", l.ty, l.name),
                vec![(l.type_span.clone(), "unknown type".into())],
                Some(help),
            );
        }

        let arity_ok = ty.is_some_and(|t| self.check_arity(l, t));

        // Bottoms.
        let mut bottoms = Vec::new();
        for (k, b) in l.bottoms.iter().enumerate() {
            let span = l
                .bottom_spans
                .get(k)
                .cloned()
                .unwrap_or_else(|| l.span.clone());
            if let Some((id, _)) = self.available.get(b) {
                bottoms.push(*id);
                continue;
            }
            if self.state.stages.iter().any(|s| s == "deploy") {
                if let Some(id) = self.implicit_input(b) {
                    bottoms.push(id);
                    continue;
                }
            }
            self.ir.dangling.push((li, b.clone()));
            if cycle_members.contains(&si) {
                continue;
            }
            let help = self.missing_bottom_help(si, b);
            self.error(
                "netc::missing_bottom",
                format!("bottom `{b}` of layer `{}` is not produced by any earlier layer in the {} phase", l.name, phase_name(self.state.phase)),
                vec![(span, "no layer before this one produces it".into())],
                Some(help),
            );
        }

        // Tops (SSA: every top is a new blob).
        let mut tops = Vec::new();
        if l.tops.is_empty() && ty.is_some_and(|t| t.kind == Kind::Loss) {
            // Caffe's `AutoTopBlobs`: a loss without a top gets an anonymous one.
            tops.push(self.ir.blobs.len());
            self.ir.blobs.push(IrBlob {
                name: "(automatic)".into(),
                shape: None,
                producer: li,
            });
        }
        let mut in_place = false;
        for (k, t) in l.tops.iter().enumerate() {
            let span = l
                .top_spans
                .get(k)
                .cloned()
                .unwrap_or_else(|| l.span.clone());
            let same_pos = l.bottoms.get(k) == Some(t);
            if same_pos && self.available.contains_key(t) {
                in_place = true;
                if let Some(ty) = ty {
                    if !ty.in_place {
                        self.error(
                            "netc::not_in_place",
                            format!("layer `{}` ({}) cannot run in place", l.name, ty.name),
                            vec![(
                                span.clone(),
                                format!("top `{t}` is also this layer's bottom"),
                            )],
                            Some(format!("give the top a new name, e.g. top: \"{}\"", l.name)),
                        );
                    }
                }
            } else if let Some((id, first)) = self.available.get(t).cloned() {
                if self.ir.blobs[id].producer == li {
                    // The same top twice in this layer (its producer is not built yet).
                    self.error(
                        "netc::duplicate_top",
                        format!("layer `{}` lists top `{t}` twice", l.name),
                        vec![
                            (span.clone(), "again here".into()),
                            (first, "first here".into()),
                        ],
                        Some("give each top of a layer its own name".into()),
                    );
                    continue;
                }
                let pname = self.ir.layers[self.ir.blobs[id].producer].name.clone();
                self.error(
                    "netc::duplicate_top",
                    format!("top `{t}` of layer `{}` is already produced by layer `{pname}`", l.name),
                    vec![(span.clone(), "produced again here".into()), (first, format!("first produced here, by `{pname}`"))],
                    Some("give one of the tops another name (a layer works in place only when its top equals the bottom at the same position)".into()),
                );
            }
            let id = self.ir.blobs.len();
            self.ir.blobs.push(IrBlob {
                name: t.clone(),
                shape: None,
                producer: li,
            });
            tops.push(id);
            self.available.insert(t.clone(), (id, span));
        }

        // Parameters.
        let layer: Box<dyn Layer> = match ty {
            Some(t) => match (t.build)(l) {
                Ok(layer) => layer,
                Err(e) => {
                    self.layer_error("netc::layer_param", l, e);
                    Box::new(Opaque)
                }
            },
            None => Box::new(Opaque),
        };

        // Shapes.
        let bottom_shapes: Option<Vec<Shape>> = bottoms
            .iter()
            .map(|&b| self.ir.blobs[b].shape.clone())
            .collect();
        let complete = bottoms.len() == l.bottoms.len() && arity_ok;
        if let (Some(t), Some(shapes), true) = (ty, bottom_shapes, complete) {
            if t.name == "InnerProduct" && !has_num_output(l) && self.ctx.num_classes.is_none() {
                self.diag(
                    Severity::Warning,
                    "netc::num_output_from_dataset",
                    format!("layer `{}` has no num_output: it takes the dataset's class count when trained", l.name),
                    vec![(l.name_span.clone(), "num_output left to the dataset".into())],
                    Some("set inner_product_param { num_output: N } to see its shapes here".into()),
                );
            } else if !std::ptr::eq(layer.ty(), &OPAQUE) {
                match layer.shapes(&shapes, self.ctx) {
                    Ok(out) => {
                        // Caffe refuses a blob of more than INT_MAX values; past it the
                        // counts here would wrap too. Tops so large stay unknown.
                        let learned = layer.param_shapes(&shapes, self.ctx);
                        let over = |s: &Shape| blob_count(s).is_none_or(|n| n > MAX_BLOB);
                        let too_big = match out.iter().position(over) {
                            Some(k) => {
                                Some((&out[k], format!("top `{}`", self.ir.blobs[tops[k]].name)))
                            }
                            None => learned
                                .iter()
                                .position(over)
                                .map(|i| (&learned[i], format!("learned blob {i}"))),
                        };
                        match too_big {
                            Some((s, what)) => self.layer_error(
                                "netc::shape",
                                l,
                                LayerError::new(format!(
                                    "its {what} would hold {} values ({}), more than a blob can (2,147,483,647, as in Caffe)",
                                    blob_count(s).map_or("more than 2^128".into(), |n| n.to_string()),
                                    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
                                ))
                                .help("use a smaller num_output or input size"),
                            ),
                            None => {
                                for (&id, s) in tops.iter().zip(out) {
                                    self.ir.blobs[id].shape = Some(s);
                                }
                            }
                        }
                    }
                    Err(e) if unknown_shapes(t, self.ctx) => {
                        let msg = format!(
                            "the shapes of `{}` ({}) are not known: {}",
                            l.name, t.name, e.message
                        );
                        let span = e.span.clone().unwrap_or_else(|| l.type_span.clone());
                        self.diag(
                            Severity::Warning,
                            "netc::unknown_shape",
                            msg,
                            vec![(span, "shapes unknown from here on".into())],
                            match (t.kind == Kind::Data, e.help) {
                                (true, Some(h)) => {
                                    Some(format!("{h}; or give the image size with --input C,H,W"))
                                }
                                (true, None) => {
                                    Some("give the image size with --input C,H,W".into())
                                }
                                (false, h) => h,
                            },
                        );
                    }
                    Err(e) => self.layer_error("netc::shape", l, e),
                }
            }
        }

        self.ir.layers.push(IrLayer {
            spec_index: si,
            name: l.name.clone(),
            layer,
            bottoms,
            tops,
            in_place,
        });
    }

    fn layer_error(&mut self, code: &'static str, l: &LayerSpec, e: LayerError) {
        let span = e.span.clone().unwrap_or_else(|| l.name_span.clone());
        let label = if e.span.is_some() {
            "here".to_string()
        } else {
            format!("in layer `{}`", l.name)
        };
        self.error(
            code,
            format!("layer `{}` ({}): {}", l.name, l.ty, e.message),
            vec![(span, label)],
            e.help,
        );
    }

    fn check_arity(&mut self, l: &LayerSpec, t: &LayerType) -> bool {
        let mut ok = true;
        for (what, arity, n, spans) in [
            ("bottom", t.bottoms, l.bottoms.len(), &l.bottom_spans),
            ("top", t.tops, l.tops.len(), &l.top_spans),
        ] {
            if arity.allows(n) || (what == "top" && n == 0 && t.kind == Kind::Loss) {
                continue;
            }
            ok = false;
            let label_span = match arity {
                Arity::Exactly(k) | Arity::Range(_, k) if n > k => spans.get(k).cloned(),
                _ => None,
            }
            .unwrap_or_else(|| l.type_span.clone());
            self.error(
                if what == "bottom" {
                    "netc::bottom_count"
                } else {
                    "netc::top_count"
                },
                format!(
                    "layer `{}` ({}) takes {arity} {what}{}, but has {n}",
                    l.name,
                    t.name,
                    plural(arity)
                ),
                vec![(
                    label_span,
                    format!("{n} {what}{} given", if n == 1 { "" } else { "s" }),
                )],
                Some(format!("give it {arity} `{what}:` field{}", plural(arity))),
            );
        }
        ok
    }

    /// DIGITS builds its deploy net without the data layers and feeds their tops as
    /// inputs: when `name` is produced by a data layer of another phase, add that layer.
    fn implicit_input(&mut self, name: &str) -> Option<BlobId> {
        let spec = self.spec;
        let si = spec.layers.iter().position(|l| {
            l.tops.iter().any(|t| t == name)
                && layers::lookup(&l.ty).is_some_and(|t| t.kind == Kind::Data)
                && l.included_in(&NetState::val())
        })?;
        let l = &spec.layers[si];
        let t = layers::lookup(&l.ty)?;
        let layer = (t.build)(l).ok()?;
        let shapes = layer.shapes(&[], self.ctx).ok();
        let li = self.ir.layers.len();
        let mut tops = Vec::new();
        for (k, top) in l.tops.iter().enumerate() {
            let id = self.ir.blobs.len();
            let shape = shapes.as_ref().and_then(|s| s.get(k).cloned());
            self.ir.blobs.push(IrBlob {
                name: top.clone(),
                shape,
                producer: li,
            });
            let span = l
                .top_spans
                .get(k)
                .cloned()
                .unwrap_or_else(|| l.span.clone());
            self.available.insert(top.clone(), (id, span));
            tops.push(id);
        }
        self.ir.layers.push(IrLayer {
            spec_index: si,
            name: l.name.clone(),
            layer,
            bottoms: Vec::new(),
            tops,
            in_place: false,
        });
        self.available.get(name).map(|(id, _)| *id)
    }

    fn missing_bottom_help(&self, si: usize, b: &str) -> String {
        let spec = self.spec;
        let state = self.state;
        let phase = phase_name(state.phase);
        let producers: Vec<usize> = (0..spec.layers.len())
            .filter(|&j| spec.layers[j].tops.iter().any(|t| t == b))
            .collect();
        // Produced later in this phase.
        if let Some(&j) = producers
            .iter()
            .find(|&&j| j > si && spec.layers[j].included_in(state))
        {
            return format!(
                "layer `{}` (line {}) produces `{b}`, but only later: layers run in file order, so move it above this one",
                spec.layers[j].name,
                self.line_of(spec.layers[j].span.start)
            );
        }
        // Produced only in other phases.
        if let Some(&j) = producers
            .iter()
            .find(|&&j| !spec.layers[j].included_in(state))
        {
            let p = &spec.layers[j];
            let rule = p.include.first().map(|r| {
                spec.source
                    .text
                    .get(r.span.clone())
                    .unwrap_or("")
                    .trim()
                    .to_string()
            });
            let other = match state.phase {
                Phase::Train => "TEST",
                Phase::Test => "TRAIN",
            };
            return match rule {
                Some(r) if !r.is_empty() && !r.contains("phase") => format!(
                    "`{b}` comes from layer `{}`, which is not in this net; give this layer the same rule: {r}",
                    p.name
                ),
                _ => format!(
                    "`{b}` comes from layer `{}`, which is only in the {other} phase; exclude this layer from the {phase} phase with include {{ phase: {other} }}",
                    p.name
                ),
            };
        }
        let names: Vec<&str> = self.available.keys().map(|s| s.as_str()).collect();
        match did_you_mean(b, names) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("add a layer with top: \"{b}\" above this one"),
        }
    }
}

use crate::layers::Arity;

fn plural(a: Arity) -> &'static str {
    match a {
        Arity::Exactly(1) => "",
        _ => "s",
    }
}

fn has_num_output(l: &LayerSpec) -> bool {
    l.msg
        .msg("inner_product_param")
        .is_some_and(|m| m.has("num_output"))
}

/// Types whose output shapes netc cannot always know from the spec alone: shape
/// failures there are warnings, and later shapes stay unknown.
fn unknown_shapes(t: &LayerType, ctx: &ShapeCtx) -> bool {
    layers::opaque_shapes(t) || (t.kind == Kind::Data && ctx.data_chw.is_none())
}

/// Stand-in for a layer whose type is unknown or whose parameters are wrong, so a spec
/// with errors can still be drawn.
#[derive(Debug)]
struct Opaque;

static OPAQUE: LayerType = LayerType {
    name: "?",
    kind: Kind::Other,
    bottoms: Arity::AtLeast(0),
    tops: Arity::AtLeast(0),
    in_place: true,
    runnable: false,
    build: |_| Ok(Box::new(Opaque)),
};

impl Layer for Opaque {
    fn ty(&self) -> &'static LayerType {
        &OPAQUE
    }
    fn shapes(&self, _: &[Shape], _: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        Err(LayerError::new("unknown layer"))
    }
    fn lower(
        &self,
        _: &[Shape],
        _: &ShapeCtx,
        _: &mut crate::engine::Rng,
    ) -> Result<Box<dyn crate::engine::Op>, LayerError> {
        Err(LayerError::new("unknown layer"))
    }
}

#[cfg(test)]
mod tests {
    //! Validation and SSA on hand-built specs (the corpus and snapshot tests in `tests/`
    //! go through the parser).
    use super::*;
    use crate::spec::{Field, Message, Source, StateRule, Value};
    use std::sync::Arc;

    /// Builds a spec from `(name, type, bottoms, tops, params)` rows, writing the text so
    /// that every span points at the right words.
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
        &'a [(&'a str, &'a [(&'a str, Value)])],
    );

    fn net(rows: &[Row]) -> NetSpec {
        let mut text = String::new();
        let mut layers = Vec::new();
        for (name, ty, bottoms, tops, params) in rows {
            let start = text.len();
            let put = |text: &mut String, key: &str, v: &str| {
                text.push_str(&format!("{key}: \""));
                let s = text.len();
                text.push_str(v);
                let span = s..text.len();
                text.push_str("\" ");
                span
            };
            text.push_str("layer { ");
            let name_span = put(&mut text, "name", name);
            let type_span = put(&mut text, "type", ty);
            let bottom_spans = bottoms
                .iter()
                .map(|b| put(&mut text, "bottom", b))
                .collect();
            let top_spans = tops.iter().map(|t| put(&mut text, "top", t)).collect();
            let mut msg = Message::default();
            for (pname, fields) in params.iter() {
                let mut m = Message::default();
                for (f, v) in fields.iter() {
                    let s = text.len();
                    text.push_str(&format!("{f}: {v:?} "));
                    m.fields.push(Field {
                        name: f.to_string(),
                        name_span: s..s,
                        value: v.clone(),
                        value_span: s..text.len(),
                    });
                }
                msg.fields.push(Field {
                    name: pname.to_string(),
                    name_span: 0..0,
                    value: Value::Message(m),
                    value_span: 0..0,
                });
            }
            text.push_str("}\n");
            layers.push(LayerSpec {
                name: name.to_string(),
                ty: ty.to_string(),
                bottoms: bottoms.iter().map(|s| s.to_string()).collect(),
                tops: tops.iter().map(|s| s.to_string()).collect(),
                include: Vec::new(),
                exclude: Vec::new(),
                msg,
                span: start..text.len(),
                name_span,
                type_span,
                bottom_spans,
                top_spans,
            });
        }
        NetSpec {
            name: None,
            layers,
            root: Message::default(),
            source: Source {
                path: "t.net".into(),
                text: Arc::from(text.as_str()),
            },
        }
    }

    fn dims(d: &[i128]) -> (&'static str, Value) {
        let mut m = Message::default();
        for &x in d {
            m.fields.push(Field {
                name: "dim".into(),
                name_span: 0..0,
                value: Value::Int(x),
                value_span: 0..0,
            });
        }
        ("shape", Value::Message(m))
    }

    fn codes(d: &[Diagnostic]) -> Vec<&'static str> {
        d.iter().map(|d| d.code).collect()
    }

    #[test]
    fn in_place_layers_get_new_blob_ids_and_no_cycle() {
        let input = [dims(&[2, 3, 8, 8])];
        let spec = net(&[
            ("in", "Input", &[], &["x"], &[("input_param", &input)]),
            ("sig", "Sigmoid", &["x"], &["x"], &[]),
            ("relu", "ReLU", &["x"], &["x"], &[]),
            ("cat", "Concat", &["x", "x"], &["y"], &[]),
        ]);
        let (ir, diags) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert!(diags.is_empty(), "{diags:?}");
        let ir = ir.expect("built");
        assert_eq!(ir.blobs.len(), 4);
        assert!(ir.layers[1].in_place && ir.layers[2].in_place);
        // The concat reads the ReLU's blob, the last one named `x`.
        assert_eq!(ir.layers[3].bottoms, vec![2, 2]);
        assert_eq!(ir.blobs[3].shape, Some(vec![2, 6, 8, 8]));
        assert!(!petgraph::algo::is_cyclic_directed(&ir.graph));
        assert_eq!(ir.graph.edge_count(), 4);
    }

    #[test]
    fn every_unknown_type_is_reported_with_a_suggestion() {
        let spec = net(&[
            ("a", "Sigmod", &[], &["x"], &[]),
            ("b", "Concatt", &["x"], &["y"], &[]),
        ]);
        let (ir, diags) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert!(ir.is_none());
        assert_eq!(
            codes(&diags),
            ["netc::unknown_layer_type", "netc::unknown_layer_type"]
        );
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `Sigmoid`?"));
        assert_eq!(diags[1].help.as_deref(), Some("did you mean `Concat`?"));
        assert_eq!(&spec.source.text[diags[1].labels[0].0.clone()], "Concatt");
    }

    #[test]
    fn missing_bottom_duplicate_top_and_in_place_misuse() {
        let input = [dims(&[1, 4])];
        let reshape = [dims(&[0, -1])];
        let spec = net(&[
            ("in", "Input", &[], &["x"], &[("input_param", &input)]),
            (
                "r",
                "Reshape",
                &["x"],
                &["x"],
                &[("reshape_param", &reshape)],
            ),
            ("s", "Sigmoid", &["z"], &["y"], &[]),
            ("t", "TanH", &["x"], &["y"], &[]),
        ]);
        let (_, diags) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert_eq!(
            codes(&diags),
            [
                "netc::not_in_place",
                "netc::missing_bottom",
                "netc::duplicate_top"
            ]
        );
        assert_eq!(diags[2].labels.len(), 2);
        assert_eq!(&spec.source.text[diags[2].labels[1].0.clone()], "y");
        assert!(diags[2].labels[1].0.start < diags[2].labels[0].0.start);
    }

    #[test]
    fn a_cycle_is_one_error_naming_its_layers() {
        let spec = net(&[
            ("a", "Sigmoid", &["q"], &["p"], &[]),
            ("b", "TanH", &["p"], &["q"], &[]),
        ]);
        let (ir, diags) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert!(ir.is_none());
        assert_eq!(codes(&diags), ["netc::cycle"]);
        assert_eq!(diags[0].message, "layers `a` → `b` → `a` form a cycle");
    }

    #[test]
    fn arity_and_shape_errors() {
        let input = [dims(&[1, 4, 5, 5])];
        let input2 = [dims(&[1, 3, 5, 5])];
        let spec = net(&[
            ("in", "Input", &[], &["x"], &[("input_param", &input)]),
            ("in2", "Input", &[], &["w"], &[("input_param", &input2)]),
            ("e", "Eltwise", &["x", "w"], &["y"], &[]),
            ("c", "Crop", &["x"], &["z"], &[]),
        ]);
        let (_, diags) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert_eq!(codes(&diags), ["netc::shape", "netc::bottom_count"]);
        assert!(
            diags[0]
                .message
                .contains("bottom 2 has shape 1×3×5×5, bottom 1 has 1×4×5×5"),
            "{}",
            diags[0].message
        );
        assert_eq!(
            diags[1].message,
            "layer `c` (Crop) takes exactly 2 bottoms, but has 1"
        );
    }

    #[test]
    fn phases_filter_layers_and_hint_at_rules() {
        let mut spec = net(&[
            (
                "d",
                "DummyData",
                &[],
                &["x"],
                &[("dummy_data_param", &[dims(&[2, 3])])],
            ),
            ("s", "Sigmoid", &["x"], &["y"], &[]),
        ]);
        spec.layers[0].include.push(StateRule {
            phase: Some(Phase::Train),
            ..StateRule::default()
        });
        let (_, all) = check_all(&spec, &ShapeCtx::default());
        // TEST and deploy report the same problem once.
        assert_eq!(codes(&all), ["netc::missing_bottom"]);
        assert!(all[0].message.contains("TEST phase"));
        let help = all[0].help.as_deref().unwrap_or("");
        assert!(
            help.contains("exclude this layer from the TEST phase with include { phase: TRAIN }"),
            "{help}"
        );
        let (ir, d) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert!(d.is_empty());
        assert_eq!(ir.expect("train").blobs[1].shape, Some(vec![2, 3]));
    }

    #[test]
    fn unknown_num_output_is_a_warning_not_an_error() {
        let input = [dims(&[1, 4])];
        let spec = net(&[
            ("in", "Input", &[], &["x"], &[("input_param", &input)]),
            ("ip", "InnerProduct", &["x"], &["y"], &[]),
        ]);
        let (ir, diags) = build(&spec, &NetState::train(), &ShapeCtx::default());
        assert_eq!(codes(&diags), ["netc::num_output_from_dataset"]);
        assert_eq!(diags[0].severity, Severity::Warning);
        assert_eq!(ir.expect("built").blobs[1].shape, None);
        let ctx = ShapeCtx {
            num_classes: Some(7),
            ..ShapeCtx::default()
        };
        let (ir, diags) = build(&spec, &NetState::train(), &ctx);
        assert!(diags.is_empty());
        assert_eq!(ir.expect("built").blobs[1].shape, Some(vec![1, 7]));
    }
}
