//! What a run records per epoch: `metrics.csv`, `metrics.jsonl` and DIGITS' graph
//! (`curves.svg`, `curves.png`): epochs across, loss on the left axis, accuracy in % on the
//! right; train loss blue, val loss red, val accuracy green; the best epoch marked.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::snapshot::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub iteration: u64,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    /// Top-1 validation accuracy in %.
    pub val_accuracy: Option<f64>,
    /// Top-5 validation accuracy in %, when there are more than 5 classes.
    pub val_top5: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

const CSV_HEADER: &str =
    "epoch,iteration,train_loss,val_loss,val_accuracy,val_top5,learning_rate,seconds,images_per_second";

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

/// Rewrites `metrics.csv` and `metrics.jsonl` with every epoch so far.
pub fn write_metrics(dir: &Path, records: &[EpochRecord]) -> miette::Result<()> {
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    let mut jsonl = String::new();
    for r in records {
        csv.push_str(&format!(
            "{},{},{:.6},{},{},{},{:.8},{:.3},{:.1}\n",
            r.epoch,
            r.iteration,
            r.train_loss,
            opt(r.val_loss),
            opt(r.val_accuracy),
            opt(r.val_top5),
            r.learning_rate,
            r.seconds,
            r.images_per_second
        ));
        jsonl.push_str(&serde_json::to_string(r).unwrap_or_default());
        jsonl.push('\n');
    }
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    write_atomic(&dir.join("metrics.jsonl"), jsonl.as_bytes())
}

/// Reads `metrics.jsonl` back (for `--resume`).
pub fn read_metrics(dir: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The epoch with the best validation accuracy (the first of equals).
pub fn best(records: &[EpochRecord]) -> Option<&EpochRecord> {
    records
        .iter()
        .filter(|r| r.val_accuracy.is_some())
        .fold(None, |b: Option<&EpochRecord>, r| match b {
            Some(b) if b.val_accuracy >= r.val_accuracy => Some(b),
            _ => Some(r),
        })
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

/// Draws the graph to `curves.svg` and `curves.png` in `dir`.
pub fn draw_curves(dir: &Path, title: &str, records: &[EpochRecord]) -> miette::Result<()> {
    ensure_font();
    let svg_path = dir.join("curves.svg");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 500)).into_drawing_area();
        draw(&root, title, records)
            .map_err(|e| miette::miette!("could not draw the curves: {e}"))?;
        root.present()
            .map_err(|e| miette::miette!("could not draw the curves: {e}"))?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    let (w, h) = (900u32, 500u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root, title, records)
            .map_err(|e| miette::miette!("could not draw the curves: {e}"))?;
        root.present()
            .map_err(|e| miette::miette!("could not draw the curves: {e}"))?;
    }
    let img =
        image::RgbImage::from_raw(w, h, buf).ok_or_else(|| miette::miette!("bad curve buffer"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| miette::miette!("could not encode curves.png: {e}"))?;
    write_atomic(&dir.join("curves.png"), &png)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    records: &[EpochRecord],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let last = records.last().map_or(1, |r| r.epoch).max(1) as f64;
    let max_loss = records
        .iter()
        .flat_map(|r| [Some(r.train_loss), r.val_loss])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0f64..last, 0f64..max_loss)?
        .set_secondary_coord(0f64..last, 0f64..100f64);
    let ticks = (last as usize).min(20) + 1;
    chart
        .configure_mesh()
        .x_labels(ticks)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE)
        .x_desc("Epoch")
        .y_desc("Loss")
        .label_style(("sans-serif", 14))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("Accuracy (%)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    let green = RGBColor(44, 160, 44);
    let pts = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect()
    };
    let train = pts(&|r| Some(r.train_loss));
    let val = pts(&|r| r.val_loss);
    let acc = pts(&|r| r.val_accuracy);
    chart
        .draw_series(LineSeries::new(train.clone(), blue.stroke_width(2)))?
        .label("loss (train)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart.draw_series(train.iter().map(|p| Circle::new(*p, 3, blue.filled())))?;
    chart
        .draw_series(LineSeries::new(val.clone(), red.stroke_width(2)))?
        .label("loss (val)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
    chart.draw_series(val.iter().map(|p| Circle::new(*p, 3, red.filled())))?;
    chart
        .draw_secondary_series(LineSeries::new(acc.clone(), green.stroke_width(2)))?
        .label("accuracy (val)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
    chart.draw_secondary_series(acc.iter().map(|p| Circle::new(*p, 3, green.filled())))?;
    if let Some(b) = best(records) {
        let (x, y) = (b.epoch as f64, b.val_accuracy.unwrap_or(0.0));
        chart.draw_secondary_series(std::iter::once(Circle::new(
            (x, y),
            7,
            green.stroke_width(2),
        )))?;
        chart.draw_secondary_series(std::iter::once(Text::new(
            format!("best {y:.2}% (epoch {})", b.epoch),
            (x, (y - 3.0).max(2.0)),
            ("sans-serif", 14).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Top,
                ),
            ),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}
