//! The `tokenauth` binary: parse the command line, run it, map failure to exit code 1 with
//! one line on stderr.

use std::process::ExitCode;

use clap::Parser as _;
use tokenauth::cli::Cli;

/// why mimalloc: a token check is a dozen small allocations (headers, labels, the JSON body);
/// glibc's malloc and free were a fifth of the CPU time of a cached check under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
