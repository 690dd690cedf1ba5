//! Old formats to the current one, as Caffe's `upgrade_proto.cpp` does: V0
//! (`layers { layer { type: "conv" } }`), V1 (`layers { type: CONVOLUTION }`), the legacy
//! `input:` / `input_dim:` / `input_shape:` fields, and the old three-`param` BatchNorm.
//!
//! Rewritten fields keep the spans of the text they came from, so diagnostics about an
//! upgraded layer still point into the original file.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::diag::{Diagnostic, Severity};
use crate::spec::{Field, Message, Source, Span, Value};

/// Caffe's `UpgradeV1LayerType`: V1 enum name → current type string.
pub fn v1_type_name(v1: &str) -> Option<&'static str> {
    Some(match v1 {
        "NONE" => "",
        "ABSVAL" => "AbsVal",
        "ACCURACY" => "Accuracy",
        "ARGMAX" => "ArgMax",
        "BNLL" => "BNLL",
        "CONCAT" => "Concat",
        "CONTRASTIVE_LOSS" => "ContrastiveLoss",
        "CONVOLUTION" => "Convolution",
        "DECONVOLUTION" => "Deconvolution",
        "DATA" => "Data",
        "DROPOUT" => "Dropout",
        "DUMMY_DATA" => "DummyData",
        "EUCLIDEAN_LOSS" => "EuclideanLoss",
        "ELTWISE" => "Eltwise",
        "EXP" => "Exp",
        "FLATTEN" => "Flatten",
        "HDF5_DATA" => "HDF5Data",
        "HDF5_OUTPUT" => "HDF5Output",
        "HINGE_LOSS" => "HingeLoss",
        "IM2COL" => "Im2col",
        "IMAGE_DATA" => "ImageData",
        "INFOGAIN_LOSS" => "InfogainLoss",
        "INNER_PRODUCT" => "InnerProduct",
        "LRN" => "LRN",
        "MEMORY_DATA" => "MemoryData",
        "MULTINOMIAL_LOGISTIC_LOSS" => "MultinomialLogisticLoss",
        "MVN" => "MVN",
        "POOLING" => "Pooling",
        "POWER" => "Power",
        "RELU" => "ReLU",
        "SIGMOID" => "Sigmoid",
        "SIGMOID_CROSS_ENTROPY_LOSS" => "SigmoidCrossEntropyLoss",
        "SILENCE" => "Silence",
        "SOFTMAX" => "Softmax",
        "SOFTMAX_LOSS" => "SoftmaxWithLoss",
        "SPLIT" => "Split",
        "SLICE" => "Slice",
        "TANH" => "TanH",
        "WINDOW_DATA" => "WindowData",
        "THRESHOLD" => "Threshold",
        _ => return None,
    })
}

/// Caffe's `UpgradeV0LayerType`: V0 type string → V1 enum name.
pub fn v0_type_name(v0: &str) -> Option<&'static str> {
    Some(match v0 {
        "accuracy" => "ACCURACY",
        "bnll" => "BNLL",
        "concat" => "CONCAT",
        "conv" => "CONVOLUTION",
        "data" => "DATA",
        "dropout" => "DROPOUT",
        "euclidean_loss" => "EUCLIDEAN_LOSS",
        "flatten" => "FLATTEN",
        "hdf5_data" => "HDF5_DATA",
        "hdf5_output" => "HDF5_OUTPUT",
        "im2col" => "IM2COL",
        "images" => "IMAGE_DATA",
        "infogain_loss" => "INFOGAIN_LOSS",
        "innerproduct" => "INNER_PRODUCT",
        "lrn" => "LRN",
        "multinomial_logistic_loss" => "MULTINOMIAL_LOGISTIC_LOSS",
        "pool" => "POOLING",
        "relu" => "RELU",
        "sigmoid" => "SIGMOID",
        "softmax" => "SOFTMAX",
        "softmax_loss" => "SOFTMAX_LOSS",
        "split" => "SPLIT",
        "tanh" => "TANH",
        "window_data" => "WINDOW_DATA",
        _ => return None,
    })
}

