//! The pictures of `--stats`: the input as the network sees it, a grid of each
//! convolution's filters and of each convolution's and pooling's activation maps
//! (single-channel tiles through the jet colour map, as DIGITS draws them), a histogram per
//! tensor, and an `index.html` that shows everything on one page.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};
use plotters::prelude::*;

use super::stats::{group, StatsReport, BINS};
use super::{dims, Model};
use crate::data::io_err;
use crate::train::snapshot::write_atomic;

/// Tiles drawn at most per grid (conv2 of LeNet has 50×20 = 1000 filter slices).
pub const MAX_TILES: usize = 1024;

/// Matplotlib's jet: blue (0) → cyan → yellow → red (1).
pub fn jet(x: f32) -> Rgb<u8> {
    let x = if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let ch = |c: f32| ((1.5 - (4.0 * x - c).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    Rgb([ch(3.0), ch(2.0), ch(1.0)])
}

/// Joint range of the finite values (a flat range becomes ±0.5 around it).
fn range<'a>(values: impl Iterator<Item = &'a f32>) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// Nearest-neighbour enlargement so the picture's long side is about `target` pixels.
fn enlarge(img: RgbImage, target: u32) -> RgbImage {
    let long = img.width().max(img.height()).max(1);
    let s = (target / long).max(1);
    if s == 1 {
        return img;
    }
    imageops::resize(
        &img,
        img.width() * s,
        img.height() * s,
        imageops::FilterType::Nearest,
    )
}

/// `tiles` (each `channels×th×tw`, CHW) in a square-ish grid, normalised together; 3-channel
/// tiles as RGB, single-channel ones through [`jet`] (or grey with `colormap` false).
pub fn grid(tiles: &[&[f32]], channels: usize, th: usize, tw: usize, colormap: bool) -> RgbImage {
    let n = tiles.len().clamp(1, MAX_TILES);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * (tw + 1) + 1, rows * (th + 1) + 1);
    let mut img = RgbImage::from_pixel(gw as u32, gh as u32, Rgb([48, 48, 48]));
    let (lo, hi) = range(tiles.iter().take(n).flat_map(|t| t.iter()));
    let norm = |v: f32| (v - lo) / (hi - lo);
    for (k, t) in tiles.iter().take(n).enumerate() {
        let (x0, y0) = ((k % cols) * (tw + 1) + 1, (k / cols) * (th + 1) + 1);
        for y in 0..th {
            for x in 0..tw {
                let at = |c: usize| t.get((c * th + y) * tw + x).copied().unwrap_or(lo);
                let px = if channels == 3 {
                    let g = |c| (norm(at(c)).clamp(0.0, 1.0) * 255.0).round() as u8;
                    Rgb([g(0), g(1), g(2)])
                } else if colormap {
                    jet(norm(at(0)))
                } else {
                    let g = (norm(at(0)).clamp(0.0, 1.0) * 255.0).round() as u8;
                    Rgb([g, g, g])
                };
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, px);
            }
        }
    }
    enlarge(img, 480)
}

