//! Shell completions and man pages for a tool's command line (feature `cli-assets`).
//!
//! Each tool has an example that calls [`write_cli_assets`] with its clap command:
//! `cargo run -p run-bm --example run_bm_cli_assets -- target/cli-assets` (see `scripts/gen-completions.sh`).

use std::path::Path;

use clap_complete::Shell;

use crate::error::{Error, Result};

/// Write `<dir>/completions/{<name>.bash, _<name>, <name>.fish}` and `<dir>/man/<name>.1`
/// (plus one page per subcommand, `<name>-<sub>.1`).
pub fn write_cli_assets(mut cmd: clap::Command, dir: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    let comp_dir = dir.join("completions");
    let man_dir = dir.join("man");
    for d in [&comp_dir, &man_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d.as_path(), e))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &comp_dir)
            .map_err(|e| Error::io(&comp_dir, e))?;
    }
    cmd.build();
    write_man(&cmd, &name, &man_dir)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_man(sub, &sub_name, &man_dir)?;
    }
    Ok(())
}

fn write_man(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut buf)
        .map_err(|e| Error::io(dir, e))?;
    crate::fsutil::write_atomic(&dir.join(format!("{name}.1")), &buf)
}
