//! `netc data create`: from MNIST IDX files, a class-folder tree or a list file to a netc
//! dataset folder, with DIGITS' splits, resize modes, mean image and augmentation.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::format::{self, Encoding};
use super::{bad, folder, idx, Dataset, ResizeMode, Split};

/// Data augmentation applied to the training split.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    /// Add an inverted copy (`255 - p`) of every training image.
    Invert,
}

/// Everything `netc data create` takes.
#[derive(Debug, Clone)]
pub struct Options {
    pub src: PathBuf,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub resize: ResizeMode,
    /// `None`: 25%, or the source's own validation set when it has one.
    pub val_percent: Option<f64>,
    pub test_percent: f64,
    pub val_src: Option<PathBuf>,
    pub min_per_class: usize,
    pub max_per_class: Option<usize>,
    /// Keep this fraction of each class of the training source.
    pub fraction: Option<f64>,
    /// Keep this fraction of each class of the validation source (default: `fraction`).
    pub val_fraction: Option<f64>,
    pub augment: Vec<Augment>,
    pub seed: u64,
    pub strict: bool,
    pub image_folder: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            src: PathBuf::new(),
            height: 28,
            width: 28,
            channels: 1,
            resize: ResizeMode::Squash,
            val_percent: None,
            test_percent: 0.0,
            val_src: None,
            min_per_class: 2,
            max_per_class: None,
            fraction: None,
            val_fraction: None,
            augment: Vec::new(),
            seed: 0,
            strict: false,
            image_folder: None,
        }
    }
}

/// What creation did besides the dataset: images skipped, classes dropped, notes.
#[derive(Debug, Default)]
pub struct Report {
    /// `(path, why)` of every unreadable image that was skipped.
    pub skipped: Vec<(String, String)>,
    /// `(class, images)` of every class left out for having too few images.
    pub dropped: Vec<(String, usize)>,
    pub warnings: Vec<String>,
}

/// Where one image comes from.
#[derive(Debug, Clone)]
enum Item {
    File(PathBuf),
    /// Image `index` of in-memory buffer `buf` (IDX files, a netc dataset).
    Mem {
        buf: usize,
        index: usize,
    },
}

