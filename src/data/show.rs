//! `netc data show` and `netc data export`: pictures of a dataset, and class folders of PNGs.

use std::path::Path;

use image::{DynamicImage, GenericImage, Rgb, RgbImage};

use super::image::chw_to_image;
use super::{io_err, Dataset, Split};

/// A grid of sample images: one row per class, up to `per_class` images of that class from
/// `split` (the first ones, in split order), 2-pixel gaps.
pub fn sample_grid(ds: &Dataset, split: &Split, per_class: usize) -> RgbImage {
    let (h, w, gap) = (ds.height as u32, ds.width as u32, 2u32);
    let rows = ds.labels.len().max(1) as u32;
    let cols = per_class.max(1) as u32;
    let mut grid = RgbImage::from_pixel(
        cols * (w + gap) + gap,
        rows * (h + gap) + gap,
        Rgb([64, 64, 64]),
    );
    let mut filled = vec![0u32; ds.labels.len()];
    for i in 0..split.len() {
        let l = split.labels[i] as usize;
        if l >= filled.len() || filled[l] >= cols {
            continue;
        }
        let tile = chw_to_image(split.image(i), ds.channels, ds.height, ds.width).to_rgb8();
        let _ = grid.copy_from(
            &tile,
            gap + filled[l] * (w + gap),
            gap + l as u32 * (h + gap),
        );
        filled[l] += 1;
        if filled.iter().all(|&f| f >= cols) {
            break;
        }
    }
    grid
}

/// The mean image as u8.
pub fn mean_picture(ds: &Dataset) -> Option<DynamicImage> {
    let m = ds.mean.as_ref()?;
    let u8s: Vec<u8> = m
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    Some(chw_to_image(&u8s, ds.channels, ds.height, ds.width))
}

/// A class name made safe as a folder name (path separators and NUL replaced).
pub fn folder_name(class: &str) -> String {
    let s: String = class
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("_{s}")
    } else {
        s
    }
}

/// Writes `out/train/CLASS/NNNNNN.png` (and `val/`, `test/`); returns the number of files.
pub fn export(ds: &Dataset, out: &Path) -> miette::Result<usize> {
    let mut n = 0;
    for (name, split) in [
        ("train", Some(&ds.train)),
        ("val", ds.val.as_ref()),
        ("test", ds.test.as_ref()),
    ] {
        let Some(split) = split else { continue };
        for class in &ds.labels {
            let d = out.join(name).join(folder_name(class));
            std::fs::create_dir_all(&d).map_err(|e| io_err("create", &d, e))?;
        }
        let per: Vec<usize> = (0..split.len()).collect();
        let written: Vec<miette::Result<()>> = {
            use rayon::prelude::*;
            per.par_iter()
                .map(|&i| {
                    let class = &ds.labels[split.labels[i] as usize];
                    let p = out
                        .join(name)
                        .join(folder_name(class))
                        .join(format!("{i:06}.png"));
                    chw_to_image(split.image(i), ds.channels, ds.height, ds.width)
                        .save(&p)
                        .map_err(|e| io_err("write", &p, e))
                })
                .collect()
        };
        for w in written {
            w?;
        }
        n += split.len();
    }
    Ok(n)
}
