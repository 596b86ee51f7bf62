//! Snapshot tests (insta) of the text tables and the SLA table.

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
    insta::assert_snapshot!("tables_three_real_dirs", render_all(&tables, 8, 120));
}

#[test]
fn wide_tables_wrap_into_blocks() {
    let loaded = load_experiments(&crate::common::real_dirs());
    let tables = build_tables(&loaded.experiments, 8);
    let text = tables[0].render_text(100);
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    insta::assert_snapshot!("tpot_table_14_dirs_width_100", text);
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
    insta::assert_snapshot!("sla_real_dirs_tpot10_ttft1000", sum.render_text());
}
