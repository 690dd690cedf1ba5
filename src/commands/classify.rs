//! `netc classify RUN... [IMAGE...] [--list FILE] [--stats] [--bench]`: classify images
//! with one or several trained runs.

use std::path::PathBuf;

use super::{usage, CmdResult};
use crate::classify::list;
use crate::classify::{bench, classify_all, pictures, stats, Model, Report};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run folder from `netc train` (or a snapshot file inside one), then more runs to
    /// compare, then image files. Runs are the first argument and every later folder or
    /// `.safetensors` file; everything else is an image.
    #[arg(required = true, value_name = "RUN|IMAGE")]
    pub paths: Vec<PathBuf>,
    /// Use the snapshot of this epoch (default: the newest) of every run folder given.
    #[arg(long)]
    pub epoch: Option<usize>,
    /// A list of images, one path a line, optionally followed by an integer label.
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// The folder relative paths in the list are in (default: the list's folder).
    #[arg(long, requires = "list")]
    pub image_folder: Option<PathBuf>,
    /// Classify at most this many lines of the list.
    #[arg(long, requires = "list")]
    pub limit: Option<usize>,
    /// Per-layer statistics and pictures for one image.
    #[arg(long, conflicts_with_all = ["list", "bench"])]
    pub stats: bool,
    /// Where `--stats` writes its pictures and index.html (default: no files). A folder
    /// that is not empty is refused without --force.
    #[arg(long, requires = "stats")]
    pub out: Option<PathBuf>,
    /// Write --stats pictures into a folder that is not empty (files of the same names
    /// are replaced).
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Labels shown per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Images per forward pass. Every pass has this size (a short list or a single image is
    /// padded), so an image's probabilities never depend on the list around it; another
    /// batch size may change their last bits (the matrix products block differently).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// cpu (netc's engine), cuda, cuda:N (the candle lowering on an NVIDIA GPU; needs a
    /// build with `--features cuda`) or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Time single-image latency and list throughput instead of printing predictions.
    #[arg(long)]
    pub bench: bool,
    /// Seconds the benchmark runs for, about.
    #[arg(long, default_value_t = 8.0, requires = "bench")]
    pub bench_seconds: f64,
    /// Output format; every output (predictions, accuracy, --stats, --bench) has a JSON form.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The first path is a run; so is every later folder or `.safetensors` file.
fn split_paths(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut runs = Vec::new();
    let mut images = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let snapshot = p.extension().is_some_and(|e| e == "safetensors");
        if i == 0 || p.is_dir() || snapshot {
            runs.push(p.clone());
        } else {
            images.push(p.clone());
        }
    }
    (runs, images)
}

fn json<T: serde::Serialize>(v: &T) -> miette::Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| miette::miette!("could not write JSON: {e}"))
}

