//! Training end to end on a small slice of the shipped MNIST: the loss falls, every file of
//! the run folder is written and readable, a resumed run carries on with the same numbers,
//! and a diverging run stops with a clear message.

use std::path::{Path, PathBuf};
use std::process::Command;

use netc::data::format::{write, Encoding};
use netc::data::Split;
use netc::train::record::read_metrics;
use netc::train::{snapshot, train, TrainOptions};

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn subset(split: &Split, every: usize, per: usize) -> Split {
    let mut out = Split::default();
    for i in (0..split.len()).step_by(every) {
        out.pixels.extend_from_slice(split.image(i));
        out.labels.push(split.labels[i]);
        out.sources
            .push(split.sources.get(i).cloned().unwrap_or_default());
    }
    assert_eq!(out.pixels.len(), out.len() * per);
    out
}

/// 640 training and 200 validation images from specs/data/mnist-small.
fn tiny_dataset(dir: &Path) -> PathBuf {
    let mut ds = netc::data::open(&crate_root().join("specs/data/mnist-small"))
        .expect("shipped dataset opens");
    let per = ds.image_len();
    ds.train = subset(&ds.train, ds.train.len() / 640, per);
    ds.train.labels.truncate(640);
    ds.train.pixels.truncate(640 * per);
    ds.train.sources.truncate(640);
    let val = ds.val.take().expect("val split");
    ds.val = Some(subset(&val, 10, per));
    let out = dir.join("tiny");
    write(&ds, &out, Encoding::Raw, false).expect("write tiny dataset");
    out
}

fn opts(data: &Path, out: &Path, epochs: f64) -> TrainOptions {
    TrainOptions {
        spec: crate_root().join("specs/lenet.net"),
        data: Some(data.to_path_buf()),
        epochs: Some(epochs),
        out: Some(out.to_path_buf()),
        quiet: true,
        ..TrainOptions::default()
    }
}

#[test]
fn a_tiny_run_learns_and_writes_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let run = tmp.path().join("run");
    let out = train(&opts(&data, &run, 3.0)).expect("training runs");
    let r = &out.records;
    assert_eq!(r.len(), 3);
    assert!(r[2].train_loss < r[0].train_loss, "loss falls: {r:?}");
    assert!(r[0].train_loss < 2.5 && r[2].train_loss < 1.0, "{r:?}");
    let acc = r[2].val_accuracy.expect("validated");
    assert!(
        acc > 60.0,
        "val accuracy after 3 epochs on 640 images: {acc}"
    );
    assert!(r[2].val_top5.unwrap() >= acc);
    assert_eq!(r[2].iteration, 30, "3 epochs of 10 iterations at batch 64");

    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("epoch,iteration,train_loss,val_loss,val_accuracy"));
    assert!(lines[3].starts_with("3,30,"));
    let back = read_metrics(&run);
    assert_eq!(back.len(), 3);
    for (a, b) in back.iter().zip(&out.records) {
        assert_eq!(
            (a.epoch, a.iteration, a.val_accuracy),
            (b.epoch, b.iteration, b.val_accuracy)
        );
        assert!((a.train_loss - b.train_loss).abs() < 1e-12);
    }
    let svg = std::fs::read_to_string(run.join("curves.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("loss (train)") && svg.contains("accuracy (val)"));
    let png = image::open(run.join("curves.png")).expect("curves.png decodes");
    assert_eq!((png.width(), png.height()), (900, 500));
    assert_eq!(
        std::fs::read_to_string(run.join("spec.net")).unwrap(),
        std::fs::read_to_string(crate_root().join("specs/lenet.net")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(run.join("labels.txt"))
            .unwrap()
            .lines()
            .count(),
        10
    );
    let pre: netc::feed::Preprocess = netc::train::read_yaml(&run.join("preprocess.yaml")).unwrap();
    assert_eq!(
        (pre.channels, pre.height, pre.width, pre.scale),
        (1, 28, 28, 0.00390625)
    );

    let snaps = snapshot::list(&run);
    assert_eq!(
        snaps.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![(1, 10), (2, 20), (3, 30)]
    );
    let w = snapshot::load(&snaps[2].2).unwrap();
    assert_eq!(w.tensors["conv1.0"].0, vec![20, 1, 5, 5]);
    assert_eq!(w.tensors["ip2.0"].0, vec![10, 500]);
    assert_eq!(
        w.tensors.values().map(|(_, d)| d.len()).sum::<usize>(),
        431_080
    );
    assert_eq!(w.meta["epoch"], "3");
    // No temporary files are left behind.
    for e in std::fs::read_dir(&run).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains(".tmp"), "leftover {name}");
    }
}