/// Where Caffe's `UpgradeV0LayerParameter` puts a V0 field, by V0 layer type:
/// (target `*_param` message, its field name).
fn v0_field_target(field: &str, ty: &str) -> Option<(&'static str, &'static str)> {
    let conv_ip = |f: &'static str| match ty {
        "conv" => Some(("convolution_param", f)),
        "innerproduct" => Some(("inner_product_param", f)),
        _ => None,
    };
    let conv_pool = |f: &'static str| match ty {
        "conv" => Some(("convolution_param", f)),
        "pool" => Some(("pooling_param", f)),
        _ => None,
    };
    let data = |f: &'static str, types: &[&str]| -> Option<(&'static str, &'static str)> {
        if !types.contains(&ty) {
            return None;
        }
        Some(match ty {
            "data" => ("data_param", f),
            "hdf5_data" => ("hdf5_data_param", f),
            "images" => ("image_data_param", f),
            "window_data" => ("window_data_param", f),
            "infogain_loss" => ("infogain_loss_param", f),
            _ => return None,
        })
    };
    let only = |t: &str, param: &'static str, f: &'static str| (ty == t).then_some((param, f));
    match field {
        "num_output" => conv_ip("num_output"),
        "biasterm" => conv_ip("bias_term"),
        "weight_filler" => conv_ip("weight_filler"),
        "bias_filler" => conv_ip("bias_filler"),
        "pad" => conv_pool("pad"),
        "kernelsize" => conv_pool("kernel_size"),
        "stride" => conv_pool("stride"),
        "group" => only("conv", "convolution_param", "group"),
        "pool" => only("pool", "pooling_param", "pool"),
        "dropout_ratio" => only("dropout", "dropout_param", "dropout_ratio"),
        "local_size" | "alpha" | "beta" | "k" => {
            let f = match field {
                "local_size" => "local_size",
                "alpha" => "alpha",
                "beta" => "beta",
                _ => "k",
            };
            only("lrn", "lrn_param", f)
        }
        "source" => data(
            "source",
            &[
                "data",
                "hdf5_data",
                "images",
                "window_data",
                "infogain_loss",
            ],
        ),
        "batchsize" => data(
            "batch_size",
            &["data", "hdf5_data", "images", "window_data"],
        ),
        "rand_skip" => data("rand_skip", &["data", "images"]),
        "scale" => Some(("transform_param", "scale")),
        "meanfile" => Some(("transform_param", "mean_file")),
        "cropsize" => Some(("transform_param", "crop_size")),
        "mirror" => Some(("transform_param", "mirror")),
        "shuffle_images" => only("images", "image_data_param", "shuffle"),
        "new_height" => only("images", "image_data_param", "new_height"),
        "new_width" => only("images", "image_data_param", "new_width"),
        "concat_dim" => only("concat", "concat_param", "concat_dim"),
        "det_fg_threshold" => only("window_data", "window_data_param", "fg_threshold"),
        "det_bg_threshold" => only("window_data", "window_data_param", "bg_threshold"),
        "det_fg_fraction" => only("window_data", "window_data_param", "fg_fraction"),
        "det_context_pad" => only("window_data", "window_data_param", "context_pad"),
        "det_crop_mode" => only("window_data", "window_data_param", "crop_mode"),
        _ => None,
    }
}

struct Ctx<'a> {
    src: &'a Source,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        message: String,
        span: Span,
        label: &str,
        help: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            code,
            message,
            labels: vec![(span, label.to_string())],
            help,
            source: Some(self.src.clone()),
        });
    }
}

fn field(name: &str, name_span: Span, value: Value, value_span: Span) -> Field {
    Field {
        name: name.to_string(),
        name_span,
        value,
        value_span,
    }
}

/// The net in the current form (borrowed when it already is), and a diagnostic per old
/// construct found: warnings for old formats, errors for what Caffe's upgrade refuses.
pub fn upgrade_net<'a>(src: &Source, root: &'a Message) -> (Cow<'a, Message>, Vec<Diagnostic>) {
    let needs_v1 = root.has("layers");
    let needs_input = root.has("input") || root.has("input_shape") || root.has("input_dim");
    let needs_bn = root
        .msgs("layer")
        .iter()
        .any(|l| l.str("type") == Some("BatchNorm") && l.get_all("param").count() == 3);
    if !needs_v1 && !needs_input && !needs_bn {
        return (Cow::Borrowed(root), Vec::new());
    }
    let mut cx = Ctx {
        src,
        diags: Vec::new(),
    };
    let mut net = root.clone();
    if needs_v1 {
        net = upgrade_v1_net(&mut cx, &net);
    }
    if needs_input {
        net = upgrade_input(&mut cx, &net);
    }
    if needs_bn {
        upgrade_batch_norm(&mut cx, &mut net);
    }
    (Cow::Owned(net), cx.diags)
}

