//! Layer types: one file per Caffe layer type, each holding its parameters (parsed from the
//! spec), its shape rule, its costs, how it is drawn, and its lowering to the engine.
//!
//! Adding a layer type = adding one file here and one line to [`REGISTRY`].

pub mod batch_norm;
pub mod bias;
pub mod concat;
pub mod crop;
pub mod data_sources;
pub mod deconvolution;
pub mod elementwise;
pub mod eltwise;
pub mod euclidean_loss;
pub mod flatten;
pub mod losses;
pub mod lrn;
pub mod misc;
pub mod neurons;
pub mod opaque;
pub mod prelu;
pub mod reshape;
pub mod scale;
pub mod shape_only;
pub mod slice;

use crate::engine::Op;
use crate::spec::{LayerSpec, Message, Span};

pub mod accuracy;
pub mod convolution;
pub mod data;
pub mod dropout;
pub mod filler;
pub mod inner_product;
pub mod input;
pub mod pooling;
pub mod relu;
pub mod softmax;
pub mod softmax_loss;
pub mod split;
pub mod window;

/// A blob's full shape, batch first (N×C×H×W for images; N×D after an InnerProduct).
pub type Shape = Vec<usize>;

/// What a layer needs to know beyond its bottoms' shapes.
#[derive(Debug, Clone, Default)]
pub struct ShapeCtx {
    /// Batch size to use for data layers that do not say (Data layers read it from
    /// `data_param.batch_size`).
    pub batch: Option<usize>,
    /// Channels, height and width of the dataset feeding Data layers, when known.
    pub data_chw: Option<[usize; 3]>,
    /// Number of classes in the dataset, when known (an InnerProduct without `num_output`
    /// takes it, as DIGITS does).
    pub num_classes: Option<usize>,
}

/// How many bottoms or tops a layer type takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    Range(usize, usize),
    AtLeast(usize),
}

impl Arity {
    pub fn allows(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::Range(a, b) => n >= a && n <= b,
            Arity::AtLeast(a) => n >= a,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "exactly {k}"),
            Arity::Range(a, b) => write!(f, "{a} to {b}"),
            Arity::AtLeast(a) => write!(f, "at least {a}"),
        }
    }
}

/// The family a layer belongs to, for colours in drawings and for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Convolution,
    Pooling,
    InnerProduct,
    Neuron,
    Normalization,
    Loss,
    Other,
}

/// A problem with one layer's parameters or shapes; `span` points into the spec when the
/// problem is a particular field.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerError {
    pub message: String,
    pub span: Option<Span>,
    pub help: Option<String>,
}

impl LayerError {
    pub fn new(message: impl Into<String>) -> Self {
        LayerError {
            message: message.into(),
            span: None,
            help: None,
        }
    }
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A layer type's static facts.
pub struct LayerType {
    /// Caffe's type string, e.g. "Convolution".
    pub name: &'static str,
    pub kind: Kind,
    pub bottoms: Arity,
    pub tops: Arity,
    /// Whether `top` may equal `bottom` (ReLU may; Reshape may not).
    pub in_place: bool,
    /// Whether netc can train and run it (types Caffe knows but netc cannot build yet are
    /// still parsed, drawn and summarised where a shape rule exists).
    pub runnable: bool,
    /// Parses the layer's parameters.
    pub build: fn(&LayerSpec) -> Result<Box<dyn Layer>, LayerError>,
}

/// One layer with its parameters parsed.
pub trait Layer: std::fmt::Debug + Send + Sync {
    fn ty(&self) -> &'static LayerType;
    /// Output shapes from input shapes (Caffe's `Reshape`).
    fn shapes(&self, bottoms: &[Shape], ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError>;
    /// Shapes of the learned blobs, in Caffe's order (weights, then bias).
    fn param_shapes(&self, _bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        Vec::new()
    }
    /// Multiply-accumulates per sample for the forward pass.
    fn macs(&self, _bottoms: &[Shape], _tops: &[Shape]) -> u64 {
        0
    }
    /// Key parameters for drawings and summaries, e.g. `["k5 s1", "20"]`.
    fn details(&self) -> Vec<String> {
        Vec::new()
    }
    /// The forward pass as candle tensor ops (the inference and CUDA path): tops from
    /// bottoms and learned blobs (Caffe's order). Types without one say so.
    fn forward_candle(
        &self,
        _bottoms: &[candle_core::Tensor],
        _params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        Err(LayerError::new(format!(
            "{} has no candle lowering yet",
            self.ty().name
        )))
    }
    /// Why netc cannot run this layer although it runs its type (a parameter value it has
    /// no op for yet, like STOCHASTIC pooling); `netc check` reports it.
    fn cannot_run(&self) -> Option<LayerError> {
        None
    }
    /// For data layers: where their tops come from and how images are transformed.
    fn input(&self) -> Option<&data::InputSpec> {
        None
    }
    /// The weight each top adds to the loss (Caffe's `loss_weight`: 1 for a loss layer's
    /// first top by default, 0 elsewhere).
    fn loss_weights(&self) -> Vec<f32> {
        Vec::new()
    }
    /// Lowers the layer to an engine op for the given bottom shapes; learned blobs are
    /// filled from the spec's fillers with `rng`.
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        rng: &mut crate::engine::Rng,
    ) -> Result<Box<dyn Op>, LayerError>;
}

pub static REGISTRY: &[&LayerType] = &[
    &accuracy::TYPE,
    &convolution::TYPE,
    &data::DATA,
    &dropout::TYPE,
    &inner_product::TYPE,
    &input::TYPE,
    &pooling::TYPE,
    &relu::TYPE,
    &softmax::TYPE,
    &softmax_loss::TYPE,
    &split::TYPE,
    // Shaped, drawn and summarised; netc cannot train these yet.
    &deconvolution::TYPE,
    &concat::TYPE,
    &eltwise::TYPE,
    &flatten::TYPE,
    &reshape::TYPE,
    &crop::TYPE,
    &slice::TYPE,
    &batch_norm::TYPE,
    &scale::TYPE,
    &bias::TYPE,
    &lrn::TYPE,
    &prelu::TYPE,
    &elementwise::SIGMOID,
    &elementwise::TANH,
    &elementwise::ABSVAL,
    &elementwise::POWER,
    &elementwise::EXP,
    &elementwise::LOG,
    &elementwise::BNLL,
    &elementwise::ELU,
    &neurons::THRESHOLD,
    &neurons::CLIP,
    &neurons::SWISH,
    &neurons::MVN,
    &euclidean_loss::TYPE,
    &losses::SIGMOID_CE,
    &losses::CONTRASTIVE,
    &losses::HINGE,
    &losses::INFOGAIN,
    &losses::MULTINOMIAL,
    &data_sources::IMAGE_DATA,
    &data_sources::WINDOW_DATA,
    &data_sources::MEMORY_DATA,
    &data_sources::HDF5_DATA,
    &data_sources::DUMMY_DATA,
    &misc::SILENCE,
    &misc::ARGMAX,
    &misc::REDUCTION,
    &misc::TILE,
    &misc::EMBED,
    &misc::PARAMETER,
    &misc::IM2COL,
    &misc::SPP,
    &opaque::PYTHON,
    &opaque::LSTM,
    &opaque::RNN,
    &opaque::RECURRENT,
    &opaque::FILTER,
    &opaque::BATCH_REINDEX,
    &opaque::HDF5_OUTPUT,
];

/// Types whose output shapes netc does not infer (Python layers, HDF5 files): a failed
/// shape rule there is a warning, and the shapes after it stay unknown.
pub fn opaque_shapes(t: &LayerType) -> bool {
    opaque::ALL.iter().any(|o| std::ptr::eq(*o, t)) || std::ptr::eq(t, &data_sources::HDF5_DATA)
}

/// The layer type called `name`, if netc knows it.
pub fn lookup(name: &str) -> Option<&'static LayerType> {
    REGISTRY.iter().copied().find(|t| t.name == name)
}

