//! Hostile and broken input (issue 11): a negative or NaN metric never reaches a plot,
//! a table or an SLA pick; failed requests are reported per point.

use assert_cmd::Command;
use serde_json::json;

use crate::common::{point_json, write_point};
use viz::load::load_experiments;
use viz::sla::{summarize, Slo};
use viz::Settings;

#[test]
fn a_negative_tpot_never_wins_the_sla_pick() {
    let tmp = tempfile::tempdir().unwrap();
    let honest = tmp.path().join("m_itl1_otl2_mixed_honest_1xtp8");
    let broken = tmp.path().join("m_itl1_otl2_mixed_broken_1xtp8");
    write_point(&honest, &point_json(4, 10.0, 100.0, 1000.0, 10.0));
    write_point(&honest, &point_json(8, 18.0, 150.0, 1800.0, 18.0));
    // TPOT −5 ms with a huge throughput: the kind of file a bug or an attacker writes.
    write_point(&broken, &point_json(4, -5.0, 100.0, 99_000.0, 990.0));
    write_point(&broken, &point_json(8, 12.0, 120.0, 1500.0, 15.0));
    let loaded = load_experiments(&[honest.clone(), broken.clone()]);
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("conc4.json") && w.contains("tpot_ms is negative (-5)"),
        "{w}"
    );
    let b = &loaded.experiments[1];
    assert_eq!(b.points.len(), 1, "the broken point is skipped as a whole");
    let sum = summarize(
        &loaded.experiments,
        &Settings::default(),
        Slo {
            tpot_ms: Some(20.0),
            ttft_ms: None,
        },
    );
    assert_eq!(sum.winner, Some(0), "{}", sum.render_text());
    assert!(sum.picks[1].2.unwrap().throughput < 2000.0);
    // And the binary says so on stderr while still plotting the rest.
    let out = Command::cargo_bin("viz")
        .unwrap()
        .current_dir(tmp.path())
        .args(["--format", "svg", "--slo-tpot", "20", "--exps"])
        .arg(&honest)
        .arg(&broken)
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tpot_ms is negative"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Winner: honest_1xtp8"), "{stdout}");
    assert!(!stdout.contains("99000"), "{stdout}");
}

#[test]
fn every_broken_number_is_rejected_with_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_x_1xtp8");
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("median_ttft_ms", json!(-1.0)),
        ("output_throughput", json!(-10.0)),
        ("request_throughput", json!(-0.5)),
        ("p99_itl_ms", json!(-3)),
        ("duration", json!(0.0)),
    ];
    for (i, (key, value)) in cases.iter().enumerate() {
        let mut p = point_json(4 + i as u64, 10.0, 100.0, 1000.0, 10.0);
        p[*key] = value.clone();
        write_point(&d, &p);
    }
    // Python's json writes NaN / Infinity literals.
    let good = serde_json::to_string(&point_json(64, 10.0, 100.0, 1000.0, 10.0)).unwrap();
    let nan = good.replace("\"median_tpot_ms\":10.0", "\"median_tpot_ms\":NaN");
    assert_ne!(nan, good);
    std::fs::write(d.join("conc64.json"), nan).unwrap();
    let inf = good
        .replace("\"max_concurrency\":64", "\"max_concurrency\":65")
        .replace("\"median_ttft_ms\":100.0", "\"median_ttft_ms\":Infinity");
    std::fs::write(d.join("conc65.json"), inf).unwrap();
    write_point(&d, &point_json(128, 10.0, 100.0, 1000.0, 10.0));

    let loaded = load_experiments(std::slice::from_ref(&d));
    let w = loaded.warnings.join("\n");
    for (key, _) in &cases {
        assert!(w.contains(key), "no warning for {key}: {w}");
    }
    assert!(w.contains("median_tpot_ms is NaN or infinite"), "{w}");
    assert!(w.contains("median_ttft_ms is NaN or infinite"), "{w}");
    let e = &loaded.experiments[0];
    assert_eq!(
        e.points.iter().map(|p| p.value).collect::<Vec<_>>(),
        vec![128.0]
    );
}

#[test]
fn points_with_failed_requests_are_kept_flagged_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_crash_1xtp8");
    let mut p = point_json(4, 10.0, 100.0, 1000.0, 10.0);
    p["completed"] = json!(4);
    p["failed"] = json!(16);
    write_point(&d, &p);
    write_point(&d, &point_json(8, 12.0, 120.0, 1500.0, 15.0));
    let loaded = load_experiments(std::slice::from_ref(&d));
    let w = loaded.warnings.join("\n");
    assert!(w.contains("conc4.json: 16 of 20 requests failed"), "{w}");
    assert!(!w.contains("conc8.json"), "{w}");
    let e = &loaded.experiments[0];
    assert_eq!((e.points[0].failed, e.points[0].requests), (16, 20));
    let fig = viz::plot::figure(
        viz::plot::PlotType::Comprehensive,
        &loaded.experiments,
        &Settings::default(),
        "x",
        None,
    );
    assert_eq!(fig.panels[0].series[0].flagged, vec![true, false]);
    assert!(fig.notes.iter().any(|n| n.starts_with("Red rings")));
}