/// Decoded images in memory: `C×H×W` u8 each.
#[derive(Debug)]
struct Mem {
    channels: usize,
    height: usize,
    width: usize,
    pixels: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Entry {
    item: Item,
    label: u32,
    source: String,
    /// Where a list file names it (`list:LINE`), for the report of unreadable images.
    at: Option<String>,
    /// `C×H×W`, filled in by [`decode_groups`].
    pixels: Vec<u8>,
}

struct Pools {
    classes: Vec<String>,
    train: Vec<Entry>,
    /// The source's own validation set (t10k, `val/`, or `--val SRC`).
    val: Option<Vec<Entry>>,
    test: Option<Vec<Entry>>,
    mem: Vec<Mem>,
    kind: &'static str,
}

fn idx_entries(bufs: &mut Vec<Mem>, images: &Path, labels: &Path) -> miette::Result<Vec<Entry>> {
    let im = idx::read_images(images)?;
    let lb = idx::read_labels(labels)?;
    if lb.len() != im.n {
        return Err(bad(
            format!(
                "`{}` holds {} labels but `{}` holds {} images",
                labels.display(),
                lb.len(),
                images.display(),
                im.n
            ),
            "use the label file that belongs to the image file",
        ));
    }
    let name = images
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let buf = bufs.len();
    bufs.push(Mem {
        channels: 1,
        height: im.height,
        width: im.width,
        pixels: im.pixels,
    });
    Ok(lb
        .iter()
        .enumerate()
        .map(|(index, &l)| Entry {
            item: Item::Mem { buf, index },
            label: l as u32,
            source: format!("{name}#{index}"),
            at: None,
            pixels: Vec::new(),
        })
        .collect())
}

/// A netc dataset as a source: its splits (train; val and test as the source's own).
fn dataset_pools(ds: &Dataset) -> Pools {
    let mut mem = Vec::new();
    let mut entries = |split: &Split, name: &str| -> Vec<Entry> {
        let buf = mem.len();
        mem.push(Mem {
            channels: ds.channels,
            height: ds.height,
            width: ds.width,
            pixels: split.pixels.clone(),
        });
        (0..split.len())
            .map(|index| Entry {
                item: Item::Mem { buf, index },
                label: split.labels[index],
                source: match split.sources.get(index) {
                    Some(s) if !s.is_empty() => s.clone(),
                    _ => format!("{name}#{index}"),
                },
                at: None,
                pixels: Vec::new(),
            })
            .collect()
    };
    let train = entries(&ds.train, "train");
    let val = ds.val.as_ref().map(|v| entries(v, "val"));
    let test = ds.test.as_ref().map(|t| entries(t, "test"));
    Pools {
        classes: ds.labels.clone(),
        train,
        val,
        test,
        mem,
        kind: "netc-dataset",
    }
}

fn file_entries(
    listing: &folder::Listing,
    classes: &[String],
    what: &Path,
) -> miette::Result<Vec<Entry>> {
    listing
        .items
        .iter()
        .enumerate()
        .map(|(i, (p, l))| {
            let name = &listing.classes[*l as usize];
            let label = classes.iter().position(|c| c == name).ok_or_else(|| {
                bad(
                    format!(
                        "`{}` has class `{name}`, which the training source lacks",
                        what.display()
                    ),
                    "give the validation source the same classes as the training source",
                )
            })?;
            Ok(Entry {
                item: Item::File(p.clone()),
                label: label as u32,
                source: p.display().to_string(),
                at: listing
                    .lines
                    .as_ref()
                    .and_then(|(f, n)| Some(format!("{}:{}", f.display(), n.get(i)?))),
                pixels: Vec::new(),
            })
        })
        .collect()
}

fn listing_of(src: &Path, image_folder: Option<&Path>) -> miette::Result<folder::Listing> {
    if src.is_file() {
        folder::read_list(src, image_folder)
    } else {
        folder::scan_classes(src)
    }
}

fn gather(opts: &Options) -> miette::Result<Pools> {
    let src = &opts.src;
    if !src.exists() {
        return Err(crate::commands::usage(
            format!("`{}` does not exist", src.display()),
            Some("give a folder of class sub-folders, a list file of `path label` lines, or a folder with MNIST's IDX files".into()),
        ));
    }
    let idx_dir = if src.is_file() && idx::is_idx_file(src) {
        src.parent().map(Path::to_path_buf)
    } else {
        Some(src.clone())
    };
    let idx_files = idx_dir
        .as_deref()
        .filter(|d| d.is_dir())
        .and_then(idx::find_files);
    let mut pools = if super::format::looks_like_dataset(src) {
        dataset_pools(&super::format::read(src)?)
    } else if let Some(files) = idx_files {
        let mut bufs = Vec::new();
        let train = idx_entries(&mut bufs, &files.train_images, &files.train_labels)?;
        let val = match &files.test {
            Some((i, l)) => Some(idx_entries(&mut bufs, i, l)?),
            None => None,
        };
        let max = train
            .iter()
            .chain(val.iter().flatten())
            .map(|e| e.label)
            .max()
            .unwrap_or(1);
        Pools {
            classes: (0..=max).map(|l| l.to_string()).collect(),
            train,
            val,
            test: None,
            mem: bufs,
            kind: "mnist-idx",
        }
    } else if src.is_file() {
        let listing = folder::read_list(src, opts.image_folder.as_deref())?;
        let train = file_entries(&listing, &listing.classes, src)?;
        Pools {
            classes: listing.classes,
            train,
            val: None,
            test: None,
            mem: Vec::new(),
            kind: "list-file",
        }
    } else {
        let lay = folder::layout(src);
        let listing = folder::scan_classes(&lay.train)?;
        let train = file_entries(&listing, &listing.classes, &lay.train)?;
        let sub = |p: &Option<PathBuf>| -> miette::Result<Option<Vec<Entry>>> {
            p.as_ref()
                .map(|p| file_entries(&folder::scan_classes(p)?, &listing.classes, p))
                .transpose()
        };
        let (val, test) = (sub(&lay.val)?, sub(&lay.test)?);
        Pools {
            classes: listing.classes,
            train,
            val,
            test,
            mem: Vec::new(),
            kind: "image-folder",
        }
    };
    if let Some(v) = &opts.val_src {
        let listing = listing_of(v, opts.image_folder.as_deref())?;
        pools.val = Some(file_entries(&listing, &pools.classes, v)?);
    }
    Ok(pools)
}

/// Groups entries by label, each group shuffled with `rng`.
fn by_class(entries: Vec<Entry>, classes: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<Entry>> {
    let mut groups = vec![Vec::new(); classes];
    for e in entries {
        groups[e.label as usize].push(e);
    }
    for g in &mut groups {
        g.shuffle(rng);
    }
    groups
}

fn keep_fraction(groups: &mut [Vec<Entry>], f: f64) {
    for g in groups {
        let keep =
            ((g.len() as f64 * f).round() as usize).clamp(usize::from(!g.is_empty()), g.len());
        g.truncate(keep);
    }
}

fn check_percent(name: &str, v: f64) -> miette::Result<()> {
    if !(0.0..100.0).contains(&v) {
        return Err(crate::commands::usage(
            format!("{name} must be in 0..100, not {v}"),
            None,
        ));
    }
    Ok(())
}

/// Builds the dataset in memory (nothing is written).
pub fn build(opts: &Options) -> miette::Result<(Dataset, Report)> {
    let usage = crate::commands::usage;
    if opts.channels != 1 && opts.channels != 3 {
        return Err(usage(
            format!("--channels must be 1 or 3, not {}", opts.channels),
            None,
        ));
    }
    if opts.height == 0 || opts.width == 0 {
        return Err(usage(
            format!("--size {}x{} is empty", opts.height, opts.width),
            None,
        ));
    }
    for f in [opts.fraction, opts.val_fraction].into_iter().flatten() {
        if !(f > 0.0 && f <= 1.0) {
            return Err(usage(
                format!("--fraction must be in (0, 1], not {f}"),
                None,
            ));
        }
    }
    check_percent("--test-percent", opts.test_percent)?;
    if let Some(v) = opts.val_percent {
        check_percent("--val-percent", v)?;
        if v + opts.test_percent >= 100.0 {
            return Err(usage(
                "--val-percent and --test-percent leave no training images".to_string(),
                None,
            ));
        }
    }
    let mut report = Report::default();
    let pools = gather(opts)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let nc = pools.classes.len();

    // The source's own validation set is used unless --val-percent is given (or --val SRC).
    let own_val = match (&pools.val, opts.val_percent, &opts.val_src) {
        (Some(_), None, _) | (Some(_), _, Some(_)) => true,
        (Some(_), Some(_), None) => {
            report.warnings.push(format!(
                "the source's own validation images ({}) are not used: --val-percent splits the training images instead",
                pools.val.as_ref().map_or(0, Vec::len)
            ));
            false
        }
        _ => false,
    };
    let mut train = by_class(pools.train, nc, &mut rng);
    let mut val = if own_val {
        pools.val.map(|v| by_class(v, nc, &mut rng))
    } else {
        None
    };
    let mut test = pools.test.map(|t| by_class(t, nc, &mut rng));
    if let Some(f) = opts.fraction {
        keep_fraction(&mut train, f);
        if let Some(t) = &mut test {
            keep_fraction(t, f);
        }
    }
    if let (Some(v), Some(f)) = (&mut val, opts.val_fraction.or(opts.fraction)) {
        keep_fraction(v, f);
    }
    if let Some(m) = opts.max_per_class {
        for g in &mut train {
            g.truncate(m);
        }
    }

    // Decode (unreadable images are skipped, or fatal with --strict).
    decode_groups(&mut train, &pools.mem, opts, "training", &mut report)?;
    for groups in [val.as_mut(), test.as_mut()].into_iter().flatten() {
        decode_groups(groups, &pools.mem, opts, "validation/test", &mut report)?;
    }

    // Classes with too few images are left out; labels are renumbered.
    let mut keep = Vec::new();
    for (c, g) in train.iter().enumerate() {
        let total = g.len() + val.as_ref().map_or(0, |v| v[c].len());
        if total < opts.min_per_class.max(1) {
            report.dropped.push((pools.classes[c].clone(), total));
        } else {
            keep.push(c);
        }
    }
    for (c, n) in &report.dropped {
        report.warnings.push(format!(
            "class `{c}` has {n} image{} (fewer than --min-per-class {}); left out",
            if *n == 1 { "" } else { "s" },
            opts.min_per_class
        ));
    }
    if keep.len() < 2 {
        return Err(bad(
            format!(
                "`{}` gives {} class{} with at least {} images; a classifier needs at least 2",
                opts.src.display(),
                keep.len(),
                if keep.len() == 1 { "" } else { "es" },
                opts.min_per_class
            ),
            "add more class folders or images, or lower --min-per-class",
        ));
    }
    let labels: Vec<String> = keep.iter().map(|&c| pools.classes[c].clone()).collect();
    let relabel = |mut groups: Vec<Vec<Entry>>| -> Vec<Vec<Entry>> {
        keep.iter()
            .enumerate()
            .map(|(new, &old)| {
                let mut g = std::mem::take(&mut groups[old]);
                g.iter_mut().for_each(|e| e.label = new as u32);
                g
            })
            .collect()
    };
    let mut train = relabel(train);
    let mut val = val.map(relabel);
    let mut test = test.map(relabel);

    // Stratified split of the training images.
    if val.is_none() || opts.test_percent > 0.0 {
        let vp = if val.is_none() {
            opts.val_percent.unwrap_or(25.0)
        } else {
            0.0
        };
        let tp = opts.test_percent;
        let mut vs: Vec<Vec<Entry>> = vec![Vec::new(); train.len()];
        let mut ts: Vec<Vec<Entry>> = vec![Vec::new(); train.len()];
        for (c, g) in train.iter_mut().enumerate() {
            let n = g.len();
            let nv = ((n as f64 * vp / 100.0).round() as usize).min(n.saturating_sub(1));
            let nt = ((n as f64 * tp / 100.0).round() as usize).min(n.saturating_sub(1 + nv));
            ts[c] = g.split_off(n - nt);
            vs[c] = g.split_off(n - nt - nv);
        }
        if val.is_none() && vp > 0.0 {
            val = Some(vs);
        }
        if tp > 0.0 {
            test = Some(match test {
                Some(mut t) => {
                    t.iter_mut().zip(ts).for_each(|(a, b)| a.extend(b));
                    t
                }
                None => ts,
            });
        }
    }

    let image_len = opts.channels * opts.height * opts.width;
    let mut assemble = |groups: Vec<Vec<Entry>>| -> Split {
        let mut entries: Vec<Entry> = groups.into_iter().flatten().collect();
        entries.shuffle(&mut rng);
        let mut split = Split {
            pixels: Vec::with_capacity(entries.len() * image_len),
            ..Split::default()
        };
        for e in entries {
            split.pixels.extend_from_slice(&e.pixels);
            split.labels.push(e.label);
            split.sources.push(e.source);
        }
        split
    };
    let mut train_split = assemble(std::mem::take(&mut train));
    let val_split = val.map(&mut assemble);
    let test_split = test.map(&mut assemble);
    if train_split.is_empty() {
        return Err(bad(
            format!("`{}` gives no readable training images", opts.src.display()),
            "check the source: every image was unreadable or went to validation",
        ));
    }
    for a in &opts.augment {
        match a {
            Augment::Invert => invert_union(&mut train_split),
        }
    }
    let mean = mean_image(&train_split, image_len);

    let info = serde_yaml::to_value(serde_json::json!({
        "source": opts.src.display().to_string(),
        "source_kind": pools.kind,
        "val_source": opts.val_src.as_ref().map(|p| p.display().to_string()),
        "created": utc_now(),
        "netc_version": env!("CARGO_PKG_VERSION"),
        "seed": opts.seed,
        "augmentation": opts.augment.iter().map(|a| match a {
            Augment::Invert => "invert: every training image is also present inverted (255 - p); the training split is the union",
        }).collect::<Vec<_>>(),
        "options": {
            "size": format!("{}x{}", opts.height, opts.width),
            "val_percent": opts.val_percent,
            "val_from_source": own_val,
            "test_percent": opts.test_percent,
            "fraction": opts.fraction,
            "val_fraction": opts.val_fraction,
            "min_per_class": opts.min_per_class,
            "max_per_class": opts.max_per_class,
            "strict": opts.strict,
        },
        "skipped_images": report.skipped.len(),
        "dropped_classes": report.dropped.iter().map(|(c, n)| format!("{c} ({n} images)")).collect::<Vec<_>>(),
    }))
    .map_err(|e| bad(format!("cannot describe the dataset: {e}"), "this is a bug in netc"))?;
    let ds = Dataset {
        root: PathBuf::new(),
        labels,
        channels: opts.channels,
        height: opts.height,
        width: opts.width,
        resize: opts.resize,
        train: train_split,
        val: val_split,
        test: test_split,
        mean: Some(mean),
        info,
    };
    Ok((ds, report))
}

/// Builds the dataset and writes it to `out` (atomically).
pub fn create(
    opts: &Options,
    out: &Path,
    encoding: Encoding,
    force: bool,
) -> miette::Result<(Dataset, Report)> {
    if out.exists() && !force {
        return Err(crate::commands::usage(
            format!("`{}` already exists", out.display()),
            Some("choose another --out, or add --force to replace it".into()),
        ));
    }
    let (mut ds, report) = build(opts)?;
    format::write(&ds, out, encoding, force)?;
    ds.root = out.to_path_buf();
    Ok((ds, report))
}

/// Decodes every entry in place; unreadable ones are removed and reported (or, with
/// `--strict`, fatal). Each image's fill noise comes from a generator seeded by the seed and
/// its source, so it does not depend on order or threads.
fn decode_groups(
    groups: &mut [Vec<Entry>],
    bufs: &[Mem],
    opts: &Options,
    what: &str,
    report: &mut Report,
) -> miette::Result<()> {
    let mut failed = Vec::new();
    for g in groups.iter_mut() {
        let results: Vec<Result<Vec<u8>, String>> = g
            .par_iter()
            .map(|e| {
                let h = e.source.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                });
                load_entry(e, bufs, opts, &mut ChaCha8Rng::seed_from_u64(opts.seed ^ h))
            })
            .collect();
        let entries = std::mem::take(g);
        for (mut e, r) in entries.into_iter().zip(results) {
            match r {
                Ok(px) => {
                    e.pixels = px;
                    g.push(e);
                }
                Err(why) => failed.push(match e.at {
                    Some(at) => (format!("{} ({at})", e.source), why),
                    None => (e.source, why),
                }),
            }
        }
    }
    if !failed.is_empty() && opts.strict {
        let list: Vec<String> = failed.iter().map(|(p, w)| format!("  {p}: {w}")).collect();
        return Err(bad(
            format!(
                "{} unreadable {what} image{}:\n{}",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" },
                list.join("\n")
            ),
            "fix or remove these files; `netc data create` without --strict makes a dataset that leaves them out",
        ));
    }
    report.skipped.extend(failed);
    Ok(())
}

