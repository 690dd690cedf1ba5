//! `netc data`: create, export and show datasets.

use std::path::{Path, PathBuf};

use super::{usage, CmdResult};
use crate::data::create::{self, Augment, Options};
use crate::data::format::Encoding;
use crate::data::{self, show, ResizeMode};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Make a dataset from a folder of class sub-folders, a list file or MNIST IDX files.
    Create(Box<CreateArgs>),
    /// Write a dataset as class folders of PNGs (`train/CLASS/…`, `val/CLASS/…`).
    Export(ExportArgs),
    /// Classes, counts, size; writes the mean image and a grid of samples per class.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// A folder of class sub-folders (optionally `train/` and `val/` sub-trees), a list file
    /// of `path label` lines, a folder with MNIST's IDX files (raw or .gz), or a netc dataset.
    pub src: PathBuf,
    /// The dataset folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Image size, HEIGHTxWIDTH (or one number for a square).
    #[arg(long, default_value = "28x28", value_parser = parse_size)]
    pub size: (usize, usize),
    /// 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// How images are fitted to the size.
    #[arg(long, value_enum, default_value_t = ResizeMode::Squash)]
    pub resize: ResizeMode,
    /// Percentage of each class held out for validation (default 25, or the source's own
    /// validation images when it has them: MNIST's t10k files, a `val/` folder, `--val`).
    #[arg(long)]
    pub val_percent: Option<f64>,
    /// Percentage of each class held out as a test split.
    #[arg(long, default_value_t = 0.0)]
    pub test_percent: f64,
    /// A separate validation source (folder or list file).
    #[arg(long = "val")]
    pub val_src: Option<PathBuf>,
    /// Classes with fewer images are left out (with a warning).
    #[arg(long, default_value_t = 2)]
    pub min_per_class: usize,
    /// Keep at most this many training images per class.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_per_class: Option<usize>,
    /// Keep this fraction of every class (stratified, seeded), e.g. 0.1667.
    #[arg(long)]
    pub fraction: Option<f64>,
    /// The fraction of the source's own validation images to keep (default: --fraction).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Augment the training split: `invert` adds an inverted copy of every image.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub augment: Vec<Augment>,
    /// Seed for the split, the shuffles and fill noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How pixel files are stored: raw (fastest), gz (small), png.
    #[arg(long, value_enum, default_value_t = Encoding::Raw)]
    pub encoding: Encoding,
    /// Replace an existing dataset at --out.
    #[arg(long)]
    pub force: bool,
    /// Stop at the first unreadable image instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// The folder that relative paths in a list file are joined to (default: the list's).
    #[arg(long)]
    pub image_folder: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A dataset (netc dataset folder, MNIST IDX folder or class folders).
    pub dataset: PathBuf,
    /// The folder to write `train/` and `val/` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Write into an existing folder.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A dataset (netc dataset folder, MNIST IDX folder or class folders).
    pub dataset: PathBuf,
    /// Where to write mean.png and the sample grids (default: `<dataset name>-show/` in the current folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sample images per class in the grids.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Replace mean.png and samples-*.png where the folder already has them.
    #[arg(long)]
    pub force: bool,
}

/// The largest side `--size` takes: 16384 pixels (a 16384×16384 RGB image is already 768
/// MiB a copy).
const MAX_SIDE: usize = 16384;

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not a size: write HEIGHTxWIDTH, e.g. 28x28");
    let parse = |t: &str| t.trim().parse::<usize>().ok().filter(|&v| v > 0);
    let (h, w) = match s.split_once(['x', 'X', '×']) {
        Some((h, w)) => (parse(h).ok_or_else(bad)?, parse(w).ok_or_else(bad)?),
        None => parse(s).map(|v| (v, v)).ok_or_else(bad)?,
    };
    if h > MAX_SIDE || w > MAX_SIDE {
        return Err(format!(
            "`{s}` is larger than netc resizes images to ({MAX_SIDE} pixels a side)"
        ));
    }
    Ok((h, w))
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        DataCommand::Create(a) => run_create(*a),
        DataCommand::Export(a) => run_export(a),
        DataCommand::Show(a) => run_show(a),
    }
}

