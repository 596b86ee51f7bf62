//! A figure: title, one or more panels side by side, a shared legend below; and its
//! drawing on any plotters backend.

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::style::{series_style, Shape, FONT};

/// One experiment's line in a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Style index (colour and marker) of the experiment.
    pub index: usize,
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Text next to each point (empty = none).
    pub annotations: Vec<String>,
}

/// A highlighted frontier (Pareto) with labelled points.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    pub points: Vec<(f64, f64)>,
    /// Short label drawn next to each point (`F1`, `F2`…; keyed in the figure notes).
    pub labels: Vec<String>,
}

/// One chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    pub frontier: Option<Frontier>,
}

/// Legend entry: style index and name.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub index: usize,
    pub name: String,
}

/// A whole figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub subtitle: Option<String>,
    pub panels: Vec<Panel>,
    pub legend: Vec<LegendEntry>,
    /// Lines of text below the legend (e.g. the key of the frontier labels).
    pub notes: Vec<String>,
    /// Size of one panel in pixels.
    pub panel_size: (u32, u32),
}

// Sizes in pixels (the canvas is ~300 dpi: a 1200 px panel is 4 inches).
const TITLE_FONT: f64 = 54.0;
const SUBTITLE_FONT: f64 = 36.0;
const PANEL_TITLE_FONT: f64 = 42.0;
const AXIS_DESC_FONT: f64 = 36.0;
const TICK_FONT: f64 = 30.0;
const LEGEND_FONT: f64 = 32.0;
const ANNOTATION_FONT: f64 = 24.0;
const FRONTIER_FONT: f64 = 26.0;
const LINE_WIDTH: u32 = 4;
const MARKER_R: i32 = 11;
const LEGEND_ROW: u32 = 54;
const LEGEND_SAMPLE: i32 = 80;
const NOTE_FONT: f64 = 28.0;
const NOTE_ROW: u32 = 40;

/// Computed canvas layout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    pub title_h: u32,
    pub legend_h: u32,
    pub legend_cols: usize,
    pub legend_col_w: u32,
    pub notes_h: u32,
    pub notes_cols: usize,
    pub notes_col_w: u32,
}

fn text_width(text: &str, size: f64) -> u32 {
    (FONT, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

impl Figure {
    /// Canvas size and legend arrangement.
    pub fn layout(&self) -> Layout {
        let width = self.panel_size.0 * self.panels.len().max(1) as u32;
        let title_h = if self.subtitle.is_some() { 140 } else { 90 };
        let widest = self
            .legend
            .iter()
            .map(|e| text_width(&e.name, LEGEND_FONT))
            .max()
            .unwrap_or(0);
        let col_w = LEGEND_SAMPLE as u32 + 20 + widest + 60;
        let usable = width.saturating_sub(80).max(col_w);
        let cols = ((usable / col_w) as usize).clamp(1, self.legend.len().max(1));
        let rows = self.legend.len().div_ceil(cols) as u32;
        let legend_h = if rows == 0 { 0 } else { rows * LEGEND_ROW + 50 };
        let widest_note = self
            .notes
            .iter()
            .map(|n| text_width(n, NOTE_FONT))
            .max()
            .unwrap_or(0);
        let notes_col_w = widest_note + 60;
        let notes_cols = ((usable / notes_col_w.max(1)) as usize).clamp(1, self.notes.len().max(1));
        let note_rows = self.notes.len().div_ceil(notes_cols) as u32;
        let notes_h = if note_rows == 0 {
            0
        } else {
            note_rows * NOTE_ROW + 40
        };
        Layout {
            width,
            height: title_h + self.panel_size.1 + legend_h + notes_h,
            notes_h,
            notes_cols,
            notes_col_w,
            title_h,
            legend_h,
            legend_cols: cols,
            legend_col_w: col_w,
        }
    }

    /// Draw the figure on `root` (sized per [`Figure::layout`]).
    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let layout = self.layout();
        root.fill(&WHITE)?;
        let center = Pos::new(HPos::Center, VPos::Top);
        root.draw_text(
            &self.title,
            &(FONT, TITLE_FONT)
                .into_font()
                .style(FontStyle::Bold)
                .color(&BLACK)
                .pos(center),
            (layout.width as i32 / 2, 18),
        )?;
        if let Some(sub) = &self.subtitle {
            root.draw_text(
                sub,
                &(FONT, SUBTITLE_FONT)
                    .into_font()
                    .color(&RGBColor(0x44, 0x44, 0x44))
                    .pos(center),
                (layout.width as i32 / 2, 84),
            )?;
        }
        let (_, rest) = root.split_vertically(layout.title_h);
        let (panels_area, legend_area) = rest.split_vertically(self.panel_size.1);
        let n = self.panels.len().max(1);
        let areas = panels_area.split_evenly((1, n));
        for (panel, area) in self.panels.iter().zip(areas.iter()) {
            draw_panel(area, panel)?;
        }
        let (legend_area, notes_area) = legend_area.split_vertically(layout.legend_h);
        draw_legend(&legend_area, &self.legend, &layout)?;
        let style = (FONT, NOTE_FONT)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Top));
        let used = layout.notes_col_w * layout.notes_cols as u32;
        let x0 = (layout.width.saturating_sub(used) / 2) as i32;
        for (k, note) in self.notes.iter().enumerate() {
            let (col, row) = (k % layout.notes_cols, k / layout.notes_cols);
            notes_area.draw_text(
                note,
                &style,
                (
                    x0 + (col as u32 * layout.notes_col_w) as i32,
                    10 + (row as u32 * NOTE_ROW) as i32,
                ),
            )?;
        }
        Ok(())
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Tick label: few digits, no exponent.
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Axis range of `values` with a 5% margin (log: multiplicative).
pub fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let vals: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if vals.is_empty() {
        return None;
    }
    if log {
        let ratio = if hi > lo { (hi / lo).powf(0.06) } else { 1.25 };
        Some((lo / ratio, hi * ratio))
    } else {
        let span = if hi > lo {
            hi - lo
        } else {
            hi.abs().max(1.0) * 0.2
        };
        let mut a = lo - span * 0.06;
        if lo >= 0.0 && a < 0.0 {
            a = 0.0;
        }
        Some((a, hi + span * 0.06))
    }
}

