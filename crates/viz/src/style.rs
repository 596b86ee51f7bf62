//! Colours, markers and the embedded font.

use std::sync::OnceLock;

use plotters::style::{FontStyle, RGBColor};

/// Font family name the embedded font is registered under.
pub const FONT: &str = "sans-serif";

/// DejaVu Sans (see `assets/README.md` for its license).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Register the embedded font with plotters (once); every text of every plot uses it.
pub fn ensure_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font(FONT, style, FONT_BYTES)
                .map_err(|_| "the embedded DejaVu Sans font is invalid".to_string())?;
        }
        Ok(())
    })
    .clone()
}

/// tab10 followed by darker tones: 16 colours distinct on white.
pub const PALETTE: [RGBColor; 16] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0x39, 0x3b, 0x79),
    RGBColor(0x63, 0x79, 0x39),
    RGBColor(0x8c, 0x6d, 0x31),
    RGBColor(0x84, 0x3c, 0x39),
    RGBColor(0x7b, 0x41, 0x73),
];

/// Marker shapes, cycled independently of colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Cross,
    Plus,
    Pentagon,
}

pub const MARKERS: [Marker; 8] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Cross,
    Marker::Plus,
    Marker::Pentagon,
];

/// Colour and marker of the i-th experiment.
pub fn series_style(i: usize) -> (RGBColor, Marker) {
    (PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()])
}

/// Outline of a filled marker of radius `r` around (0, 0), or the strokes of a
/// line marker (cross, plus).
pub enum Shape {
    Polygon(Vec<(i32, i32)>),
    Strokes(Vec<[(i32, i32); 2]>),
}

fn regular(n: usize, r: f64, rot_deg: f64) -> Vec<(i32, i32)> {
    (0..n)
        .map(|k| {
            let a = (rot_deg + 360.0 * k as f64 / n as f64).to_radians();
            ((r * a.cos()).round() as i32, (r * a.sin()).round() as i32)
        })
        .collect()
}

impl Marker {
    pub fn shape(self, r: i32) -> Shape {
        let rf = f64::from(r);
        match self {
            Marker::Circle => Shape::Polygon(regular(24, rf, 0.0)),
            Marker::Square => Shape::Polygon(regular(4, rf * 1.2, 45.0)),
            Marker::TriangleUp => Shape::Polygon(regular(3, rf * 1.25, -90.0)),
            Marker::TriangleDown => Shape::Polygon(regular(3, rf * 1.25, 90.0)),
            Marker::Diamond => Shape::Polygon(regular(4, rf * 1.3, 0.0)),
            Marker::Pentagon => Shape::Polygon(regular(5, rf * 1.15, -90.0)),
            Marker::Cross => Shape::Strokes(vec![[(-r, -r), (r, r)], [(-r, r), (r, -r)]]),
            Marker::Plus => {
                let p = (rf * 1.3) as i32;
                Shape::Strokes(vec![[(-p, 0), (p, 0)], [(0, -p), (0, p)]])
            }
        }
    }
}
