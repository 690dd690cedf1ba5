//! Caffe's schema (BVLC caffe.proto, in netc's own form: `grammar/caffe.schema`):
//! messages, fields, scalar types, repeated-ness, defaults and enums; and the check of a
//! parsed [`Message`] tree against it.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::diag::{Diagnostic, Severity};
use crate::spec::{Field, Message, Source, Value};

/// The root message type of a net file.
pub const NET: &str = "NetParameter";
/// The root message type of a solver file.
pub const SOLVER: &str = "SolverParameter";

const SCHEMA_TEXT: &str = include_str!("../grammar/caffe.schema");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Bool,
    String,
    Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Scalar(Scalar),
    /// Index into [`Schema::enums`].
    Enum(usize),
    /// Name of a message type.
    Message(String),
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub ty: FieldType,
    pub repeated: bool,
    /// The default as written in the schema (`0.5`, `"constant"`, `MAX`).
    pub default: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    pub name: String,
    pub values: Vec<(String, i64)>,
}

impl EnumDef {
    pub fn by_number(&self, n: i128) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, v)| *v as i128 == n)
            .map(|(s, _)| s.as_str())
    }
    pub fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(s, _)| s == name)
    }
}

#[derive(Debug, Clone)]
pub struct MessageDef {
    pub name: String,
    pub fields: Vec<FieldDef>,
}

impl MessageDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Debug)]
pub struct Schema {
    pub messages: HashMap<String, MessageDef>,
    pub enums: Vec<EnumDef>,
}

/// Caffe's schema, read once from `grammar/caffe.schema`.
pub fn caffe() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| parse_schema(SCHEMA_TEXT))
}

fn scalar(name: &str) -> Option<Scalar> {
    Some(match name {
        "double" => Scalar::Double,
        "float" => Scalar::Float,
        "int32" => Scalar::Int32,
        "int64" => Scalar::Int64,
        "uint32" => Scalar::Uint32,
        "uint64" => Scalar::Uint64,
        "bool" => Scalar::Bool,
        "string" => Scalar::String,
        "bytes" => Scalar::Bytes,
        _ => return None,
    })
}

/// Reads the schema file. It is part of the program, so a malformed line is a bug: the
/// unit tests below check that every type it names resolves.
fn parse_schema(text: &str) -> Schema {
    let mut messages: HashMap<String, MessageDef> = HashMap::new();
    let mut enums: Vec<EnumDef> = Vec::new();
    // (message, field name, type name) to resolve once all enums are known.
    let mut pending: Vec<(String, usize, String)> = Vec::new();
    // Enum scopes: (message or "" for top level, enum name) -> index.
    let mut enum_index: HashMap<(String, String), usize> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let indented = line.starts_with(' ');
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["message", name] => {
                current = Some(name.to_string());
                messages.insert(
                    name.to_string(),
                    MessageDef {
                        name: name.to_string(),
                        fields: Vec::new(),
                    },
                );
            }
            ["enum", name, values @ ..] => {
                let values = values
                    .iter()
                    .filter_map(|v| v.split_once('='))
                    .map(|(n, v)| (n.to_string(), v.parse::<i64>().unwrap_or(0)))
                    .collect();
                let scope = if indented {
                    current.clone().unwrap_or_default()
                } else {
                    String::new()
                };
                enum_index.insert((scope, name.to_string()), enums.len());
                enums.push(EnumDef {
                    name: name.to_string(),
                    values,
                });
            }
            _ => {
                let Some(msg) = current.clone() else { continue };
                let (repeated, rest) = match words.first() {
                    Some(&"repeated") => (true, &words[1..]),
                    _ => (false, &words[..]),
                };
                let (ty, name) = match rest {
                    [ty, name, ..] => (ty.to_string(), name.to_string()),
                    _ => continue,
                };
                let default = line
                    .split_once('=')
                    .map(|(_, d)| d.trim().trim_matches('"').to_string());
                if let Some(m) = messages.get_mut(&msg) {
                    pending.push((msg.clone(), m.fields.len(), ty));
                    m.fields.push(FieldDef {
                        name,
                        ty: FieldType::Scalar(Scalar::String),
                        repeated,
                        default,
                    });
                }
            }
        }
    }
    for (msg, i, ty) in pending {
        let resolved = if let Some(s) = scalar(&ty) {
            FieldType::Scalar(s)
        } else if let Some(&e) = enum_index
            .get(&(msg.clone(), ty.clone()))
            .or_else(|| enum_index.get(&(String::new(), ty.clone())))
        {
            FieldType::Enum(e)
        } else {
            FieldType::Message(ty)
        };
        if let Some(m) = messages.get_mut(&msg) {
            m.fields[i].ty = resolved;
        }
    }
    Schema { messages, enums }
}

