//! docs/CLI.md must show exactly what `viz --help` prints (regenerate with
//! `bash scripts/gen-cli-docs.sh`).

#[test]
fn cli_reference_matches_help() {
    let checked = pd_common::cli_doc::check_tool(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_viz"),
        "viz",
        &[&["--help"]],
    );
    if let Err(e) = checked {
        panic!("{e}");
    }
}
