//! SLA picks on hand-made result files.

use crate::common::{point_json, write_point};
use viz::load::load_experiments;
use viz::sla::{summarize, Slo};
use viz::Settings;

/// Two experiments: `a` (8 GPUs by name) and `b` (4 GPUs by name, so ×2 when normalised).
fn fixtures() -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("m_itl1000_otl100_mixed_a_4xtp2");
    let b = tmp.path().join("m_itl1000_otl100_mixed_b_1xtp4");
    // a: TPOT 10 → 20 → 40 ms, throughput 1000 → 2000 → 3000 tok/s.
    write_point(&a, &point_json(4, 10.0, 100.0, 1000.0, 10.0));
    write_point(&a, &point_json(8, 20.0, 200.0, 2000.0, 20.0));
    write_point(&a, &point_json(16, 40.0, 400.0, 3000.0, 30.0));
    // b: 4 GPUs; TPOT 12 → 30 ms, throughput 700 → 1300 tok/s (×2 normalised).
    write_point(&b, &point_json(4, 12.0, 150.0, 700.0, 7.0));
    write_point(&b, &point_json(8, 30.0, 300.0, 1300.0, 13.0));
    (tmp, vec![a, b])
}

#[test]
fn interpolated_picks_and_winner() {
    let (_tmp, dirs) = fixtures();
    let loaded = load_experiments(&dirs);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let s = Settings::default();
    // TPOT ≤ 30: a → between conc 8 and 16 at t = 0.5: conc 12, 2500 tok/s/node.
    //            b → conc 8 measured: 1300 × 8/4 = 2600 tok/s/node → winner.
    let sum = summarize(
        &loaded.experiments,
        &s,
        Slo {
            tpot_ms: Some(30.0),
            ttft_ms: None,
        },
    );
    let a = sum.picks[0].2.unwrap();
    assert!(a.interpolated);
    assert!((a.x - 12.0).abs() < 1e-9 && (a.throughput - 2500.0).abs() < 1e-9);
    assert!((a.tpot - 30.0).abs() < 1e-9 && (a.ttft - 300.0).abs() < 1e-9);
    assert!((a.request_throughput - 25.0).abs() < 1e-9);
    let b = sum.picks[1].2.unwrap();
    assert!(!b.interpolated);
    assert_eq!((b.x, b.throughput), (8.0, 2600.0));
    assert_eq!(sum.winner, Some(1));
    let text = sum.render_text();
    assert!(text.contains("Winner: b_1xtp4"), "{text}");

    // Adding TTFT ≤ 250: a → conc 8 + (250-200)/(400-200) × 8 = 10, 2250;
    // b → between 4 and 8 at t = (250-150)/150 = 2/3 (TTFT) vs TPOT fine → conc 6.67.
    let sum = summarize(
        &loaded.experiments,
        &s,
        Slo {
            tpot_ms: Some(30.0),
            ttft_ms: Some(250.0),
        },
    );
    let a = sum.picks[0].2.unwrap();
    assert!((a.x - 10.0).abs() < 1e-9 && (a.throughput - 2250.0).abs() < 1e-9);
    let b = sum.picks[1].2.unwrap();
    assert!((b.x - (4.0 + 4.0 * 2.0 / 3.0)).abs() < 1e-9);
    assert!((b.throughput - 2.0 * (700.0 + 600.0 * 2.0 / 3.0)).abs() < 1e-9);
    // 2250 > 2200: a wins now.
    assert_eq!(sum.winner, Some(0));

    // Unnormalised, a wins.
    let raw = Settings {
        use_normalized: false,
        ..Settings::default()
    };
    let sum = summarize(
        &loaded.experiments,
        &raw,
        Slo {
            tpot_ms: Some(30.0),
            ttft_ms: None,
        },
    );
    assert_eq!(sum.winner, Some(0));
    assert!(sum.metric.contains("(token/s)"));
}

#[test]
fn nothing_meets_a_tight_sla() {
    let (_tmp, dirs) = fixtures();
    let loaded = load_experiments(&dirs);
    let sum = summarize(
        &loaded.experiments,
        &Settings::default(),
        Slo {
            tpot_ms: Some(5.0),
            ttft_ms: None,
        },
    );
    assert!(sum.picks.iter().all(|p| p.2.is_none()));
    assert_eq!(sum.winner, None);
    assert!(sum.render_text().contains("Winner: none"));
    assert!(sum.to_markdown().contains("no point meets the SLA"));
}
