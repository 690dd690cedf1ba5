//! MNIST's IDX files (raw or gzip): `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
//!
//! An IDX file is a big-endian header (two zero bytes, a type byte — 0x08 for u8 — and the
//! number of dimensions, then one u32 per dimension) followed by the data.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{bad, io_err, Dataset, ResizeMode, Split};

/// Magic number of an image file (u8, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a label file (u8, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The four files of an MNIST folder (the `t10k` pair may be absent).
#[derive(Debug, Clone)]
pub struct IdxFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test: Option<(PathBuf, PathBuf)>,
}

/// Images read from an IDX file: `n` images of `height×width` u8, row-major.
#[derive(Debug, Clone)]
pub struct IdxImages {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> miette::Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| io_err("read", path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                bad(
                    format!("`{}` is not a valid gzip file: {e}", path.display()),
                    "the file is probably truncated or corrupt: download it again (MNIST's IDX files), or make the dataset again with `netc data create`",
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses the header: returns the dimensions and the offset of the data.
fn header(path: &Path, bytes: &[u8], magic: u32) -> miette::Result<(Vec<usize>, usize)> {
    let what = if magic == IMAGES_MAGIC {
        "image"
    } else {
        "label"
    };
    if bytes.len() < 4 {
        return Err(bad(
            format!(
                "`{}` is truncated: {} bytes, too short for an IDX header",
                path.display(),
                bytes.len()
            ),
            "download the file again (MNIST's IDX files, raw or .gz)",
        ));
    }
    let got = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if got != magic {
        return Err(bad(
            format!(
                "`{}` is not an IDX {what} file: magic number {got} (0x{got:08x}), expected {magic} (0x{magic:08x})",
                path.display()
            ),
            "MNIST images start with 2051 and labels with 2049; check that the file is the right one and not corrupt",
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let data_start = 4 + 4 * ndims;
    if bytes.len() < data_start {
        return Err(bad(
            format!(
                "`{}` is truncated: the IDX header ends after {} bytes",
                path.display(),
                bytes.len()
            ),
            "download the file again",
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match want {
        Some(w) if bytes.len() - data_start == w => Ok((dims, data_start)),
        Some(w) => Err(bad(
            format!(
                "`{}` is {}: the header says {} ({} data bytes) but the file holds {} data bytes",
                path.display(),
                if bytes.len() - data_start < w {
                    "truncated"
                } else {
                    "longer than its header says"
                },
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("×"),
                w,
                bytes.len() - data_start
            ),
            "download the file again (the gzip or raw file is incomplete or corrupt)",
        )),
        None => Err(bad(
            format!("`{}` has an impossible IDX header", path.display()),
            "download the file again",
        )),
    }
}

/// Reads an IDX image file (magic 2051).
pub fn read_images(path: &Path) -> miette::Result<IdxImages> {
    let mut bytes = read_maybe_gz(path)?;
    let (dims, start) = header(path, &bytes, IMAGES_MAGIC)?;
    bytes.drain(..start);
    Ok(IdxImages {
        n: dims[0],
        height: dims[1],
        width: dims[2],
        pixels: bytes,
    })
}

/// Reads an IDX label file (magic 2049).
pub fn read_labels(path: &Path) -> miette::Result<Vec<u8>> {
    let mut bytes = read_maybe_gz(path)?;
    let (_, start) = header(path, &bytes, LABELS_MAGIC)?;
    bytes.drain(..start);
    Ok(bytes)
}

fn find_one(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    for stem in stems {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{stem}{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Finds MNIST's files in `dir` (names with `-idx3-ubyte` or `.idx3-ubyte`, raw or `.gz`).
pub fn find_files(dir: &Path) -> Option<IdxFiles> {
    let train_images = find_one(dir, &["train-images-idx3-ubyte", "train-images.idx3-ubyte"])?;
    let train_labels = find_one(dir, &["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"])?;
    let ti = find_one(dir, &["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"]);
    let tl = find_one(dir, &["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"]);
    Some(IdxFiles {
        train_images,
        train_labels,
        test: ti.zip(tl),
    })
}

/// Whether a file's name says it is an IDX file.
pub fn is_idx_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.contains("idx1-ubyte") || name.contains("idx3-ubyte")
}

/// Reads one images/labels pair into a split; sources are `FILE#INDEX`.
/// Returns the image height and width with the split.
pub fn read_pair(images: &Path, labels: &Path) -> miette::Result<(usize, usize, Split)> {
    let im = read_images(images)?;
    let lb = read_labels(labels)?;
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
    let sources = (0..im.n).map(|i| format!("{name}#{i}")).collect();
    let split = Split {
        pixels: im.pixels,
        labels: lb.iter().map(|&l| l as u32).collect(),
        sources,
    };
    Ok((im.height, im.width, split))
}

/// Opens an MNIST folder as a dataset: train = `train-*`, val = `t10k-*`, no mean.
pub fn open_folder(dir: &Path) -> miette::Result<Dataset> {
    let files = find_files(dir).ok_or_else(|| {
        bad(
            format!("`{}` lacks MNIST's train-images-idx3-ubyte and train-labels-idx1-ubyte (raw or .gz)", dir.display()),
            "put the IDX files in the folder, or give a dataset made by `netc data create`",
        )
    })?;
    let (height, width, train) = read_pair(&files.train_images, &files.train_labels)?;
    let val = match &files.test {
        Some((i, l)) => {
            let (vh, vw, v) = read_pair(i, l)?;
            if (vh, vw) != (height, width) {
                return Err(bad(
                    format!(
                        "`{}` has {}×{} images but `{}` has {}×{}",
                        i.display(),
                        vh,
                        vw,
                        files.train_images.display(),
                        height,
                        width
                    ),
                    "use test files that match the training files",
                ));
            }
            Some(v)
        }
        None => None,
    };
    let max = train
        .labels
        .iter()
        .chain(val.iter().flat_map(|v| v.labels.iter()))
        .copied()
        .max()
        .unwrap_or(0);
    let labels: Vec<String> = (0..=max.max(1)).map(|l| l.to_string()).collect();
    // IDX has no class list: the classes are 0..=the largest label. A class without images
    // below it is most likely a damaged label byte; say where it is.
    let mut counts = vec![0usize; labels.len()];
    for &l in train
        .labels
        .iter()
        .chain(val.iter().flat_map(|v| v.labels.iter()))
    {
        counts[l as usize] += 1;
    }
    let empty = counts.iter().filter(|&&c| c == 0).count();
    if empty > 0 && max > 1 {
        let (file, at) = match train.labels.iter().position(|&l| l == max) {
            Some(i) => (&files.train_labels, i),
            None => (
                files.test.as_ref().map_or(&files.train_labels, |(_, l)| l),
                val.as_ref()
                    .and_then(|v| v.labels.iter().position(|&l| l == max))
                    .unwrap_or(0),
            ),
        };
        eprintln!(
            "warning: {}: label {max} (item {at}) makes {} classes, {empty} of them without images; a damaged label file?",
            file.display(),
            labels.len()
        );
    }
    let info = serde_yaml::to_value(serde_json::json!({
        "source": dir.display().to_string(),
        "format": "mnist-idx",
        "height": height, "width": width, "channels": 1,
        "resize": "squash",
        "classes": labels.len(),
        "splits": {
            "train": {"count": train.len(), "file": files.train_images.display().to_string()},
            "val": val.as_ref().map(|v| serde_json::json!({"count": v.len()})),
        }
    }))
    .unwrap_or(serde_yaml::Value::Null);
    Ok(Dataset {
        root: dir.to_path_buf(),
        labels,
        channels: 1,
        height,
        width,
        resize: ResizeMode::Squash,
        train,
        val,
        test: None,
        mean: None,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_dashed_and_dotted_names() {
        let d = tempfile::tempdir().unwrap();
        assert!(find_files(d.path()).is_none());
        for n in [
            "train-images.idx3-ubyte",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte",
        ] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        let f = find_files(d.path()).unwrap();
        assert!(f.train_images.ends_with("train-images.idx3-ubyte"));
        assert!(f.train_labels.ends_with("train-labels-idx1-ubyte.gz"));
        assert!(f.test.is_none(), "t10k labels are missing");
        assert!(is_idx_file(Path::new("x/T10K-LABELS-IDX1-UBYTE.GZ")));
    }

    #[test]
    fn label_count_must_match() {
        let d = tempfile::tempdir().unwrap();
        let (i, l) = (
            d.path().join("train-images-idx3-ubyte"),
            d.path().join("train-labels-idx1-ubyte"),
        );
        std::fs::write(&i, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7, 9]).unwrap();
        std::fs::write(&l, [0, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
        let msg = read_pair(&i, &l).unwrap_err().to_string();
        assert!(
            msg.contains("1 labels") && msg.contains("2 images"),
            "{msg}"
        );
    }
}