impl Schema {
    pub fn message(&self, name: &str) -> Option<&MessageDef> {
        self.messages.get(name)
    }
    /// The default of `field` in message type `msg`, as a [`Value`].
    pub fn default_value(&self, msg: &str, field: &str) -> Option<Value> {
        let f = self.message(msg)?.field(field)?;
        let d = f.default.as_deref()?;
        Some(match &f.ty {
            FieldType::Scalar(Scalar::String | Scalar::Bytes) => Value::Str(d.to_string()),
            FieldType::Scalar(Scalar::Float | Scalar::Double) => Value::Float(d.parse().ok()?),
            FieldType::Scalar(Scalar::Bool) => Value::Ident(d.to_string()),
            FieldType::Scalar(_) => Value::Int(d.parse().ok()?),
            FieldType::Enum(_) => Value::Ident(d.to_string()),
            FieldType::Message(_) => return None,
        })
    }
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely
/// typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                c,
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
            )
        })
        .filter(|(c, d)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| c)
}

/// Checks `root` against message type `ty`, rewriting enum values given by number to their
/// names and `inf`/`nan` in float fields to floats. Returns every problem found.
/// The code of the one error a solver file checked as a net gives.
pub const SOLVER_GIVEN_AS_NET: &str = "netc::solver_given_as_net";
/// The code of the one error a net checked as a solver gives.
pub const NET_GIVEN_AS_SOLVER: &str = "netc::net_given_as_solver";

/// A file of the other kind where this one belongs (a solver given as the net, or a net
/// given to `--solver`): one error saying so, not one per field.
fn other_kind(src: &Source, root: &Message, ty: &str) -> Option<Diagnostic> {
    let (fields, code, is, label, not): (&[&str], _, _, _, _) = match ty {
        NET => (
            &[
                "net",
                "train_net",
                "base_lr",
                "lr_policy",
                "max_iter",
                "solver_mode",
            ],
            SOLVER_GIVEN_AS_NET,
            "a solver file (it sets",
            "a solver's field",
            "a net",
        ),
        SOLVER => (
            &["layer", "layers", "input", "input_shape", "input_dim"],
            NET_GIVEN_AS_SOLVER,
            "a net (it has",
            "a net's field",
            "a solver",
        ),
        _ => return None,
    };
    let f = root
        .fields
        .iter()
        .find(|f| fields.contains(&f.name.as_str()))?;
    let path = src.path.display();
    let named = root
        .fields
        .iter()
        .find(|f| f.name == "net" || f.name == "train_net")
        .and_then(|f| f.value.as_str());
    let help = match (ty, named) {
        (SOLVER, _) => "--solver takes a solver file (a YAML file like specs/lenet.solver.yaml, or a Caffe solver.prototxt with base_lr, lr_policy, ...)".to_string(),
        (_, Some(n)) => format!(
            "train the net it names with this solver: netc train NET --solver {path} (it names `{n}`, a path Caffe reads from its own root folder)"
        ),
        (_, None) => format!("give the net's spec first: netc train NET --solver {path}"),
    };
    Some(err(
        src,
        code,
        format!("`{path}` is {is} `{}`), not {not}", f.name),
        vec![(f.name_span.clone(), label.into())],
        Some(help),
    ))
}

