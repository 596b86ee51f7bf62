//! A figure: title, one or more panels side by side, a shared legend and notes below; and
//! its drawing on any plotters backend. Every text is fitted to the space it has (a
//! smaller size, then wrapped lines); axes end on labelled ticks that cover the data
//! ([`super::ticks`]); point labels never overlap ([`super::labels`]).

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::labels::{Placer, Rect as PxRect};
use super::ticks::{self, fmt_tick};
use crate::style::{self, series_style, Shape, FONT};

/// One line of a panel (an experiment, or a sweep point in server-metrics plots).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Style index (colour and marker).
    pub index: usize,
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Text next to each point (empty = none); left out where it would overlap.
    pub annotations: Vec<String>,
    /// 95 % confidence interval of each point's x (empty or `None` = none).
    pub x_err: Vec<Option<(f64, f64)>>,
    /// 95 % confidence interval of each point's y.
    pub y_err: Vec<Option<(f64, f64)>>,
    /// Draw `y_err` as a shaded band along the line instead of error bars.
    pub band: bool,
    /// Points to ring in red (some requests failed).
    pub flagged: Vec<bool>,
    /// Draw markers on the points (off for dense time series).
    pub markers: bool,
}

impl Series {
    pub fn new(index: usize, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            index,
            name: name.into(),
            points,
            annotations: Vec::new(),
            x_err: Vec::new(),
            y_err: Vec::new(),
            band: false,
            flagged: Vec::new(),
            markers: true,
        }
    }

    fn err_values(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let xs = self
            .x_err
            .iter()
            .zip(&self.points)
            .filter_map(|(e, p)| e.map(|(a, b)| [(a, p.1), (b, p.1)]));
        let ys = self
            .y_err
            .iter()
            .zip(&self.points)
            .filter_map(|(e, p)| e.map(|(a, b)| [(p.0, a), (p.0, b)]));
        xs.chain(ys).flatten()
    }
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

impl Panel {
    /// The x and y axes this panel is drawn with (`None` when it has no data).
    pub fn axes(&self) -> Option<(ticks::Axis, ticks::Axis)> {
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().copied().chain(s.err_values()))
        };
        Some((
            ticks::axis(pts().map(|p| p.0), self.x_log)?,
            ticks::axis(pts().map(|p| p.1), self.y_log)?,
        ))
    }
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
    /// Parts of the subtitle (joined by ` · `, wrapped to the width).
    pub subtitle: Vec<String>,
    pub panels: Vec<Panel>,
    pub legend: Vec<LegendEntry>,
    /// Lines of text below the legend (the key of the frontier labels, what error bars
    /// and red rings mean).
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
const LINE_SPACING: f64 = 1.3;
const SIDE_MARGIN: u32 = 40;

/// Fitted text: its font size and lines.
#[derive(Debug, Clone, PartialEq)]
pub struct TextBlock {
    pub size: f64,
    pub lines: Vec<String>,
}

impl TextBlock {
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        (self.lines.len() as f64 * self.size * LINE_SPACING).ceil() as u32
    }
}