/// `layers { }` (V0 or V1) → `layer { }`.
fn upgrade_v1_net(cx: &mut Ctx, root: &Message) -> Message {
    let old: Vec<&Field> = root.get_all("layers").collect();
    let first = old[0].name_span.clone();
    let is_v0 = old
        .iter()
        .any(|f| f.value.as_message().is_some_and(|m| m.has("layer")));
    let (format, example) = if is_v0 {
        ("V0", "layers { layer { type: \"conv\" } }")
    } else {
        ("V1", "layers { type: CONVOLUTION }")
    };
    cx.push(
        Severity::Warning,
        "netc::old_format",
        format!("this file uses Caffe's deprecated {format} layer format (`{example}`)"),
        first,
        "old-format layer",
        Some(format!(
            "`netc upgrade {}` prints it in the current `layer {{ }}` format",
            cx.src.path.display()
        )),
    );
    if let Some(v2) = root.get("layer") {
        // Caffe's V0 upgrade rebuilds the net from the old layers alone, dropping the new
        // ones; its V1 upgrade refuses such a file ("Refusing to upgrade inconsistent
        // NetParameter input").
        let (severity, message, label, help) = if is_v0 {
            (
                Severity::Warning,
                "this file mixes V0 `layers { }` and `layer { }`; like Caffe, netc upgrades the old layers and ignores the new ones",
                "ignored",
                "write every layer in one format",
            )
        } else {
            (
                Severity::Error,
                "this file mixes V1 `layers { }` and `layer { }`, which Caffe refuses to upgrade",
                "a current-format layer among V1 ones",
                "write every layer in the current `layer { }` format (`netc upgrade` prints a file of V1 layers that way)",
            )
        };
        cx.push(
            severity,
            "netc::mixed_formats",
            message.into(),
            v2.name_span.clone(),
            label,
            Some(help.into()),
        );
    }
    let mut v1_layers: Vec<(Span, Span, Message)> = old
        .iter()
        .filter_map(|f| {
            f.value
                .as_message()
                .map(|m| (f.name_span.clone(), f.value_span.clone(), m.clone()))
        })
        .collect();
    if is_v0 {
        let inputs: Vec<&str> = root.strs("input");
        v1_layers = upgrade_v0_padding(cx, v1_layers, &inputs);
        for (_, _, m) in &mut v1_layers {
            *m = v0_to_v1(cx, m);
        }
    }
    let mut out = Message {
        fields: Vec::new(),
        span: root.span.clone(),
    };
    for f in &root.fields {
        if f.name != "layers" && f.name != "layer" {
            out.fields.push(f.clone());
        }
    }
    for (name_span, value_span, m) in &v1_layers {
        let v2 = v1_to_v2(cx, m);
        out.fields.push(field(
            "layer",
            name_span.clone(),
            Value::Message(v2),
            value_span.clone(),
        ));
    }
    out
}

