//! Datasets: MNIST IDX files, folders of class sub-folders, list files, and netc's own
//! dataset folders (written by `netc data create`, read by [`open`]).
//!
//! Everything is decoded into memory: a [`Split`] holds N images as one `N×C×H×W` u8
//! buffer, so training batches straight out of it.

use std::path::{Path, PathBuf};

pub mod create;
pub mod folder;
pub mod format;
pub mod idx;
pub mod image;
pub mod show;

pub use self::image::load_image;

/// A dataset in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The folder it was read from.
    pub root: PathBuf,
    /// Class names; the index is the label.
    pub labels: Vec<String>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// How images were fitted to `height×width` (classify must do the same).
    pub resize: ResizeMode,
    pub train: Split,
    pub val: Option<Split>,
    /// An optional third split (`--test-percent`); training does not read it.
    pub test: Option<Split>,
    /// `C×H×W` mean image over the training split, on the 0..255 scale.
    pub mean: Option<Vec<f32>>,
    /// `info.yaml` as read (or synthesised for IDX files and folders).
    pub info: serde_yaml::Value,
}

/// One split: `pixels` is `N×C×H×W` u8, `labels[i]` indexes [`Dataset::labels`], and
/// `sources[i]` says where image `i` came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub sources: Vec<String>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The `C×H×W` pixels of image `i`. Panics when `i >= len()` (a programming error).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels.len() / self.len().max(1);
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Images per class, indexed by label (`classes` entries).
    pub fn counts(&self, classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &l in &self.labels {
            if let Some(x) = c.get_mut(l as usize) {
                *x += 1;
            }
        }
        c
    }
}

impl Dataset {
    /// `C×H×W`: the length of one image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// A fingerprint of what training reads: the class names, the image size, and the
    /// train and val splits' pixels and labels (CRC-32: `crc32:` and 8 hex digits). A
    /// resumed run compares it with the one it started with.
    pub fn digest(&self) -> String {
        let mut h = crc32fast::Hasher::new();
        for l in &self.labels {
            h.update(l.as_bytes());
            h.update(&[0]);
        }
        for d in [self.channels, self.height, self.width] {
            h.update(&(d as u64).to_le_bytes());
        }
        for split in std::iter::once(&self.train).chain(self.val.as_ref()) {
            h.update(&(split.len() as u64).to_le_bytes());
            h.update(&split.pixels);
            for l in &split.labels {
                h.update(&l.to_le_bytes());
            }
        }
        format!("crc32:{:08x}", h.finalize())
    }

    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }
}

/// How an image is fitted to the dataset's size, as DIGITS does it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// A plain resize to the target size (the aspect ratio changes).
    #[default]
    Squash,
    /// Keep the aspect ratio, resize so the image covers the target, centre-crop.
    Crop,
    /// Keep the aspect ratio, resize so the image fits inside, pad with random noise.
    Fill,
    /// Half of each: resize to the mean of the two ratios, crop the long side, pad the short.
    #[value(name = "half_crop", alias = "half-crop")]
    HalfCrop,
}

impl ResizeMode {
    pub fn name(self) -> &'static str {
        match self {
            ResizeMode::Squash => "squash",
            ResizeMode::Crop => "crop",
            ResizeMode::Fill => "fill",
            ResizeMode::HalfCrop => "half_crop",
        }
    }
}

impl std::fmt::Display for ResizeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ResizeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "squash" => Ok(ResizeMode::Squash),
            "crop" => Ok(ResizeMode::Crop),
            "fill" => Ok(ResizeMode::Fill),
            "half_crop" | "halfcrop" => Ok(ResizeMode::HalfCrop),
            _ => Err(format!(
                "unknown resize mode `{s}` (squash, crop, fill, half_crop)"
            )),
        }
    }
}