/// Width of `text` at `size` with the embedded font.
pub fn text_width(text: &str, size: f64) -> u32 {
    let _ = style::ensure_font();
    (FONT, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// Split `word` into pieces no wider than `max_w`.
fn break_word(word: &str, size: f64, max_w: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in word.chars() {
        cur.push(c);
        if text_width(&cur, size) > max_w && cur.chars().count() > 1 {
            cur.pop();
            out.push(std::mem::take(&mut cur));
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Greedy word wrap at `size` into lines no wider than `max_w` (a `·` separator stays
/// at the end of its line).
pub fn wrap(text: &str, size: f64, max_w: u32) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text.split(' ').filter(|w| !w.is_empty()) {
        match words.last_mut() {
            Some(prev) if w == "·" => {
                prev.push_str(" ·");
            }
            _ => words.push(w.to_string()),
        }
    }
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in words {
        let pieces = if text_width(&w, size) > max_w {
            break_word(&w, size, max_w)
        } else {
            vec![w]
        };
        for piece in pieces {
            let candidate = if cur.is_empty() {
                piece.clone()
            } else {
                format!("{cur} {piece}")
            };
            if cur.is_empty() || text_width(&candidate, size) <= max_w {
                cur = candidate;
            } else {
                lines.push(std::mem::take(&mut cur));
                cur = piece;
            }
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Fit `text` into `max_w` pixels: as is, else at up to 20 % smaller size, else wrapped
/// at 90 % of the size.
pub fn fit(text: &str, size: f64, max_w: u32) -> TextBlock {
    for scale in [1.0, 0.9, 0.8] {
        if text_width(text, size * scale) <= max_w {
            return TextBlock {
                size: size * scale,
                lines: vec![text.to_string()],
            };
        }
    }
    TextBlock {
        size: size * 0.9,
        lines: wrap(text, size * 0.9, max_w),
    }
}

/// `text` shortened in the middle with `…` to fit `max_w`.
pub fn ellipsize(text: &str, size: f64, max_w: u32) -> String {
    if text_width(text, size) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut keep = chars.len();
    while keep > 2 {
        keep -= 1;
        let head: String = chars[..keep / 2].iter().collect();
        let tail: String = chars[chars.len() - (keep - keep / 2)..].iter().collect();
        let s = format!("{head}…{tail}");
        if text_width(&s, size) <= max_w {
            return s;
        }
    }
    "…".to_string()
}

/// Computed canvas layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    pub title: TextBlock,
    pub subtitle: Option<TextBlock>,
    pub title_h: u32,
    pub panel_titles: Vec<TextBlock>,
    pub panel_title_h: u32,
    pub legend: Vec<String>,
    pub legend_h: u32,
    pub legend_cols: usize,
    /// Width of each legend column.
    pub legend_col_ws: Vec<u32>,
    /// Note lines (wrapped) and how they are arranged.
    pub notes: Vec<String>,
    pub notes_h: u32,
    pub notes_cols: usize,
    pub notes_col_w: u32,
}

impl Figure {
    /// Canvas size, fitted texts and legend arrangement.
    pub fn layout(&self) -> Layout {
        let n = self.panels.len().max(1) as u32;
        let width = self.panel_size.0 * n;
        let usable = width.saturating_sub(2 * SIDE_MARGIN);
        let title = fit(&self.title, TITLE_FONT, usable);
        let subtitle = (!self.subtitle.is_empty())
            .then(|| fit(&self.subtitle.join("  ·  "), SUBTITLE_FONT, usable));
        let title_h = 24 + title.height() + subtitle.as_ref().map_or(0, |s| 10 + s.height()) + 24;
        let panel_titles: Vec<TextBlock> = self
            .panels
            .iter()
            .map(|p| {
                fit(
                    &p.title,
                    PANEL_TITLE_FONT,
                    self.panel_size.0.saturating_sub(60),
                )
            })
            .collect();
        let panel_title_h = panel_titles.iter().map(|t| t.height()).max().unwrap_or(0) + 16;

        let max_entry = usable.saturating_sub(LEGEND_SAMPLE as u32 + 80);
        let legend: Vec<String> = self
            .legend
            .iter()
            .map(|e| ellipsize(&e.name, LEGEND_FONT, max_entry))
            .collect();
        // As many columns as fit, each as wide as its widest entry (row-major order).
        let entry_w: Vec<u32> = legend
            .iter()
            .map(|e| LEGEND_SAMPLE as u32 + 20 + text_width(e, LEGEND_FONT) + 60)
            .collect();
        let col_widths = |cols: usize| -> Vec<u32> {
            (0..cols)
                .map(|c| {
                    entry_w
                        .iter()
                        .skip(c)
                        .step_by(cols)
                        .copied()
                        .max()
                        .unwrap_or(0)
                })
                .collect()
        };
        let cols = (1..=legend.len().max(1))
            .rev()
            .find(|&c| col_widths(c).iter().sum::<u32>() <= usable)
            .unwrap_or(1);
        let legend_col_ws = col_widths(cols);
        let rows = legend.len().div_ceil(cols) as u32;
        let legend_h = if rows == 0 { 0 } else { rows * LEGEND_ROW + 50 };

        let widest_note = self
            .notes
            .iter()
            .map(|n| text_width(n, NOTE_FONT))
            .max()
            .unwrap_or(0);
        let (notes, notes_cols, notes_col_w) = if widest_note + 60 <= usable {
            let col_w = widest_note + 60;
            let cols = ((usable / col_w) as usize).clamp(1, self.notes.len().max(1));
            // Long explanations read better one per line.
            let cols = if self.notes.iter().any(|n| n.chars().count() > 60) {
                1
            } else {
                cols
            };
            (self.notes.clone(), cols, col_w)
        } else {
            let lines = self
                .notes
                .iter()
                .flat_map(|n| wrap(n, NOTE_FONT, usable))
                .collect();
            (lines, 1, usable)
        };
        let note_rows = notes.len().div_ceil(notes_cols) as u32;
        let notes_h = if note_rows == 0 {
            0
        } else {
            note_rows * (NOTE_FONT * LINE_SPACING) as u32 + 40
        };
        Layout {
            width,
            height: title_h + panel_title_h + self.panel_size.1 + legend_h + notes_h,
            title,
            subtitle,
            title_h,
            panel_titles,
            panel_title_h,
            legend,
            legend_h,
            legend_cols: cols,
            legend_col_ws,
            notes,
            notes_h,
            notes_cols,
            notes_col_w,
        }
    }

    /// Draw the figure on `root` (sized per [`Figure::layout`]).
    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let layout = self.layout();
        root.fill(&WHITE)?;
        let cx = layout.width as i32 / 2;
        let mut y = 24;
        draw_block(root, &layout.title, cx, y, true, &BLACK)?;
        y += layout.title.height() as i32 + 10;
        if let Some(sub) = &layout.subtitle {
            draw_block(root, sub, cx, y, false, &RGBColor(0x44, 0x44, 0x44))?;
        }
        let (_, rest) = root.split_vertically(layout.title_h);
        let (panels_area, below) = rest.split_vertically(layout.panel_title_h + self.panel_size.1);
        let n = self.panels.len().max(1);
        let areas = panels_area.split_evenly((1, n));
        for ((panel, area), title) in self
            .panels
            .iter()
            .zip(areas.iter())
            .zip(&layout.panel_titles)
        {
            let (title_area, chart_area) = area.split_vertically(layout.panel_title_h);
            let (w, _) = title_area.dim_in_pixel();
            draw_block(&title_area, title, w as i32 / 2, 8, true, &BLACK)?;
            draw_panel(&chart_area, panel)?;
        }
        let (legend_area, notes_area) = below.split_vertically(layout.legend_h);
        draw_legend(&legend_area, &self.legend, &layout)?;
        let style = (FONT, NOTE_FONT)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Top));
        let used = layout.notes_col_w * layout.notes_cols as u32;
        let x0 = (layout.width.saturating_sub(used) / 2) as i32;
        let row_h = (NOTE_FONT * LINE_SPACING) as i32;
        for (k, note) in layout.notes.iter().enumerate() {
            let (col, row) = (k % layout.notes_cols, k / layout.notes_cols);
            notes_area.draw_text(
                note,
                &style,
                (
                    x0 + (col as u32 * layout.notes_col_w) as i32,
                    10 + row as i32 * row_h,
                ),
            )?;
        }
        Ok(())
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draw the lines of `block` centred on `cx`, the first line's top at `y`.
fn draw_block<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    block: &TextBlock,
    cx: i32,
    y: i32,
    bold: bool,
    color: &RGBColor,
) -> DrawResult<DB> {
    let font = (FONT, block.size).into_font();
    let font = if bold {
        font.style(FontStyle::Bold)
    } else {
        font
    };
    let style = font.color(color).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in block.lines.iter().enumerate() {
        let dy = (i as f64 * block.size * LINE_SPACING) as i32;
        area.draw_text(line, &style, (cx, y + dy))?;
    }
    Ok(())
}

/// A coordinate with our own tick values (from [`ticks::axis`]).
struct Keyed<R> {
    inner: R,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Keyed<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> std::ops::Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> DrawResult<DB> {
    let Some((xa, ya)) = p.axes() else {
        let (w, h) = area.dim_in_pixel();
        area.draw_text(
            "no data",
            &(FONT, PANEL_TITLE_FONT)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
            (w as i32 / 2, h as i32 / 2),
        )?;
        return Ok(());
    };
    let lin = |a: ticks::Axis| Keyed {
        inner: plotters::coord::types::RangedCoordf64::from(a.lo..a.hi),
        bold: a.bold,
        light: a.light,
    };
    let log = |a: ticks::Axis| Keyed {
        inner: LogCoord::<f64>::from((a.lo..a.hi).log_scale()),
        bold: a.bold,
        light: a.light,
    };
    match (xa.log, ya.log) {
        (false, false) => draw_chart(area, p, lin(xa), lin(ya)),
        (true, false) => draw_chart(area, p, log(xa), lin(ya)),
        (false, true) => draw_chart(area, p, lin(xa), log(ya)),
        (true, true) => draw_chart(area, p, log(xa), log(ya)),
    }
}

fn draw_chart<DB, X, Y>(area: &DrawingArea<DB, Shift>, p: &Panel, x: X, y: Y) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(36)
        .margin_top(8)
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
        .bold_line_style(BLACK.mix(0.14).stroke_width(2))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(BLACK.stroke_width(2))
        .set_all_tick_mark_size(10)
        .draw()?;

    // Bands under the lines.
    for s in p.series.iter().filter(|s| s.band) {
        let (color, _) = series_style(s.index);
        let with_err: Vec<(f64, (f64, f64))> = s
            .points
            .iter()
            .zip(&s.y_err)
            .filter_map(|(pt, e)| e.map(|e| (pt.0, e)))
            .collect();
        if with_err.len() >= 2 {
            let outline: Vec<(f64, f64)> = with_err
                .iter()
                .map(|(x, (_, hi))| (*x, *hi))
                .chain(with_err.iter().rev().map(|(x, (lo, _))| (*x, *lo)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.16).filled(),
            )))?;
        }
    }

    for s in &p.series {
        let (color, marker) = series_style(s.index);
        chart.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(LINE_WIDTH),
        ))?;
        // Error bars (y always unless drawn as a band; x when given).
        let single_band = s.y_err.iter().flatten().count() < 2;
        if !s.band || single_band {
            chart.draw_series(s.points.iter().zip(&s.y_err).filter_map(|(pt, e)| {
                e.map(|(lo, hi)| {
                    ErrorBar::new_vertical(pt.0, lo, pt.1, hi, color.stroke_width(3), 18)
                })
            }))?;
        }
        chart.draw_series(s.points.iter().zip(&s.x_err).filter_map(|(pt, e)| {
            e.map(|(lo, hi)| {
                ErrorBar::new_horizontal(pt.1, lo, pt.0, hi, color.stroke_width(3), 18)
            })
        }))?;
        if s.markers {
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
                            EmptyElement::at(pt)
                                + PathElement::new(st.to_vec(), color.stroke_width(5))
                        })
                    }))?;
                }
            }
        }
        let red = RGBColor(0xd0, 0x10, 0x10);
        chart.draw_series(s.points.iter().zip(&s.flagged).filter(|(_, f)| **f).map(
            |(&pt, _)| {
                EmptyElement::at(pt) + Circle::new((0, 0), MARKER_R + 8, red.stroke_width(4))
            },
        ))?;
    }
    let ink = RGBColor(0x10, 0x10, 0x10);
    if let Some(f) = &p.frontier {
        chart.draw_series(DashedLineSeries::new(
            f.points.iter().copied(),
            22,
            12,
            ink.stroke_width(5),
        ))?;
        chart.draw_series(f.points.iter().map(|&pt| {
            EmptyElement::at(pt) + Circle::new((0, 0), MARKER_R + 9, ink.stroke_width(3))
        }))?;
    }

    // Labels: frontier labels first, then point annotations; none overlaps another
    // label, a marker or a line.
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let mut placer = Placer::new(PxRect::new(xr.start, yr.start, xr.end, yr.end));
    for s in &p.series {
        let px: Vec<(i32, i32)> = s.points.iter().map(|pt| chart.backend_coord(pt)).collect();
        for c in &px {
            placer.avoid(PxRect::around(*c, MARKER_R + 2));
        }
        for w in px.windows(2) {
            placer.avoid_segment(w[0], w[1], 3);
        }
        // Error bars (with their caps) are as solid as lines.
        let bars = !s.band || s.y_err.iter().flatten().count() < 2;
        for (pt, e) in s.points.iter().zip(&s.y_err) {
            if let (true, Some((lo, hi))) = (bars, e) {
                let (a, b) = (
                    chart.backend_coord(&(pt.0, *lo)),
                    chart.backend_coord(&(pt.0, *hi)),
                );
                placer.avoid_segment(a, b, 10);
            }
        }
        for (pt, e) in s.points.iter().zip(&s.x_err) {
            if let Some((lo, hi)) = e {
                let (a, b) = (
                    chart.backend_coord(&(*lo, pt.1)),
                    chart.backend_coord(&(*hi, pt.1)),
                );
                placer.avoid_segment(a, b, 10);
            }
        }
    }
    let base = area.get_base_pixel();
    let place = |placer: &mut Placer,
                 pt: (f64, f64),
                 text: &str,
                 size: f64,
                 bold: bool,
                 color: &RGBColor|
     -> DrawResult<DB> {
        let font = (FONT, size).into_font();
        let font = if bold {
            font.style(FontStyle::Bold)
        } else {
            font
        };
        let (w, h) = font.box_size(text).unwrap_or((0, 0));
        let c = chart.backend_coord(&pt);
        if let Some((x, y)) = placer.place(c, w as i32, h as i32, MARKER_R) {
            let style = font.color(color).pos(Pos::new(HPos::Left, VPos::Top));
            // draw_text takes coordinates relative to the area.
            area.draw_text(text, &style, (x - base.0, y - base.1))?;
        }
        Ok(())
    };
    if let Some(f) = &p.frontier {
        for (l, &pt) in f.labels.iter().zip(&f.points) {
            place(&mut placer, pt, l, FRONTIER_FONT, true, &ink)?;
        }
    }
    for s in &p.series {
        let (color, _) = series_style(s.index);
        for (&pt, a) in s.points.iter().zip(&s.annotations) {
            if !a.is_empty() {
                place(&mut placer, pt, a, ANNOTATION_FONT, false, &color)?;
            }
        }
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
    let used_w: u32 = layout.legend_col_ws.iter().sum();
    let x0 = (layout.width.saturating_sub(used_w) / 2) as i32;
    let (_, h) = area.dim_in_pixel();
    area.draw(&Rectangle::new(
        [(x0 - 20, 10), (x0 + used_w as i32 + 10, h as i32 - 14)],
        BLACK.mix(0.3).stroke_width(2),
    ))?;
    let text = (FONT, LEGEND_FONT)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (e, name)) in entries.iter().zip(&layout.legend).enumerate() {
        let (col, row) = (k % cols, k / cols);
        let x = x0 + layout.legend_col_ws[..col].iter().sum::<u32>() as i32;
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
        area.draw_text(name, &text, (x + LEGEND_SAMPLE + 20, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_fit_their_space() {
        let long = "ITL 5000, OTL 250, mixed  ·  throughput normalised to one node of 8 GPUs \
                    (value × 8 / GPUs)  ·  14 experiment(s)  ·  error bars: 95 % CI";
        let b = fit(long, 36.0, 1000);
        assert!(b.lines.len() >= 2, "{b:?}");
        for l in &b.lines {
            assert!(text_width(l, b.size) <= 1000, "{l}");
            assert!(!l.starts_with('·'), "{l}");
        }
        assert_eq!(fit("short", 36.0, 1000).lines, vec!["short".to_string()]);
        let word = "x".repeat(300);
        for l in wrap(&word, 30.0, 400) {
            assert!(text_width(&l, 30.0) <= 400);
        }
        let e = ellipsize(&"a_very_long_name_".repeat(10), 32.0, 500);
        assert!(e.contains('…') && text_width(&e, 32.0) <= 500);
    }

    #[test]
    fn layout_grows_with_wrapped_titles() {
        let panel = Panel {
            title: "Output Throughput per GPU vs Interactivity (Pareto frontier) of a long \
                    list of configurations and workloads"
                .into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_log: false,
            y_log: false,
            series: vec![Series::new(0, "a", vec![(1.0, 2.0)])],
            frontier: None,
        };
        let fig = Figure {
            title: "t".into(),
            subtitle: vec!["s".into()],
            panels: vec![panel.clone()],
            legend: vec![],
            notes: vec![],
            panel_size: (1200, 1000),
        };
        let l = fig.layout();
        assert!(l.panel_titles[0].lines.len() >= 2, "{:?}", l.panel_titles);
        for line in &l.panel_titles[0].lines {
            assert!(text_width(line, l.panel_titles[0].size) <= 1140);
        }
        assert_eq!(
            l.height,
            l.title_h + l.panel_title_h + 1000 + l.legend_h + l.notes_h
        );
    }
}