/// A newest snapshot that no longer reads back (truncated) is passed over with a warning
/// naming it: the run resumes from the one before, trains that epoch again to the same
/// numbers, and writes its snapshot anew.
#[test]
fn resuming_passes_over_a_damaged_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let straight = train(&opts(&data, &tmp.path().join("a"), 2.0)).unwrap();
    let c = tmp.path().join("c");
    train(&opts(&data, &c, 2.0)).unwrap();
    let newest = snapshot::list(&c).pop().unwrap().2;
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = netc(&["train", "--resume", c.to_str().unwrap(), "--epochs", "3"]);
    assert_eq!(code, 0, "{err}");
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert!(
        err.contains("warning:")
            && err.contains(name)
            && err.contains("trying the snapshot before it"),
        "{err}"
    );
    let records = netc::train::record::read_metrics(&c);
    assert_eq!(records.len(), 3);
    assert!(
        (records[1].train_loss - straight.records[1].train_loss).abs() < 1e-9,
        "epoch 2 again: {} vs {}",
        records[1].train_loss,
        straight.records[1].train_loss
    );
    assert!(
        snapshot::load(&newest).is_ok(),
        "epoch 2's snapshot written anew"
    );
    // With every snapshot damaged there is nothing to resume: exit 2, the files named.
    for (_, _, p) in snapshot::list(&c) {
        std::fs::write(&p, b"not a snapshot").unwrap();
    }
    let (code, _, err) = netc(&["train", "--resume", c.to_str().unwrap(), "--epochs", "4"]);
    assert_eq!(code, 2, "{err}");
    let err = flat(&err);
    assert!(err.contains("reads back") && err.contains("rm -r"), "{err}");
}

#[test]
fn resuming_carries_on_with_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let straight = train(&opts(&data, &tmp.path().join("a"), 2.0)).unwrap();
    let b = tmp.path().join("b");
    train(&opts(&data, &b, 1.0)).unwrap();
    let resumed = train(&TrainOptions {
        resume: Some(b.clone()),
        epochs: Some(2.0),
        quiet: true,
        ..TrainOptions::default()
    })
    .unwrap();
    assert_eq!(resumed.records.len(), 2);
    let (x, y) = (&straight.records[1], &resumed.records[1]);
    assert_eq!(x.iteration, y.iteration);
    assert!(
        (x.train_loss - y.train_loss).abs() < 1e-9,
        "{} vs {}",
        x.train_loss,
        y.train_loss
    );
    assert_eq!(x.val_accuracy, y.val_accuracy);
    assert_eq!(x.val_loss, y.val_loss);
    // Resuming the finished run trains nothing and leaves its records alone.
    let metrics = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    let (code, out, err) = netc(&["train", "--resume", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("already trained 20 iterations") && out.contains("--epochs above 2"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(b.join("metrics.csv")).unwrap(),
        metrics
    );
}

#[test]
fn a_diverging_run_stops_with_the_epoch_iteration_and_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let mut o = opts(&data, &tmp.path().join("nan"), 1.0);
    o.lr = Some(1e4);
    let err = train(&o).expect_err("diverges");
    let text = format!("{err:?}");
    assert!(text.contains("the loss became"), "{text}");
    assert!(text.contains("epoch 1, iteration"), "{text}");
    assert!(text.contains("lower the learning rate"), "{text}");
}

#[test]
fn a_net_with_too_few_outputs_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let spec = std::fs::read_to_string(crate_root().join("specs/lenet.net")).unwrap();
    let five = spec.replace(
        "  inner_product_param {\n    weight_filler",
        "  inner_product_param {\n    num_output: 5\n    weight_filler",
    );
    assert_ne!(five, spec);
    let path = tmp.path().join("five.net");
    std::fs::write(&path, five).unwrap();
    let mut o = opts(&data, &tmp.path().join("five"), 1.0);
    o.spec = path;
    let err = format!("{:?}", train(&o).expect_err("refused"));
    assert!(err.contains("scores 5 classes but the dataset"), "{err}");
}

