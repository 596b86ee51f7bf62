//! docs/CLI.md must show exactly what `launch-gptoss --help` prints (regenerate with
//! `bash scripts/gen-cli-docs.sh`).

#[test]
fn cli_reference_matches_help() {
    let checked = pd_common::cli_doc::check_tool(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_launch-gptoss"),
        "launch-gptoss",
        &[
            &["--help"],
            &["shutdown", "--help"],
            &["status", "--help"],
            &["probe", "--help"],
            &["sim-calibrate", "--help"],
            &["plan", "--help"],
        ],
    );
    if let Err(e) = checked {
        panic!("{e}");
    }
}