/// Caffe's `UpgradeV0PaddingLayers`: folds each V0 `padding` layer into the conv or pool
/// layer it feeds.
fn upgrade_v0_padding(
    cx: &mut Ctx,
    layers: Vec<(Span, Span, Message)>,
    inputs: &[&str],
) -> Vec<(Span, Span, Message)> {
    let v0_type = |m: &Message| {
        m.msg("layer")
            .and_then(|l| l.str("type"))
            .unwrap_or("")
            .to_string()
    };
    let mut last_top: HashMap<String, Option<usize>> =
        inputs.iter().map(|i| (i.to_string(), None)).collect();
    let mut out: Vec<(Span, Span, Message)> = Vec::new();
    for (i, (ns, vs, layer)) in layers.iter().enumerate() {
        let ty = v0_type(layer);
        if ty != "padding" {
            out.push((ns.clone(), vs.clone(), layer.clone()));
        }
        for (j, bottom) in layer.get_all("bottom").enumerate() {
            let name = bottom.value.as_str().unwrap_or("");
            let Some(&src_idx) = last_top.get(name) else {
                cx.push(
                    Severity::Error,
                    "netc::v0_upgrade",
                    format!("unknown bottom blob `{name}`: no earlier layer or input produces it"),
                    bottom.value_span.clone(),
                    "not produced before this layer",
                    Some(
                        "Caffe's V0 upgrade stops here; produce the blob in an earlier layer"
                            .into(),
                    ),
                );
                continue;
            };
            let Some(src_idx) = src_idx else { continue };
            let source = &layers[src_idx].2;
            if v0_type(source) != "padding" || ty == "padding" {
                continue;
            }
            if ty != "conv" && ty != "pool" {
                cx.push(
                    Severity::Error,
                    "netc::v0_upgrade",
                    format!("a V0 padding layer feeds a `{ty}` layer; only conv and pool layers can take padding"),
                    bottom.value_span.clone(),
                    "padded input",
                    None,
                );
                continue;
            }
            let pad = source.msg("layer").and_then(|l| l.get("pad")).cloned();
            let new_bottom = source.get("bottom").cloned();
            if let Some((_, _, target)) = out.last_mut() {
                if let (Some(pad), Some(Value::Message(inner))) = (
                    pad,
                    target
                        .fields
                        .iter_mut()
                        .find(|f| f.name == "layer")
                        .map(|f| &mut f.value),
                ) {
                    inner.fields.retain(|f| f.name != "pad");
                    inner.fields.push(pad);
                }
                if let Some(nb) = new_bottom {
                    if let Some(b) = target
                        .fields
                        .iter_mut()
                        .filter(|f| f.name == "bottom")
                        .nth(j)
                    {
                        b.value = nb.value;
                    }
                }
            }
        }
        for top in layer.get_all("top") {
            last_top.insert(top.value.as_str().unwrap_or("").to_string(), Some(i));
        }
    }
    out
}