fn netc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn cli_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = crate_root().join("specs/lenet.net");
    let missing = tmp.path().join("nowhere");
    let (code, _, err) = netc(&[
        "train",
        spec.to_str().unwrap(),
        "--data",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nowhere"), "{err}");
    // (The CUDA build's answer is tests/cuda.rs'.)
    if cfg!(not(feature = "cuda")) {
        let (code, _, err) = netc(&["train", spec.to_str().unwrap(), "--device", "cuda"]);
        assert_eq!(code, 2);
        assert!(err.contains("built without CUDA support"), "{err}");
    }
    let (code, _, err) = netc(&["train", "no-such-spec.net"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-spec.net"), "{err}");
    let (code, _, err) = netc(&["train", "--resume", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a netc run folder"), "{err}");
    // LeNet copied elsewhere: its dataset, relative to the spec, is not there.
    let copy = tmp.path().join("copy.net");
    std::fs::copy(&spec, &copy).unwrap();
    let (code, _, err) = netc(&["train", copy.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let err = flat(&err);
    assert!(
        err.contains(r#"it is the data_param.source "data/mnist-small" of layer "train-data" at"#),
        "{err}"
    );
    assert!(err.contains("copy.net:18:24"), "{err}");
    assert!(err.contains("pass --data DATASET"), "{err}");
    // A solver where the net belongs.
    let solver = tmp.path().join("s.prototxt");
    std::fs::write(
        &solver,
        "net: \"lenet_train_test.prototxt\"\nbase_lr: 0.01\n",
    )
    .unwrap();
    let (code, _, err) = netc(&["train", solver.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let err = flat(&err);
    assert!(
        err.contains("is a solver file (it sets `net`), not a net"),
        "{err}"
    );
    assert!(
        err.contains("it names `lenet_train_test.prototxt`"),
        "{err}"
    );
    // summary says the same, with no empty table.
    let (code, out, err) = netc(&["summary", solver.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert!(flat(&err).contains("is a solver file"), "{err}");
    // And the reverse: the net where the solver belongs.
    let (code, _, err) = netc(&[
        "train",
        spec.to_str().unwrap(),
        "--solver",
        spec.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        flat(&err).contains("is a net (it has `layer`), not a solver"),
        "{err}"
    );
}

/// Without a solver file beside the spec, train says it runs on netc's defaults.
#[test]
fn training_without_a_solver_file_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let copy = tmp.path().join("copy.net");
    std::fs::copy(crate_root().join("specs/lenet.net"), &copy).unwrap();
    let run = tmp.path().join("run");
    let (code, _, err) = netc(&[
        "train",
        copy.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "solver: netc's defaults (SGD, base_lr 0.01, momentum 0, no weight decay, fixed rate)"
        ),
        "{err}"
    );
}

#[test]
fn netc_time_reports_every_layer() {
    let (code, out, err) = netc(&[
        "time",
        "specs/lenet.net",
        "--iterations",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    );
    for l in v["layers"].as_array().unwrap() {
        for key in ["forward_ms", "forward_median_ms"] {
            assert!(l[key].as_f64().unwrap() > 0.0, "{key} of {}", l["name"]);
        }
    }
    assert!(v["images_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(v["batch_size"], 64);
}

#[test]
fn the_candle_path_trains_like_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let native = train(&opts(&data, &tmp.path().join("native"), 1.0)).unwrap();
    let mut o = opts(&data, &tmp.path().join("candle"), 1.0);
    o.candle = true;
    o.device = "cpu".into();
    let candle = train(&o).unwrap();
    let (a, b) = (&native.records[0], &candle.records[0]);
    // Same data, same initial weights, same solver: the same trajectory up to rounding.
    assert!(
        (a.train_loss - b.train_loss).abs() < 1e-3 * a.train_loss.max(1.0),
        "{} vs {}",
        a.train_loss,
        b.train_loss
    );
    let (va, vb) = (a.val_accuracy.unwrap(), b.val_accuracy.unwrap());
    assert!((va - vb).abs() <= 1.0, "{va} vs {vb}");
    // Its snapshots are the engine's format.
    let w = snapshot::load(&snapshot::list(&tmp.path().join("candle")).pop().unwrap().2).unwrap();
    assert_eq!(w.tensors["conv2.0"].0, vec![50, 20, 5, 5]);
    // run.yaml records the engine (a resume on the other one says so).
    let info = |run: &str| {
        let text = std::fs::read_to_string(tmp.path().join(run).join("run.yaml")).unwrap();
        serde_yaml::from_str::<netc::train::RunInfo>(&text).unwrap()
    };
    assert_eq!(info("candle").engine, "candle");
    assert_eq!(info("native").engine, "native");
}

/// What the candle path cannot train is refused before the run folder is made (BatchNorm
/// has no candle lowering: the run failed at its first step, its folder written).
#[test]
fn the_candle_path_refuses_what_it_cannot_train_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("rc");
    let (code, _, err) = netc(&[
        "train",
        "specs/resnet-mini.net",
        "--engine",
        "candle",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    let err = flat(&err);
    assert!(
        err.contains(
            "cannot train on candle: layer \"conv1_bn\": BatchNorm has no candle lowering"
        ) && err.contains("--engine native"),
        "{err}"
    );
    assert!(!run.exists());
    let solver = tmp.path().join("adam.yaml");
    std::fs::write(&solver, "type: Adam\nbase_lr: 0.001\n").unwrap();
    let (code, _, err) = netc(&[
        "train",
        "specs/lenet.net",
        "--engine",
        "candle",
        "--solver",
        solver.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        flat(&err).contains("the candle path trains with SGD and Nesterov only, not Adam"),
        "{err}"
    );
    assert!(!run.exists());
}

/// A net too large for the memory this process may use is refused before anything is
/// allocated, counting the solver's history too and honouring `ulimit -v` (a net that
/// passed the check ended in "memory allocation failed" and a backtrace, exit 134).
#[cfg(target_os = "linux")]
#[test]
fn a_net_too_large_for_the_memory_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = crate_root().join("specs/data/mnist-small");
    // ip1 with 200,000 outputs: 160 M learned values, 2.4 GiB with gradients and history.
    let spec = std::fs::read_to_string(crate_root().join("specs/lenet.net"))
        .unwrap()
        .replace("num_output: 500", "num_output: 200000")
        .replace(
            "\"data/mnist-small\"",
            &format!("{:?}", data.to_str().unwrap()),
        );
    let path = tmp.path().join("lenet-wide.net");
    std::fs::write(&path, spec).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 2000000 && exec {} time {} --iterations 1",
            env!("CARGO_BIN_EXE_netc"),
            path.display()
        ))
        .output()
        .unwrap();
    let err = flat(&String::from_utf8_lossy(&out.stderr));
    assert!(matches!(out.status.code(), Some(1 | 2)), "{err}");
    assert!(
        err.contains("layer \"ip1\"")
            && err.contains("GiB for its blobs, gradients and solver history, more than the")
            && err.contains("GiB this process may use"),
        "{err}"
    );
}

#[test]
fn binary_files_empty_specs_and_missing_runs_get_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("model.net");
    std::fs::write(&bin, [0x89u8, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    let (code, _, err) = netc(&["check", bin.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a text file"), "{err}");
    let empty = tmp.path().join("empty.net");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let (code, _, err) = netc(&["check", empty.to_str().unwrap()]);
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(err.contains("the spec has no layers"), "{err}");
    let gone = tmp.path().join("gone");
    let (code, _, err) = netc(&["train", "--resume", gone.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("does not exist"), "{err}");
}

/// A net made of the layer types that train since LRN, PReLU, Bias, Slice and
/// Deconvolution got engine ops: it trains on the tiny MNIST and its loss falls.
#[test]
fn lrn_prelu_bias_slice_and_deconvolution_train() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let spec = tmp.path().join("mixed.net");
    std::fs::write(
        &spec,
        r#"name: "Mixed"
layer { name: "data" type: "Data" top: "data" top: "label"
        transform_param { scale: 0.00390625 } data_param { batch_size: 32 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 5 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 3 alpha: 0.001 } }
layer { name: "prelu1" type: "PReLU" bottom: "norm1" top: "norm1" }
layer { name: "up" type: "Deconvolution" bottom: "norm1" top: "up"
        convolution_param { num_output: 4 kernel_size: 2 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "bias" type: "Bias" bottom: "up" top: "up" }
layer { name: "halves" type: "Slice" bottom: "up" top: "a" top: "b" slice_param { axis: 1 } }
layer { name: "pool" type: "Pooling" bottom: "a" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"#,
    )
    .unwrap();
    let mut o = opts(&data, &tmp.path().join("run"), 3.0);
    o.spec = spec;
    let out = train(&o).expect("trains");
    let r = &out.records;
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|e| e.train_loss.is_finite()), "{r:?}");
    assert!(r[2].train_loss < r[0].train_loss, "loss falls: {r:?}");
}

/// `--weights` copies the blobs whose layer names and shapes match (the DIGITS customised
/// LeNet keeps ip2 and ip1's bias); a snapshot that fits no layer is refused before a run
/// folder is made, instead of training from scratch silently.
#[test]
fn fine_tuning_copies_matching_blobs_and_refuses_a_snapshot_that_fits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let base = tmp.path().join("base");
    train(&opts(&data, &base, 0.2)).expect("base run trains");
    let tuned = tmp.path().join("tuned");
    let (code, _, err) = netc(&[
        "train",
        crate_root()
            .join("specs/lenet-custom.net")
            .to_str()
            .unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--weights",
        base.to_str().unwrap(),
        "--epochs",
        "0.1",
        "--out",
        tuned.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // ip1's bias fits but its weights do not (conv2 has 100 outputs): the layer keeps
    // both of its own, as Caffe refuses a layer whose blobs differ.
    assert!(
        err.contains("fine-tuning: copied 2 blobs (ip2.0, ip2.1)"),
        "{err}"
    );
    assert!(
        err.contains("not copied: ip1.1: kept with the rest of layer ip1 (ip1.0 shape [500, 800] in the snapshot, [500, 1600] here)"),
        "{err}"
    );
    assert!(
        err.contains(
            "not copied: conv1.0: shape [20, 1, 5, 5] in the snapshot, [75, 1, 5, 5] here"
        ),
        "{err}"
    );
    // Every layer renamed: nothing fits.
    let lenet = std::fs::read_to_string(crate_root().join("specs/lenet.net")).unwrap();
    let renamed = lenet
        .replace("conv1", "c1")
        .replace("conv2", "c2")
        .replace("ip1", "f1")
        .replace("ip2", "f2");
    let spec = tmp.path().join("renamed.net");
    std::fs::write(&spec, renamed).unwrap();
    let refused = tmp.path().join("refused");
    let (code, _, err) = netc(&[
        "train",
        spec.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--weights",
        base.to_str().unwrap(),
        "--out",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    let flat = err
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flat.contains("none of this net's 8 learned blobs is in it with the same name and shape")
            && flat.contains("c1.0: not in the snapshot"),
        "{flat}"
    );
    assert!(!refused.exists(), "no run folder for a refused run");
}

/// Mistakes that used to cost a run: a deploy Input that does not match the dataset (the
/// run trained, then could not classify), and a resume onto a dataset that changed (it
/// carried on, writing a second "epoch 1").
#[test]
fn a_run_that_could_not_classify_or_a_changed_dataset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let lenet = std::fs::read_to_string(crate_root().join("specs/lenet.net")).unwrap();
    let spec = tmp.path().join("lenet-32.net");
    std::fs::write(&spec, lenet.replace("dim: 28 dim: 28", "dim: 32 dim: 32")).unwrap();
    let out = tmp.path().join("never");
    let mut o = opts(&data, &out, 0.1);
    o.spec = spec;
    let err = flat(&format!("{:?}", train(&o).expect_err("refused")));
    assert!(
        err.contains("takes 1×32×32 images, but the dataset's are 1×28×28"),
        "{err}"
    );
    assert!(!out.exists(), "no run folder");

    let run = tmp.path().join("run");
    train(&opts(&data, &run, 0.5)).expect("trains");
    // The dataset grows behind the run's back.
    let mut ds = netc::data::open(&data).unwrap();
    let per = ds.image_len();
    let extra = ds.train.clone();
    ds.train.pixels.extend_from_slice(&extra.pixels);
    ds.train.labels.extend_from_slice(&extra.labels);
    ds.train.sources.extend_from_slice(&extra.sources);
    assert_eq!(ds.train.pixels.len(), ds.train.len() * per);
    write(&ds, &data, Encoding::Raw, true).expect("rewrite");
    let before = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let resume = || {
        train(&TrainOptions {
            resume: Some(run.clone()),
            epochs: Some(1.0),
            quiet: true,
            ..TrainOptions::default()
        })
    };
    let err = flat(&format!("{:?}", resume().expect_err("refused")));
    assert!(
        err.contains("changed since the run started: 640 train, 200 val images and 10 classes then, 1280 train"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        before
    );
    // The same counts, one label changed: refused too.
    ds.train = extra;
    ds.train.labels[5] = (ds.train.labels[5] + 1) % 10;
    write(&ds, &data, Encoding::Raw, true).expect("rewrite");
    let err = flat(&format!("{:?}", resume().expect_err("refused")));
    assert!(
        err.contains("changed since the run started: the same counts, but other pixels or labels (fingerprint crc32:"),
        "{err}"
    );
    // Put back as it was, the run resumes.
    ds.train.labels[5] = (ds.train.labels[5] + 9) % 10;
    write(&ds, &data, Encoding::Raw, true).expect("rewrite");
    let out = resume().expect("the same dataset resumes");
    assert_eq!(out.records.last().unwrap().epoch, 1);
    // --resume takes the run's batch size, learning rate and seed.
    for flag in [["--batch-size", "32"], ["--lr", "0.1"], ["--seed", "3"]] {
        let (code, _, err) = netc(&["train", "--resume", run.to_str().unwrap(), flag[0], flag[1]]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("cannot be used with"), "{err}");
    }
    // The dataset gone: the run's recorded one is named.
    std::fs::remove_dir_all(&data).unwrap();
    let (code, _, err) = netc(&["train", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        flat(&err).contains("(run.yaml's dataset), does not exist any more"),
        "{err}"
    );
}

/// Miette's wrapped lines joined again.
fn flat(s: &str) -> String {
    s.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `netc check` reads netc's own YAML solver files as solvers (it read them as nets and
/// reported five errors on the shipped one).
#[test]
fn check_reads_yaml_solver_files() {
    let (code, _, err) = netc(&["check", "specs/lenet.solver.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is fine: 0 errors, 0 warnings"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "base_lr: 0.01\nlr_polcy: inv\n").unwrap();
    let (code, _, err) = netc(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let err = flat(&err);
    assert!(
        err.contains("unknown field `lr_polcy`")
            && err.contains("at line 2 column 1")
            && err.contains("did you mean `lr_policy`?"),
        "{err}"
    );
    // A Caffe solver.prototxt gets its values checked too, as train reads them (check
    // called one with `type: "Adamm"` or a negative base_lr fine).
    let caffe = tmp.path().join("bad_solver.prototxt");
    for (text, says) in [
        (
            "base_lr: 0.01\ntype: \"Adamm\"\n",
            "unknown solver type Adamm",
        ),
        (
            "base_lr: -0.01\n",
            "base_lr must be a positive number, not -0.01",
        ),
    ] {
        std::fs::write(&caffe, format!("net: \"x.prototxt\"\n{text}")).unwrap();
        let (code, _, err) = netc(&["check", caffe.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(flat(&err).contains(says), "{err}");
    }
    std::fs::write(
        &caffe,
        "net: \"x.prototxt\"\nbase_lr: 0.01\ntype: \"Adam\"\n",
    )
    .unwrap();
    let (code, _, err) = netc(&["check", caffe.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// A run folder being trained is locked: a second `--resume` of it is refused (two of
/// them overwrote each other's snapshots); a `.lock` left by a process that is gone (it
/// holds no lock) is taken over, and a finished run leaves no lock behind.
#[test]
fn a_run_folder_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let run = tmp.path().join("run");
    train(&opts(&data, &run, 0.5)).expect("trains");
    assert!(!run.join(".lock").exists(), "lock removed at the end");
    let resume = |epochs: f64| {
        train(&TrainOptions {
            resume: Some(run.clone()),
            epochs: Some(epochs),
            quiet: true,
            ..TrainOptions::default()
        })
    };
    // This test's own process stands for a live netc.
    let me = std::process::id();
    let held = netc::train::RunLock::take(&run).expect("locks");
    assert_eq!(
        std::fs::read_to_string(run.join(".lock")).unwrap(),
        me.to_string()
    );
    let err = flat(&format!("{:?}", resume(1.0).expect_err("refused")));
    assert!(
        err.contains(&format!("is in use: netc process {me} is training it")),
        "{err}"
    );
    drop(held);
    assert!(!run.join(".lock").exists(), "the holder removes it");
    // No process has this id (above Linux's pid_max).
    std::fs::write(run.join(".lock"), "4999999999").unwrap();
    let out = resume(1.0).expect("a stale lock is taken over");
    assert_eq!(out.records.last().unwrap().epoch, 1);
    assert!(!run.join(".lock").exists());
    // The id of a process that is not netc (the system gave a dead netc's id to another
    // program): stale too.
    if std::path::Path::new("/proc/self/comm").exists() {
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(run.join(".lock"), other.id().to_string()).unwrap();
        let out = resume(2.0);
        let _ = other.kill();
        let _ = other.wait();
        let out = out.expect("a lock naming another program is taken over");
        assert_eq!(out.records.last().unwrap().epoch, 2);
    }
}

#[test]
fn netc_time_refuses_zero_iterations_and_unknown_formats() {
    for (flag, value) in [("--iterations", "0"), ("--format", "xml")] {
        let (code, _, err) = netc(&["time", "specs/lenet.net", flag, value]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("invalid value '{value}'")), "{err}");
    }
}

/// The default run folder is `runs/<spec>-<UTC time>`; one that exists (a run started in the
/// same second) gets `-2`: the second run used to fail with "already exists".
#[test]
fn runs_started_in_the_same_second_get_their_own_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(netc::train::stamp(0), "19700101-000000");
    assert_eq!(netc::train::stamp(1_796_389_200), "20261204-130000");
    // Every second the run might start in is taken.
    for s in now..now + 30 {
        let d = tmp
            .path()
            .join("runs")
            .join(format!("lenet-{}", netc::train::stamp(s)));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("run.yaml"), "taken").unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args([
            "train",
            crate_root().join("specs/lenet.net").to_str().unwrap(),
        ])
        .args(["--epochs", "0.01"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let made: Vec<String> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-2"))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let run = tmp.path().join("runs").join(&made[0]);
    assert!(run.join("metrics.csv").is_file());
    assert!(err.contains(&made[0]), "{err}");
}

/// Two new runs given the same --out at the same moment: exactly one trains, the other is
/// refused (both used to pass the "not empty" check, and one's snapshots and metrics were
/// overwritten by the other's while both reported success).
#[test]
fn two_runs_into_one_folder_at_once_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    for round in 0..3 {
        let run = tmp.path().join(format!("run{round}"));
        let start = |seed: &str| {
            Command::new(env!("CARGO_BIN_EXE_netc"))
                .args([
                    "train",
                    crate_root().join("specs/lenet.net").to_str().unwrap(),
                ])
                .args([
                    "--data",
                    data.to_str().unwrap(),
                    "--out",
                    run.to_str().unwrap(),
                ])
                .args(["--epochs", "0.5", "--seed", seed])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start("1"), start("2"));
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
        let errs: Vec<String> = outs
            .iter()
            .map(|o| flat(&String::from_utf8_lossy(&o.stderr)))
            .collect();
        assert_eq!(
            codes.iter().filter(|&&c| c == Some(0)).count(),
            1,
            "round {round}: {codes:?} {errs:?}"
        );
        let refused = &errs[codes.iter().position(|&c| c != Some(0)).unwrap()];
        assert!(
            refused.contains("is in use") || refused.contains("already exists and is not empty"),
            "round {round}: {refused}"
        );
        assert_eq!(read_metrics(&run).len(), 1, "round {round}");
        assert!(!run.join(".lock").exists());
    }
}