pub fn check(src: &Source, root: &mut Message, ty: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if let Some(d) = other_kind(src, root, ty) {
        diags.push(d);
        return diags;
    }
    if let Some(def) = caffe().message(ty) {
        check_message(src, root, def, &mut diags);
    }
    diags
}

fn err(
    src: &Source,
    code: &'static str,
    message: String,
    labels: Vec<(crate::spec::Span, String)>,
    help: Option<String>,
) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code,
        message,
        labels,
        help,
        source: Some(src.clone()),
    }
}

fn check_message(src: &Source, msg: &mut Message, def: &MessageDef, diags: &mut Vec<Diagnostic>) {
    let schema = caffe();
    let mut first_seen: HashMap<String, crate::spec::Span> = HashMap::new();
    for field in &mut msg.fields {
        let Some(fdef) = def.field(&field.name) else {
            let suggestion = did_you_mean(&field.name, def.fields.iter().map(|f| f.name.as_str()));
            let help = match suggestion {
                Some(s) => Some(format!("did you mean `{s}`?")),
                None => Some(format!("`{}` has no such field; netc reads BVLC Caffe's schema, and forks of Caffe add fields it does not know", def.name)),
            };
            diags.push(err(
                src,
                "netc::unknown_field",
                format!("unknown field `{}` in {}", field.name, def.name),
                vec![(field.name_span.clone(), "unknown field".into())],
                help,
            ));
            continue;
        };
        if !fdef.repeated {
            match first_seen.get(&field.name) {
                Some(first) if *first != field.name_span => {
                    diags.push(err(
                        src,
                        "netc::field_set_twice",
                        format!(
                            "field `{}` is set more than once, but {} allows only one",
                            field.name, def.name
                        ),
                        vec![
                            (field.name_span.clone(), "set again here".into()),
                            (first.clone(), "first set here".into()),
                        ],
                        Some(
                            "remove one of them; protobuf rejects a non-repeated field given twice"
                                .into(),
                        ),
                    ));
                }
                // Later items of a `[a, b]` list, reported with the first.
                Some(_) => {}
                None => {
                    first_seen.insert(field.name.clone(), field.name_span.clone());
                    if written_as_list(src, field) {
                        diags.push(err(
                            src,
                            "netc::not_repeated",
                            format!(
                                "field `{}` is not repeated, so it cannot take a list",
                                field.name
                            ),
                            vec![(field.value_span.clone(), "a list item".into())],
                            Some(format!("write `{}: value` without brackets", field.name)),
                        ));
                    }
                }
            }
        }
        check_value(src, field, fdef, schema, diags);
    }
}

/// Whether the field was written `name: [ ... ]` (the text between its name and value,
/// comments aside, holds a `[`).
fn written_as_list(src: &Source, field: &Field) -> bool {
    let between = src
        .text
        .get(field.name_span.end..field.value_span.start)
        .unwrap_or("");
    between
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").contains('['))
}

fn wrong(src: &Source, field: &Field, expected: String, help: Option<String>) -> Diagnostic {
    err(
        src,
        "netc::wrong_type",
        format!(
            "field `{}` takes {expected}, not {}",
            field.name,
            describe(&field.value)
        ),
        vec![(field.value_span.clone(), format!("expected {expected}"))],
        help,
    )
}

fn type_name(ty: &FieldType, schema: &Schema) -> String {
    match ty {
        FieldType::Scalar(s) => format!("{s:?}").to_ascii_lowercase(),
        FieldType::Enum(e) => format!("enum {}", schema.enums[*e].name),
        FieldType::Message(m) => format!("message {m}"),
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Ident(_) => "an identifier",
        Value::Message(_) => "a message",
    }
}