fn run_create(a: CreateArgs) -> CmdResult {
    let opts = Options {
        src: a.src,
        height: a.size.0,
        width: a.size.1,
        channels: a.channels,
        resize: a.resize,
        val_percent: a.val_percent,
        test_percent: a.test_percent,
        val_src: a.val_src,
        min_per_class: a.min_per_class,
        max_per_class: a.max_per_class,
        fraction: a.fraction,
        val_fraction: a.val_fraction,
        augment: a.augment,
        seed: a.seed,
        strict: a.strict,
        image_folder: a.image_folder,
    };
    let start = std::time::Instant::now();
    let (ds, report) = create::create(&opts, &a.out, a.encoding, a.force)?;
    for (path, why) in &report.skipped {
        eprintln!("warning: skipped unreadable image {path}: {why}");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    println!("wrote {}", a.out.display());
    print_summary(&ds);
    if !report.skipped.is_empty() {
        println!(
            "skipped: {} unreadable image(s), listed above",
            report.skipped.len()
        );
    }
    println!("took {:.2} s", start.elapsed().as_secs_f64());
    Ok(0)
}

fn print_summary(ds: &data::Dataset) {
    println!(
        "{} classes, {}x{} pixels, {} channel{}, resize {}",
        ds.labels.len(),
        ds.height,
        ds.width,
        ds.channels,
        if ds.channels == 1 { "" } else { "s" },
        ds.resize
    );
    let splits: Vec<(&str, &data::Split)> = [
        ("train", Some(&ds.train)),
        ("val", ds.val.as_ref()),
        ("test", ds.test.as_ref()),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    let counts: Vec<Vec<usize>> = splits
        .iter()
        .map(|(_, s)| s.counts(ds.labels.len()))
        .collect();
    let width = ds
        .labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut head = format!("{:<width$}", "class");
    for (n, _) in &splits {
        head.push_str(&format!(" {n:>8}"));
    }
    println!("{head}");
    for (c, name) in ds.labels.iter().enumerate() {
        let mut line = format!("{name:<width$}");
        for k in &counts {
            line.push_str(&format!(" {:>8}", k[c]));
        }
        println!("{line}");
    }
    let mut total = format!("{:<width$}", "total");
    for (_, s) in &splits {
        total.push_str(&format!(" {:>8}", s.len()));
    }
    println!("{total}");
    if let Some(serde_yaml::Value::Sequence(a)) = ds.info.get("augmentation") {
        for v in a {
            if let Some(s) = v.as_str() {
                println!("augmentation: {s}");
            }
        }
    }
}

fn run_export(a: ExportArgs) -> CmdResult {
    if a.out.exists() && !a.force {
        return Err(usage(
            format!("`{}` already exists", a.out.display()),
            Some("choose another --out, or add --force to write into it".into()),
        ));
    }
    let ds = data::open(&a.dataset)?;
    // A new folder is written under a temporary name and renamed when complete: an
    // interrupted export leaves no half folder that `data create` would take for whole.
    let n = if a.out.exists() {
        show::export(&ds, &a.out)?
    } else {
        data::format::write_whole(&a.out, |tmp| show::export(&ds, tmp))?
    };
    println!("wrote {n} PNG files under {}", a.out.display());
    Ok(0)
}

fn default_show_dir(dataset: &Path) -> PathBuf {
    // In the current folder, never beside the dataset (which may be shared or read-only).
    let name = dataset
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "dataset".into());
    PathBuf::from(format!("{name}-show"))
}

fn run_show(a: ShowArgs) -> CmdResult {
    let start = std::time::Instant::now();
    let ds = data::open(&a.dataset)?;
    let took = start.elapsed().as_secs_f64();
    println!("dataset {} (loaded in {took:.3} s)", a.dataset.display());
    if let Some(src) = ds.info.get("source").and_then(|v| v.as_str()) {
        println!("source: {src}");
    }
    if let Some(c) = ds.info.get("created").and_then(|v| v.as_str()) {
        println!("created: {c}");
    }
    print_summary(&ds);
    let out = a.out.unwrap_or_else(|| default_show_dir(&a.dataset));
    let there: Vec<String> = ["mean.png", "samples-train.png", "samples-val.png"]
        .into_iter()
        .filter(|f| out.join(f).exists())
        .map(String::from)
        .collect();
    if !there.is_empty() && !a.force {
        return Err(usage(
            format!("`{}` already has {}", out.display(), there.join(", ")),
            Some("choose another --out, or add --force to replace them".into()),
        ));
    }
    std::fs::create_dir_all(&out).map_err(|e| data::io_err("create", &out, e))?;
    let mean = ds
        .mean
        .clone()
        .unwrap_or_else(|| create::mean_image(&ds.train, ds.image_len()));
    let with_mean = data::Dataset {
        mean: Some(mean),
        ..ds.clone()
    };
    if let Some(img) = show::mean_picture(&with_mean) {
        let p = out.join("mean.png");
        data::save_png(&img, &p)?;
        println!("mean image: {}", p.display());
    }
    for (name, split) in [("train", Some(&ds.train)), ("val", ds.val.as_ref())] {
        let Some(split) = split else { continue };
        let p = out.join(format!("samples-{name}.png"));
        data::save_png(&show::sample_grid(&ds, split, a.samples).into(), &p)?;
        println!("{name} samples: {}", p.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("28x28"), Ok((28, 28)));
        assert_eq!(parse_size("32X24"), Ok((32, 24)));
        assert_eq!(parse_size("256×128"), Ok((256, 128)));
        assert_eq!(parse_size("64"), Ok((64, 64)));
        for bad in ["0x28", "28x", "x", "-1", "28x28x3", ""] {
            assert!(
                parse_size(bad).unwrap_err().contains("HEIGHTxWIDTH"),
                "{bad}"
            );
        }
    }
}