/// The input picture: one C×H×W image, grey or RGB, stretched to its own range.
pub fn input_picture(input: &[f32], chw: [usize; 3]) -> RgbImage {
    let [c, h, w] = chw;
    let (lo, hi) = range(input.iter());
    let mut img = RgbImage::new(w as u32, h as u32);
    for y in 0..h {
        for x in 0..w {
            let g = |k: usize| {
                let v = input.get((k * h + y) * w + x).copied().unwrap_or(lo);
                (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
            };
            let px = if c == 3 {
                Rgb([g(0), g(1), g(2)])
            } else {
                Rgb([g(0), g(0), g(0)])
            };
            img.put_pixel(x as u32, y as u32, px);
        }
    }
    enlarge(img, 224)
}

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A histogram as a bar chart, `min..max` across.
pub fn histogram_picture(
    title: &str,
    counts: &[usize],
    min: f32,
    max: f32,
) -> miette::Result<RgbImage> {
    ensure_font();
    let (w, h) = (360u32, 200u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let (lo, hi) = if max > min {
        (min as f64, max as f64)
    } else {
        (min as f64 - 0.5, min as f64 + 0.5)
    };
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let draw = |buf: &mut [u8]| -> Result<(), String> {
        let root = BitMapBackend::with_buffer(buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(44)
            .build_cartesian_2d(lo..hi, 0f64..top * 1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(4)
            .light_line_style(WHITE)
            .label_style(("sans-serif", 11))
            .x_label_formatter(&|v| format!("{v:.3}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let bw = (hi - lo) / counts.len().max(1) as f64;
        let blue = RGBColor(31, 119, 180);
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x = lo + i as f64 * bw;
                Rectangle::new([(x, 0.0), (x + bw, c as f64)], blue.filled())
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    };
    draw(&mut buf).map_err(|e| miette::miette!("could not draw the histogram of {title}: {e}"))?;
    RgbImage::from_raw(w, h, buf).ok_or_else(|| miette::miette!("bad histogram buffer"))
}

fn save(img: &RgbImage, dir: &Path, name: &str, files: &mut Vec<String>) -> miette::Result<String> {
    let path = dir.join(name);
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| miette::miette!("could not encode {}: {e}", path.display()))?;
    write_atomic(&path, &png)?;
    files.push(name.to_string());
    Ok(name.to_string())
}

/// A file-name-safe form of a layer or blob name.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes every picture, `stats.json` and `index.html` to `dir`, recording the file names
/// in `report`. `model` must hold the forward pass of [`super::stats::collect`].
pub fn write_all(
    report: &mut StatsReport,
    model: &Model,
    input: &[f32],
    dir: &Path,
) -> miette::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create the output folder", dir, e))?;
    let mut files = Vec::new();
    report.input_png = Some(save(
        &input_picture(input, model.pre.output_chw()),
        dir,
        "input.png",
        &mut files,
    )?);
    let batch = model.batch();
    let net = &model.net;
    for (li, (layer, step)) in report.layers.iter_mut().zip(&net.steps).enumerate() {
        let stem = format!("{li:02}-{}", safe(&layer.name));
        for (k, t) in layer.outputs.iter_mut().enumerate() {
            let title = format!("{} ({})", t.label(), dims(&t.shape));
            let img =
                histogram_picture(&title, &t.summary.histogram, t.summary.min, t.summary.max)?;
            t.histogram_png = Some(save(
                &img,
                dir,
                &format!("{stem}-out{k}-hist.png"),
                &mut files,
            )?);
        }
        for (k, t) in layer.params.iter_mut().enumerate() {
            let title = format!("{} {} ({})", t.name, t.role, dims(&t.shape));
            let img =
                histogram_picture(&title, &t.summary.histogram, t.summary.min, t.summary.max)?;
            t.histogram_png = Some(save(
                &img,
                dir,
                &format!("{stem}-param{k}-hist.png"),
                &mut files,
            )?);
        }
        if matches!(layer.ty.as_str(), "Convolution" | "Deconvolution") {
            if let Some(w) = step.op.params().first().filter(|p| p.blob.shape.len() == 4) {
                let s = &w.blob.shape;
                let (o, i, kh, kw) = (s[0], s[1], s[2], s[3]);
                let (channels, per) = if i == 3 {
                    (3, 3 * kh * kw)
                } else {
                    (1, kh * kw)
                };
                let tiles: Vec<&[f32]> = w
                    .blob
                    .data
                    .chunks(per)
                    .take(if i == 3 { o } else { o * i })
                    .collect();
                let img = grid(&tiles, channels, kh, kw, true);
                layer.filters_png =
                    Some(save(&img, dir, &format!("{stem}-filters.png"), &mut files)?);
            }
        }
        if matches!(
            layer.ty.as_str(),
            "Convolution" | "Deconvolution" | "Pooling"
        ) {
            if let Some(&t) = step
                .tops
                .first()
                .filter(|&&t| net.blobs[t].shape.len() == 4)
            {
                let blob = &net.blobs[t];
                let (c, h, w) = (blob.shape[1], blob.shape[2], blob.shape[3]);
                let sample = &blob.data[..blob.count() / batch];
                let tiles: Vec<&[f32]> = sample.chunks(h * w).take(c).collect();
                let img = grid(&tiles, 1, h, w, true);
                layer.activations_png = Some(save(
                    &img,
                    dir,
                    &format!("{stem}-activations.png"),
                    &mut files,
                )?);
            }
        }
    }
    files.push("stats.json".into());
    files.push("index.html".into());
    report.files = files;
    report.out = Some(dir.display().to_string());
    let json = serde_json::to_string_pretty(&*report)
        .map_err(|e| miette::miette!("could not write stats.json: {e}"))?;
    write_atomic(&dir.join("stats.json"), json.as_bytes())?;
    write_atomic(&dir.join("index.html"), html(report).as_bytes())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One page with the predictions, the input, the parameter counts and every layer.
pub fn html(r: &StatsReport) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>netc classify --stats</title>\n<style>\
body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:middle}\
th{background:#f0f0f0}td.l{text-align:left}img.pic{image-rendering:pixelated;margin:4px}\
section{border-top:2px solid #ddd;margin-top:1.2em}</style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>{}</h1>\n<p>model <b>{}</b> ({}), {} classes</p>\n",
        esc(&r.image),
        esc(&r.model.name),
        esc(&r.model.snapshot),
        r.model.classes
    ));
    h.push_str("<h2>Predictions</h2>\n<table><tr><th>label</th><th>probability</th></tr>\n");
    for p in &r.predictions {
        h.push_str(&format!(
            "<tr><td class=l>{}</td><td>{:.3}%</td></tr>\n",
            esc(&p.label),
            100.0 * p.probability
        ));
    }
    h.push_str("</table>\n");
    if let Some(p) = &r.input_png {
        h.push_str(&format!(
            "<h2>Input as the network sees it</h2>\n<img class=pic src=\"{}\" alt=\"input\">\n",
            esc(p)
        ));
    }
    h.push_str("<h2>Learned parameters</h2>\n<table><tr><th>layer</th><th>type</th><th>parameters</th></tr>\n");
    for l in r.layers.iter().filter(|l| l.parameters > 0) {
        h.push_str(&format!(
            "<tr><td class=l>{}</td><td class=l>{}</td><td>{}</td></tr>\n",
            esc(&l.name),
            esc(&l.ty),
            group(l.parameters)
        ));
    }
    h.push_str(&format!(
        "<tr><th class=l colspan=2>total</th><th>{}</th></tr></table>\n",
        group(r.parameters)
    ));
    for l in &r.layers {
        h.push_str(&format!(
            "<section><h2>{} <small>({})</small></h2>\n",
            esc(&l.name),
            esc(&l.ty)
        ));
        h.push_str(&format!(
            "<table><tr><th>what</th><th>blob</th><th>shape</th><th>mean</th><th>std</th><th>min</th><th>max</th><th>histogram ({BINS} bins)</th></tr>\n"
        ));
        for t in l.outputs.iter().chain(&l.params) {
            let what = if t.in_place {
                "output (in place: the value after this layer)".to_string()
            } else {
                t.role.clone()
            };
            let img = t.histogram_png.as_ref().map_or(String::new(), |p| {
                format!("<img src=\"{}\" alt=\"histogram\">", esc(p))
            });
            h.push_str(&format!(
                "<tr><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{img}</td></tr>\n",
                esc(&what),
                esc(&t.name),
                dims(&t.shape),
                t.summary.mean,
                t.summary.std,
                t.summary.min,
                t.summary.max
            ));
        }
        h.push_str("</table>\n");
        if let Some(p) = &l.filters_png {
            h.push_str(&format!(
                "<h3>Filters</h3>\n<img class=pic src=\"{}\" alt=\"filters\">\n",
                esc(p)
            ));
        }
        if let Some(p) = &l.activations_png {
            h.push_str(&format!(
                "<h3>Activations</h3>\n<img class=pic src=\"{}\" alt=\"activations\">\n",
                esc(p)
            ));
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_blue_to_red() {
        assert_eq!(jet(0.0), Rgb([0, 0, 128]));
        assert_eq!(jet(1.0), Rgb([128, 0, 0]));
        assert_eq!(jet(0.5), Rgb([128, 255, 128]));
        assert_eq!(jet(f32::NAN), jet(0.0));
    }

    #[test]
    fn grid_lays_tiles_out_in_a_square() {
        let a = [0.0f32; 4];
        let b = [1.0f32; 4];
        let tiles: Vec<&[f32]> = vec![&a, &b, &a];
        let g = grid(&tiles, 1, 2, 2, false);
        // 2 columns × 2 rows of 2×2 tiles with 1-pixel gaps: 7×7 before enlarging.
        assert_eq!(g.width() % 7, 0);
        assert_eq!(g.width(), g.height());
        let s = g.width() / 7;
        assert_eq!(*g.get_pixel(s, s), Rgb([0, 0, 0]));
        assert_eq!(*g.get_pixel(4 * s, s), Rgb([255, 255, 255]));
        assert_eq!(*g.get_pixel(0, 0), Rgb([48, 48, 48]));
    }
}
