//! netc's dataset folder: what `netc data create` writes and [`read`] loads.
//!
//! ```text
//! DATASET/
//!   info.yaml            everything about the dataset; written last, with `complete: true`
//!   labels.txt           class names, one a line; line i is label i
//!   train.pixels         N×C×H×W u8, no header (`.gz`: gzip of the same; `.png`: a grey
//!                        PNG of W columns and N·C·H rows holding the same bytes)
//!   train.labels         N labels: u8 when there are ≤ 256 classes, else u32 little-endian
//!                        (info.yaml: `label_type`)
//!   train.sources.txt    where each image came from, one a line
//!   val.* / test.*       the same for the other splits, when present
//!   mean.f32             the C×H×W mean of the training split, f32 little-endian, 0..255
//!   mean.png             the same rounded to u8
//! ```
//! The folder is written as `DATASET.tmp-…` and renamed when complete, so a half-written
//! dataset is never read as a whole one; [`read`] also refuses an `info.yaml` without
//! `complete: true`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{bad, io_err, Dataset, ResizeMode, Split};

pub const FORMAT: &str = "netc-dataset";
pub const FORMAT_VERSION: u32 = 1;

/// How pixel files are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Raw bytes (`train.pixels`): the fastest to load.
    #[default]
    Raw,
    /// Gzip-compressed raw bytes (`train.pixels.gz`): small, still fast.
    Gz,
    /// A lossless grey PNG strip (`train.pixels.png`): small, viewable.
    Png,
}

impl Encoding {
    fn suffix(self) -> &'static str {
        match self {
            Encoding::Raw => "",
            Encoding::Gz => ".gz",
            Encoding::Png => ".png",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitInfo {
    pub count: usize,
    pub pixels: String,
    pub labels: String,
    /// `u8` or `u32le`.
    pub label_type: String,
    pub sources: String,
    /// Images per class name.
    #[serde(default)]
    pub per_class: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeanInfo {
    /// `mean.f32`: C×H×W f32 little-endian.
    pub raw: String,
    pub png: String,
}

/// The part of `info.yaml` that [`read`] needs; the rest is kept in [`Dataset::info`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Core {
    pub format: String,
    pub format_version: u32,
    #[serde(default)]
    pub complete: bool,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub resize: ResizeMode,
    pub classes: usize,
    pub encoding: Encoding,
    pub splits: BTreeMap<String, SplitInfo>,
    #[serde(default)]
    pub mean: Option<MeanInfo>,
}

/// Whether `dir` is (or claims to be) a netc dataset folder.
pub fn looks_like_dataset(dir: &Path) -> bool {
    dir.join("info.yaml").is_file()
        || (dir.join("labels.txt").is_file()
            && ["", ".gz", ".png"]
                .iter()
                .any(|s| dir.join(format!("train.pixels{s}")).is_file()))
}

fn read_file(path: &Path) -> miette::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_err("read", path, e))
}