pub fn run(a: Args) -> CmdResult {
    let (runs, images) = split_paths(&a.paths);
    if a.top == 0 {
        return Err(usage("--top must be at least 1", None));
    }
    if a.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1", None));
    }
    if a.limit == Some(0) {
        return Err(usage(
            "--limit must be at least 1",
            Some("leave it out to classify the whole list".into()),
        ));
    }
    // Image arguments must exist before anything is loaded.
    for p in &images {
        if !p.is_file() {
            return Err(usage(
                format!("the image `{}` does not exist", p.display()),
                Some("give image files after the run folder (or --list FILE)".into()),
            ));
        }
    }
    let entries = match &a.list {
        Some(l) => {
            if !images.is_empty() {
                return Err(usage(
                    "give images either as arguments or with --list, not both",
                    None,
                ));
            }
            list::read(l, a.image_folder.as_deref(), a.limit)?
        }
        None => list::from_args(&images),
    };
    if a.stats {
        return run_stats(&a, &runs, &images);
    }
    if a.bench {
        if runs.len() != 1 {
            return Err(usage("--bench times one run; give one", None));
        }
        let r = bench::run(&runs[0], a.epoch, &entries, a.batch_size, a.bench_seconds)?;
        println!(
            "{}",
            if a.format == Format::Json {
                json(&r)?
            } else {
                bench::render(&r)
            }
        );
        return Ok(0);
    }
    // An image given first is named as such, not taken for a run folder with no image.
    if let Some(first) = runs.first().filter(|r| r.is_file()) {
        crate::classify::resolve(first, a.epoch)?;
    }
    if entries.is_empty() {
        return Err(usage(
            match &a.list {
                Some(l) => format!("the list `{}` names no image", l.display()),
                None => format!(
                    "no image to classify: the paths given are folders, read as runs ({})",
                    runs.iter()
                        .map(|r| format!("`{}`", r.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            Some("give image files after the run folder, or --list FILE".into()),
        ));
    }
    let mut models = runs
        .iter()
        .map(|r| {
            let mut m = Model::open(r, a.epoch, a.batch_size)?;
            m.use_device(&a.device)?;
            Ok(m)
        })
        .collect::<miette::Result<Vec<_>>>()?;
    // Two models of one name (the same run twice, or runs of one name in other folders)
    // are told apart in the table's columns: name, name#2, ...
    for i in 1..models.len() {
        let base = models[i].info.name.clone();
        let mut k = 2;
        while models[..i]
            .iter()
            .any(|m| m.info.name == models[i].info.name)
        {
            models[i].info.name = format!("{base}#{k}");
            k += 1;
        }
    }
    for m in &models[1..] {
        if m.labels != models[0].labels {
            let missing: Vec<&str> = models[0]
                .labels
                .iter()
                .filter(|l| !m.labels.contains(l))
                .map(String::as_str)
                .collect();
            let scored = if missing.is_empty() {
                String::new()
            } else {
                format!(
                    "; images of {} are not scored for {}",
                    missing.join(", "),
                    m.info.name
                )
            };
            eprintln!(
                "note: {} and {} have different classes: the list's labels are {}'s class numbers, and {} is scored by class name{scored}",
                models[0].info.name, m.info.name, models[0].info.name, m.info.name
            );
        }
    }
    let report = classify_all(&mut models, &entries, a.top);
    for s in &report.skipped {
        let at = s.line.map_or(String::new(), |l| format!("line {l}: "));
        let file = a
            .list
            .as_ref()
            .map_or(String::new(), |l| format!("{}: ", l.display()));
        eprintln!("warning: {file}{at}skipped `{}`: {}", s.path, s.reason);
    }
    if a.format == Format::Json {
        println!("{}", json(&report)?);
    } else {
        print!("{}", render(&report, a.list.is_some()));
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "error: {} of {} images were skipped (see the warnings above)",
            report.skipped.len(),
            entries.len()
        );
        return Ok(2);
    }
    Ok(0)
}

fn run_stats(a: &Args, runs: &[PathBuf], images: &[PathBuf]) -> CmdResult {
    if runs.len() != 1 || images.len() != 1 {
        return Err(usage(
            "--stats looks at one image with one run: netc classify RUN IMAGE --stats",
            None,
        ));
    }
    if let Some(out) = &a.out {
        let used = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
        if used && !a.force {
            return Err(usage(
                format!("`{}` is not empty", out.display()),
                Some("choose another --out, or add --force to write the pictures into it (files of the same names are replaced)".into()),
            ));
        }
    }
    let mut model = Model::open(&runs[0], a.epoch, a.batch_size)?;
    let img = crate::data::image::decode(&images[0])?;
    let input = model.prepare(&img);
    let mut report = stats::collect(&mut model, &input, &images[0].display().to_string(), a.top);
    if let Some(out) = &a.out {
        pictures::write_all(&mut report, &model, &input, out)?;
    }
    if a.format == Format::Json {
        println!("{}", json(&report)?);
    } else {
        print!("{}", stats::render(&report));
        if a.out.is_none() {
            println!("\n(pass --out DIR for the pictures and an index.html)");
        }
    }
    Ok(0)
}

fn pct(p: f32) -> String {
    format!("{:.2}%", 100.0 * p)
}

/// The report as terminal text: per image its top predictions (one model), or a table
/// with one column per model; then each model's accuracy when there are labels.
pub fn render(r: &Report, from_list: bool) -> String {
    let mut s = String::new();
    if r.models.len() == 1 && !from_list {
        s.push_str(&format!(
            "{} ({})\n",
            r.models[0].name, r.models[0].snapshot
        ));
        for img in &r.images {
            s.push_str(&format!("\n{}\n", img.path));
            // Ranks right-aligned, so that `--top 10` and more keep the columns.
            let rw = img.predictions[0].len().max(1).to_string().len();
            for (k, p) in img.predictions[0].iter().enumerate() {
                s.push_str(&format!(
                    "  {:>rw$}. {:<16} {:>8}\n",
                    k + 1,
                    p.label,
                    pct(p.probability)
                ));
            }
        }
    } else if r.models.len() == 1 {
        s.push_str(&format!(
            "{} ({})\n",
            r.models[0].name, r.models[0].snapshot
        ));
        let w = r
            .images
            .iter()
            .map(|i| i.path.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 60);
        s.push_str(&format!(
            "{:>5}  {:<w$}  {:<8}  top predictions\n",
            "line", "image", "truth"
        ));
        for img in &r.images {
            let top: Vec<String> = img.predictions[0]
                .iter()
                .map(|p| format!("{} {}", p.label, pct(p.probability)))
                .collect();
            s.push_str(&format!(
                "{:>5}  {:<w$}  {:<8}  {}\n",
                img.line.map_or("-".into(), |l| l.to_string()),
                img.path,
                img.truth_label.as_deref().unwrap_or("-"),
                top.join(" | ")
            ));
        }
    } else {
        let w = r
            .images
            .iter()
            .map(|i| i.path.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 60);
        let cw = r
            .models
            .iter()
            .map(|m| m.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(16);
        s.push_str(&format!("{:<w$}  {:<8}", "image", "truth"));
        for m in &r.models {
            s.push_str(&format!("  {:<cw$}", m.name));
        }
        s.push('\n');
        for img in &r.images {
            s.push_str(&format!(
                "{:<w$}  {:<8}",
                img.path,
                img.truth_label.as_deref().unwrap_or("-")
            ));
            for p in &img.predictions {
                let cell = p.first().map_or("-".into(), |p| {
                    // By class name: models with other classes number them otherwise.
                    let mark = match (&img.truth, &img.truth_label) {
                        (Some(_), Some(t)) if *t == p.label => " ✓",
                        (Some(_), _) => " ✗",
                        (None, _) => "",
                    };
                    format!("{} {}{mark}", p.label, pct(p.probability))
                });
                s.push_str(&format!("  {cell:<cw$}"));
            }
            s.push('\n');
        }
    }
    if r.models.len() == 1 {
        for a in &r.accuracy {
            s.push_str(&format!(
                "\n{}: top-1 accuracy {:.2}%, top-5 {:.2}% over {} labelled image{}\n",
                a.model,
                a.top1,
                a.top5,
                a.images,
                if a.images == 1 { "" } else { "s" }
            ));
            s.push_str(&confusion(a));
        }
    } else if !r.accuracy.is_empty() {
        let w = r
            .accuracy
            .iter()
            .map(|a| a.model.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        s.push_str(&format!(
            "\n{:<w$}  {:>7}  {:>8}  {:>8}\n",
            "model", "images", "top-1", "top-5"
        ));
        for a in &r.accuracy {
            if a.images == 0 {
                // No labelled image of a class this model has: nothing to score.
                s.push_str(&format!(
                    "{:<w$}  {:>7}  {:>8}  {:>8}\n",
                    a.model, 0, "-", "-"
                ));
                continue;
            }
            s.push_str(&format!(
                "{:<w$}  {:>7}  {:>7.2}%  {:>7.2}%\n",
                a.model, a.images, a.top1, a.top5
            ));
        }
        for a in &r.accuracy {
            s.push_str(&format!("\nconfusion matrix of {}\n", a.model));
            s.push_str(&confusion(a));
        }
    }
    if !r.skipped.is_empty() {
        s.push_str(&format!(
            "\n{} skipped (see the warnings)\n",
            r.skipped.len()
        ));
    }
    // Table cells are padded; lines need not be.
    s.lines().map(|l| l.trim_end().to_string() + "\n").collect()
}

/// Rows: true class; columns: predicted class; then per-class accuracy.
fn confusion(a: &crate::classify::Accuracy) -> String {
    let labels: Vec<&str> = a.per_class.iter().map(|c| c.label.as_str()).collect();
    let lw = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(17);
    let cw = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(5);
    let mut s = format!("{:<lw$}", "truth \\ predicted");
    for l in &labels {
        s.push_str(&format!(" {l:>cw$}"));
    }
    s.push_str(&format!(" {:>9}\n", "accuracy"));
    for (row, c) in a.confusion.iter().zip(&a.per_class) {
        s.push_str(&format!("{:<lw$}", c.label));
        for v in row {
            s.push_str(&format!(" {v:>cw$}"));
        }
        let acc = c.accuracy.map_or("-".into(), |v| format!("{v:.1}%"));
        s.push_str(&format!(" {acc:>9}\n"));
    }
    s
}
