//! `netc classify`: top-5, lists, batch invariance, accuracy, model comparison, --stats,
//! errors. Two tiny LeNet runs are trained once (a few iterations on the shipped small
//! MNIST) and shared by every test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use netc::classify::{self, list, pictures, stats, Model};
use netc::data::{self, Dataset};
use netc::train::{train, TrainOptions};

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("classify-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Fixture {
    run_a: PathBuf,
    run_b: PathBuf,
    data: Dataset,
    /// 40 validation images as PNG files, with their labels.
    images: Vec<(PathBuf, usize)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = scratch("fixture");
        let tiny = |seed: u64, name: &str| {
            let out = root.join(name);
            train(&TrainOptions {
                spec: crate_root().join("specs/lenet.net"),
                epochs: Some(0.05),
                seed: Some(seed),
                out: Some(out.clone()),
                quiet: true,
                ..Default::default()
            })
            .expect("a tiny run trains");
            out
        };
        let run_a = tiny(1, "run-a");
        let run_b = tiny(2, "run-b");
        let data = data::open(&crate_root().join("specs/data/mnist-small")).unwrap();
        let val = data.val.as_ref().unwrap();
        let dir = root.join("images");
        std::fs::create_dir_all(&dir).unwrap();
        let images = (0..40)
            .map(|i| {
                let p = dir.join(format!("val-{i:02}.png"));
                data::image::chw_to_image(val.image(i), 1, 28, 28)
                    .save(&p)
                    .unwrap();
                (p, val.labels[i] as usize)
            })
            .collect();
        Fixture {
            run_a,
            run_b,
            data,
            images,
        }
    })
}

fn netc_flat(args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = netc(args);
    (code, out, flat(&err))
}