/// Reads a dataset folder written by [`write`].
pub fn read(dir: &Path) -> miette::Result<Dataset> {
    let info_path = dir.join("info.yaml");
    if !info_path.is_file() {
        return Err(bad(
            format!(
                "`{}` has no info.yaml: it is not a complete netc dataset",
                dir.display()
            ),
            "the dataset was not written completely; make it again with `netc data create`",
        ));
    }
    let text = std::fs::read_to_string(&info_path).map_err(|e| io_err("read", &info_path, e))?;
    let info: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        bad(
            format!("`{}` is not valid YAML: {e}", info_path.display()),
            "make the dataset again with `netc data create`",
        )
    })?;
    let core: Core = serde_yaml::from_value(info.clone()).map_err(|e| {
        bad(
            format!(
                "`{}` is not a netc dataset description: {e}",
                info_path.display()
            ),
            "make the dataset again with `netc data create`",
        )
    })?;
    if core.format != FORMAT || core.format_version > FORMAT_VERSION {
        return Err(bad(
            format!(
                "`{}` describes format `{}` version {}; this netc reads `{FORMAT}` up to version {FORMAT_VERSION}",
                info_path.display(),
                core.format,
                core.format_version
            ),
            "make the dataset again with this netc's `netc data create`",
        ));
    }
    if !core.complete {
        return Err(bad(
            format!(
                "`{}` is not marked complete: the dataset was not written to the end",
                info_path.display()
            ),
            "make the dataset again with `netc data create --force`",
        ));
    }
    let labels_path = dir.join("labels.txt");
    let labels_text =
        std::fs::read_to_string(&labels_path).map_err(|e| io_err("read", &labels_path, e))?;
    let labels: Vec<String> = labels_text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    if labels.len() != core.classes {
        return Err(bad(
            format!(
                "`{}` lists {} classes but info.yaml says {}",
                labels_path.display(),
                labels.len(),
                core.classes
            ),
            "the dataset folder was edited or is corrupt; make it again with `netc data create`",
        ));
    }
    // Sizes a dataset can hold: every image under 2^31 values (the product checked, so
    // that edited sizes cannot wrap around).
    let image_len = core
        .channels
        .checked_mul(core.height)
        .and_then(|v| v.checked_mul(core.width))
        .filter(|&v| v > 0 && v < 1 << 31)
        .ok_or_else(|| {
            bad(
                format!(
                    "{} says the images are {}×{}×{}, which is not a size netc can hold",
                    info_path.display(),
                    core.channels,
                    core.height,
                    core.width
                ),
                "the dataset folder was edited or is corrupt; make it again with `netc data create`",
            )
        })?;
    let read_split = |name: &str| -> miette::Result<Option<Split>> {
        core.splits
            .get(name)
            .map(|s| read_split(dir, s, image_len, core.classes))
            .transpose()
    };
    let train = read_split("train")?.ok_or_else(|| {
        bad(
            format!("`{}` lists no train split", info_path.display()),
            "make the dataset again with `netc data create`",
        )
    })?;
    let val = read_split("val")?;
    let test = read_split("test")?;
    let mean = match &core.mean {
        Some(m) => {
            let p = dir.join(&m.raw);
            let bytes = read_file(&p)?;
            if bytes.len() != image_len * 4 {
                return Err(bad(
                    format!(
                        "`{}` holds {} bytes, expected {} (C×H×W f32)",
                        p.display(),
                        bytes.len(),
                        image_len * 4
                    ),
                    "make the dataset again with `netc data create`",
                ));
            }
            Some(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        }
        None => None,
    };
    Ok(Dataset {
        root: dir.to_path_buf(),
        labels,
        channels: core.channels,
        height: core.height,
        width: core.width,
        resize: core.resize,
        train,
        val,
        test,
        mean,
        info,
    })
}

