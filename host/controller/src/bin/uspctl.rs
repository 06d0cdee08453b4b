//! The `uspctl` binary: the command line of [`usp_controller::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    usp_controller::cli::main()
}