fn check_value(
    src: &Source,
    field: &mut Field,
    fdef: &FieldDef,
    schema: &Schema,
    diags: &mut Vec<Diagnostic>,
) {
    match &fdef.ty {
        FieldType::Message(m) => match (&mut field.value, schema.message(m)) {
            (Value::Message(inner), Some(def)) => check_message(src, inner, def, diags),
            (Value::Message(_), None) => {}
            _ => diags.push(wrong(
                src,
                field,
                format!("a message ({m})"),
                Some(format!("write `{} {{ ... }}`", field.name)),
            )),
        },
        FieldType::Enum(e) => {
            let edef = &schema.enums[*e];
            match &field.value {
                Value::Ident(name) if edef.has(name) => {}
                Value::Int(n) => match edef.by_number(*n) {
                    Some(name) => field.value = Value::Ident(name.to_string()),
                    None => diags.push(unknown_enum(src, field, edef, &n.to_string())),
                },
                Value::Ident(name) => {
                    let name = name.clone();
                    diags.push(unknown_enum(src, field, edef, &name))
                }
                Value::Str(s) if edef.has(s) => diags.push(wrong(
                    src,
                    field,
                    format!("a value of enum {}", edef.name),
                    Some(format!(
                        "enum values are written without quotes: `{}: {s}`",
                        field.name
                    )),
                )),
                _ => diags.push(wrong(
                    src,
                    field,
                    format!("a value of enum {}", edef.name),
                    Some(enum_help(edef)),
                )),
            }
        }
        FieldType::Scalar(s) => match s {
            Scalar::String | Scalar::Bytes => {
                if field.value.as_str().is_none() {
                    let help = match &field.value {
                        Value::Ident(i) => Some(format!("quote it: `{}: \"{i}\"`", field.name)),
                        _ => Some("strings are written in quotes".into()),
                    };
                    diags.push(wrong(src, field, "a string".into(), help));
                }
            }
            Scalar::Bool => {
                if field.value.as_bool().is_none() {
                    diags.push(wrong(
                        src,
                        field,
                        "a boolean".into(),
                        Some("write true or false".into()),
                    ));
                }
            }
            Scalar::Float | Scalar::Double => match &field.value {
                Value::Int(_) | Value::Float(_) => {}
                Value::Ident(i) => {
                    let lower = i.to_ascii_lowercase();
                    let (neg, word) = match lower.strip_prefix('-') {
                        Some(w) => (true, w),
                        None => (false, lower.as_str()),
                    };
                    let v = match word {
                        "inf" | "infinity" => f64::INFINITY,
                        "nan" => f64::NAN,
                        _ => {
                            diags.push(wrong(src, field, "a number".into(), None));
                            return;
                        }
                    };
                    field.value = Value::Float(if neg { -v } else { v });
                }
                _ => diags.push(wrong(src, field, "a number".into(), None)),
            },
            int => {
                let (lo, hi): (i128, i128) = match int {
                    Scalar::Int32 => (i32::MIN as i128, i32::MAX as i128),
                    Scalar::Int64 => (i64::MIN as i128, i64::MAX as i128),
                    Scalar::Uint32 => (0, u32::MAX as i128),
                    _ => (0, u64::MAX as i128),
                };
                match &field.value {
                    Value::Int(i) if (lo..=hi).contains(i) => {}
                    Value::Int(i) => diags.push(err(
                        src,
                        "netc::out_of_range",
                        format!(
                            "{i} is out of range for field `{}` ({})",
                            field.name,
                            type_name(&fdef.ty, schema)
                        ),
                        vec![(
                            field.value_span.clone(),
                            format!("must be between {lo} and {hi}"),
                        )],
                        None,
                    )),
                    Value::Float(f) if f.fract() == 0.0 => diags.push(wrong(
                        src,
                        field,
                        "an integer".into(),
                        Some(format!("write `{}` without the decimal point", *f as i128)),
                    )),
                    _ => diags.push(wrong(src, field, "an integer".into(), None)),
                }
            }
        },
    }
}

