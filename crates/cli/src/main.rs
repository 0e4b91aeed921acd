//! `strata`: the user's command. `strata up` runs a whole local stamp; `strata status` shows it.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    strata_util::init_tracing();
    let cli = strata_cli::Cli::parse();
    match strata_cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