fn load_entry(
    e: &Entry,
    bufs: &[Mem],
    opts: &Options,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<u8>, String> {
    use super::image::{fit, hwc_to_chw};
    let hwc = match &e.item {
        Item::File(p) => {
            let img = super::image::decode(p).map_err(|r| r.to_string())?;
            super::image::to_channels(&img, opts.channels)
        }
        Item::Mem { buf, index } => {
            let b = &bufs[*buf];
            let n = b.channels * b.height * b.width;
            let chw = &b.pixels[index * n..(index + 1) * n];
            let hwc = super::image::chw_to_hwc(chw, b.channels, b.height, b.width);
            super::image::convert_channels(&hwc, opts.channels)
        }
    };
    Ok(hwc_to_chw(&fit(
        &hwc,
        opts.height,
        opts.width,
        opts.resize,
        rng,
    )))
}

/// Appends an inverted copy (`255 - p`) of every image: the training split becomes the union.
pub fn invert_union(split: &mut Split) {
    let inv: Vec<u8> = split.pixels.iter().map(|p| 255 - p).collect();
    split.pixels.extend_from_slice(&inv);
    let labels = split.labels.clone();
    split.labels.extend(labels);
    let sources: Vec<String> = split
        .sources
        .iter()
        .map(|s| format!("{s} (inverted)"))
        .collect();
    split.sources.extend(sources);
}

/// The per-pixel mean over a split's images.
pub fn mean_image(split: &Split, image_len: usize) -> Vec<f32> {
    let mut sum = vec![0u64; image_len];
    for img in split.pixels.chunks_exact(image_len.max(1)) {
        for (s, &p) in sum.iter_mut().zip(img) {
            *s += p as u64;
        }
    }
    let n = split.len().max(1) as f64;
    sum.iter().map(|&s| (s as f64 / n) as f32).collect()
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_now_is_iso8601() {
        let t = utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(
            t.ends_with('Z') && &t[4..5] == "-" && &t[10..11] == "T",
            "{t}"
        );
        let year: i32 = t[..4].parse().unwrap();
        assert!(year >= 2024, "{t}");
    }

    #[test]
    fn fractions_are_stratified_and_keep_one() {
        let e = |label| Entry {
            item: Item::File(PathBuf::new()),
            label,
            source: String::new(),
            at: None,
            pixels: vec![],
        };
        let mut groups = vec![
            (0..10).map(|_| e(0)).collect::<Vec<_>>(),
            vec![e(1)],
            vec![],
        ];
        keep_fraction(&mut groups, 0.25);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 1, 0]
        );
    }

    #[test]
    fn mean_and_invert() {
        let mut s = Split {
            pixels: vec![0, 10, 200, 30],
            labels: vec![0, 1],
            sources: vec!["a".into(), "b".into()],
        };
        assert_eq!(mean_image(&s, 2), vec![100.0, 20.0]);
        invert_union(&mut s);
        assert_eq!(s.pixels, vec![0, 10, 200, 30, 255, 245, 55, 225]);
        assert_eq!(s.labels, vec![0, 1, 0, 1]);
        assert_eq!(s.sources[3], "b (inverted)");
    }
}