fn enum_help(edef: &EnumDef) -> String {
    let names: Vec<&str> = edef.values.iter().map(|(n, _)| n.as_str()).collect();
    format!("{} is one of: {}", edef.name, names.join(", "))
}

fn unknown_enum(src: &Source, field: &Field, edef: &EnumDef, value: &str) -> Diagnostic {
    let help = match did_you_mean(value, edef.values.iter().map(|(n, _)| n.as_str())) {
        Some(s) => format!("did you mean `{s}`?"),
        None => enum_help(edef),
    };
    err(
        src,
        "netc::unknown_enum_value",
        format!(
            "unknown value `{value}` for field `{}` (enum {})",
            field.name, edef.name
        ),
        vec![(field.value_span.clone(), "not a value of this enum".into())],
        Some(help),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_resolves() {
        let s = caffe();
        assert!(s.messages.len() >= 60, "{} messages", s.messages.len());
        for m in s.messages.values() {
            for f in &m.fields {
                if let FieldType::Message(t) = &f.ty {
                    assert!(
                        s.message(t).is_some(),
                        "{}.{}: unknown type {t}",
                        m.name,
                        f.name
                    );
                }
            }
        }
    }

    #[test]
    fn fields_and_defaults() {
        let s = caffe();
        let conv = s
            .message("ConvolutionParameter")
            .map(|m| m.field("kernel_size").cloned());
        let Some(Some(k)) = conv else {
            panic!("no kernel_size")
        };
        assert!(k.repeated);
        assert_eq!(k.ty, FieldType::Scalar(Scalar::Uint32));
        assert_eq!(
            s.default_value("PoolingParameter", "pool"),
            Some(Value::Ident("MAX".into()))
        );
        assert_eq!(
            s.default_value("FillerParameter", "type"),
            Some(Value::Str("constant".into()))
        );
        assert_eq!(
            s.default_value("LRNParameter", "beta"),
            Some(Value::Float(0.75))
        );
        assert_eq!(
            s.default_value("SolverParameter", "delta"),
            Some(Value::Float(1e-8))
        );
        assert_eq!(
            s.default_value("ConvolutionParameter", "group"),
            Some(Value::Int(1))
        );
        let v1 = s
            .message("V1LayerParameter")
            .and_then(|m| m.field("type"))
            .map(|f| f.ty.clone());
        let Some(FieldType::Enum(e)) = v1 else {
            panic!("V1 type is not an enum")
        };
        assert_eq!(s.enums[e].by_number(4), Some("CONVOLUTION"));
    }

    #[test]
    fn lists_only_for_repeated_fields() {
        let check_text = |t: &str| {
            let src = Source {
                path: "t".into(),
                text: t.into(),
            };
            let (root, _) = crate::syntax::parse(&src);
            let mut root = root.unwrap_or_default();
            check(&src, &mut root, NET)
                .into_iter()
                .map(|d| d.code)
                .collect::<Vec<_>>()
        };
        assert!(check_text("input: ['a', 'b'] layer: [{ name: 'x' }, { name: 'y' }]").is_empty());
        assert_eq!(check_text("name: ['a']"), ["netc::not_repeated"]);
        assert_eq!(check_text("name: ['a', 'b']"), ["netc::not_repeated"]);
        assert_eq!(
            check_text("name: 'a' # [\n name: 'b'"),
            ["netc::field_set_twice"]
        );
    }

    #[test]
    fn suggestions() {
        let names = ["num_output", "kernel_size", "stride"];
        assert_eq!(did_you_mean("num_ouptut", names), Some("num_output"));
        assert_eq!(did_you_mean("kernelsize", names), Some("kernel_size"));
        assert_eq!(did_you_mean("zzz", names), None);
    }
}
