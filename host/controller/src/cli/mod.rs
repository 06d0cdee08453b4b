//! `uspctl`, the command line: talks USP to a running agent. Finds the agent through the same `agent.toml` the
//! agent runs with (`--config`) or a control-socket path (`--socket`), or reaches it over a
//! network MTP as a Controller (`--ws <url>`, `--mqtt <host:port>` or `--stomp <host:port>`
//! with `--agent-id`), sends one request, prints
//! the answer readably or as JSON (`--json`), and exits 1 when the answer holds a USP error
//! (printed with its code and message), 2 when the agent could not be asked at all.
//!
//! The `uspctl` binary is [`main`]; [`run`] is the same program writing to given streams and
//! returning the exit status, so a test harness can run it without the binary.
//!
//! Layout:
//! - `transport`: the `Transport` trait: the control socket and network MTPs.
//! - `request`: command-line arguments to USP request Msgs.
//! - `render`: USP answers to text and JSON.

mod render;
mod request;
mod transport;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use usp_proto::usp;

use crate::client::{ControllerError, Endpoint, MqttEndpoint, StompEndpoint, WsEndpoint};
use transport::{ControlSocket, Remote, Transport};

/// Why uspctl could not ask the agent, or print its answer. Printed as `uspctl: ` and the
/// chain of messages ([`chain`]); the exit status is then 2.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// A `Name=value` argument without `=`.
    #[error("{0:?} is not of the form Name=value")]
    NotAssignment(String),
    /// A Set path that does not end in a parameter name.
    #[error("{0:?} is not a parameter path (Object.Param)")]
    NotParameterPath(String),
    /// A broker address that is not `host:port`.
    #[error("{0:?} is not host:port")]
    NotHostPort(String),
    /// A broker address whose port is not a number.
    #[error("{text:?}: bad port")]
    BadPort {
        /// The address.
        text: String,
        /// Why the port does not parse.
        source: std::num::ParseIntError,
    },
    /// A network target flag without its address (clap's groups normally prevent it).
    #[error("give --ws, --mqtt or --stomp")]
    NoNetworkTarget,
    /// Neither `--config` nor `--socket`.
    #[error("give --config <agent.toml> or --socket <path>")]
    NoLocalTarget,
    /// The agent's config file could not be read.
    #[error("reading {}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: ConfigFileError,
    },
    /// The control socket does not accept connections.
    #[error(
        "cannot connect to the agent's control socket {} (is usp-agent running with this config?)",
        path.display()
    )]
    SocketConnect {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The agent sent no hello on the control socket.
    #[error("no hello on control socket {}", path.display())]
    NoHello {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: usp_mtp::control::FrameError,
    },
    /// Writing or reading a control-socket frame failed.
    #[error(transparent)]
    Frame(#[from] usp_mtp::control::FrameError),
    /// The agent closed the control socket instead of answering.
    #[error("the agent closed the control socket without answering")]
    ClosedWithoutAnswer,
    /// No answer on the control socket in time.
    #[error("no answer from the agent within {timeout:?}")]
    NoAnswerWithin {
        /// The `--timeout`.
        timeout: Duration,
        /// The expired deadline.
        source: tokio::time::error::Elapsed,
    },
    /// The answer does not decode as a Record.
    #[error("the agent's answer is not a USP Record")]
    NotARecord(#[source] usp_codec::record::RecordError),
    /// The answer Record carries no Msg.
    #[error("the agent's answer does not carry a USP Msg")]
    NoMsg(#[source] usp_codec::msg::MsgError),
    /// The answer is to another request.
    #[error("the agent answered msg_id {answered:?}, expected {expected:?}")]
    WrongMsgId {
        /// The answer's msg_id.
        answered: Option<String>,
        /// Ours.
        expected: String,
    },
    /// The network MTP session could not be opened.
    #[error("cannot reach the agent")]
    Unreachable(#[source] ControllerError),
    /// The agent did not answer over the network MTP.
    #[error(
        "no answer from the agent (is uspctl's --controller-id an enabled Device.LocalAgent.Controller.?)"
    )]
    NoRemoteAnswer(#[source] ControllerError),
    /// Writing the answer out failed.
    #[error(transparent)]
    Output(#[from] std::io::Error),
    /// The answer could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why the agent's config file could not be read for its control socket.
#[derive(Debug, thiserror::Error)]
enum ConfigFileError {
    /// Reading the file failed.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The file is not TOML, or `[agent]` has the wrong types.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
}

/// An error and its sources, joined by `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Talk USP to a running usp-agent.
#[derive(Parser)]
#[command(name = "uspctl", version)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    /// Endpoint ID uspctl sends from.
    #[arg(long, global = true, default_value = "self::uspctl")]
    controller_id: String,
    #[command(subcommand)]
    command: Command,
}

/// Where the agent is: exactly one of `--config`, `--socket`, `--ws`, `--mqtt`, `--stomp`.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// The agent's config file; uspctl uses the control socket it names.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// The agent's control socket.
    #[arg(long, short = 's', global = true)]
    socket: Option<PathBuf>,
    /// The agent's WebSocket server (`ws://127.0.0.1:8443/usp`); needs `--agent-id`.
    #[arg(long, global = true, requires = "agent_id")]
    ws: Option<String>,
    /// An MQTT broker (`host:port`) the agent listens on; needs `--agent-id` and
    /// `--agent-topic`.
    #[arg(long, global = true, requires_all = ["agent_id", "agent_topic"])]
    mqtt: Option<String>,
    /// A STOMP broker (`host:port`) the agent listens on; needs `--agent-id` and
    /// `--agent-dest`.
    #[arg(long, global = true, requires_all = ["agent_id", "agent_dest"])]
    stomp: Option<String>,
}

/// Network MTP details (with `--ws`, `--mqtt` or `--stomp`).
#[derive(Args)]
struct RemoteArgs {
    /// The agent's Endpoint ID.
    #[arg(long, global = true)]
    agent_id: Option<String>,
    /// The MQTT topic the agent subscribes to.
    #[arg(long, global = true)]
    agent_topic: Option<String>,
    /// The MQTT topic uspctl receives answers on (default `uspctl/<pid>`).
    #[arg(long, global = true)]
    own_topic: Option<String>,
    /// The STOMP destination the agent subscribes to.
    #[arg(long, global = true)]
    agent_dest: Option<String>,
    /// The STOMP destination uspctl receives answers on (default `/queue/uspctl-<pid>`).
    #[arg(long, global = true)]
    own_dest: Option<String>,
    /// The STOMP `login` (broker user name).
    #[arg(long, global = true)]
    stomp_login: Option<String>,
    /// The STOMP `passcode`, with `--stomp-login`.
    #[arg(long, global = true, requires = "stomp_login")]
    stomp_passcode: Option<String>,
    /// The STOMP virtual host (`host` header).
    #[arg(long, global = true, default_value = "/")]
    stomp_vhost: String,
}

#[derive(Subcommand)]
enum Command {
    /// Get parameter values (paths may hold wildcards and search expressions).
    Get {
        /// Paths to read.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Levels below each path to return (0 = all).
        #[arg(long, default_value_t = 0)]
        depth: u32,
    },
    /// Set parameters: `Object.Param=value ...` or `Object.Param value`.
    Set {
        /// Assignments.
        #[arg(required = true)]
        assignments: Vec<String>,
        /// Apply what succeeds even if other parameters fail.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Add an instance to a table: `Table. [Param=value ...]`.
    Add {
        /// Table path (`Device.LocalAgent.Controller.`).
        table: String,
        /// Parameter values of the new instance.
        settings: Vec<String>,
        /// Create the instance even if some settings fail.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Delete instances.
    Del {
        /// Instance paths (may hold wildcards and search expressions).
        #[arg(required = true)]
        paths: Vec<String>,
        /// Delete what can be deleted even if other paths fail.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Run a command: `'Device.Reboot()' [Arg=value ...]`.
    Operate {
        /// Command path ending in `()`.
        command: String,
        /// Input arguments.
        inputs: Vec<String>,
        /// The command key reported back in events and OperationComplete.
        #[arg(long, default_value = "")]
        key: String,
    },
    /// List instances of tables (with their unique keys).
    Instances {
        /// Object paths.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Only the first level of instances below each path.
        #[arg(long)]
        first_level: bool,
    },
    /// Show the supported data model (GetSupportedDM) below object paths.
    Gsdm {
        /// Object paths (`Device.`).
        #[arg(required = true)]
        paths: Vec<String>,
        /// Only the objects directly below each path.
        #[arg(long)]
        first_level: bool,
    },
    /// Print every parameter value below a path (default `Device.`).
    Dump {
        /// Path to dump.
        #[arg(default_value = "Device.")]
        path: String,
    },
}

impl Command {
    fn to_msg(&self, msg_id: &str) -> Result<usp::Msg, CliError> {
        Ok(match self {
            Command::Get { paths, depth } => request::get(msg_id, paths, *depth),
            Command::Set {
                assignments,
                allow_partial,
            } => request::set(msg_id, assignments, *allow_partial)?,
            Command::Add {
                table,
                settings,
                allow_partial,
            } => request::add(msg_id, table, settings, *allow_partial)?,
            Command::Del {
                paths,
                allow_partial,
            } => request::delete(msg_id, paths, *allow_partial),
            Command::Operate {
                command,
                inputs,
                key,
            } => request::operate(msg_id, command, inputs, key)?,
            Command::Instances { paths, first_level } => {
                request::instances(msg_id, paths, *first_level)
            }
            Command::Gsdm { paths, first_level } => {
                request::supported_dm(msg_id, paths, *first_level)
            }
            Command::Dump { path } => request::get(msg_id, std::slice::from_ref(path), 0),
        })
    }
}

/// Splits `host:port`.
fn host_port(text: &str) -> Result<(&str, u16), CliError> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| CliError::NotHostPort(text.to_string()))?;
    let port = port.parse().map_err(|source| CliError::BadPort {
        text: text.to_string(),
        source,
    })?;
    Ok((host, port))
}

/// The `--stomp` endpoint from the broker address and the STOMP arguments.
fn stomp_endpoint(broker: &str, remote: &RemoteArgs) -> Result<StompEndpoint, CliError> {
    let (host, port) = host_port(broker)?;
    let own_dest = remote
        .own_dest
        .clone()
        .unwrap_or_else(|| format!("/queue/uspctl-{}", std::process::id()));
    let agent_dest = remote.agent_dest.as_deref().unwrap_or_default();
    let mut endpoint = StompEndpoint::new(host, port, agent_dest, &own_dest);
    endpoint.login = remote.stomp_login.clone();
    endpoint.passcode = remote.stomp_passcode.clone();
    endpoint.virtual_host = remote.stomp_vhost.clone();
    Ok(endpoint)
}

/// Sends the request and renders the answer.
async fn ask(cli: Cli) -> Result<render::Rendered, CliError> {
    let msg_id = format!("uspctl-{}", std::process::id());
    let request = cli.command.to_msg(&msg_id)?;
    let timeout = Duration::from_secs(cli.timeout);
    let target = &cli.target;
    let reply = if target.ws.is_some() || target.mqtt.is_some() || target.stomp.is_some() {
        let agent_id = cli.remote.agent_id.as_deref().unwrap_or_default();
        let endpoint = match (&target.ws, &target.mqtt, &target.stomp) {
            (Some(url), _, _) => Endpoint::WebSocket(WsEndpoint { url: url.clone() }),
            (None, Some(broker), _) => {
                let (host, port) = host_port(broker)?;
                let own_topic = cli
                    .remote
                    .own_topic
                    .clone()
                    .unwrap_or_else(|| format!("uspctl/{}", std::process::id()));
                let agent_topic = cli.remote.agent_topic.as_deref().unwrap_or_default();
                Endpoint::Mqtt(MqttEndpoint::new(host, port, agent_topic, &own_topic))
            }
            (None, None, Some(broker)) => Endpoint::Stomp(stomp_endpoint(broker, &cli.remote)?),
            (None, None, None) => return Err(CliError::NoNetworkTarget),
        };
        let mut remote = Remote::connect(&cli.controller_id, agent_id, endpoint, timeout).await?;
        remote.exchange(&request, timeout).await?
    } else {
        let socket = match (&target.config, &target.socket) {
            (_, Some(socket)) => socket.clone(),
            (Some(config), None) => {
                control_socket_of(config).map_err(|source| CliError::Config {
                    path: config.clone(),
                    source,
                })?
            }
            (None, None) => return Err(CliError::NoLocalTarget),
        };
        let mut local = ControlSocket::connect(&socket, &cli.controller_id).await?;
        local.exchange(&request, timeout).await?
    };
    Ok(render::render(&reply))
}

/// The `[agent]` keys of an agent config file that place its control socket; the rest of the
/// file is the agent's and is not read here.
#[derive(Default, Deserialize)]
struct AgentFile {
    #[serde(default)]
    agent: AgentSection,
}

/// `[agent] state_dir` and `[agent] control_socket`, as the agent reads them.
#[derive(Deserialize)]
#[serde(default)]
struct AgentSection {
    state_dir: PathBuf,
    control_socket: Option<PathBuf>,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            state_dir: PathBuf::from(usp_mtp::control::DEFAULT_STATE_DIR),
            control_socket: None,
        }
    }
}

/// The control socket the agent running with `config` listens on.
fn control_socket_of(config: &Path) -> Result<PathBuf, ConfigFileError> {
    let text = std::fs::read_to_string(config)?;
    let file: AgentFile = toml::from_str(&text)?;
    Ok(usp_mtp::control::socket_path(
        &usp_mtp::control::config_base_dir(config),
        &file.agent.state_dir,
        file.agent.control_socket.as_deref(),
    ))
}

/// Runs the parsed command line: prints the answer to `out`, USP errors and failures to `err`,
/// and returns the exit status (0 answered, 1 USP error, 2 not asked).
fn execute(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(err, "uspctl: cannot start: {error}");
            return 2;
        }
    };
    let json = cli.json;
    let printed = runtime
        .block_on(ask(cli))
        .and_then(|rendered| -> Result<_, CliError> {
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rendered.json)?)?;
            } else {
                write!(out, "{}", rendered.text)?;
            }
            write!(err, "{}", rendered.errors)?;
            Ok(!rendered.failed)
        });
    match printed {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(error) => {
            let _ = writeln!(err, "uspctl: {}", chain(&error));
            2
        }
    }
}

