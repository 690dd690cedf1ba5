//! One spec per validation error class: the rendered diagnostics (plain text, as a pipe
//! sees them) as insta snapshots, and the JSON fields `check --format json` prints.

use std::path::PathBuf;

use netc::analysis::{self, ShapeArgs};
use netc::commands::check::check_source;
use netc::diag::Severity;
use netc::front;
use netc::spec::Source;

fn check(text: &str) -> Vec<netc::diag::Diagnostic> {
    let src = Source {
        path: PathBuf::from("net.prototxt"),
        text: text.into(),
    };
    check_source(&src, &ShapeArgs::default()).diagnostics
}

fn rendered(text: &str) -> String {
    front::render(&check(text))
}

const INPUT: &str = r#"layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
"#;

fn with_input(rest: &str) -> String {
    format!("{INPUT}{rest}")
}

#[test]
fn unknown_layer_types_all_listed_with_suggestions() {
    let text = with_input(
        r#"layer { name: "c" type: "Convolutoin" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "r" type: "Relu" bottom: "c" top: "c" }
"#,
    );
    let d = check(&text);
    assert_eq!(
        d.iter()
            .filter(|d| d.code == "netc::unknown_layer_type")
            .count(),
        2
    );
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn bottom_missing_in_one_phase_suggests_an_include_rule() {
    let text = r#"layer { name: "train-data" type: "Input" top: "data" include { phase: TRAIN } input_param { shape { dim: 1 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
"#;
    let d = check(text);
    let j = analysis::diagnostic_json(&d[0]);
    assert_eq!(j["code"], "netc::missing_bottom");
    assert_eq!(j["severity"], "error");
    assert_eq!(j["line"], 2);
    assert_eq!(j["column"], 49);
    assert_eq!(j["end"]["column"], 55);
    assert!(j["help"]
        .as_str()
        .unwrap_or("")
        .contains("exclude this layer from the TEST phase with include { phase: TRAIN }"));
    // TEST and deploy report it once.
    assert_eq!(
        d.iter()
            .filter(|d| d.code == "netc::missing_bottom")
            .count(),
        1
    );
    insta::assert_snapshot!(rendered(text));
}

#[test]
fn a_top_produced_twice_has_two_labels() {
    let text = with_input(
        r#"layer { name: "a" type: "ReLU" bottom: "data" top: "x" }
layer { name: "b" type: "ReLU" bottom: "data" top: "x" }
"#,
    );
    let d = check(&text);
    assert_eq!(d[0].code, "netc::duplicate_top");
    let j = analysis::diagnostic_json(&d[0]);
    assert_eq!(j["labels"].as_array().map(Vec::len), Some(2));
    assert_eq!(j["labels"][1]["line"], 2);
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn reshape_cannot_run_in_place() {
    let text = with_input(
        r#"layer { name: "r" type: "Reshape" bottom: "data" top: "data" reshape_param { shape { dim: 0 dim: -1 } } }
"#,
    );
    let d = check(&text);
    assert_eq!(d[0].code, "netc::not_in_place");
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn wrong_bottom_count() {
    let text = with_input(
        r#"layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "data" bottom: "data" top: "loss" }
"#,
    );
    let d = check(&text);
    assert_eq!(d[0].code, "netc::bottom_count");
    assert_eq!(
        d[0].message,
        "layer `loss` (SoftmaxWithLoss) takes exactly 2 bottoms, but has 3"
    );
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn include_and_exclude_on_one_layer() {
    let text = with_input(
        r#"layer { name: "r" type: "ReLU" bottom: "data" top: "r" include { phase: TRAIN } exclude { stage: "deploy" } }
"#,
    );
    let d = check(&text);
    assert_eq!(d[0].code, "netc::include_and_exclude");
    assert_eq!(d.len(), 1, "reported once over the phases");
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn duplicate_names_in_one_phase_but_not_across_phases() {
    let fine = r#"layer { name: "mnist" type: "Input" top: "data" include { phase: TRAIN } input_param { shape { dim: 1 dim: 4 } } }
layer { name: "mnist" type: "Input" top: "data" include { phase: TEST } input_param { shape { dim: 1 dim: 4 } } }
"#;
    assert!(check(fine).is_empty(), "{}", rendered(fine));
    let text = with_input(
        r#"layer { name: "data" type: "ReLU" bottom: "data" top: "r" }
"#,
    );
    // Caffe accepts two layers of one name (BVLC's mnist_autoencoder has two `loss`
    // layers): a warning, unless both learn, whose blobs would collide in snapshots.
    let d = check(&text);
    assert_eq!(d[0].code, "netc::duplicate_name");
    assert_eq!(d[0].severity, Severity::Warning);
    assert_eq!(
        d[0].message,
        "two layers are named `data` in the TRAIN and TEST phases"
    );
    insta::assert_snapshot!(rendered(&text));
    let both_learn = with_input(
        r#"layer { name: "c" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "c" type: "Convolution" bottom: "data" top: "c2" convolution_param { num_output: 2 kernel_size: 3 } }
"#,
    );
    let d = check(&both_learn);
    assert_eq!(d.len(), 1, "{}", rendered(&both_learn));
    assert_eq!(d[0].severity, Severity::Error);
    assert_eq!(
        d[0].message,
        "two layers with learned blobs are named `c` in the TRAIN and TEST phases: their blobs would share the names `c.0`, ... in snapshots"
    );
}

#[test]
fn a_cycle() {
    let text = with_input(
        r#"layer { name: "a" type: "Eltwise" bottom: "data" bottom: "b" top: "a" }
layer { name: "b" type: "ReLU" bottom: "a" top: "b" }
"#,
    );
    let d = check(&text);
    assert_eq!(
        d.iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.code)
            .next(),
        Some("netc::cycle")
    );
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn kernel_given_twice_and_shapes_that_cannot_work() {
    let text = with_input(
        r#"layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3 } }
layer { name: "big" type: "Convolution" bottom: "data" top: "big" convolution_param { num_output: 4 kernel_size: 40 } }
layer { name: "acc" type: "Accuracy" bottom: "data" bottom: "data" top: "acc" accuracy_param { top_k: 5 } }
"#,
    );
    let d = check(&text);
    let codes: Vec<_> = d.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["netc::layer_param", "netc::shape", "netc::shape"],
        "{}",
        rendered(&text)
    );
    insta::assert_snapshot!(rendered(&text));
}

/// A dilated kernel is measured by what it spans: 3×3 at dilation 14 spans 29×29, too
/// much for 28×28 (the message said only "the 3×3 kernel does not fit").
#[test]
fn a_dilated_kernel_that_does_not_fit_says_what_it_spans() {
    let text = with_input(
        r#"layer { name: "d" type: "Convolution" bottom: "data" top: "d" convolution_param { num_output: 4 kernel_size: 3 dilation: 14 } }
layer { name: "ok" type: "Convolution" bottom: "data" top: "ok" convolution_param { num_output: 4 kernel_size: 3 dilation: 13 } }
"#,
    );
    let d = check(&text);
    assert_eq!(d.len(), 1, "{}", rendered(&text));
    assert_eq!(
        d[0].message,
        "layer `d` (Convolution): the 3×3 kernel (dilated 14×14: it spans 29×29) does not fit the 28×28 input (with pad 0×0)"
    );
    assert_eq!(
        d[0].help.as_deref(),
        Some("use a smaller kernel or dilation, more padding, or a larger input")
    );
}

/// Blobs past Caffe's INT_MAX values are errors (their counts wrapped modulo 2^64 in the
/// summary), and the layers after them get no shapes rather than wrapped ones.
#[test]
fn blobs_too_large_for_caffe_are_refused() {
    let text = with_input(
        r#"layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2000000000 kernel_size: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "c" top: "ip" inner_product_param { num_output: 2000000000 } }
layer { name: "wide" type: "InnerProduct" bottom: "data" top: "wide" inner_product_param { num_output: 3000000 } }
layer { name: "fits" type: "InnerProduct" bottom: "data" top: "fits" inner_product_param { num_output: 2000000 } }
"#,
    );
    let d = check(&text);
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "layer `c` (Convolution): its top `c` would hold 1352000000000 values (1×2000000000×26×26), more than a blob can (2,147,483,647, as in Caffe)",
            "layer `wide` (InnerProduct): its learned blob 0 would hold 2352000000 values (3000000×784), more than a blob can (2,147,483,647, as in Caffe)",
        ],
        "{}",
        rendered(&text)
    );
}

/// Parameter errors that had no hint get one.
#[test]
fn parameter_errors_say_what_to_do() {
    let text = with_input(
        r#"layer { name: "d" type: "Dropout" bottom: "data" top: "d" dropout_param { dropout_ratio: 1.5 } }
layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 2 pad: 2 } }
layer { name: "g" type: "Convolution" bottom: "data" top: "g" convolution_param { num_output: 4 kernel_size: 3 group: 2 } }
layer { name: "s" type: "Slice" bottom: "data" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 3 } }
"#,
    );
    let helps: Vec<(String, Option<String>)> = check(&text)
        .into_iter()
        .map(|d| (d.message, d.help))
        .collect();
    let help_of = |start: &str| {
        helps
            .iter()
            .find(|(m, _)| m.starts_with(start))
            .and_then(|(_, h)| h.clone())
            .unwrap_or_else(|| panic!("no `{start}` in {helps:?}"))
    };
    assert_eq!(
        help_of("layer `d`"),
        "the fraction of values dropped in training, e.g. 0.5"
    );
    assert!(help_of("layer `p`").starts_with("lower the pad"));
    assert!(help_of("layer `g`").starts_with("choose a group that divides"));
    assert_eq!(
        help_of("layer `s`"),
        "slice points must be below 1, the length of the axis"
    );
}