fn netc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("classify")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Miette wraps long messages; this joins them again.
fn flat(err: &str) -> String {
    err.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn top5_is_ordered_and_probabilities_sum_to_one() {
    let f = fixture();
    let mut m = Model::open(&f.run_a, None, 8).unwrap();
    assert_eq!(m.labels.len(), 10);
    assert_eq!(m.info.parameters, 431_080);
    let entries = list::from_args(
        &f.images
            .iter()
            .take(5)
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
    );
    let r = classify::classify_all(std::slice::from_mut(&mut m), &entries, 5);
    assert_eq!(r.images.len(), 5);
    assert!(r.skipped.is_empty());
    for img in &r.images {
        let probs = &img.probabilities[0];
        assert_eq!(probs.len(), 10);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let top = &img.predictions[0];
        assert_eq!(top.len(), 5);
        assert!(top.windows(2).all(|w| w[0].probability >= w[1].probability));
        let best = probs.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(top[0].probability, best);
        for p in top {
            assert_eq!(p.label, p.index.to_string());
            assert_eq!(probs[p.index], p.probability);
        }
        // The other five are no more probable than the fifth.
        assert!(probs.iter().filter(|&&v| v > top[4].probability).count() <= 4);
    }
    // The command prints the same, in %.
    let (code, out, err) = netc(&[s(&f.run_a), s(&f.images[0].0)]);
    assert_eq!(code, 0, "{err}");
    let first = &r.images[0].predictions[0][0];
    assert!(
        out.contains(&format!(
            "1. {:<16} {:>8}",
            first.label,
            format!("{:.2}%", 100.0 * first.probability)
        )),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count(),
        5,
        "{out}"
    );
    // `--top 10`: ranks 1 to 10, right-aligned, the labels in one column.
    let (code, out, err) = netc(&[s(&f.run_a), s(&f.images[0].0), "--top", "10"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .collect();
    assert_eq!(rows.len(), 10, "{out}");
    assert!(
        rows[0].starts_with("   1. ") && rows[9].starts_with("  10. "),
        "{out}"
    );
    let label_at = |l: &str| l.find(". ").map(|i| i + 2);
    assert!(rows.iter().all(|r| label_at(r) == Some(6)), "{out}");
}

#[test]
fn an_image_file_gets_the_probabilities_of_the_same_dataset_image() {
    let f = fixture();
    let mut m = Model::open(&f.run_a, None, 4).unwrap();
    let val = f.data.val.as_ref().unwrap();
    let from_data: Vec<Vec<f32>> = (0..3).map(|i| m.prepare_u8(val.image(i))).collect();
    let from_files: Vec<Vec<f32>> = (0..3)
        .map(|i| m.prepare(&data::image::decode(&f.images[i].0).unwrap()))
        .collect();
    assert_eq!(from_data, from_files);
    assert_eq!(m.classify(&from_data), m.classify(&from_files));
}

#[test]
fn results_do_not_depend_on_batching() {
    let f = fixture();
    let dir = scratch("batching");
    let paths: Vec<&PathBuf> = f.images.iter().map(|(p, _)| p).collect();
    // The command's default batch.
    let mut m = Model::open(&f.run_a, None, 16).unwrap();
    assert_eq!(m.batch(), 16);
    let mut seen: std::collections::HashMap<PathBuf, Vec<f32>> = Default::default();
    // Lists of 1, 16, 17 and 33 images, starting at different images so each image sits
    // at different positions in its batch.
    for (len, start) in [(1usize, 7usize), (16, 0), (17, 3), (33, 5), (33, 0)] {
        let lines: Vec<String> = (0..len)
            .map(|k| s(paths[(start + k) % paths.len()]).to_string())
            .collect();
        let list_file = dir.join(format!("list-{len}-{start}.txt"));
        std::fs::write(&list_file, lines.join("\n")).unwrap();
        let entries = list::read(&list_file, None, None).unwrap();
        assert_eq!(entries.len(), len);
        let r = classify::classify_all(std::slice::from_mut(&mut m), &entries, 5);
        assert_eq!(r.images.len(), len);
        for (e, img) in entries.iter().zip(&r.images) {
            let p = &img.probabilities[0];
            if let Some(before) = seen.get(&e.path) {
                assert_eq!(
                    before,
                    p,
                    "{} changed with list length {len}",
                    e.path.display()
                );
            } else {
                seen.insert(e.path.clone(), p.clone());
            }
        }
    }
    assert_eq!(seen.len(), 38);
    // The command: one image alone, and the same image inside a list, with 1 and 3 threads.
    let probe = paths[9];
    let list_file = dir.join("list-33-0.txt");
    let probs_of = |args: &[&str], threads: &str| -> Vec<f32> {
        let out = Command::new(env!("CARGO_BIN_EXE_netc"))
            .env("RAYON_NUM_THREADS", threads)
            .arg("classify")
            .args(args)
            .args(["--format", "json", "--top", "10"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let img = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"].as_str().unwrap().ends_with("val-09.png"))
            .unwrap();
        let mut p = vec![0f32; 10];
        for pred in img["predictions"][0].as_array().unwrap() {
            p[pred["index"].as_u64().unwrap() as usize] =
                pred["probability"].as_f64().unwrap() as f32;
        }
        p
    };
    let alone = probs_of(&[s(&f.run_a), s(probe)], "1");
    assert_eq!(alone, seen[probe.as_path()]);
    assert_eq!(
        probs_of(&[s(&f.run_a), "--list", s(&list_file)], "3"),
        alone
    );
    assert_eq!(
        probs_of(&[s(&f.run_a), "--list", s(&list_file)], "1"),
        alone
    );
}

/// Whatever `--batch-size`, an image's position in the batch does not matter.
#[test]
fn position_in_the_batch_does_not_matter_for_any_batch_size() {
    let f = fixture();
    let m0 = Model::open(&f.run_a, None, 1).unwrap();
    let x: Vec<Vec<f32>> = f
        .images
        .iter()
        .map(|(p, _)| m0.prepare(&data::image::decode(p).unwrap()))
        .collect();
    for b in [1usize, 7, 17, 40] {
        let mut m = Model::open(&f.run_a, None, b).unwrap();
        let base = m.classify(&x);
        // Rotate the images so each lands at another position (and another padding).
        for shift in [1usize, 5, 13] {
            let rotated: Vec<&Vec<f32>> = (0..x.len()).map(|i| &x[(i + shift) % x.len()]).collect();
            let p = m.classify(&rotated);
            for (i, row) in p.iter().enumerate() {
                assert_eq!(
                    row,
                    &base[(i + shift) % x.len()],
                    "batch {b}, shift {shift}, image {i}"
                );
            }
        }
    }
}

#[test]
fn list_grammar_and_skipped_lines() {
    let f = fixture();
    let dir = scratch("grammar");
    let spaced = dir.join("my digits");
    std::fs::create_dir_all(&spaced).unwrap();
    std::fs::copy(&f.images[0].0, spaced.join("seven 1.png")).unwrap();
    std::fs::copy(&f.images[1].0, dir.join("b.png")).unwrap();
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    let abs = s(&f.images[2].0).to_string();
    let text = format!(
        "my digits/seven 1.png {}\r\n\r\nb.png\t{}\r\n   \r\nmissing.png 3\r\nbroken.png 1\r\n{abs} {}\r\nb.png 12\r\n",
        f.images[0].1, f.images[1].1, f.images[2].1
    );
    let list_file = dir.join("list.txt");
    std::fs::write(&list_file, &text).unwrap();
    let entries = list::read(&list_file, None, None).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.line.unwrap()).collect::<Vec<_>>(),
        vec![1, 3, 5, 6, 7, 8]
    );
    assert_eq!(entries[0].path, spaced.join("seven 1.png"));
    assert_eq!(entries[0].label, Some(f.images[0].1));
    assert_eq!(entries[4].path, PathBuf::from(&abs));
    let mut m = Model::open(&f.run_a, None, 64).unwrap();
    let r = classify::classify_all(std::slice::from_mut(&mut m), &entries, 5);
    assert_eq!(
        r.images.iter().map(|i| i.line.unwrap()).collect::<Vec<_>>(),
        vec![1, 3, 7]
    );
    let skipped: Vec<(usize, &str)> = r
        .skipped
        .iter()
        .map(|s| (s.line.unwrap(), s.path.as_str()))
        .collect();
    assert_eq!(
        skipped,
        vec![(5, "missing.png"), (6, "broken.png"), (8, "b.png")]
    );
    assert!(
        r.skipped[0].reason.contains("missing.png"),
        "{}",
        r.skipped[0].reason
    );
    assert!(
        r.skipped[1].reason.contains("cannot decode"),
        "{}",
        r.skipped[1].reason
    );
    assert!(
        r.skipped[2].reason.contains("label 12"),
        "{}",
        r.skipped[2].reason
    );
    assert_eq!(r.accuracy.len(), 1);
    assert_eq!(r.accuracy[0].images, 3);
    assert_eq!(r.accuracy[0].confusion.iter().flatten().sum::<usize>(), 3);

    // The command: --image-folder, --limit, the warnings with line numbers and exit 2.
    let (code, out, err) = netc(&[s(&f.run_a), "--list", s(&list_file)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("line 5: skipped `missing.png`"), "{err}");
    assert!(err.contains("line 6: skipped `broken.png`"), "{err}");
    assert!(err.contains("3 of 6 images were skipped"), "{err}");
    assert!(out.contains("top-1 accuracy"), "{out}");
    let (code, out, err) = netc(&[s(&f.run_a), "--list", s(&list_file), "--limit", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains(".png")).count(),
        2,
        "{out}"
    );
    let other = dir.join("lists");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("l.txt"), "b.png\n").unwrap();
    let (code, _, err) = netc(&[s(&f.run_a), "--list", s(&other.join("l.txt"))]);
    assert_eq!(
        code, 2,
        "relative to the list's folder, b.png is missing: {err}"
    );
    let (code, out, err) = netc(&[
        s(&f.run_a),
        "--list",
        s(&other.join("l.txt")),
        "--image-folder",
        s(&dir),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("b.png"), "{out}");
    // A negative label is read as part of the path, and the warning says why.
    std::fs::write(other.join("neg.txt"), "b.png -1\n").unwrap();
    let (code, _, err) = netc(&[
        s(&f.run_a),
        "--list",
        s(&other.join("neg.txt")),
        "--image-folder",
        s(&dir),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        flat(&err).contains("`-1` is a negative number (labels are class numbers, 0 and up)"),
        "{err}"
    );
}

#[test]
fn labelled_list_gives_accuracy_and_confusion_matrix_in_json() {
    let f = fixture();
    let dir = scratch("accuracy");
    let lines: Vec<String> = f
        .images
        .iter()
        .map(|(p, l)| format!("{} {l}", s(p)))
        .collect();
    let list_file = dir.join("val.txt");
    std::fs::write(&list_file, lines.join("\n")).unwrap();
    let (code, out, err) = netc(&[s(&f.run_a), "--list", s(&list_file), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 40);
    let a = &v["accuracy"][0];
    assert_eq!(a["images"], 40);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(a["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 40);
    let diag: u64 = (0..10).map(|i| confusion[i][i]).sum();
    assert!((a["top1"].as_f64().unwrap() - 100.0 * diag as f64 / 40.0).abs() < 1e-9);
    assert!(a["top5"].as_f64().unwrap() >= a["top1"].as_f64().unwrap());
    // Per-class counts are the true labels' counts.
    for c in 0..10 {
        let n = f.images.iter().filter(|(_, l)| *l == c).count() as u64;
        assert_eq!(a["per_class"][c]["images"], n);
    }
    let first = &v["images"][0];
    assert_eq!(first["truth"], f.images[0].1);
    assert_eq!(first["predictions"][0].as_array().unwrap().len(), 5);
}

#[test]
fn two_runs_side_by_side() {
    let f = fixture();
    let dir = scratch("compare");
    let lines: Vec<String> = f
        .images
        .iter()
        .take(6)
        .map(|(p, l)| format!("{} {l}", s(p)))
        .collect();
    let list_file = dir.join("six.txt");
    std::fs::write(&list_file, lines.join("\n")).unwrap();
    let (code, out, err) = netc(&[s(&f.run_a), s(&f.run_b), "--list", s(&list_file)]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(
        header.contains("run-a") && header.contains("run-b") && header.contains("truth"),
        "{out}"
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("val-0")).collect();
    assert_eq!(rows.len(), 6, "{out}");
    // Each row: two cells "label p%" with a mark.
    for r in &rows {
        assert_eq!(r.matches('%').count(), 2, "{r}");
    }
    // One accuracy row per model, then each model's confusion matrix.
    let acc_rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("run-") && l.ends_with('%'))
        .collect();
    assert_eq!(acc_rows.len(), 2, "{out}");
    assert!(
        acc_rows[0].starts_with("run-a") && acc_rows[1].starts_with("run-b"),
        "{out}"
    );
    assert!(
        out.contains("confusion matrix of run-a") && out.contains("confusion matrix of run-b"),
        "{out}"
    );
    // The library agrees with what each run gives alone.
    let mut both = vec![
        Model::open(&f.run_a, None, 4).unwrap(),
        Model::open(&f.run_b, None, 4).unwrap(),
    ];
    let entries = list::read(&list_file, None, None).unwrap();
    let r = classify::classify_all(&mut both, &entries, 1);
    let mut b_alone = Model::open(&f.run_b, None, 4).unwrap();
    let alone = classify::classify_all(std::slice::from_mut(&mut b_alone), &entries, 1);
    for (x, y) in r.images.iter().zip(&alone.images) {
        assert_eq!(x.probabilities[1], y.probabilities[0]);
        assert_eq!(x.predictions.len(), 2);
    }
    assert_eq!(r.accuracy.len(), 2);
    assert_eq!(r.accuracy[1].model, "run-b");
    // A run beside its own snapshot file, and the same run twice: columns of their own.
    let snap = netc::train::snapshot::list(&f.run_a).pop().unwrap();
    let (code, out, err) = netc(&[
        s(&f.run_a),
        s(&snap.2),
        s(&f.run_a),
        "--list",
        s(&list_file),
    ]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    let snap_name = format!("run-a@e{}", snap.0);
    assert!(
        header.contains(&snap_name) && header.contains("run-a#2"),
        "{out}"
    );
    assert!(
        out.contains(&format!("confusion matrix of {snap_name}")),
        "{out}"
    );
}

/// Models with other classes: the list's labels are the first model's class numbers, the
/// second model is scored by class name, and an image of a class it lacks is not scored
/// for it (nor is any image dropped for the first).
#[test]
fn models_with_other_classes_are_scored_by_class_name() {
    let f = fixture();
    let dir = scratch("other-classes");
    let lines: Vec<String> = f
        .images
        .iter()
        .map(|(p, l)| format!("{} {l}", s(p)))
        .collect();
    let list_file = dir.join("all.txt");
    std::fs::write(&list_file, lines.join("\n")).unwrap();
    // run-b's classes in reverse order, and "3" renamed.
    let run_c = dir.join("run-c");
    copy_dir(&f.run_b, &run_c, |_| true);
    let names: Vec<String> = (0..10)
        .rev()
        .map(|i| {
            if i == 3 {
                "three".into()
            } else {
                i.to_string()
            }
        })
        .collect();
    std::fs::write(run_c.join("labels.txt"), names.join("\n") + "\n").unwrap();
    let (code, out, err) = netc(&[s(&f.run_a), s(&run_c), "--list", s(&list_file)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("images of 3 are not scored for run-c"),
        "{err}"
    );
    let entries = list::read(&list_file, None, None).unwrap();
    let mut a_alone = Model::open(&f.run_a, None, 4).unwrap();
    let alone = classify::classify_all(std::slice::from_mut(&mut a_alone), &entries, 1);
    let mut both = vec![
        Model::open(&f.run_a, None, 4).unwrap(),
        Model::open(&run_c, None, 4).unwrap(),
    ];
    let r = classify::classify_all(&mut both, &entries, 1);
    assert_eq!(r.skipped.len(), 0);
    assert_eq!(r.accuracy[0].images, 40);
    assert_eq!(r.accuracy[0].top1, alone.accuracy[0].top1);
    let threes = f.images.iter().filter(|(_, l)| *l == 3).count();
    assert!(threes > 0);
    assert_eq!(r.accuracy[1].images, 40 - threes);
    // run-c is right where its best class's name is the truth's name.
    let right = r
        .images
        .iter()
        .filter(|i| i.truth_label.as_deref() != Some("3"))
        .filter(|i| i.truth_label.as_ref() == Some(&i.predictions[1][0].label))
        .count();
    let want = 100.0 * right as f64 / (40 - threes) as f64;
    assert!((r.accuracy[1].top1 - want).abs() < 1e-9);
    // The table marks run-c's cells by name too.
    for img in &r.images {
        let row = out
            .lines()
            .find(|l| l.starts_with(&img.path))
            .unwrap_or_else(|| panic!("{out}"));
        let ok = img.truth_label.as_ref() == Some(&img.predictions[1][0].label);
        assert_eq!(row.ends_with('✓'), ok, "{row}");
    }
    // No class name in common: nothing to score, and the table says so.
    let letters: Vec<String> = ('a'..='j').map(String::from).collect();
    std::fs::write(run_c.join("labels.txt"), letters.join("\n") + "\n").unwrap();
    let (code, out, err) = netc(&[s(&f.run_a), s(&run_c), "--list", s(&list_file)]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("run-c "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["run-c", "0", "-", "-"]
    );
}

/// A run file netc wrote, damaged: the error names it and says what to do.
#[test]
fn a_damaged_preprocess_file_is_named() {
    let f = fixture();
    let dir = scratch("damaged-pre");
    let run = dir.join("run");
    copy_dir(&f.run_a, &run, |_| true);
    std::fs::write(run.join("preprocess.yaml"), "garbage: [\n").unwrap();
    let (code, _, err) = netc_flat(&[s(&run), s(&f.images[0].0)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("preprocess.yaml is not valid"), "{err}");
    assert!(err.contains("put back the one it wrote"), "{err}");
}

/// A snapshot written mid-epoch (at Ctrl-C) is named by its iteration, and a run's
/// epochs are listed once each.
#[test]
fn a_mid_epoch_snapshot_is_named_by_its_iteration() {
    let f = fixture();
    let dir = scratch("mid-epoch");
    let run = dir.join("int");
    copy_dir(&f.run_a, &run, |_| true);
    let (ep, it, end) = netc::train::snapshot::list(&run).pop().unwrap();
    let mid = run.join(format!("snapshot-e{ep:03}-i{:07}.safetensors", it - 5));
    std::fs::copy(&end, &mid).unwrap();
    let (code, out, err) = netc(&[s(&run), s(&mid), s(&end), s(&f.images[0].0)]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(header.contains(&format!("int@i{}", it - 5)), "{out}");
    assert!(header.contains(&format!("int@e{ep}")), "{out}");
    assert!(!header.contains('#'), "{out}");
    let (code, _, err) = netc(&[s(&run), "--epoch", "7", s(&f.images[0].0)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("its snapshots are of epochs {ep}\n")),
        "{err}"
    );
    // The mid-epoch one alone, picked by --epoch: still named by its iteration.
    std::fs::remove_file(&end).unwrap();
    let (code, out, err) = netc(&[s(&run), "--epoch", &ep.to_string(), s(&f.images[0].0)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("int@i{}", it - 5)), "{out}");
}

#[test]
fn stats_write_every_listed_file_and_histograms_count_every_value() {
    let f = fixture();
    let out_dir = scratch("stats");
    let (code, out, err) = netc(&[
        s(&f.run_a),
        s(&f.images[3].0),
        "--stats",
        "--out",
        s(&out_dir),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files: Vec<String> = serde_json::from_value(v["files"].clone()).unwrap();
    let html = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    for name in &files {
        let p = out_dir.join(name);
        assert!(p.is_file(), "{name} listed but not written");
        if name.ends_with(".png") {
            image::open(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                html.contains(&format!("src=\"{name}\"")),
                "index.html does not show {name}"
            );
        }
    }
    let on_disk = std::fs::read_dir(&out_dir).unwrap().count();
    assert_eq!(on_disk, files.len(), "files on disk but not listed");
    // The folder is no longer empty: a second run is refused unless --force.
    let html_before = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    let again = |force: bool| {
        let mut args = vec![
            s(&f.run_a),
            s(&f.images[4].0),
            "--stats",
            "--out",
            s(&out_dir),
        ];
        if force {
            args.push("--force");
        }
        netc_flat(&args)
    };
    let (code, _, err) = again(false);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("index.html")).unwrap(),
        html_before,
        "nothing was overwritten"
    );
    let (code, _, err) = again(true);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        std::fs::read_to_string(out_dir.join("index.html")).unwrap(),
        html_before,
        "--force wrote the other image's pictures"
    );
    let layers = v["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec!["input", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "softmax"]
    );
    for l in layers {
        for t in l["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .chain(l["params"].as_array().unwrap())
        {
            let shape: Vec<u64> = serde_json::from_value(t["shape"].clone()).unwrap();
            let hist: Vec<u64> = serde_json::from_value(t["histogram"].clone()).unwrap();
            assert_eq!(hist.len(), 20);
            assert_eq!(
                hist.iter().sum::<u64>() + t["nonfinite"].as_u64().unwrap(),
                shape.iter().product::<u64>()
            );
            assert_eq!(t["count"].as_u64().unwrap(), shape.iter().product::<u64>());
            assert!(t["histogram_png"].is_string());
        }
    }
    let by = |n: &str| layers.iter().find(|l| l["name"] == n).unwrap();
    // In-place ReLU: its output is ip1 after the ReLU; ip1's own output is before it.
    let relu = &by("relu1")["outputs"][0];
    assert_eq!(relu["name"], "ip1");
    assert_eq!(relu["in_place"], true);
    assert!(relu["min"].as_f64().unwrap() >= 0.0);
    let ip1 = &by("ip1")["outputs"][0];
    assert_eq!(ip1["in_place"], false);
    assert!(
        ip1["min"].as_f64().unwrap() < 0.0,
        "ip1 before the ReLU has negative values"
    );
    assert_eq!(by("conv1")["parameters"], 520);
    assert_eq!(by("ip1")["parameters"], 400_500);
    assert_eq!(v["parameters"], 431_080);
    assert!(by("conv1")["filters_png"].is_string() && by("conv1")["activations_png"].is_string());
    assert!(by("pool2")["activations_png"].is_string() && by("pool2")["filters_png"].is_null());
    assert!(v["input_png"].is_string());
    // The text form shows the in-place label and a bar per tensor.
    let (code, text, _) = netc(&[s(&f.run_a), s(&f.images[3].0), "--stats"]);
    assert_eq!(code, 0);
    assert!(text.contains("ip1 (in place)"), "{text}");
    assert!(text.contains("total") && text.contains("431,080"), "{text}");
}

#[test]
fn stats_match_the_library_and_the_input_picture_has_the_input_size() {
    let f = fixture();
    let mut m = Model::open(&f.run_a, None, 1).unwrap();
    let x = m.prepare(&data::image::decode(&f.images[4].0).unwrap());
    let r = stats::collect(&mut m, &x, "x", 5);
    let input = &r.layers[0].outputs[0];
    assert_eq!(input.shape, vec![1, 1, 28, 28]);
    let sm = stats::summarize(&x);
    assert_eq!(input.summary, sm);
    let pic = pictures::input_picture(&x, [1, 28, 28]);
    assert_eq!(pic.width() % 28, 0);
    assert_eq!(pic.width(), pic.height());
}

fn copy_dir(from: &Path, to: &Path, keep: impl Fn(&str) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if keep(&name) {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn clear_errors_with_exit_codes() {
    let f = fixture();
    let dir = scratch("errors");
    let img = s(&f.images[0].0);
    // A run folder without a snapshot: exit 2.
    let empty = dir.join("no-snapshot");
    copy_dir(&f.run_a, &empty, |n| !n.starts_with("snapshot-"));
    let (code, _, err) = netc_flat(&[s(&empty), img]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no snapshot"), "{err}");
    // An incompatible spec (conv1 changed after training): exit 1, naming the blob.
    let changed = dir.join("changed-spec");
    copy_dir(&f.run_a, &changed, |_| true);
    let spec = std::fs::read_to_string(changed.join("spec.net")).unwrap();
    std::fs::write(
        changed.join("spec.net"),
        spec.replacen("num_output: 20", "num_output: 16", 1),
    )
    .unwrap();
    let (code, _, err) = netc_flat(&[s(&changed), img]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not fit the spec") && err.contains("conv1.0"),
        "{err}"
    );
    // A missing image: exit 2.
    let (code, _, err) = netc_flat(&[s(&f.run_a), s(&dir.join("nope.png"))]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nope.png") && err.contains("does not exist"),
        "{err}"
    );
    // Not a run folder; an image where the run goes; an epoch without a snapshot.
    let (code, _, err) = netc_flat(&[s(&dir), img]);
    assert_eq!(code, 2);
    assert!(err.contains("not a netc run folder"), "{err}");
    let (code, _, err) = netc_flat(&[img, s(&f.images[1].0)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("val-00.png` is not a run: the first path names the run folder")
            && err.contains("put the run first: netc classify runs/NAME"),
        "{err}"
    );
    // The image first and the run after it (both used to be read as runs, and the error
    // called the image a folder); a file of another kind first.
    let (code, _, err) = netc_flat(&[img, s(&f.run_a)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("val-00.png` is not a run") && err.contains("put the run first"),
        "{err}"
    );
    let (code, _, err) = netc_flat(&[s(&f.run_a.join("metrics.csv")), img]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("metrics.csv` is not a run")
            && err.contains("give a run folder written by `netc train`"),
        "{err}"
    );
    // A binary file as the list is refused at once (it printed every "line" skipped).
    let binary = dir.join("binary.list");
    std::fs::write(&binary, [0x7fu8, b'E', b'L', b'F', 0, 1, b'\n', 2, 0]).unwrap();
    let (code, out, err) = netc_flat(&[s(&f.run_a), "--list", s(&binary)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("binary.list is not a text file"), "{err}");
    assert!(out.is_empty(), "{out}");
    // --limit 0 is refused (it said the list names no image).
    let list = dir.join("one.list");
    std::fs::write(&list, format!("{img} 3\n")).unwrap();
    let (code, _, err) = netc_flat(&[s(&f.run_a), "--list", s(&list), "--limit", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--limit must be at least 1"), "{err}");
    let (code, _, err) = netc_flat(&[s(&f.run_a), img, "--epoch", "9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no snapshot of epoch 9") && err.contains("epochs 1"),
        "{err}"
    );
    // A snapshot file works as the run.
    let snap = netc::train::snapshot::list(&f.run_a).pop().unwrap().2;
    let (code, out, err) = netc_flat(&[s(&snap), img, "--epoch", "1"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("already a snapshot file"), "{err}");
    let (code, out, _) = netc(&[s(&snap), img]);
    assert_eq!(code, 0);
    assert!(
        out.contains(snap.file_name().unwrap().to_str().unwrap()),
        "{out}"
    );
}

/// A spec without a deploy stage: the data layer is the input, and the last layer's scores
/// go through a softmax; the probabilities match the Softmax layer's.
#[test]
fn a_spec_without_deploy_layers_still_classifies() {
    let f = fixture();
    let dir = scratch("no-deploy").join("run");
    copy_dir(&f.run_a, &dir, |_| true);
    let spec = std::fs::read_to_string(dir.join("spec.net")).unwrap();
    let cut = |text: &str, layer: &str| -> String {
        let start = text
            .find(&format!("layer {{\n  name: \"{layer}\""))
            .unwrap();
        let end = start + text[start..].find("\n}\n").unwrap() + 3;
        format!("{}{}", &text[..start], &text[end..])
    };
    let spec =
        cut(&cut(&spec, "input"), "softmax").replacen("  include { stage: \"val\" }\n", "", 1);
    std::fs::write(dir.join("spec.net"), spec).unwrap();
    let mut plain = Model::open(&dir, None, 16).unwrap();
    assert!(!plain.output_is_probability);
    assert_eq!(plain.net.steps[0].ty, "Data");
    let mut deploy = Model::open(&f.run_a, None, 16).unwrap();
    assert!(deploy.output_is_probability);
    let x: Vec<Vec<f32>> = f
        .images
        .iter()
        .take(3)
        .map(|(p, _)| deploy.prepare(&data::image::decode(p).unwrap()))
        .collect();
    for (a, b) in plain.classify(&x).iter().zip(deploy.classify(&x)) {
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn bench_reports_latency_and_throughput() {
    let f = fixture();
    let (code, out, err) = netc(&[
        s(&f.run_a),
        s(&f.images[0].0),
        s(&f.images[1].0),
        "--bench",
        "--bench-seconds",
        "0.4",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["latency"]["median_ms"].as_f64().unwrap() > 0.0);
    assert!(v["latency"]["runs"].as_u64().unwrap() >= 10);
    assert!(v["images_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(v["batch"], 16);
    assert!(v["forward_latency_batch1"]["median_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["images"], 2);
}

/// The real-world digits of ../shared (when present): every file loads whatever its format,
/// bit depth and size, and the labelled ones are scored.
#[test]
fn real_world_digits_all_load() {
    let rw = crate_root().join("../shared/datasets/real-world");
    if !rw.join("LABELS.tsv").is_file() {
        eprintln!("skipping: {} is absent", rw.display());
        return;
    }
    let f = fixture();
    let labels = std::fs::read_to_string(rw.join("LABELS.tsv")).unwrap();
    let dir = scratch("real-world");
    let lines: Vec<String> = labels
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut c = l.split('\t');
            let (file, label) = (c.next()?, c.next()?);
            Some(if label == "-" {
                file.to_string()
            } else {
                format!("{file} {label}")
            })
        })
        .collect();
    let list_file = dir.join("labelled.list");
    std::fs::write(&list_file, lines.join("\n")).unwrap();
    let entries = list::read(&list_file, Some(&rw), None).unwrap();
    assert_eq!(entries.len(), 27);
    let mut m = Model::open(&f.run_a, None, 64).unwrap();
    let r = classify::classify_all(std::slice::from_mut(&mut m), &entries, 5);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.images.len(), 27);
    let labelled = entries.iter().filter(|e| e.label.is_some()).count();
    assert_eq!(r.accuracy[0].images, labelled);
    eprintln!(
        "real-world digits with a tiny run: top-1 {:.1}% over {labelled}",
        r.accuracy[0].top1
    );
    // images.list itself (no labels) through the command.
    let (code, out, err) = netc(&[s(&f.run_a), "--list", s(&rw.join("images.list"))]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("img_")).count(),
        27,
        "{out}"
    );
}