/// Opens a dataset written by `netc data create`, OR a folder with MNIST's four IDX files
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…`; raw or `.gz`;
/// train = `train-*`, val = `t10k-*`), OR a folder of class sub-folders (with `train/` and
/// `val/` sub-trees, or flat class folders = train only). Errors name the file and say what
/// to do.
pub fn open(path: &Path) -> miette::Result<Dataset> {
    if !path.exists() {
        return Err(crate::commands::usage(
            format!("dataset `{}` does not exist", path.display()),
            Some("give a folder made by `netc data create`, a folder with MNIST's IDX files, or a folder of class sub-folders".into()),
        ));
    }
    if path.is_file() {
        if idx::is_idx_file(path) {
            let dir = path.parent().unwrap_or(Path::new("."));
            return idx::open_folder(dir);
        }
        return Err(crate::commands::usage(
            format!("`{}` is a file, not a dataset folder", path.display()),
            Some("give the folder that holds the dataset (or MNIST's IDX files)".into()),
        ));
    }
    if format::looks_like_dataset(path) {
        return format::read(path);
    }
    if idx::find_files(path).is_some() {
        return idx::open_folder(path);
    }
    folder::open(path)
}

/// A content problem (exit 1): `message` names the file, `help` says what to do.
pub fn bad(message: impl Into<String>, help: impl Into<String>) -> miette::Report {
    miette::Report::new(DataError {
        message: message.into(),
        help: Some(help.into()),
    })
}

/// Text files past this size are refused (a device like /dev/urandom never ends).
const MAX_TEXT: u64 = 1 << 30;

/// Reads a text file `what` (a spec, a list, ...) in pieces, refusing it at the first NUL
/// byte (a binary file, or UTF-16 text: a text format never holds one) or past 1 GiB,
/// without reading further. Bytes that are not UTF-8 are replaced. `example` says what to
/// give instead.
pub fn read_text(path: &Path, what: &str, example: &str) -> miette::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io_err("read", path, e))?;
    let mut reader = file.take(MAX_TEXT + 1);
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", path, e)),
        };
        if buf[..n].contains(&0) {
            return Err(crate::commands::usage(
                format!("{} is not a text file", path.display()),
                Some(format!("give {what} as UTF-8 text, e.g. {example}")),
            ));
        }
        bytes.extend_from_slice(&buf[..n]);
        if bytes.len() as u64 > MAX_TEXT {
            return Err(crate::commands::usage(
                format!(
                    "{} is larger than 1 GiB: too large for {what}",
                    path.display()
                ),
                Some(format!("give {what} as UTF-8 text, e.g. {example}")),
            ));
        }
    }
    Ok(match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// An I/O problem with a path (exit 2).
pub fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> miette::Report {
    let msg = e.to_string();
    let reading = what.starts_with("read") || what.starts_with("open") || what.starts_with("list");
    let help = if msg.contains("No space left") {
        "free some disk space, or write somewhere else"
    } else if msg.contains("Read-only file system")
        || (msg.contains("Permission denied") && !reading)
    {
        "choose a folder you may write to"
    } else if msg.contains("Is a directory") || msg.contains("Not a directory") {
        "check that the path names a file, in a folder that exists"
    } else if msg.contains("File exists") {
        "a file has that name: give a folder that is not a file (another --out)"
    } else if reading {
        "check that the path exists and is readable"
    } else {
        "check that the folder exists and that you may write there"
    };
    crate::commands::usage(
        format!("cannot {what} `{}`: {msg}", path.display()),
        Some(help.into()),
    )
}

/// Folders being written under a temporary name, removed if the user interrupts.
static PENDING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Set when the user interrupted the writing of a [`Pending`] folder.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called by the writers of a [`Pending`] folder before each file: once the user has
/// interrupted, they wait here (and make no more files, nor the folders they go in) while
/// the handler removes the folder and ends netc.
pub fn stop_if_interrupted() {
    while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A temporary folder being written (a dataset or an export before its rename): while the
/// guard lives, Ctrl-C (or SIGTERM) removes the folder and ends netc with exit code 130,
/// instead of leaving it behind. (In a process that set another Ctrl-C handler first, as
/// `netc train` does, the folder is only removed by its writer, on errors.)
pub struct Pending(PathBuf);

impl Pending {
    pub fn new(dir: &Path) -> Pending {
        static HANDLER: std::sync::Once = std::sync::Once::new();
        HANDLER.call_once(|| {
            let _ = ctrlc::set_handler(|| {
                INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                // Writers stop at their next file (see `stop_if_interrupted`): a moment for those
                // already past the check to finish, then nothing adds to the folders.
                std::thread::sleep(std::time::Duration::from_millis(50));
                let dirs = PENDING.lock().map(|p| p.clone()).unwrap_or_default();
                for d in dirs.into_iter().filter(|d| d.exists()) {
                    for _ in 0..100 {
                        if std::fs::remove_dir_all(&d).is_ok() || !d.exists() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    eprintln!("interrupted: removed the unfinished {}", d.display());
                }
                std::process::exit(130);
            });
        });
        if let Ok(mut p) = PENDING.lock() {
            p.push(dir.to_path_buf());
        }
        Pending(dir.to_path_buf())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut p) = PENDING.lock() {
            p.retain(|d| d != &self.0);
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, flushes it and renames it into
/// place, so that `path` holds either its old content or all of the new (never part);
/// the temporary file is removed when anything fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    write_renamed(path, bytes, true)
}

/// [`write_atomic`], flushed to the disk (`sync`) or not (pictures: thousands of them
/// would each wait for the disk).
fn write_renamed(path: &Path, bytes: &[u8], sync: bool) -> miette::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        // Errors name the file asked for, not the hidden temporary one.
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("create", path, e))?;
        f.write_all(bytes).map_err(|e| io_err("write", path, e))?;
        if sync {
            f.sync_all().map_err(|e| io_err("flush", path, e))?;
        }
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_err("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves a picture as PNG with [`write_atomic`] (the image crate's own `save` can lose a
/// write error when it flushes on drop: a full disk left empty files behind).
pub fn save_png(img: &::image::DynamicImage, path: &Path) -> miette::Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        ::image::ImageFormat::Png,
    )
    .map_err(|e| io_err("encode", path, e))?;
    write_renamed(path, &bytes, false)
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(netc::data))]
pub struct DataError {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

/// The image size (C, H, W) and class count of a dataset, read cheaply: from `info.yaml`
/// for a netc dataset, else by opening it. `None` when it cannot be read.
pub fn peek(path: &Path) -> Option<([usize; 3], usize)> {
    let info = path.join("info.yaml");
    if info.is_file() {
        let v: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&info).ok()?).ok()?;
        let g = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        return Some(([g("channels")?, g("height")?, g("width")?], g("classes")?));
    }
    let d = open(path).ok()?;
    Some(([d.channels, d.height, d.width], d.num_classes()))
}
