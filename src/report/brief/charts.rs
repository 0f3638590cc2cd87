//! The brief's charts, drawn with plotters as inline SVG so the HTML brief
//! needs no network and no files beside it. The font is bundled (ab_glyph),
//! so charts render the same on a machine with no fonts installed.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{IcpError, Result};
use crate::util::metrics::CalibrationBin;

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
/// Drawn at this size and scaled to the page by its viewBox (see
/// [`responsive`]); fonts are sized so ticks stay 11 px or more when a
/// phone shows the chart about 380 px wide.
const SIZE: (u32, u32) = (560, 360);
const TICK: u32 = 16;
const DESC: u32 = 16;
const INK: RGBColor = RGBColor(0x1f, 0x4e, 0x79);
const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);

fn font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font bundled with the program.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
}

fn err(e: impl std::fmt::Display) -> IcpError {
    IcpError::Internal(format!("drawing a chart: {e}"))
}

/// Velocity-win rate of each holdout score decile over the baseline rate.
pub fn lift_by_decile(bins: &[CalibrationBin], base_rate: f64) -> Result<String> {
    font();
    let lifts: Vec<(f64, f64)> = bins
        .iter()
        .map(|b| (b.decile as f64, b.observed_rate / base_rate.max(1e-12)))
        .collect();
    let top = lifts.iter().map(|l| l.1).fold(1.5f64, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Holdout lift by score decile", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(52)
            .y_label_area_size(64)
            .build_cartesian_2d(0.5f64..10.5f64, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(10)
            .x_label_formatter(&|x| format!("{:.0}", x))
            .x_desc("decile of predicted probability (10 = highest)")
            .y_desc("lift over baseline")
            .label_style(("sans-serif", TICK))
            .axis_desc_style(("sans-serif", DESC))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                lifts
                    .iter()
                    .map(|&(d, l)| Rectangle::new([(d - 0.38, 0.0), (d + 0.38, l)], INK.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.5, 1.0), (10.5, 1.0)],
                GREY.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                "baseline = 1.0",
                (0.7, 1.0 + top * 0.02),
                ("sans-serif", TICK).into_font().color(&GREY),
            )))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Mean predicted probability against the observed rate, per holdout decile.
pub fn calibration(bins: &[CalibrationBin]) -> Result<String> {
    font();
    let top = bins
        .iter()
        .flat_map(|b| [b.mean_predicted, b.observed_rate])
        .fold(0.05f64, f64::max)
        * 1.1;
    let top = top.min(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Calibration on the holdout", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(52)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..top, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("predicted probability (decile mean)")
            .y_desc("observed velocity-win rate")
            .x_label_formatter(&|x| format!("{:.0}%", 100.0 * x))
            .y_label_formatter(&|y| format!("{:.0}%", 100.0 * y))
            .label_style(("sans-serif", TICK))
            .axis_desc_style(("sans-serif", DESC))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (top, top)],
                GREY.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                "perfect calibration",
                (top * 0.45, top * 0.38),
                ("sans-serif", TICK).into_font().color(&GREY),
            )))
            .map_err(err)?;
        let pts: Vec<(f64, f64)> = bins
            .iter()
            .map(|b| (b.mean_predicted, b.observed_rate))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), INK.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, INK.filled())))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Let the page scale a chart: drop the fixed width and height so the
/// viewBox sizes it (plotters writes both on the root element).
pub fn responsive(svg: &str) -> String {
    let (w, h) = SIZE;
    let fixed = format!("width=\"{w}\" height=\"{h}\"");
    if svg.contains(&fixed) && svg.contains("viewBox") {
        svg.replacen(&fixed, "class=\"fit\"", 1)
    } else if svg.contains(&fixed) {
        svg.replacen(&fixed, &format!("class=\"fit\" viewBox=\"0 0 {w} {h}\""), 1)
    } else {
        svg.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins() -> Vec<CalibrationBin> {
        (1..=10)
            .map(|d| CalibrationBin {
                decile: d,
                n: 100,
                mean_predicted: d as f64 / 20.0,
                observed_rate: d as f64 / 21.0,
            })
            .collect()
    }

    #[test]
    fn charts_are_svg_with_text_and_shapes() {
        let svg = lift_by_decile(&bins(), 0.25).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("Holdout lift by score decile"));
        assert!(svg.matches("<rect").count() >= 10);
        assert!(svg.contains("baseline = 1.0"));
        let r = responsive(&svg);
        assert!(
            r.contains("viewBox=\"0 0 560 360\"") && !r.contains("<svg width="),
            "{}",
            &r[..200.min(r.len())]
        );
        let svg = calibration(&bins()).unwrap();
        assert!(svg.contains("Calibration on the holdout"));
        assert!(svg.contains("perfect calibration"));
        assert!(svg.contains("<circle"));
    }
}
