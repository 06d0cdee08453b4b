//! `usp-agent --config agent.toml`: runs the agent until SIGINT/SIGTERM. A `Device.Reboot()`
//! without a configured reboot command, and every `Device.FactoryReset()`, end with the agent
//! re-executing itself with the same arguments (a restart of the agent, never of the machine).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use usp_agent::agent::{self, Exit};
use usp_agent::config::Config;

/// A TR-369 (USP) agent.
#[derive(Parser)]
#[command(name = "usp-agent", version)]
struct Cli {
    /// The configuration file (see examples/agent.toml).
    #[arg(long, short = 'c', default_value = "agent.toml")]
    config: PathBuf,
    #[cfg(feature = "plugins")]
    #[command(subcommand)]
    internal: Option<Internal>,
}

/// Subcommands the agent runs itself, in a child process.
#[cfg(feature = "plugins")]
#[derive(clap::Subcommand)]
enum Internal {
    /// Compiles a plugin component into the compile cache (the plugin host's out-of-process
    /// compiler: exit 0 on success, the error on stderr otherwise).
    #[command(name = "__compile", hide = true)]
    Compile {
        /// The component.
        wasm: PathBuf,
        /// The compile cache directory.
        cache_dir: PathBuf,
    },
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            if let Err(error) = result {
                tracing::warn!(%error, "cannot watch SIGINT");
                std::future::pending::<()>().await;
            }
        }
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// Replaces this process with a fresh copy of itself (same executable, same arguments).
fn restart() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(error) => {
            eprintln!("usp-agent: cannot restart: {error}");
            return ExitCode::FAILURE;
        }
    };
    let error = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("usp-agent: cannot restart: {error}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "plugins")]
    if let Some(Internal::Compile { wasm, cache_dir }) = &cli.internal {
        return match usp_runtime::compile_to_cache(wasm, cache_dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("usp-agent: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.agent.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // One thread: every Record passes through the single actor anyway, and handing it between
    // worker threads cost more CPU (wake-ups, futexes) than handling it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("usp-agent: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(agent::run(config, shutdown_signal()));
    drop(runtime);
    match outcome {
        Ok(Exit::Shutdown) => ExitCode::SUCCESS,
        Ok(Exit::Restart) => restart(),
        Err(error) => {
            tracing::error!(%error, "usp-agent stopped");
            eprintln!("usp-agent: {error}");
            ExitCode::FAILURE
        }
    }
}