/// Tick values of a log axis over [lo, hi]: labelled ticks (1-2-5 per decade, denser
/// when the range is narrow) and light grid lines (1..9 per decade).
pub fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return (Vec::new(), Vec::new());
    }
    let in_range = |mults: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        for k in k0..=k1 {
            for m in mults {
                let v = m * 10f64.powi(k);
                if v >= lo && v <= hi {
                    out.push(v);
                }
            }
        }
        out
    };
    let light = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    for mults in [
        &[1.0][..],
        &[1.0, 2.0, 5.0][..],
        &[1.0, 2.0, 3.0, 5.0, 7.0][..],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..],
    ] {
        let bold = in_range(mults);
        if bold.len() >= 4 {
            return (bold, light);
        }
    }
    if light.len() >= 2 {
        return (light.clone(), light);
    }
    // Very narrow range: three evenly spaced values rounded to 2 significant digits.
    let bold = (0..3)
        .map(|i| {
            let v = lo * (hi / lo).powf((0.5 + f64::from(i)) / 3.0);
            let mag = 10f64.powi(v.log10().floor() as i32 - 1);
            (v / mag).round() * mag
        })
        .collect();
    (bold, light)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> DrawResult<DB> {
    let xs = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| pt.0))
        .collect::<Vec<_>>();
    let ys = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| pt.1))
        .collect::<Vec<_>>();
    let (Some(xr), Some(yr)) = (
        axis_range(xs.into_iter(), p.x_log),
        axis_range(ys.into_iter(), p.y_log),
    ) else {
        let (w, h) = area.dim_in_pixel();
        area.draw_text(
            &format!("{}: no data", p.title),
            &(FONT, PANEL_TITLE_FONT)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
            (w as i32 / 2, h as i32 / 2),
        )?;
        return Ok(());
    };
    let lin = |r: (f64, f64)| RangedCoordf64::from(r.0..r.1);
    let log = |r: (f64, f64)| {
        let (bold, light) = log_ticks(r.0, r.1);
        (r.0..r.1)
            .log_scale()
            .with_key_points(bold)
            .with_light_points(light)
    };
    match (p.x_log, p.y_log) {
        (false, false) => draw_chart(area, p, lin(xr), lin(yr)),
        (true, false) => draw_chart(area, p, log(xr), lin(yr)),
        (false, true) => draw_chart(area, p, lin(xr), log(yr)),
        (true, true) => draw_chart(area, p, log(xr), log(yr)),
    }
}

