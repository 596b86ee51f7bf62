//! Golden-file tests of the text tables and the SLA table (`pd_testkit::golden`;
//! `UPDATE_GOLDEN=1 cargo test -p viz --test it snapshots` regenerates them).

fn check(name: &str, actual: &str) {
    let dir = pd_testkit::golden::dir(env!("CARGO_MANIFEST_DIR"));
    pd_testkit::golden::check(&dir, &format!("{name}.txt"), actual);
}

use viz::load::load_experiments;
use viz::sla::{summarize, Slo};
use viz::table::{build_tables, render_all};
use viz::Settings;

#[test]
fn tables_of_three_real_dirs() {
    let dirs: Vec<_> = [
        "baseline_4xtp2",
        "pd_p1xtp2-d2xtp2",
        "spread_tcp_p1xtp4-d1xtp4",
    ]
    .iter()
    .map(|s| crate::common::real_dir(s))
    .collect();
    let loaded = load_experiments(&dirs);
    let tables = build_tables(&loaded.experiments, 8);
    check("tables_three_real_dirs", &render_all(&tables, 8, 120));
}

#[test]
fn wide_tables_wrap_into_blocks() {
    let loaded = load_experiments(&crate::common::real_dirs());
    let tables = build_tables(&loaded.experiments, 8);
    let text = tables[0].render_text(100);
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    check("tpot_table_14_dirs_width_100", &text);
}

#[test]
fn sla_table_of_real_dirs() {
    let loaded = load_experiments(&crate::common::real_dirs());
    let sum = summarize(
        &loaded.experiments,
        &Settings::default(),
        Slo {
            tpot_ms: Some(10.0),
            ttft_ms: Some(1000.0),
        },
    );
    check("sla_real_dirs_tpot10_ttft1000", &sum.render_text());
}