/// Caffe's `UpgradeV0LayerParameter`: one `layers { bottom top layer { ... } }` to V1.
fn v0_to_v1(cx: &mut Ctx, conn: &Message) -> Message {
    let mut out = Message {
        fields: Vec::new(),
        span: conn.span.clone(),
    };
    for f in &conn.fields {
        if f.name == "bottom" || f.name == "top" {
            out.fields.push(f.clone());
        }
    }
    let Some(v0) = conn.msg("layer") else {
        return out;
    };
    let ty = v0.str("type").unwrap_or("").to_string();
    let mut params: Vec<(&'static str, Span, Message)> = Vec::new();
    for f in &v0.fields {
        match f.name.as_str() {
            "name" => out.fields.push(f.clone()),
            "type" => match v0_type_name(&ty) {
                Some(t) => out.fields.push(field("type", f.name_span.clone(), Value::Ident(t.into()), f.value_span.clone())),
                None => cx.push(
                    Severity::Error,
                    "netc::v0_upgrade",
                    format!("unknown V0 layer type `{ty}`"),
                    f.value_span.clone(),
                    "unknown type",
                    crate::schema::did_you_mean(&ty, V0_TYPES.iter().copied()).map(|s| format!("did you mean `{s}`?")),
                ),
            },
            "blobs" | "blobs_lr" | "weight_decay" => out.fields.push(f.clone()),
            "hdf5_output_param" if ty == "hdf5_output" => out.fields.push(f.clone()),
            name => match v0_field_target(name, &ty) {
                Some((param, target)) => {
                    let mut nf = f.clone();
                    nf.name = target.to_string();
                    match params.iter_mut().find(|(p, _, _)| *p == param) {
                        Some((_, _, m)) => {
                            m.fields.retain(|x| x.name != target);
                            m.fields.push(nf);
                        }
                        None => params.push((param, f.name_span.clone(), Message { fields: vec![nf], span: f.name_span.start..f.value_span.end })),
                    }
                }
                None if matches!(name, "new_num" | "new_channels") => {}
                None => cx.push(
                    Severity::Warning,
                    "netc::v0_upgrade",
                    format!("V0 field `{name}` does not apply to a `{ty}` layer; Caffe's upgrade drops it"),
                    f.name_span.clone(),
                    "dropped",
                    None,
                ),
            },
        }
    }
    for (param, span, m) in params {
        let vs = m.span.clone();
        out.fields.push(field(param, span, Value::Message(m), vs));
    }
    out
}

const V0_TYPES: &[&str] = &[
    "accuracy",
    "bnll",
    "concat",
    "conv",
    "data",
    "dropout",
    "euclidean_loss",
    "flatten",
    "hdf5_data",
    "hdf5_output",
    "im2col",
    "images",
    "infogain_loss",
    "innerproduct",
    "lrn",
    "multinomial_logistic_loss",
    "padding",
    "pool",
    "relu",
    "sigmoid",
    "softmax",
    "softmax_loss",
    "split",
    "tanh",
    "window_data",
];

/// Caffe's `UpgradeNetDataTransformation` and `UpgradeV1LayerParameter` for one layer.
fn v1_to_v2(cx: &mut Ctx, v1: &Message) -> Message {
    let mut out = Message {
        fields: Vec::new(),
        span: v1.span.clone(),
    };
    let ty_field = v1.get("type");
    let v1_type = ty_field.and_then(|f| f.value.as_ident()).unwrap_or("");
    if let Some(f) = v1.get("name") {
        out.fields.push(f.clone());
    }
    if let Some(f) = ty_field {
        let name = match v1_type_name(v1_type) {
            Some(n) => n,
            None => {
                cx.push(
                    Severity::Error,
                    "netc::v1_upgrade",
                    format!("unknown V1 layer type `{v1_type}`"),
                    f.value_span.clone(),
                    "unknown type",
                    None,
                );
                ""
            }
        };
        out.fields.push(field(
            "type",
            f.name_span.clone(),
            Value::Str(name.into()),
            f.value_span.clone(),
        ));
    }
    for f in &v1.fields {
        if matches!(f.name.as_str(), "bottom" | "top" | "loss_weight") {
            out.fields.push(f.clone());
        }
    }
    // param { name share_mode lr_mult decay_mult }, one per blob.
    let mut params: Vec<Message> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    for (old, new) in [
        ("param", "name"),
        ("blob_share_mode", "share_mode"),
        ("blobs_lr", "lr_mult"),
        ("weight_decay", "decay_mult"),
    ] {
        for (i, f) in v1.get_all(old).enumerate() {
            while params.len() <= i {
                params.push(Message {
                    fields: Vec::new(),
                    span: f.name_span.start..f.value_span.end,
                });
                spans.push(f.name_span.clone());
            }
            params[i].fields.push(field(
                new,
                f.name_span.clone(),
                f.value.clone(),
                f.value_span.clone(),
            ));
        }
    }
    for (p, s) in params.into_iter().zip(spans) {
        let vs = p.span.clone();
        out.fields.push(field("param", s, Value::Message(p), vs));
    }
    for f in &v1.fields {
        if matches!(f.name.as_str(), "blobs" | "include" | "exclude") {
            out.fields.push(f.clone());
        }
    }
    // Transformation fields that old data layers kept in their own parameters.
    let data_param = match v1_type {
        "DATA" => Some("data_param"),
        "IMAGE_DATA" => Some("image_data_param"),
        "WINDOW_DATA" => Some("window_data_param"),
        _ => None,
    };
    let mut moved: Vec<Field> = Vec::new();
    let mut rest: Vec<Field> = Vec::new();
    for f in &v1.fields {
        if Some(f.name.as_str()) == data_param {
            if let Value::Message(m) = &f.value {
                let mut kept = m.clone();
                kept.fields.retain(|x| {
                    let t = matches!(
                        x.name.as_str(),
                        "scale" | "mean_file" | "crop_size" | "mirror"
                    );
                    if t {
                        moved.push(x.clone());
                    }
                    !t
                });
                rest.push(Field {
                    value: Value::Message(kept),
                    ..f.clone()
                });
                continue;
            }
        }
        if f.name.ends_with("_param") {
            rest.push(f.clone());
        } else if f.name == "layer" {
            cx.push(
                Severity::Warning,
                "netc::v1_upgrade",
                "this layer holds a V0 `layer { }` inside a V1 one; Caffe ignores it".into(),
                f.name_span.clone(),
                "ignored",
                None,
            );
        }
    }
    if !moved.is_empty() {
        match rest.iter_mut().find(|f| f.name == "transform_param") {
            Some(Field {
                value: Value::Message(t),
                ..
            }) => {
                for m in moved {
                    t.fields.retain(|x| x.name != m.name);
                    t.fields.push(m);
                }
            }
            _ => {
                let span = moved[0].name_span.start..moved[moved.len() - 1].value_span.end;
                let ns = moved[0].name_span.clone();
                rest.insert(
                    0,
                    field(
                        "transform_param",
                        ns,
                        Value::Message(Message {
                            fields: moved,
                            span: span.clone(),
                        }),
                        span,
                    ),
                );
            }
        }
    }
    // transform_param and loss_param first, as Caffe prints them (by field number).
    rest.sort_by_key(|f| match f.name.as_str() {
        "transform_param" => 0,
        "loss_param" => 1,
        _ => 2,
    });
    out.fields.extend(rest);
    out
}

/// Caffe's `UpgradeNetInput`: `input:` with `input_shape` or `input_dim` → an Input layer
/// named "input" at the front.
fn upgrade_input(cx: &mut Ctx, root: &Message) -> Message {
    let inputs: Vec<&Field> = root.get_all("input").collect();
    let shapes: Vec<&Field> = root.get_all("input_shape").collect();
    let dims: Vec<&Field> = root.get_all("input_dim").collect();
    let first = root
        .fields
        .iter()
        .find(|f| matches!(f.name.as_str(), "input" | "input_shape" | "input_dim"));
    let Some(first) = first else {
        return root.clone();
    };
    cx.push(
        Severity::Warning,
        "netc::legacy_input",
        "this file declares its inputs with the deprecated `input:` fields".into(),
        first.name_span.clone(),
        "legacy input",
        Some("netc reads them as an `Input` layer named \"input\", as Caffe does; `netc upgrade` prints it".into()),
    );
    let mut out = Message {
        fields: Vec::new(),
        span: root.span.clone(),
    };
    let mut layers: Vec<Field> = Vec::new();
    for f in &root.fields {
        match f.name.as_str() {
            "input" | "input_shape" | "input_dim" => {}
            "layer" => layers.push(f.clone()),
            _ => out.fields.push(f.clone()),
        }
    }
    if !shapes.is_empty() || !dims.is_empty() {
        let span = first.name_span.clone();
        let mut layer = Message {
            fields: Vec::new(),
            span: span.clone(),
        };
        layer.fields.push(field(
            "name",
            span.clone(),
            Value::Str("input".into()),
            span.clone(),
        ));
        layer.fields.push(field(
            "type",
            span.clone(),
            Value::Str("Input".into()),
            span.clone(),
        ));
        let mut param = Message {
            fields: Vec::new(),
            span: span.clone(),
        };
        for (i, input) in inputs.iter().enumerate() {
            layer.fields.push(field(
                "top",
                input.name_span.clone(),
                input.value.clone(),
                input.value_span.clone(),
            ));
            if !shapes.is_empty() {
                match shapes.get(i) {
                    Some(s) => param.fields.push(field(
                        "shape",
                        s.name_span.clone(),
                        s.value.clone(),
                        s.value_span.clone(),
                    )),
                    None => cx.push(
                        Severity::Error,
                        "netc::legacy_input",
                        format!(
                            "input `{}` has no `input_shape`",
                            input.value.as_str().unwrap_or("")
                        ),
                        input.value_span.clone(),
                        "no shape",
                        Some("give one `input_shape { dim: ... }` per input".into()),
                    ),
                }
            } else {
                let four = dims.get(i * 4..i * 4 + 4);
                match four {
                    Some(d) => {
                        let s = d[0].name_span.start..d[3].value_span.end;
                        let dim_fields = d.iter().map(|f| field("dim", f.name_span.clone(), f.value.clone(), f.value_span.clone())).collect();
                        param.fields.push(field("shape", d[0].name_span.clone(), Value::Message(Message { fields: dim_fields, span: s.clone() }), s));
                    }
                    None => cx.push(
                        Severity::Error,
                        "netc::legacy_input",
                        format!("input `{}` needs four `input_dim` values (num, channels, height, width)", input.value.as_str().unwrap_or("")),
                        input.value_span.clone(),
                        "too few input_dim values",
                        None,
                    ),
                }
            }
        }
        layer.fields.push(field(
            "input_param",
            span.clone(),
            Value::Message(param),
            span.clone(),
        ));
        out.fields
            .push(field("layer", span.clone(), Value::Message(layer), span));
    }
    out.fields.extend(layers);
    out
}

/// Caffe's `UpgradeNetBatchNorm`: the old BatchNorm declared three `param`s; their
/// learning rates become 0.
fn upgrade_batch_norm(cx: &mut Ctx, net: &mut Message) {
    for f in &mut net.fields {
        let Value::Message(layer) = &mut f.value else {
            continue;
        };
        if f.name != "layer"
            || layer.str("type") != Some("BatchNorm")
            || layer.get_all("param").count() != 3
        {
            continue;
        }
        let mut first = None;
        for p in &mut layer.fields {
            let Value::Message(pm) = &mut p.value else {
                continue;
            };
            if p.name != "param" {
                continue;
            }
            first.get_or_insert(p.name_span.clone());
            pm.fields
                .retain(|x| x.name != "lr_mult" && x.name != "decay_mult");
            let s = p.value_span.clone();
            pm.fields
                .push(field("lr_mult", s.clone(), Value::Float(0.0), s.clone()));
            pm.fields
                .push(field("decay_mult", s.clone(), Value::Float(0.0), s));
        }
        if let Some(span) = first {
            cx.push(
                Severity::Warning,
                "netc::old_batch_norm",
                "this BatchNorm layer declares three `param`s, as old Caffe required; their learning rates are set to 0".into(),
                span,
                "old BatchNorm parameters",
                Some("remove the `param { }` blocks: BatchNorm's statistics are not learned".into()),
            );
        }
    }
}

/// Caffe's `UpgradeSolverAsNeeded`: the deprecated `solver_type: NESTEROV` enum becomes
/// `type: "Nesterov"`; giving both is an error.
pub fn upgrade_solver(src: &Source, root: &mut Message) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        src,
        diags: Vec::new(),
    };
    let Some(i) = root.fields.iter().position(|f| f.name == "solver_type") else {
        return cx.diags;
    };
    let f = root.fields[i].clone();
    if let Some(t) = root.get("type") {
        cx.diags.push(Diagnostic {
            severity: Severity::Error,
            code: "netc::solver_type",
            message: "the deprecated `solver_type` and its replacement `type` are both given"
                .into(),
            labels: vec![
                (f.name_span.clone(), "old field".into()),
                (t.name_span.clone(), "new field".into()),
            ],
            help: Some("keep only `type`".into()),
            source: Some(src.clone()),
        });
        return cx.diags;
    }
    let new = match f.value.as_ident() {
        Some("SGD") => "SGD",
        Some("NESTEROV") => "Nesterov",
        Some("ADAGRAD") => "AdaGrad",
        Some("RMSPROP") => "RMSProp",
        Some("ADADELTA") => "AdaDelta",
        Some("ADAM") => "Adam",
        _ => return cx.diags,
    };
    cx.push(
        Severity::Warning,
        "netc::old_format",
        "`solver_type` is deprecated in Caffe".into(),
        f.name_span.clone(),
        "deprecated",
        Some(format!("write `type: \"{new}\"` instead")),
    );
    root.fields[i] = field("type", f.name_span, Value::Str(new.into()), f.value_span);
    cx.diags
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn up(text: &str) -> (Message, Vec<Diagnostic>) {
        let src = Source {
            path: PathBuf::from("old.prototxt"),
            text: text.into(),
        };
        let (root, d) = crate::syntax::parse(&src);
        let Some(mut root) = root else {
            panic!("{:?}", d)
        };
        let schema_diags = crate::schema::check(&src, &mut root, crate::schema::NET);
        assert!(
            schema_diags.is_empty(),
            "{:?}",
            schema_diags.iter().map(|d| &d.message).collect::<Vec<_>>()
        );
        let (net, diags) = upgrade_net(&src, &root);
        (net.into_owned(), diags)
    }

    #[test]
    fn v1_layer() {
        let (net, diags) = up(
            "layers { name: 'conv1' type: CONVOLUTION bottom: 'data' top: 'conv1' blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0\n\
             convolution_param { num_output: 20 kernel_size: 5 } }\n\
             layers { name: 'd' type: DATA top: 'data' data_param { source: 'x' scale: 0.5 mirror: true } }",
        );
        assert_eq!(diags[0].code, "netc::old_format");
        let layers = net.msgs("layer");
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].str("type"), Some("Convolution"));
        let params = layers[0].msgs("param");
        assert_eq!(params.len(), 2);
        assert_eq!(params[1].float("lr_mult"), Some(2.0));
        assert_eq!(params[1].float("decay_mult"), Some(0.0));
        assert_eq!(layers[1].str("type"), Some("Data"));
        assert_eq!(
            layers[1]
                .msg("transform_param")
                .and_then(|t| t.float("scale")),
            Some(0.5)
        );
        assert_eq!(
            layers[1].msg("data_param").map(|d| d.has("scale")),
            Some(false)
        );
    }

    #[test]
    fn v0_layers_with_padding() {
        let (net, diags) = up(
            "input: 'data' input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n\
             layers { layer { name: 'pad1' type: 'padding' pad: 2 } bottom: 'data' top: 'pad1' }\n\
             layers { layer { name: 'conv1' type: 'conv' num_output: 4 kernelsize: 3 biasterm: false } bottom: 'pad1' top: 'conv1' }\n\
             layers { layer { name: 'pool1' type: 'pool' pool: AVE kernelsize: 2 stride: 2 } bottom: 'conv1' top: 'pool1' }",
        );
        assert!(diags.iter().any(|d| d.code == "netc::old_format"));
        assert!(diags.iter().any(|d| d.code == "netc::legacy_input"));
        let layers = net.msgs("layer");
        let names: Vec<_> = layers.iter().map(|l| l.str("name").unwrap_or("")).collect();
        assert_eq!(names, ["input", "conv1", "pool1"]);
        assert_eq!(layers[0].str("type"), Some("Input"));
        assert_eq!(layers[1].strs("bottom"), ["data"]);
        let conv = layers[1]
            .msg("convolution_param")
            .cloned()
            .unwrap_or_default();
        assert_eq!(conv.ints("pad"), [2]);
        assert_eq!(conv.ints("kernel_size"), [3]);
        assert_eq!(conv.boolean("bias_term"), Some(false));
        assert_eq!(
            layers[2]
                .msg("pooling_param")
                .and_then(|p| p.ident("pool").map(str::to_string)),
            Some("AVE".into())
        );
        let dims = layers[0]
            .msg("input_param")
            .and_then(|p| p.msg("shape"))
            .map(|s| s.ints("dim"));
        assert_eq!(dims, Some(vec![1, 3, 8, 8]));
    }

    #[test]
    fn unknown_v0_type_is_an_error() {
        let (_, diags) = up("layers { layer { name: 'x' type: 'convv' } top: 'x' }");
        let e = diags
            .iter()
            .find(|d| d.severity == Severity::Error)
            .map(|d| (d.message.clone(), d.help.clone()));
        assert_eq!(
            e,
            Some((
                "unknown V0 layer type `convv`".into(),
                Some("did you mean `conv`?".into())
            ))
        );
    }

    #[test]
    fn batch_norm_params() {
        let (net, diags) = up("layer { name: 'bn' type: 'BatchNorm' bottom: 'x' top: 'x' param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 } }");
        assert_eq!(diags[0].code, "netc::old_batch_norm");
        let p = net.msgs("layer")[0]
            .msgs("param")
            .iter()
            .map(|p| p.float("lr_mult"))
            .collect::<Vec<_>>();
        assert_eq!(p, [Some(0.0); 3]);
    }

    #[test]
    fn solver_type_enum() {
        let src = Source {
            path: PathBuf::from("s"),
            text: "base_lr: 0.1 solver_type: 1".into(),
        };
        let (root, _) = crate::syntax::parse(&src);
        let mut root = root.unwrap_or_default();
        crate::schema::check(&src, &mut root, crate::schema::SOLVER);
        let d = upgrade_solver(&src, &mut root);
        assert_eq!(d.len(), 1);
        assert_eq!(root.str("type"), Some("Nesterov"));
        assert!(!root.has("solver_type"));
        let src = Source {
            path: PathBuf::from("s"),
            text: "type: 'Adam' solver_type: ADAM".into(),
        };
        let (root, _) = crate::syntax::parse(&src);
        let mut root = root.unwrap_or_default();
        let d = upgrade_solver(&src, &mut root);
        assert_eq!(d[0].severity, Severity::Error);
    }

    #[test]
    fn current_format_is_borrowed() {
        let src = Source {
            path: PathBuf::from("n"),
            text: "layer { name: 'a' type: 'ReLU' }".into(),
        };
        let (root, _) = crate::syntax::parse(&src);
        let root = root.unwrap_or_default();
        let (net, diags) = upgrade_net(&src, &root);
        assert!(matches!(net, Cow::Borrowed(_)));
        assert!(diags.is_empty());
    }
}
