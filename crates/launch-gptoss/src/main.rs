use launch_gptoss::error::Classify;

fn main() {
    let cli = launch_gptoss::cli::Cli::parse_process_args();
    pd_common::diag::init(cli.output.level());
    let code = match launch_gptoss::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            pd_common::diag::report_error("launch-gptoss", &e);
            e.exit_code()
        }
    };
    std::process::exit(code);
}
