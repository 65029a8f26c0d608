//! Training curves as PNG line charts (plotters, bitmap backend). Text needs a TrueType font: the
//! first of [`FONT_PATHS`] that exists (or `$LEADER_FONT`) is registered once; without one the chart
//! cannot be labelled and an error says so, so the report can note the missing picture instead.

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where Debian-based machines keep a sans-serif TrueType font.
pub const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for plotters' "sans-serif" family once per process.
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let outcome = FONT.get_or_init(|| {
        let candidates = std::env::var("LEADER_FONT").into_iter().chain(FONT_PATHS.iter().map(|p| p.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the whole process, so the bytes live as long.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(PathBuf::from(path));
                }
            }
        }
        Err(format!("no TrueType font found (set LEADER_FONT or install one at {})", FONT_PATHS[0]))
    });
    outcome.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// One named line.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws `series` into a 800×480 PNG at `path`.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    ensure_font()?;
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        bail!("chart {title:?} has no finite points");
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };

    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(draw)?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(draw)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(draw)?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_with_the_lines_in_it() {
        if FONT_PATHS.iter().all(|p| !Path::new(p).exists()) && std::env::var("LEADER_FONT").is_err() {
            eprintln!("SKIPPED: no TrueType font on this machine");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let series = vec![
            Series { label: "loss".into(), points: (0..20).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect() },
            Series { label: "prauc".into(), points: (0..20).map(|i| (i as f64, i as f64 / 20.0)).collect() },
        ];
        line_chart(&path, "curves", "epoch", "value", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // Two differently coloured lines on a white background: many non-white, non-grey pixels.
        assert!(bytes.len() > 5_000, "PNG suspiciously small: {} bytes", bytes.len());
        assert!(line_chart(&dir.path().join("e.png"), "empty", "x", "y", &[]).is_err());
    }
}