/// Known type names, for did-you-mean hints.
pub fn type_names() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|t| t.name)
}

/// The span of `name` inside `msg` (its value), or of `msg` itself, for errors.
pub fn span_of(msg: &Message, name: &str) -> Span {
    msg.get(name)
        .map(|f| f.value_span.clone())
        .unwrap_or(msg.span.clone())
}

/// The `param { lr_mult decay_mult }` entries of a layer, one per learned blob (1, 1 where
/// absent, as Caffe's ParamSpec defaults).
pub fn param_mults(spec: &LayerSpec, blobs: usize) -> Vec<(f32, f32)> {
    let given = spec.msg.msgs("param");
    (0..blobs)
        .map(|i| {
            given.get(i).map_or((1.0, 1.0), |p| {
                (
                    p.float("lr_mult").unwrap_or(1.0) as f32,
                    p.float("decay_mult").unwrap_or(1.0) as f32,
                )
            })
        })
        .collect()
}

/// Caffe's `loss_weight` list for a layer, with `default_first` for the first top of a
/// loss layer.
pub fn loss_weights_of(spec: &LayerSpec, default_first: f32) -> Vec<f32> {
    let given = spec.msg.floats("loss_weight");
    (0..spec.tops.len())
        .map(|i| match given.get(i) {
            Some(w) => *w as f32,
            None if i == 0 => default_first,
            None => 0.0,
        })
        .collect()
}

/// A positive integer field, with an error pointing at it when it is zero or negative.
pub fn positive(msg: &Message, name: &str) -> Result<Option<usize>, LayerError> {
    match msg.int(name) {
        None => Ok(None),
        Some(v) if v > 0 && v <= u32::MAX as i128 => Ok(Some(v as usize)),
        Some(v) => Err(
            LayerError::new(format!("{name} must be a positive integer, not {v}"))
                .at(span_of(msg, name)),
        ),
    }
}

/// The bottom's shape, or an error when the layer got none.
pub fn first(bottoms: &[Shape]) -> Result<&Shape, LayerError> {
    bottoms
        .first()
        .ok_or_else(|| LayerError::new("this layer needs a bottom"))
}

/// An axis index that may be negative (from the end), checked against `rank`.
pub fn canonical_axis(axis: i128, rank: usize) -> Result<usize, LayerError> {
    let a = if axis < 0 { axis + rank as i128 } else { axis };
    if a < 0 || a >= rank as i128 {
        return Err(LayerError::new(format!(
            "axis {axis} is out of range for a blob with {rank} axes"
        )));
    }
    Ok(a as usize)
}

/// A candle error as a layer error.
pub fn candle_err(e: candle_core::Error) -> LayerError {
    LayerError::new(format!("candle: {}", crate::engine::candle::message(&e)))
}