fn draw_chart<DB, X, Y>(area: &DrawingArea<DB, Shift>, p: &Panel, x: X, y: Y) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(
            &p.title,
            (FONT, PANEL_TITLE_FONT).into_font().style(FontStyle::Bold),
        )
        .margin(36)
        .x_label_area_size(120)
        .y_label_area_size(150)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style((FONT, TICK_FONT))
        .axis_desc_style((FONT, AXIS_DESC_FONT).into_font().style(FontStyle::Bold))
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .x_labels(8)
        .y_labels(8)
        .bold_line_style(BLACK.mix(0.14).stroke_width(2))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(BLACK.stroke_width(2))
        .set_all_tick_mark_size(10)
        .draw()?;

    for s in &p.series {
        let (color, marker) = series_style(s.index);
        chart.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(LINE_WIDTH),
        ))?;
        match marker.shape(MARKER_R) {
            Shape::Polygon(pts) => {
                let outline: Vec<(i32, i32)> =
                    pts.iter().copied().chain(pts.first().copied()).collect();
                chart.draw_series(s.points.iter().map(|&pt| {
                    EmptyElement::at(pt)
                        + Polygon::new(pts.clone(), color.filled())
                        + PathElement::new(outline.clone(), WHITE.stroke_width(2))
                }))?;
            }
            Shape::Strokes(strokes) => {
                chart.draw_series(s.points.iter().flat_map(|&pt| {
                    strokes.iter().map(move |st| {
                        EmptyElement::at(pt) + PathElement::new(st.to_vec(), color.stroke_width(5))
                    })
                }))?;
            }
        }
        let style = (FONT, ANNOTATION_FONT)
            .into_font()
            .color(&color.mix(0.95))
            .pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(
            s.points
                .iter()
                .zip(s.annotations.iter())
                .filter(|(_, a)| !a.is_empty())
                .map(|(&pt, a)| {
                    EmptyElement::at(pt) + Text::new(a.clone(), (12, -10), style.clone())
                }),
        )?;
    }
    if let Some(f) = &p.frontier {
        let ink = RGBColor(0x10, 0x10, 0x10);
        chart.draw_series(DashedLineSeries::new(
            f.points.iter().copied(),
            22,
            12,
            ink.stroke_width(5),
        ))?;
        chart.draw_series(f.points.iter().map(|&pt| {
            EmptyElement::at(pt) + Circle::new((0, 0), MARKER_R + 9, ink.stroke_width(3))
        }))?;
        let style = (FONT, FRONTIER_FONT)
            .into_font()
            .style(FontStyle::Bold)
            .color(&ink)
            .pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(f.labels.iter().zip(f.points.iter()).map(|(l, &pt)| {
            EmptyElement::at(pt) + Text::new(l.clone(), (16, -16), style.clone())
        }))?;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    layout: &Layout,
) -> DrawResult<DB> {
    if entries.is_empty() {
        return Ok(());
    }
    let cols = layout.legend_cols.max(1);
    let used_w = layout.legend_col_w * cols as u32;
    let x0 = (layout.width.saturating_sub(used_w) / 2) as i32;
    let (w, h) = area.dim_in_pixel();
    area.draw(&Rectangle::new(
        [(x0 - 20, 10), (x0 + used_w as i32 + 10, h as i32 - 14)],
        BLACK.mix(0.3).stroke_width(2),
    ))?;
    let _ = w;
    let text = (FONT, LEGEND_FONT)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (k, e) in entries.iter().enumerate() {
        let (col, row) = (k % cols, k / cols);
        let x = x0 + (col as u32 * layout.legend_col_w) as i32;
        let y = 36 + (row as u32 * LEGEND_ROW) as i32;
        let (color, marker) = series_style(e.index);
        area.draw(&PathElement::new(
            vec![(x, y), (x + LEGEND_SAMPLE, y)],
            color.stroke_width(LINE_WIDTH),
        ))?;
        let c = (x + LEGEND_SAMPLE / 2, y);
        match marker.shape(MARKER_R) {
            Shape::Polygon(pts) => {
                let abs: Vec<(i32, i32)> = pts.iter().map(|(a, b)| (a + c.0, b + c.1)).collect();
                area.draw(&Polygon::new(abs.clone(), color.filled()))?;
                area.draw(&PathElement::new(
                    abs.iter()
                        .copied()
                        .chain(abs.first().copied())
                        .collect::<Vec<_>>(),
                    WHITE.stroke_width(2),
                ))?;
            }
            Shape::Strokes(strokes) => {
                for s in strokes {
                    area.draw(&PathElement::new(
                        s.iter()
                            .map(|(a, b)| (a + c.0, b + c.1))
                            .collect::<Vec<_>>(),
                        color.stroke_width(5),
                    ))?;
                }
            }
        }
        area.draw_text(&e.name, &text, (x + LEGEND_SAMPLE + 20, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_ranges() {
        assert_eq!(fmt_tick(1234.4), "1234");
        assert_eq!(fmt_tick(12.0), "12");
        assert_eq!(fmt_tick(12.5), "12.5");
        assert_eq!(fmt_tick(5.0), "5");
        assert_eq!(fmt_tick(0.25), "0.25");
        let (a, b) = axis_range([4.0, 64.0].into_iter(), false).unwrap();
        assert!((a - 0.4).abs() < 1e-9 && b > 64.0, "{a} {b}");
        let (a, b) = axis_range([10.0, 1000.0, -1.0].into_iter(), true).unwrap();
        assert!(a < 10.0 && a > 5.0 && b > 1000.0);
        assert_eq!(axis_range(std::iter::empty(), false), None);
        let (bold, light) = log_ticks(4.5, 25.0);
        assert_eq!(bold, vec![5.0, 7.0, 10.0, 20.0]);
        assert!(light.contains(&9.0) && light.contains(&20.0));
        let (bold, _) = log_ticks(150.0, 70000.0);
        assert_eq!(bold.first(), Some(&200.0));
        assert!(bold.contains(&10000.0));
        assert_eq!(log_ticks(10.5, 11.0).0.len(), 3);
        assert!(log_ticks(0.0, 1.0).0.is_empty());
    }
}
