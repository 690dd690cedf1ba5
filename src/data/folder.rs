//! Image folders (one sub-folder per class, nested folders flattened; optionally `train/`,
//! `val/` and `test/` sub-trees) and list files of `path label` lines.

use std::path::{Path, PathBuf};

use super::{bad, io_err, Dataset, ResizeMode};

/// File extensions read as images, in any letter case.
pub const EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "ppm", "pgm", "pbm", "pnm", "gif", "tif", "tiff", "webp",
];

/// Labels in a list file must be below this (they index the classes).
pub const MAX_LIST_LABEL: u32 = 100_000;

/// Class names and `(file, label)` pairs.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub classes: Vec<String>,
    pub items: Vec<(PathBuf, u32)>,
    /// For a list file: the file, and each item's line in it (1-based).
    pub lines: Option<(PathBuf, Vec<usize>)>,
}

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn sorted_entries(dir: &Path) -> miette::Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// The images in `dir` and its sub-folders, nested folders flattened. Links to folders
/// inside a class folder are not followed: one back up the tree (`a/up -> ..`) made the
/// walk go round and file other classes' images under this one.
fn images_under(dir: &Path, out: &mut Vec<PathBuf>) -> miette::Result<()> {
    for p in sorted_entries(dir)? {
        let link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if p.is_dir() {
            if !link {
                images_under(&p, out)?;
            }
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The class sub-folders of `dir` (sorted by name) and the images under each.
pub fn scan_classes(dir: &Path) -> miette::Result<Listing> {
    let mut listing = Listing::default();
    for p in sorted_entries(dir)? {
        if !p.is_dir() {
            continue;
        }
        let label = listing.classes.len() as u32;
        listing.classes.push(
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut files = Vec::new();
        images_under(&p, &mut files)?;
        listing.items.extend(files.into_iter().map(|f| (f, label)));
    }
    if listing.classes.is_empty() {
        return Err(bad(
            format!("`{}` has no class sub-folders", dir.display()),
            "put each class's images in its own sub-folder (e.g. `DIR/3/img.png`), or give MNIST's IDX files or a list file",
        ));
    }
    Ok(listing)
}

/// A folder's layout: `train/` (+ `val/`, `test/`) sub-trees, or flat class folders.
#[derive(Debug, Clone)]
pub struct Layout {
    pub train: PathBuf,
    pub val: Option<PathBuf>,
    pub test: Option<PathBuf>,
}

pub fn layout(dir: &Path) -> Layout {
    let t = dir.join("train");
    let subdirs: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir() && !hidden(&e.path()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let split_names = subdirs
        .iter()
        .all(|n| matches!(n.as_str(), "train" | "val" | "test"));
    let train_has_dirs = std::fs::read_dir(&t)
        .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().is_dir()))
        .unwrap_or(false);
    if t.is_dir() && split_names && train_has_dirs {
        let opt = |n: &str| Some(dir.join(n)).filter(|p| p.is_dir());
        Layout {
            train: t,
            val: opt("val"),
            test: opt("test"),
        }
    } else {
        Layout {
            train: dir.to_path_buf(),
            val: None,
            test: None,
        }
    }
}

/// Reads a list file: one `path label` a line (the label is the last whitespace-separated
/// token, an integer; paths may contain spaces); blank lines and `#` comments are skipped.
/// Relative paths join `image_folder`, or the list file's folder. Classes are named `0..=max`.
pub fn read_list(file: &Path, image_folder: Option<&Path>) -> miette::Result<Listing> {
    let text = super::read_text(file, "the list", "a file of `PATH LABEL` lines")?;
    let base = image_folder
        .map(Path::to_path_buf)
        .unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")).to_path_buf());
    let mut items = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .rsplit_once(char::is_whitespace)
            .and_then(|(p, l)| Some((p.trim(), l.parse::<u32>().ok()?)));
        let Some((p, label)) = parsed else {
            return Err(bad(
                format!(
                    "{}:{}: expected `PATH LABEL` (an integer label), found `{line}`",
                    file.display(),
                    n + 1
                ),
                "write one image path and its integer label per line",
            ));
        };
        let p = Path::new(p);
        items.push((
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            },
            label,
        ));
        lines.push(n + 1);
    }
    let max = items.iter().map(|i| i.1).max().ok_or_else(|| {
        bad(
            format!("`{}` lists no images", file.display()),
            "write one `PATH LABEL` line per image",
        )
    })?;
    if max >= MAX_LIST_LABEL {
        return Err(bad(
            format!(
                "`{}`: label {max} is too large (labels count classes from 0)",
                file.display()
            ),
            format!("use labels 0..{} for the classes", MAX_LIST_LABEL - 1),
        ));
    }
    Ok(Listing {
        classes: (0..=max).map(|l| l.to_string()).collect(),
        items,
        lines: Some((file.to_path_buf(), lines)),
    })
}

/// Opens a folder of class sub-folders as a dataset: every image is decoded (any bad one is
/// an error naming it) at the size of the first image, grey when the first image is grey
/// and RGB otherwise, squashed; `train/` + `val/` sub-trees give both splits, flat class
/// folders the training split only. Empty classes are left out. The mean is computed.
pub fn open(dir: &Path) -> miette::Result<Dataset> {
    let lay = layout(dir);
    let train = scan_classes(&lay.train)?;
    let first = train.items.first().ok_or_else(|| {
        bad(
            format!(
                "`{}` holds no images ({})",
                lay.train.display(),
                EXTENSIONS.join(", ")
            ),
            "add images to the class folders",
        )
    })?;
    let img = super::image::decode(&first.0)?;
    let opts = super::create::Options {
        src: dir.to_path_buf(),
        height: img.height() as usize,
        width: img.width() as usize,
        channels: if img.color().has_color() { 3 } else { 1 },
        resize: ResizeMode::Squash,
        val_percent: if lay.val.is_some() { None } else { Some(0.0) },
        min_per_class: 1,
        strict: true,
        ..Default::default()
    };
    let (mut ds, _) = super::create::build(&opts)?;
    ds.root = dir.to_path_buf();
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_extensions_in_any_case() {
        for n in [
            "a.png", "b.JPG", "c.Jpeg", "d.BMP", "e.ppm", "f.pgm", "g.gif", "h.TIF", "i.webp",
        ] {
            assert!(is_image(Path::new(n)), "{n}");
        }
        for n in ["a.txt", "b", "c.png.bak", "labels.tsv"] {
            assert!(!is_image(Path::new(n)), "{n}");
        }
    }

    #[test]
    fn layout_finds_train_and_val() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("train/a")).unwrap();
        std::fs::create_dir_all(d.path().join("val/a")).unwrap();
        let l = layout(d.path());
        assert_eq!(l.train, d.path().join("train"));
        assert_eq!(l.val, Some(d.path().join("val")));
        assert_eq!(l.test, None);
        // A class that happens to be called `train` among others: flat.
        std::fs::create_dir_all(d.path().join("other")).unwrap();
        let l = layout(d.path());
        assert_eq!((l.train.as_path(), l.val), (d.path(), None));
    }

    /// A link inside a class folder back up the tree is not followed (it used to file
    /// the other class's images under this one, many times over); nested real folders
    /// still are, and a class folder may itself be a link.
    #[cfg(unix)]
    #[test]
    fn links_to_folders_inside_classes_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        for (class, n) in [("a", 2), ("b", 3)] {
            std::fs::create_dir_all(d.path().join(class).join("nested")).unwrap();
            for i in 0..n {
                std::fs::write(d.path().join(class).join(format!("{i}.png")), b"x").unwrap();
            }
            std::fs::write(d.path().join(class).join("nested/deep.png"), b"x").unwrap();
        }
        std::os::unix::fs::symlink("..", d.path().join("a/up")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("c")).unwrap();
        std::fs::write(outside.path().join("c/0.png"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("c"), d.path().join("c")).unwrap();
        let l = scan_classes(d.path()).unwrap();
        assert_eq!(l.classes, ["a", "b", "c"]);
        let count = |label: u32| l.items.iter().filter(|(_, c)| *c == label).count();
        assert_eq!((count(0), count(1), count(2)), (3, 4, 1));
    }
}
