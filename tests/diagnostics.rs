//! Snapshots of the rendered (plain text) diagnostics, one per class of problem the front
//! end reports.

use std::path::PathBuf;

use netc::front;
use netc::spec::Source;

fn render(text: &str) -> String {
    let src = Source {
        path: PathBuf::from("spec.prototxt"),
        text: text.into(),
    };
    let (_, diags) = front::load_net(&src);
    assert!(!diags.is_empty(), "no diagnostic for {text:?}");
    front::render(&diags)
}

fn render_solver(text: &str) -> String {
    let src = Source {
        path: PathBuf::from("solver.prototxt"),
        text: text.into(),
    };
    let (_, diags) = front::load_solver(&src);
    assert!(!diags.is_empty(), "no diagnostic for {text:?}");
    front::render(&diags)
}

#[test]
fn syntax_expected_value() {
    insta::assert_snapshot!(render("layer {\n  name: \"a\"\n  type: }\n"));
}

#[test]
fn syntax_missing_colon() {
    insta::assert_snapshot!(render("name \"LeNet\"\n"));
}

#[test]
fn unclosed_brace() {
    insta::assert_snapshot!(render(
        "name: \"n\"\nlayer {\n  name: \"a\"\n  param {\n    lr_mult: 1\n}\n"
    ));
}

#[test]
fn stray_closing_brace() {
    insta::assert_snapshot!(render("layer {\n  name: \"a\"\n}\n}\n"));
}

#[test]
fn unterminated_string() {
    insta::assert_snapshot!(render("layer {\n  name: \"a\n}\n"));
}

#[test]
fn bad_octal_number() {
    insta::assert_snapshot!(render(
        "layer {\n  name: \"c\"\n  convolution_param { num_output: 019 }\n}\n"
    ));
}

#[test]
fn byte_order_mark() {
    insta::assert_snapshot!(render("\u{FEFF}name: \"n\"\n"));
}

#[test]
fn unknown_field() {
    insta::assert_snapshot!(render("layer {\n  name: \"c\"\n  type: \"Convolution\"\n  convolution_param { num_ouput: 20 }\n}\n"));
}

#[test]
fn unknown_field_from_a_fork() {
    insta::assert_snapshot!(render("layer {\n  name: \"roi\"\n  type: \"ROIPooling\"\n  roi_pooling_param { pooled_w: 7 }\n}\n"));
}

#[test]
fn field_set_twice() {
    insta::assert_snapshot!(render(
        "layer {\n  name: \"a\"\n  type: \"ReLU\"\n  name: \"b\"\n}\n"
    ));
}

#[test]
fn wrong_value_type() {
    insta::assert_snapshot!(render(
        "layer {\n  name: conv1\n  convolution_param { kernel_size: 2.0 bias_term: maybe }\n}\n"
    ));
}

#[test]
fn value_out_of_range() {
    insta::assert_snapshot!(render(
        "layer {\n  convolution_param { num_output: -5 }\n}\n"
    ));
}

#[test]
fn unknown_enum_value() {
    insta::assert_snapshot!(render(
        "layer {\n  name: \"p\"\n  pooling_param { pool: MAXX }\n  include { phase: 7 }\n}\n"
    ));
}

#[test]
fn quoted_enum_value() {
    insta::assert_snapshot!(render("layer {\n  include { phase: \"TRAIN\" }\n}\n"));
}

#[test]
fn old_v1_format() {
    insta::assert_snapshot!(render("layers {\n  name: \"ip\"\n  type: INNER_PRODUCT\n  bottom: \"data\"\n  top: \"ip\"\n  blobs_lr: 1\n}\n"));
}

#[test]
fn old_v0_format_unknown_type() {
    insta::assert_snapshot!(render(
        "layers {\n  layer {\n    name: \"c\"\n    type: \"convv\"\n  }\n  top: \"c\"\n}\n"
    ));
}

#[test]
fn legacy_input() {
    insta::assert_snapshot!(render(
        "input: \"data\"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 28\n"
    ));
}

#[test]
fn old_batch_norm() {
    insta::assert_snapshot!(render(
        "layer {\n  name: \"bn\"\n  type: \"BatchNorm\"\n  bottom: \"x\"\n  top: \"x\"\n  param { lr_mult: 0 }\n  param { lr_mult: 0 }\n  param { lr_mult: 0 }\n}\n"
    ));
}

#[test]
fn solver_unknown_field() {
    insta::assert_snapshot!(render_solver(
        "base_lr: 0.01\nlr_policy: \"step\"\nstepearly: 1\nsolver_mode: GPUU\n"
    ));
}

#[test]
fn list_for_a_non_repeated_field() {
    insta::assert_snapshot!(render("name: [\"a\", \"b\"]\n"));
}