#[test]
fn concat_and_eltwise_inputs_that_differ() {
    let text = with_input(
        r#"layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "cat" type: "Concat" bottom: "data" bottom: "p" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "p" top: "sum" }
"#,
    );
    let d = check(&text);
    assert!(d.iter().filter(|d| d.code == "netc::shape").count() == 2);
    insta::assert_snapshot!(rendered(&text));
}

#[test]
fn types_netc_cannot_train_still_get_shapes() {
    let text = with_input(
        r#"layer { name: "norm" type: "MVN" bottom: "data" top: "norm" }
layer { name: "th" type: "Threshold" bottom: "norm" top: "norm" threshold_param { threshold: 0.5 } }
layer { name: "sp" type: "Pooling" bottom: "norm" top: "sp" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 } }
"#,
    );
    let src = Source {
        path: PathBuf::from("net.prototxt"),
        text: text.as_str().into(),
    };
    let checked = check_source(&src, &ShapeArgs::default());
    assert_eq!(
        checked
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect::<Vec<_>>(),
        [
            "netc::cannot_train",
            "netc::cannot_train",
            "netc::cannot_train"
        ]
    );
    // A type netc trains, with a method it cannot run: named at the method.
    let sp = &checked.diagnostics[2];
    assert_eq!(
        sp.message,
        "layer `sp`: netc cannot train STOCHASTIC pooling yet"
    );
    assert_eq!(&text[sp.labels[0].0.clone()], "STOCHASTIC");
    assert_eq!(checked.rows[3].output, vec![Some(vec![1, 14, 14])]);
    assert_eq!(checked.rows[1].output, vec![Some(vec![1, 28, 28])]);
    assert_eq!(checked.rows[1].params, Some(0));
    assert_eq!(checked.rows[2].output, vec![Some(vec![1, 28, 28])]);
    assert!(checked.rows[2].in_place);
    insta::assert_snapshot!(front::render(&checked.diagnostics));
}

