//! Plots on the shared real results: PNG and SVG are written, decode, and have the
//! size of the figure layout.

use viz::load::load_experiments;
use viz::plot::{self, Format, PlotType};
use viz::Settings;

fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn comprehensive_png_and_svg_of_all_14_dirs() {
    let loaded = load_experiments(&crate::common::real_dirs());
    let settings = Settings::default();
    let tmp = tempfile::tempdir().unwrap();
    let fig = plot::figure(
        PlotType::Comprehensive,
        &loaded.experiments,
        &settings,
        "comparison",
        loaded.workload.as_deref(),
    );
    let png_path = tmp.path().join("c.png");
    let svg_path = tmp.path().join("c.svg");
    std::fs::write(
        &png_path,
        plot::output::render(&fig, Format::Png, None).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &svg_path,
        plot::output::render(&fig, Format::Svg, None).unwrap(),
    )
    .unwrap();
    let layout = fig.layout();
    let (w, h, pixels) = decode_png(&png_path);
    assert_eq!((w, h), (layout.width, layout.height));
    assert!(w >= 3000, "300-dpi-class width, got {w}");
    assert_eq!(fig.panels.len(), 3);
    assert_eq!(fig.legend.len(), 14);
    // Not blank: many non-white pixels, several distinct colours.
    let non_white = pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    assert!(non_white > (w * h / 50) as usize, "{non_white}");
    let mut colours: Vec<[u8; 3]> = pixels.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 50);

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..80]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(&format!("width=\"{}\"", layout.width)));
    for e in &loaded.experiments {
        assert!(svg.contains(&e.name), "legend has {}", e.name);
    }
    for title in [
        "TPOT Median vs Concurrency",
        "TTFT Median vs Concurrency",
        "Output Throughput vs TPOT",
        "Output Throughput (token/s/node)",
    ] {
        assert!(svg.contains(title), "{title}");
    }
    // Labels are placed where they overlap nothing; with 14 crowded series some are
    // left out, but not all.
    // (Labels are `12.3`-like lines; no tick of this figure has one decimal.)
    let labels = svg
        .lines()
        .filter(|l| {
            l.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.len() == 1
                    && b.chars().all(|c| c.is_ascii_digit())
            })
        })
        .count();
    assert!(labels >= 10, "{labels} point labels");
}

#[test]
fn every_plot_type_renders_and_the_pareto_frontier_is_labelled() {
    let dirs: Vec<_> = ["baseline_4xtp2", "pd_p1xtp2-d2xtp2", "pd_p2xtp2-d1xtp2"]
        .iter()
        .map(|s| crate::common::real_dir(s))
        .collect();
    let loaded = load_experiments(&dirs);
    let settings = Settings::default();
    for pt in PlotType::expand(&[PlotType::All]) {
        let (figs, _) = plot::plan(pt, &loaded.experiments, &settings, "cmp", None);
        if pt == PlotType::ServerMetrics {
            assert!(
                figs.is_empty(),
                "the reference results have no server metrics"
            );
            continue;
        }
        assert_eq!(figs.len(), 1);
        let svg = plot::output::render_svg(&figs[0].figure, None).unwrap();
        assert!(svg.contains("<svg"), "{pt:?}");
        assert_eq!(figs[0].word, pt.file_word());
    }
    let fig = plot::figure(
        PlotType::Pareto,
        &loaded.experiments,
        &settings,
        "cmp",
        None,
    );
    let frontier = fig.panels[0].frontier.as_ref().unwrap();
    assert!(!frontier.points.is_empty());
    assert_eq!(fig.notes.len(), frontier.points.len());
    assert!(fig.notes[0].starts_with("F1 = "));
    // Frontier points are per-GPU: the best pd_p1xtp2-d2xtp2 point is ≤ 8-GPU node values / 6.
    for (x, y) in &frontier.points {
        assert!(*x > 0.0 && *y > 0.0 && *y < 1000.0);
    }
    let png = plot::output::render_png(&fig, None).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn log_flags_and_modes_change_the_axes() {
    let loaded = load_experiments(&[crate::common::real_dir("baseline_4xtp2")]);
    let mut s = Settings {
        log_latency: false,
        log_concurrency: false,
        use_interactivity: true,
        ..Settings::default()
    };
    let fig = plot::figure(PlotType::Comprehensive, &loaded.experiments, &s, "x", None);
    assert!(!fig.panels[0].y_log && !fig.panels[2].x_log);
    assert_eq!(fig.panels[2].x_label, "Interactivity (token/s/user)");
    s.use_interactivity = false;
    s.latency_mode = viz::LatencyMode::Chunk;
    s.chunk_size = 32;
    let fig = plot::figure(PlotType::Comprehensive, &loaded.experiments, &s, "x", None);
    assert_eq!(fig.panels[2].x_label, "Chunk Latency (ms, size=32)");
    // Chunk latency = 31 × TPOT + TTFT for every point.
    let e = &loaded.experiments[0];
    for (p, (x, _)) in e.points.iter().zip(&fig.panels[2].series[0].points) {
        let want = 31.0 * p.result.median_tpot_ms().unwrap() + p.result.median_ttft_ms().unwrap();
        assert!((x - want).abs() < 1e-9);
    }
}