/// uspctl on `args` (the first is the program name), writing what the binary prints to
/// stdout and stderr into `out` and `err`; returns the exit status. A command line clap refuses
/// (or `--help`, `--version`) is written as the binary would write it.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => execute(cli, out, err),
        Err(refused) => {
            let text = refused.render();
            let _ = if refused.use_stderr() {
                write!(err, "{text}")
            } else {
                write!(out, "{text}")
            };
            u8::try_from(refused.exit_code()).unwrap_or(2)
        }
    }
}

/// The `uspctl` binary: the process's arguments, stdout and stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = execute(cli, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_socket_is_found_as_the_agent_places_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        // Keys uspctl does not read are the agent's business and are left alone.
        std::fs::write(
            &config,
            "[agent]\nstate_dir = \"var\"\nlog = \"debug\"\n\n[[mtp]]\n",
        )
        .unwrap();
        assert_eq!(
            control_socket_of(&config).unwrap(),
            dir.path().join("var/control.sock")
        );
        std::fs::write(&config, "[device_info]\nserial_number = \"7\"\n").unwrap();
        assert_eq!(
            control_socket_of(&config).unwrap(),
            dir.path().join("state/control.sock")
        );
        std::fs::write(&config, "[agent]\ncontrol_socket = \"/run/usp.sock\"\n").unwrap();
        assert_eq!(
            control_socket_of(&config).unwrap(),
            PathBuf::from("/run/usp.sock")
        );
        std::fs::write(&config, "[agent\n").unwrap();
        assert!(control_socket_of(&config).is_err());
    }

    #[test]
    fn run_writes_where_the_binary_would_and_returns_its_status() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(["uspctl", "--version"], &mut out, &mut err), 0);
        assert!(String::from_utf8_lossy(&out).starts_with("uspctl "));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(["uspctl", "get", "Device."], &mut out, &mut err), 2);
        assert!(out.is_empty());
        assert!(!err.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let args = ["uspctl".as_ref(), "--socket".as_ref(), socket.as_os_str()];
        let args = args.into_iter().chain(["get".as_ref(), "Device.".as_ref()]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(args, &mut out, &mut err), 2);
        assert!(
            String::from_utf8_lossy(&err).starts_with("uspctl: cannot connect"),
            "{}",
            String::from_utf8_lossy(&err)
        );
    }
}
