//! The out-of-process compiler: `usp-plugin-compile <wasm> <cache-dir>` compiles a plugin
//! component into the compile cache and exits (0 on success; the error on stderr otherwise).
//! `usp-agent __compile` does the same inside the agent binary; this one serves tests and
//! tools that run the runtime without the agent.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [wasm, cache_dir] = args.as_slice() else {
        eprintln!("usage: usp-plugin-compile <wasm> <cache-dir>");
        return ExitCode::from(2);
    };
    match usp_runtime::compile_to_cache(wasm, cache_dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
