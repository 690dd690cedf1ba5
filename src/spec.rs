//! Stage 2 of the pipeline: the syntax tree with spans.
//!
//! `syntax` turns text into a [`Message`] tree (protobuf text format, every value with its
//! byte span); `upgrade` rewrites V0/V1 nets into the current form; this module holds the
//! resulting typed view of a net: [`NetSpec`] with one [`LayerSpec`] per `layer { }`, and
//! Caffe's `NetState` rules that decide which layers a phase sees.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// Byte offsets into the source text.
pub type Span = Range<usize>;

/// One source file, shared by every diagnostic that points into it.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: Arc<str>,
}

/// A scalar or nested value as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any integer literal (decimal, hex, octal, signed).
    Int(i128),
    /// A float literal, including `inf`, `nan`, exponents and the `f` suffix.
    Float(f64),
    /// A string literal after escapes and adjacent-literal concatenation (bytes kept as
    /// lossy UTF-8).
    Str(String),
    /// A bare identifier: an enum value name, `true`/`false`/`t`/`f`, and so on.
    Ident(String),
    /// A nested message `{ ... }` or `< ... >`.
    Message(Message),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub name_span: Span,
    pub value: Value,
    pub value_span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// Fields in file order; a repeated field appears once per value (`[a, b]` is expanded).
    pub fields: Vec<Field>,
    /// From the opening brace to the closing one (the whole file for the root).
    pub span: Span,
}

impl Value {
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// Floats accept integer literals too, as protobuf does.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "inf" | "infinity" => Some(f64::INFINITY),
                "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                "nan" => Some(f64::NAN),
                _ => None,
            },
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_ident(&self) -> Option<&str> {
        match self {
            Value::Ident(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Ident(s) => match s.as_str() {
                "true" | "True" | "t" => Some(true),
                "false" | "False" | "f" => Some(false),
                _ => None,
            },
            Value::Int(1) => Some(true),
            Value::Int(0) => Some(false),
            _ => None,
        }
    }
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Value::Message(m) => Some(m),
            _ => None,
        }
    }
}

impl Message {
    /// Every occurrence of `name`, in file order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Field> + 'a {
        let name = name.to_owned();
        self.fields.iter().filter(move |f| f.name == name)
    }
    /// The last occurrence of `name` (protobuf's rule for a scalar set twice).
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().rev().find(|f| f.name == name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn msg(&self, name: &str) -> Option<&Message> {
        self.get(name).and_then(|f| f.value.as_message())
    }
    pub fn msgs(&self, name: &str) -> Vec<&Message> {
        self.get_all(name)
            .filter_map(|f| f.value.as_message())
            .collect()
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|f| f.value.as_str())
    }
    pub fn strs(&self, name: &str) -> Vec<&str> {
        self.get_all(name)
            .filter_map(|f| f.value.as_str())
            .collect()
    }
    pub fn int(&self, name: &str) -> Option<i128> {
        self.get(name).and_then(|f| f.value.as_int())
    }
    pub fn ints(&self, name: &str) -> Vec<i128> {
        self.get_all(name)
            .filter_map(|f| f.value.as_int())
            .collect()
    }
    /// A non-negative integer that fits `usize`, the common case for sizes.
    pub fn usize(&self, name: &str) -> Option<usize> {
        self.int(name).and_then(|i| usize::try_from(i).ok())
    }
    pub fn usizes(&self, name: &str) -> Vec<usize> {
        self.ints(name)
            .into_iter()
            .filter_map(|i| usize::try_from(i).ok())
            .collect()
    }
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|f| f.value.as_float())
    }
    pub fn floats(&self, name: &str) -> Vec<f64> {
        self.get_all(name)
            .filter_map(|f| f.value.as_float())
            .collect()
    }
    pub fn boolean(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(|f| f.value.as_bool())
    }
    /// An enum value by name. The front end rewrites enums given by number to their names.
    pub fn ident(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|f| f.value.as_ident())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Phase {
    #[serde(rename = "TRAIN")]
    Train,
    #[serde(rename = "TEST")]
    Test,
}

/// Caffe's `NetState`: the phase, level and stages a net is instantiated with.
#[derive(Debug, Clone, PartialEq)]
pub struct NetState {
    pub phase: Phase,
    pub level: i64,
    pub stages: Vec<String>,
}

impl NetState {
    pub fn train() -> Self {
        NetState {
            phase: Phase::Train,
            level: 0,
            stages: vec!["train".into()],
        }
    }
    pub fn val() -> Self {
        NetState {
            phase: Phase::Test,
            level: 0,
            stages: vec!["val".into()],
        }
    }
    pub fn deploy() -> Self {
        NetState {
            phase: Phase::Test,
            level: 0,
            stages: vec!["deploy".into()],
        }
    }
}

/// Caffe's `NetStateRule` (one `include { }` or `exclude { }`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateRule {
    pub phase: Option<Phase>,
    pub min_level: Option<i64>,
    pub max_level: Option<i64>,
    pub stages: Vec<String>,
    pub not_stages: Vec<String>,
    pub span: Span,
}

impl StateRule {
    /// Caffe's `StateMeetsRule`.
    pub fn meets(&self, state: &NetState) -> bool {
        if let Some(p) = self.phase {
            if p != state.phase {
                return false;
            }
        }
        if let Some(min) = self.min_level {
            if state.level < min {
                return false;
            }
        }
        if let Some(max) = self.max_level {
            if state.level > max {
                return false;
            }
        }
        if !self.stages.iter().all(|s| state.stages.contains(s)) {
            return false;
        }
        if self.not_stages.iter().any(|s| state.stages.contains(s)) {
            return false;
        }
        true
    }
}

/// One `layer { }` after upgrading, with the spans the diagnostics point at.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    pub name: String,
    pub ty: String,
    pub bottoms: Vec<String>,
    pub tops: Vec<String>,
    pub include: Vec<StateRule>,
    pub exclude: Vec<StateRule>,
    /// The whole layer message: `convolution_param`, `param`, `transform_param`, ...
    pub msg: Message,
    /// The whole `layer { ... }`.
    pub span: Span,
    pub name_span: Span,
    pub type_span: Span,
    pub bottom_spans: Vec<Span>,
    pub top_spans: Vec<Span>,
}

impl LayerSpec {
    /// Caffe's `FilterNet` rule for one layer.
    pub fn included_in(&self, state: &NetState) -> bool {
        if !self.include.is_empty() {
            self.include.iter().any(|r| r.meets(state))
        } else {
            !self.exclude.iter().any(|r| r.meets(state))
        }
    }
}

/// A whole net spec, in the current (V2) form.
#[derive(Debug, Clone)]
pub struct NetSpec {
    pub name: Option<String>,
    pub layers: Vec<LayerSpec>,
    /// The root message as parsed (before upgrading), for net-level fields.
    pub root: Message,
    pub source: Source,
}

impl NetSpec {
    /// The layers a net instantiated with `state` holds, in file order.
    pub fn layers_for(&self, state: &NetState) -> Vec<&LayerSpec> {
        self.layers
            .iter()
            .filter(|l| l.included_in(state))
            .collect()
    }
}
