//! `netc data show` and `netc data export`: pictures of a dataset, and class folders of PNGs.

use std::path::Path;

use image::{DynamicImage, GenericImage, Rgb, RgbImage};

use super::image::chw_to_image;
use super::{io_err, Dataset, Split};

/// A grid of sample images: one row per class, labelled with the class name on the left,
/// up to `per_class` images of that class from `split` (the first ones, in split order),
/// 2-pixel gaps.
pub fn sample_grid(ds: &Dataset, split: &Split, per_class: usize) -> RgbImage {
    let (h, w, gap) = (ds.height as u32, ds.width as u32, 2u32);
    let rows = ds.labels.len().max(1) as u32;
    let cols = per_class.max(1) as u32;
    let font = (h as f64 * 0.7).clamp(9.0, 18.0);
    let longest = ds
        .labels
        .iter()
        .map(|l| l.chars().count().min(16))
        .max()
        .unwrap_or(1) as u32;
    let margin = (longest as f64 * font * 0.62) as u32 + 8;
    let mut grid = RgbImage::from_pixel(
        margin + cols * (w + gap) + gap,
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
            margin + gap + filled[l] * (w + gap),
            gap + l as u32 * (h + gap),
        );
        filled[l] += 1;
        if filled.iter().all(|&f| f >= cols) {
            break;
        }
    }
    label_rows(&mut grid, ds, h + gap, font);
    grid
}

/// Writes each class name at the left of its row (best effort: a grid without names is still
/// a grid).
fn label_rows(grid: &mut RgbImage, ds: &Dataset, row_h: u32, font: f64) {
    use plotters::prelude::*;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
    let (gw, gh) = grid.dimensions();
    let root = BitMapBackend::with_buffer(grid.as_mut(), (gw, gh)).into_drawing_area();
    let style = TextStyle::from(("sans-serif", font).into_font()).color(&WHITE);
    for (c, name) in ds.labels.iter().enumerate() {
        let short: String = name.chars().take(16).collect();
        let y = 2 + c as u32 * row_h + row_h / 2;
        let _ = root.draw_text(
            &short,
            &style.pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            )),
            (4, y as i32),
        );
    }
    let _ = root.present();
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
        super::stop_if_interrupted();
        for class in &ds.labels {
            let d = out.join(name).join(folder_name(class));
            std::fs::create_dir_all(&d).map_err(|e| io_err("create", &d, e))?;
        }
        let per: Vec<usize> = (0..split.len()).collect();
        let written: Vec<miette::Result<()>> = {
            use rayon::prelude::*;
            per.par_iter()
                .map(|&i| {
                    super::stop_if_interrupted();
                    let class = &ds.labels[split.labels[i] as usize];
                    let p = out
                        .join(name)
                        .join(folder_name(class))
                        .join(format!("{i:06}.png"));
                    super::save_png(
                        &chw_to_image(split.image(i), ds.channels, ds.height, ds.width),
                        &p,
                    )
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
