//! Rendering a figure to PNG (bitmap backend + fast PNG encoding, 300 dpi) or SVG, with
//! the figure's provenance embedded (see [`crate::outputs`]).

use plotters::prelude::*;

use super::figure::Figure;
use crate::error::{Result, VizError};
use crate::outputs::{Provenance, PROVENANCE_KEY};
use crate::style;

/// Output format of plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// 300 dots per inch in pixels per metre (PNG pHYs chunk).
const PIXELS_PER_METRE_300_DPI: u32 = 11_811;

/// RGB pixels of the figure.
pub fn render_rgb(fig: &Figure) -> Result<(Vec<u8>, u32, u32)> {
    style::ensure_font().map_err(|m| VizError::plot(&fig.title, m))?;
    let layout = fig.layout();
    let (w, h) = (layout.width, layout.height);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        fig.draw(&root).map_err(|e| VizError::plot(&fig.title, e))?;
        root.present().map_err(|e| VizError::plot(&fig.title, e))?;
    }
    Ok((buf, w, h))
}

/// PNG bytes of the figure (the provenance in an iTXt chunk).
pub fn render_png(fig: &Figure, provenance: Option<&Provenance>) -> Result<Vec<u8>> {
    let (buf, w, h) = render_rgb(fig)?;
    let mut out = Vec::with_capacity(buf.len() / 8);
    let err = |e: png::EncodingError| VizError::plot(&fig.title, format!("PNG encoding: {e}"));
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        enc.set_filter(png::FilterType::Sub);
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: PIXELS_PER_METRE_300_DPI,
            yppu: PIXELS_PER_METRE_300_DPI,
            unit: png::Unit::Meter,
        }));
        if let Some(p) = provenance {
            enc.add_itxt_chunk(PROVENANCE_KEY.to_string(), p.to_json())
                .map_err(err)?;
        }
        let mut writer = enc.write_header().map_err(err)?;
        writer.write_image_data(&buf).map_err(err)?;
        writer.finish().map_err(err)?;
    }
    Ok(out)
}

/// SVG text of the figure (the provenance in a comment after the opening tag).
pub fn render_svg(fig: &Figure, provenance: Option<&Provenance>) -> Result<String> {
    style::ensure_font().map_err(|m| VizError::plot(&fig.title, m))?;
    let layout = fig.layout();
    let mut s = String::new();
    {
        let root =
            SVGBackend::with_string(&mut s, (layout.width, layout.height)).into_drawing_area();
        fig.draw(&root).map_err(|e| VizError::plot(&fig.title, e))?;
        root.present().map_err(|e| VizError::plot(&fig.title, e))?;
    }
    if let Some(p) = provenance {
        let at = s
            .find("<svg")
            .and_then(|i| s[i..].find('>').map(|j| i + j + 1))
            .unwrap_or(0);
        s.insert_str(at, &format!("\n{}", p.svg_comment()));
    }
    Ok(s)
}

/// The bytes of the figure in `format`.
pub fn render(fig: &Figure, format: Format, provenance: Option<&Provenance>) -> Result<Vec<u8>> {
    Ok(match format {
        Format::Png => render_png(fig, provenance)?,
        Format::Svg => render_svg(fig, provenance)?.into_bytes(),
    })
}