#[test]
fn digits_lenet_without_num_output_is_a_warning() {
    let text = with_input(
        r#"layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }
"#,
    );
    let d = check(&text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].severity, Severity::Warning);
    assert_eq!(analysis::diagnostic_json(&d[0])["severity"], "warning");
    insta::assert_snapshot!(rendered(&text));
}

/// One layer naming the same top twice is an error pointing at both (it used to panic
/// while looking for the top's first producer, the layer itself).
#[test]
fn a_layer_listing_a_top_twice() {
    for text in [
        r#"layer { name: "in" type: "Input" top: "x" top: "x" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
"#
        .to_string(),
        with_input(
            r#"layer { name: "s" type: "Slice" bottom: "data" top: "out" top: "out" slice_param { axis: 2 } }
"#,
        ),
    ] {
        let d = check(&text);
        let dup: Vec<_> = d.iter().filter(|d| d.code == "netc::duplicate_top").collect();
        assert_eq!(dup.len(), 1, "{}", rendered(&text));
        assert!(dup[0].message.contains("twice"), "{}", dup[0].message);
        assert_eq!(dup[0].labels.len(), 2);
    }
}

/// `examples/broken.net`, the README's `netc check` example: LeNet with three typos gives
/// the four errors the README shows (the misspelt num_output leaves conv2 without one).
#[test]
fn the_readmes_broken_lenet_gives_its_four_errors() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/broken.net");
    let src = Source {
        path: path.clone(),
        text: std::fs::read_to_string(&path).unwrap().into(),
    };
    let diags = check_source(&src, &ShapeArgs::default()).diagnostics;
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        errors,
        [
            "unknown field `num_ouput` in ConvolutionParameter",
            "unknown layer type `Poolling` (layer `pool1`)",
            "layer `conv2` (Convolution): convolution_param needs num_output",
            "bottom `ipl` of layer `ip2` is not produced by any earlier layer in the TRAIN and TEST phases",
        ]
    );
    assert_eq!(diags.len(), 4, "no warnings either");
}