fn read_split(
    dir: &Path,
    s: &SplitInfo,
    image_len: usize,
    classes: usize,
) -> miette::Result<Split> {
    let pp = dir.join(&s.pixels);
    let pixels = if s.pixels.ends_with(".png") {
        let img = image::open(&pp).map_err(|e| {
            bad(
                format!("cannot decode `{}`: {e}", pp.display()),
                "make the dataset again",
            )
        })?;
        img.into_luma8().into_raw()
    } else {
        super::idx::read_maybe_gz(&pp)?
    };
    if Some(pixels.len()) != s.count.checked_mul(image_len) {
        return Err(bad(
            format!(
                "`{}` holds {} bytes, expected {} images × {} = {}",
                pp.display(),
                pixels.len(),
                s.count,
                image_len,
                s.count.saturating_mul(image_len)
            ),
            "the file is truncated or corrupt; make the dataset again with `netc data create`",
        ));
    }
    let lp = dir.join(&s.labels);
    let raw = read_file(&lp)?;
    let labels: Vec<u32> = match s.label_type.as_str() {
        "u8" => raw.iter().map(|&b| b as u32).collect(),
        "u32le" => {
            if raw.len() % 4 != 0 {
                return Err(bad(
                    format!("`{}` is not a whole number of u32 labels", lp.display()),
                    "make the dataset again",
                ));
            }
            raw.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
        other => {
            return Err(bad(
                format!(
                    "`{}`: unknown label_type `{other}` in info.yaml (u8 or u32le)",
                    lp.display()
                ),
                "make the dataset again with `netc data create`",
            ))
        }
    };
    if labels.len() != s.count {
        return Err(bad(
            format!(
                "`{}` holds {} labels, expected {}",
                lp.display(),
                labels.len(),
                s.count
            ),
            "the file is truncated or corrupt; make the dataset again with `netc data create`",
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(bad(
            format!(
                "`{}`: label {} of image {i} is beyond the last class ({})",
                lp.display(),
                labels[i],
                classes - 1
            ),
            "make the dataset again with `netc data create`",
        ));
    }
    let sp = dir.join(&s.sources);
    let sources: Vec<String> = match std::fs::read_to_string(&sp) {
        Ok(t) => t
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut sources = sources;
    sources.resize(s.count, String::new());
    Ok(Split {
        pixels,
        labels,
        sources,
    })
}

/// Per-class counts keyed by class name, for info.yaml.
pub fn per_class(split: &Split, labels: &[String]) -> BTreeMap<String, usize> {
    labels
        .iter()
        .cloned()
        .zip(split.counts(labels.len()))
        .collect()
}

/// Writes `ds` to `out` atomically (into `OUT.tmp-…`, then renamed). `ds.info` (a mapping)
/// is written into info.yaml with the format's own keys set over it. An existing `out` is
/// replaced only with `force`, and only when it is a netc dataset or empty.
pub fn write(ds: &Dataset, out: &Path, encoding: Encoding, force: bool) -> miette::Result<()> {
    if out.exists() {
        if !force {
            return Err(crate::commands::usage(
                format!("`{}` already exists", out.display()),
                Some("choose another --out, or add --force to replace it".into()),
            ));
        }
        let empty = out
            .read_dir()
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !(out.is_dir() && (empty || looks_like_dataset(out))) {
            return Err(crate::commands::usage(
                format!(
                    "`{}` exists and is not a netc dataset; --force only replaces datasets",
                    out.display()
                ),
                Some("choose another --out".into()),
            ));
        }
    }
    write_whole(out, |tmp| write_into(ds, tmp, encoding))
}

/// Makes the folder `out` whole or not at all: `fill` writes it as `OUT.tmp-…`, which is
/// then renamed into place (an existing `out` moved aside and removed). The temporary
/// folder is removed when anything fails, and at Ctrl-C ([`super::Pending`]).
pub fn write_whole<T>(
    out: &Path,
    fill: impl FnOnce(&Path) -> miette::Result<T>,
) -> miette::Result<T> {
    let tmp = sibling(out, "tmp");
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    }
    let _pending = super::Pending::new(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let result = fill(&tmp).and_then(|v| {
        super::stop_if_interrupted();
        if out.exists() {
            let old = sibling(out, "old");
            std::fs::rename(out, &old).map_err(|e| io_err("move aside", out, e))?;
            std::fs::rename(&tmp, out).map_err(|e| io_err("rename into place", &tmp, e))?;
            std::fs::remove_dir_all(&old).map_err(|e| io_err("remove", &old, e))?;
        } else {
            std::fs::rename(&tmp, out).map_err(|e| io_err("rename into place", &tmp, e))?;
        }
        Ok(v)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// `OUT.WHAT-<pid>-<nanos>` beside `out`: a name for a folder written before its rename.
fn sibling(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    out.with_file_name(format!("{name}.{what}-{}-{nanos:08x}", std::process::id()))
}

fn put(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    super::stop_if_interrupted();
    std::fs::write(path, bytes).map_err(|e| io_err("write", path, e))
}

fn write_into(ds: &Dataset, dir: &Path, encoding: Encoding) -> miette::Result<()> {
    let image_len = ds.image_len();
    let mut labels_txt = String::new();
    for l in &ds.labels {
        labels_txt.push_str(l);
        labels_txt.push('\n');
    }
    put(&dir.join("labels.txt"), labels_txt.as_bytes())?;
    let wide = ds.labels.len() > 256;
    let mut splits = BTreeMap::new();
    for (name, split) in [
        ("train", Some(&ds.train)),
        ("val", ds.val.as_ref()),
        ("test", ds.test.as_ref()),
    ] {
        let Some(split) = split else { continue };
        let pixels = format!("{name}.pixels{}", encoding.suffix());
        let pp = dir.join(&pixels);
        match encoding {
            Encoding::Raw => put(&pp, &split.pixels)?,
            Encoding::Gz => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(&split.pixels)
                    .map_err(|e| io_err("compress", &pp, e))?;
                put(&pp, &enc.finish().map_err(|e| io_err("compress", &pp, e))?)?;
            }
            Encoding::Png => {
                let rows = (split.pixels.len() / ds.width.max(1)) as u32;
                let img = image::GrayImage::from_raw(ds.width as u32, rows, split.pixels.clone())
                    .ok_or_else(|| {
                    bad(
                        format!("cannot make `{}`", pp.display()),
                        "this is a bug in netc",
                    )
                })?;
                super::save_png(&img.into(), &pp)?;
            }
        }
        let labels = format!("{name}.labels");
        let bytes: Vec<u8> = if wide {
            split.labels.iter().flat_map(|l| l.to_le_bytes()).collect()
        } else {
            split.labels.iter().map(|&l| l as u8).collect()
        };
        put(&dir.join(&labels), &bytes)?;
        let sources = format!("{name}.sources.txt");
        let mut text = String::with_capacity(split.sources.len() * 24);
        for s in &split.sources {
            text.push_str(&s.replace(['\n', '\r'], " "));
            text.push('\n');
        }
        put(&dir.join(&sources), text.as_bytes())?;
        debug_assert_eq!(split.pixels.len(), split.len() * image_len);
        splits.insert(
            name.to_string(),
            SplitInfo {
                count: split.len(),
                pixels,
                labels,
                label_type: if wide { "u32le" } else { "u8" }.into(),
                sources,
                per_class: per_class(split, &ds.labels),
            },
        );
    }
    let mean = match &ds.mean {
        Some(m) => {
            let bytes: Vec<u8> = m.iter().flat_map(|v| v.to_le_bytes()).collect();
            put(&dir.join("mean.f32"), &bytes)?;
            let u8s: Vec<u8> = m
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect();
            let p = dir.join("mean.png");
            super::save_png(
                &super::image::chw_to_image(&u8s, ds.channels, ds.height, ds.width),
                &p,
            )?;
            Some(MeanInfo {
                raw: "mean.f32".into(),
                png: "mean.png".into(),
            })
        }
        None => None,
    };
    let core = Core {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        complete: true,
        channels: ds.channels,
        height: ds.height,
        width: ds.width,
        resize: ds.resize,
        classes: ds.labels.len(),
        encoding,
        splits,
        mean,
    };
    let mut map = match serde_yaml::to_value(&core) {
        Ok(serde_yaml::Value::Mapping(c)) => c,
        _ => serde_yaml::Mapping::new(),
    };
    if let serde_yaml::Value::Mapping(extra) = &ds.info {
        for (k, v) in extra {
            if !map.contains_key(k) {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    let text = serde_yaml::to_string(&serde_yaml::Value::Mapping(map)).map_err(|e| {
        bad(
            format!("cannot write info.yaml: {e}"),
            "this is a bug in netc",
        )
    })?;
    put(&dir.join("info.yaml"), text.as_bytes())
}
