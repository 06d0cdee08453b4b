//! The agent's configuration file (`agent.toml`): typed sections with documented defaults,
//! relative paths resolved against the file's own directory, and the environment overrides
//! `USP_ENDPOINT_ID`, `USP_BOARD_OUI` and `USP_BOARD_SERIAL`.
//!
//! Everything a Controller can change lives in the data model (and the SQLite store); this file
//! only holds what the device integrator decides: identity, where state lives, limits, and the
//! commands behind `Device.Reboot()` and `Device.FactoryReset()`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected shape.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser reported (names the key and line).
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("invalid config value {key}: {reason}")]
    Invalid {
        /// The dotted key (`agent.max_record_size`).
        key: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

/// The whole configuration. Build it with [`Config::load`] (a file) or [`Config::from_toml`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[agent]`: identity, state, limits.
    #[serde(default)]
    pub agent: AgentConfig,
    /// `[device_info]`: the values of `Device.DeviceInfo.`.
    #[serde(default)]
    pub device_info: DeviceInfoConfig,
    /// `[commands]`: what `Device.Reboot()` and `Device.FactoryReset()` run.
    #[serde(default)]
    pub commands: CommandsConfig,
    /// `[plugins]`: where WebAssembly data-model plugins are loaded from.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// `[access]`: roles granted by the MTP a Record arrives on; extra certificates for
    /// `Device.LocalAgent.Certificate.`.
    #[serde(default)]
    pub access: AccessConfig,
    /// `[[mtp]]`: the message transports (MQTT, STOMP, WebSocket, UDS), each with a unique
    /// `name` and a `protocol`; see `usp_mtp::MtpConfig`. Default: none (local CLI only).
    #[serde(default)]
    pub mtp: Vec<usp_mtp::MtpConfig>,
    /// Directory relative paths are resolved against (the config file's directory).
    #[serde(skip)]
    base_dir: PathBuf,
    /// Whether `agent.endpoint_id` came from `USP_ENDPOINT_ID` (for the start-up log).
    #[serde(skip)]
    endpoint_id_from_env: bool,
}

/// Where the agent's Endpoint ID came from, strongest first (see [`Config::endpoint_id_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointIdSource {
    /// The `USP_ENDPOINT_ID` environment variable.
    Environment,
    /// `[agent] endpoint_id` in the config file.
    ConfigFile,
    /// `Device.LocalAgent.EndpointID` in the factory-reset file.
    FactoryResetFile,
    /// `os::<ManufacturerOUI>-<SerialNumber>`.
    Derived,
}

impl std::fmt::Display for EndpointIdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EndpointIdSource::Environment => "USP_ENDPOINT_ID",
            EndpointIdSource::ConfigFile => "agent.endpoint_id",
            EndpointIdSource::FactoryResetFile => "the factory-reset file",
            EndpointIdSource::Derived => "the OUI and serial number",
        })
    }
}

/// `[access]`: roles that come from how an endpoint reaches the agent rather than from its
/// `Device.LocalAgent.Controller.{i}.AssignedRole` (TR-369's inherited roles).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// MTP name → `Device.LocalAgent.ControllerTrust.Role.{i}` references granted to every
    /// Record that arrives over that MTP, on top of the sender's own roles. An endpoint that is
    /// not a Controller is served with only these roles there (a local UDS role, say) instead
    /// of being dropped. Default: none.
    pub mtp_roles: BTreeMap<String, Vec<String>>,
    /// PEM files whose certificates are listed in `Device.LocalAgent.Certificate.` besides the
    /// `ca_file` of the WebSocket MTPs, so that a `ControllerTrust.Credential.{i}` can name
    /// them (a controller's own certificate, say). They add no TLS trust. Relative to the
    /// config file. Default: none.
    pub certificates: Vec<PathBuf>,
}

impl AccessConfig {
    /// The roles the named MTP grants (none for an MTP without an entry).
    pub fn mtp_roles(&self, mtp: &str) -> &[String] {
        self.mtp_roles.get(mtp).map_or(&[], Vec::as_slice)
    }
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The agent's USP Endpoint ID. `USP_ENDPOINT_ID` overrides it; when neither is set, the
    /// factory-reset file's `Device.LocalAgent.EndpointID` is used, else
    /// `os::<ManufacturerOUI>-<SerialNumber>` (the `os` authority scheme, R-ARC.3 style).
    pub endpoint_id: Option<String>,
    /// Directory holding the SQLite store and other state. Default `state`, relative to the
    /// config file's directory.
    pub state_dir: PathBuf,
    /// obuspa-format factory-reset file applied on first boot (no database yet) and by
    /// `Device.FactoryReset()`. Default: none (start from the schema defaults).
    pub factory_reset_file: Option<PathBuf>,
    /// Unix socket `uspctl` talks to. Default `<state_dir>/control.sock`.
    pub control_socket: Option<PathBuf>,
    /// Largest Record accepted from an MTP or the control socket, in bytes. Default 5 MiB.
    /// Larger records are dropped (R-MTP.5 gives no answer to what cannot be read).
    pub max_record_size: usize,
    /// Serve Controllers that are not in `Device.LocalAgent.Controller.` under the Untrusted
    /// role instead of dropping their records. Default `false`.
    pub serve_untrusted: bool,
    /// Log filter (tracing `EnvFilter` syntax) used when `RUST_LOG` is unset. Default `info`.
    pub log: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            endpoint_id: None,
            state_dir: PathBuf::from(usp_mtp::control::DEFAULT_STATE_DIR),
            factory_reset_file: None,
            control_socket: None,
            max_record_size: 5 * 1024 * 1024,
            serve_untrusted: false,
            log: "info".to_string(),
        }
    }
}

/// `[device_info]`: values of `Device.DeviceInfo.`. All have defaults so a bare config runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceInfoConfig {
    /// `Manufacturer`. Default `"Example"`.
    pub manufacturer: String,
    /// `ManufacturerOUI`: six upper-case hex digits. Default `"000000"`. `USP_BOARD_OUI`
    /// overrides it.
    pub manufacturer_oui: String,
    /// `ProductClass`. Default `"usp-agent"`.
    pub product_class: String,
    /// `SerialNumber`. Default `"0001"`. `USP_BOARD_SERIAL` overrides it.
    pub serial_number: String,
    /// `HardwareVersion`. Default `""`.
    pub hardware_version: String,
    /// `SoftwareVersion`. Default: this agent's version.
    pub software_version: String,
}

impl Default for DeviceInfoConfig {
    fn default() -> Self {
        DeviceInfoConfig {
            manufacturer: "Example".to_string(),
            manufacturer_oui: "000000".to_string(),
            product_class: "usp-agent".to_string(),
            serial_number: "0001".to_string(),
            hardware_version: String::new(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// `[commands]`: programs run by the device-level commands, as argv lists (no shell unless
/// you name one). Unset means the command fails with 7022 and a message saying so, so a
/// development machine is never rebooted by accident.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Run by `Device.Reboot()` after the response was sent, e.g. `["systemctl", "reboot"]`.
    pub reboot: Option<Vec<String>>,
    /// Run by `Device.FactoryReset()` after the agent's own state was reset.
    pub factory_reset: Option<Vec<String>>,
}

/// The host directories the bundled plugins preopen read-only: `device-info` reads `/proc`,
/// `network` reads `/sys` (interface attributes) and `/proc` (`/proc/net`). The default
/// `[plugins] readable_dirs` when `bundled = true`.
pub const BUNDLED_READABLE_DIRS: [&str; 2] = ["/proc", "/sys"];

/// `[plugins]`: WebAssembly data-model providers (`usp:dm` components). Each plugin is a
/// directory holding `manifest.toml` and the `.wasm` it names; its grants are checked against
/// the approvals below, and a grant that is not approved makes the plugin fail to load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Load the first-party plugins built with this agent (`device-info`, `network`, `time`).
    /// Default `false`.
    pub bundled: bool,
    /// A directory of plugin directories, loaded at start. Default: none.
    pub dir: Option<PathBuf>,
    /// Host directories plugins may have preopened read-only (`/proc`). Default: with
    /// `bundled = true`, [`BUNDLED_READABLE_DIRS`] (what the bundled plugins' manifests ask
    /// for, so the documented default runs them all); otherwise none. The list approves every
    /// plugin the agent loads, those of `dir` too: write it out (`[]` for none) to narrow it.
    pub readable_dirs: Option<Vec<PathBuf>>,
    /// Environment variables plugins may be granted. Default: none.
    pub env: Vec<String>,
    /// Whether manifests may pass configuration values to their plugin. Default `true`.
    pub allow_config: bool,
    /// Largest memory a manifest may ask for, in bytes. Default 64 MiB.
    pub max_memory: u64,
    /// Longest per-call deadline a manifest may ask for, in milliseconds. Default 10000.
    pub max_deadline_ms: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            bundled: false,
            dir: None,
            readable_dirs: None,
            env: Vec::new(),
            allow_config: true,
            max_memory: 64 * 1024 * 1024,
            max_deadline_ms: 10_000,
        }
    }
}

impl Config {
    /// Reads and validates a config file, then applies the environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = usp_mtp::control::config_base_dir(path);
        let mut config = Config::parse(&text, base_dir).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        config.apply_env(|name| std::env::var(name).ok());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; relative paths will resolve against `base_dir`. No environment
    /// overrides are applied (see [`Config::apply_env`]).
    pub fn from_toml(text: &str, base_dir: impl Into<PathBuf>) -> Result<Config, ConfigError> {
        let config = Config::parse(text, base_dir.into())?;
        config.validate()?;
        Ok(config)
    }

    fn parse(text: &str, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: err.to_string(),
        })?;
        config.base_dir = base_dir;
        config.resolve_mtp_paths();
        Ok(config)
    }

    /// Applies `USP_ENDPOINT_ID`, `USP_BOARD_OUI` and `USP_BOARD_SERIAL` as read by `lookup`.
    /// Empty values are ignored.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let set = |name: &str| lookup(name).filter(|value| !value.is_empty());
        if let Some(endpoint_id) = set("USP_ENDPOINT_ID") {
            self.agent.endpoint_id = Some(endpoint_id);
            self.endpoint_id_from_env = true;
        }
        if let Some(oui) = set("USP_BOARD_OUI") {
            self.device_info.manufacturer_oui = oui;
        }
        if let Some(serial) = set("USP_BOARD_SERIAL") {
            self.device_info.serial_number = serial;
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let oui = &self.device_info.manufacturer_oui;
        if oui.len() != 6
            || !oui
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        {
            return Err(ConfigError::Invalid {
                key: "device_info.manufacturer_oui",
                reason: format!("{oui:?} is not six upper-case hex digits"),
            });
        }
        if self.agent.max_record_size < 1024 {
            return Err(ConfigError::Invalid {
                key: "agent.max_record_size",
                reason: format!(
                    "{} bytes is below the 1024-byte minimum",
                    self.agent.max_record_size
                ),
            });
        }
        if self.endpoint_id().is_empty() {
            return Err(ConfigError::Invalid {
                key: "agent.endpoint_id",
                reason: "must not be empty".to_string(),
            });
        }
        for (mtp, roles) in &self.access.mtp_roles {
            if !self.mtp.iter().any(|configured| configured.name == *mtp) {
                return Err(ConfigError::Invalid {
                    key: "access.mtp_roles",
                    reason: format!("no [[mtp]] is named {mtp:?}"),
                });
            }
            if let Some(role) = roles.iter().find(|role| !is_role_reference(role)) {
                return Err(ConfigError::Invalid {
                    key: "access.mtp_roles",
                    reason: format!(
                        "{role:?} (MTP {mtp:?}) is not a Device.LocalAgent.ControllerTrust.Role.{{i}} reference"
                    ),
                });
            }
        }
        for (key, argv) in [
            ("commands.reboot", &self.commands.reboot),
            ("commands.factory_reset", &self.commands.factory_reset),
        ] {
            if argv.as_ref().is_some_and(|argv| argv.is_empty()) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "an empty list runs nothing; leave the key out instead".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The Endpoint ID without a factory-reset file: configured (or `USP_ENDPOINT_ID`), else
    /// `os::<OUI>-<Serial>`.
    pub fn endpoint_id(&self) -> String {
        self.endpoint_id_with(None).0
    }

    /// The Endpoint ID and where it came from. Precedence, strongest first: `USP_ENDPOINT_ID`,
    /// `[agent] endpoint_id`, the factory-reset file's `Device.LocalAgent.EndpointID`
    /// (`factory`), `os::<OUI>-<Serial>`. The environment and this file are the integrator's
    /// per-device and per-image decisions, made where the agent runs; the factory-reset file
    /// is shared data (often one file for a whole fleet, carried over from obuspa), so it only
    /// fills the gap before the derived default.
    pub fn endpoint_id_with(&self, factory: Option<&str>) -> (String, EndpointIdSource) {
        match (&self.agent.endpoint_id, factory) {
            (Some(endpoint_id), _) if self.endpoint_id_from_env => {
                (endpoint_id.clone(), EndpointIdSource::Environment)
            }
            (Some(endpoint_id), _) => (endpoint_id.clone(), EndpointIdSource::ConfigFile),
            (None, Some(factory)) if !factory.is_empty() => {
                (factory.to_string(), EndpointIdSource::FactoryResetFile)
            }
            (None, _) => (
                format!(
                    "os::{}-{}",
                    self.device_info.manufacturer_oui, self.device_info.serial_number
                ),
                EndpointIdSource::Derived,
            ),
        }
    }

    /// The state directory, resolved.
    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.agent.state_dir)
    }

    /// The SQLite database file inside the state directory.
    pub fn database_path(&self) -> PathBuf {
        self.state_dir().join("agent.db")
    }

    /// The control socket path, resolved.
    pub fn control_socket(&self) -> PathBuf {
        usp_mtp::control::socket_path(
            &self.base_dir,
            &self.agent.state_dir,
            self.agent.control_socket.as_deref(),
        )
    }

    /// The factory-reset file, resolved, if one is configured.
    pub fn factory_reset_file(&self) -> Option<PathBuf> {
        self.agent
            .factory_reset_file
            .as_ref()
            .map(|path| self.resolve(path))
    }

    /// The plugin directory, resolved, if one is configured.
    pub fn plugin_dir(&self) -> Option<PathBuf> {
        self.plugins.dir.as_ref().map(|path| self.resolve(path))
    }

    /// The readable directories plugins may be granted, resolved (see
    /// [`PluginsConfig::readable_dirs`] for the default).
    pub fn plugin_readable_dirs(&self) -> Vec<PathBuf> {
        match &self.plugins.readable_dirs {
            Some(dirs) => dirs.iter().map(|path| self.resolve(path)).collect(),
            None if self.plugins.bundled => {
                BUNDLED_READABLE_DIRS.iter().map(PathBuf::from).collect()
            }
            None => Vec::new(),
        }
    }

    /// The files `Device.LocalAgent.Certificate.` lists (R-SEC.2): the `ca_file` of every MTP
    /// whose TLS peer is the controller itself (WebSocket server and client; an MQTT or STOMP
    /// `ca_file` authenticates a broker, which vouches for no controller), then
    /// `[access] certificates`, resolved.
    pub fn controller_certificate_files(&self) -> Vec<PathBuf> {
        use usp_mtp::TransportConfig;
        self.mtp
            .iter()
            .filter_map(|mtp| match &mtp.transport {
                TransportConfig::WebSocketServer(ws) => ws.tls.as_ref(),
                TransportConfig::WebSocketClient(ws) => ws.tls.as_ref(),
                _ => None,
            })
            .filter_map(|tls| tls.ca_file.clone())
            .chain(
                self.access
                    .certificates
                    .iter()
                    .map(|path| self.resolve(path)),
            )
            .collect()
    }

    /// MTP files (UDS socket, TLS certificates and keys) are relative to the config file too,
    /// not to the agent's working directory.
    fn resolve_mtp_paths(&mut self) {
        use usp_mtp::TransportConfig;
        let base = &self.base_dir;
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        for mtp in &mut self.mtp {
            let tls = match &mut mtp.transport {
                TransportConfig::Uds(uds) => {
                    resolve(&mut uds.path);
                    None
                }
                TransportConfig::Mqtt(mqtt) => mqtt.tls.as_mut(),
                TransportConfig::Stomp(stomp) => stomp.tls.as_mut(),
                TransportConfig::WebSocketServer(ws) => ws.tls.as_mut(),
                TransportConfig::WebSocketClient(ws) => ws.tls.as_mut(),
            };
            if let Some(tls) = tls {
                [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                    .into_iter()
                    .flatten()
                    .for_each(resolve);
            }
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// `Device.LocalAgent.ControllerTrust.Role.<n>`, optionally with the trailing dot.
fn is_role_reference(text: &str) -> bool {
    text.strip_prefix("Device.LocalAgent.ControllerTrust.Role.")
        .map(|rest| rest.strip_suffix('.').unwrap_or(rest))
        .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    const UDS_MTP: &str = "[[mtp]]\nname = \"uds\"\nprotocol = \"uds\"\npath = \"usp.sock\"\n";

    #[test]
    fn certificate_files_are_the_websocket_trust_stores_then_the_extra_ones() {
        let config = Config::from_toml(
            "[access]\ncertificates = [\"own/ctl.pem\", \"/etc/ctl.pem\"]\n\
             [[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\nport = 1\n\
             [mtp.tls]\ncert_file = \"s.pem\"\nkey_file = \"s.key\"\nca_file = \"ws-ca.pem\"\n\
             [[mtp]]\nname = \"mqtt\"\nprotocol = \"mqtt\"\nbroker_address = \"b\"\n\
             [mtp.tls]\nca_file = \"broker-ca.pem\"\n",
            "/cfg",
        )
        .unwrap();
        assert_eq!(
            config.controller_certificate_files(),
            [
                PathBuf::from("/cfg/ws-ca.pem"),
                PathBuf::from("/cfg/own/ctl.pem"),
                PathBuf::from("/etc/ctl.pem"),
            ]
        );
    }

    #[test]
    fn mtp_roles_grant_roles_to_the_named_mtp_only() {
        let config = Config::from_toml(
            &format!(
                "[access]\nmtp_roles = {{ uds = [\"Device.LocalAgent.ControllerTrust.Role.2\"] }}\n{UDS_MTP}"
            ),
            ".",
        )
        .unwrap();
        assert_eq!(
            config.access.mtp_roles("uds"),
            ["Device.LocalAgent.ControllerTrust.Role.2"]
        );
        assert!(config.access.mtp_roles("ws").is_empty());
    }

    #[test]
    fn mtp_roles_for_an_unknown_mtp_are_rejected_naming_it() {
        let err = Config::from_toml(
            "[access]\nmtp_roles = { uds = [\"Device.LocalAgent.ControllerTrust.Role.1\"] }\n",
            ".",
        )
        .unwrap_err();
        assert!(err.to_string().contains("access.mtp_roles"), "{err}");
        assert!(err.to_string().contains("\"uds\""), "{err}");
    }

    #[test]
    fn mtp_roles_that_are_not_role_references_are_rejected() {
        let err = Config::from_toml(
            &format!("[access]\nmtp_roles = {{ uds = [\"Role.1\"] }}\n{UDS_MTP}"),
            ".",
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"Role.1\""), "{err}");
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let config = Config::from_toml("", "/etc/usp").unwrap();
        assert_eq!(config.state_dir(), PathBuf::from("/etc/usp/state"));
        assert_eq!(
            config.control_socket(),
            PathBuf::from("/etc/usp/state/control.sock")
        );
        assert_eq!(config.endpoint_id(), "os::000000-0001");
        assert_eq!(config.agent.max_record_size, 5 * 1024 * 1024);
        assert!(!config.agent.serve_untrusted);
        assert!(config.commands.reboot.is_none());
        assert!(config.factory_reset_file().is_none());
        assert!(!config.plugins.bundled);
        assert!(config.plugin_dir().is_none());
        assert!(config.mtp.is_empty());
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config = Config::from_toml(
            "[agent]\nstate_dir = \"var\"\nfactory_reset_file = \"fr.txt\"\ncontrol_socket = \"/run/x.sock\"\n",
            "/opt/agent",
        )
        .unwrap();
        assert_eq!(
            config.database_path(),
            PathBuf::from("/opt/agent/var/agent.db")
        );
        assert_eq!(
            config.factory_reset_file(),
            Some(PathBuf::from("/opt/agent/fr.txt"))
        );
        assert_eq!(config.control_socket(), PathBuf::from("/run/x.sock"));
    }

    #[test]
    fn mtp_tables_and_plugin_approvals_parse() {
        let config = Config::from_toml(
            "[plugins]\nbundled = true\nreadable_dirs = [\"data\"]\n\
             [[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\nport = 0\n",
            "/opt/agent",
        )
        .unwrap();
        assert_eq!(config.mtp[0].name, "ws");
        assert_eq!(
            config.plugin_readable_dirs(),
            vec![PathBuf::from("/opt/agent/data")]
        );
    }

    #[test]
    fn bundled_plugins_get_their_readable_dirs_by_default_and_an_explicit_list_rules() {
        let bundled = Config::from_toml("[plugins]\nbundled = true\n", "/opt/agent").unwrap();
        assert_eq!(
            bundled.plugin_readable_dirs(),
            [PathBuf::from("/proc"), PathBuf::from("/sys")]
        );
        let none =
            Config::from_toml("[plugins]\nbundled = true\nreadable_dirs = []\n", ".").unwrap();
        assert!(none.plugin_readable_dirs().is_empty());
        let unbundled = Config::from_toml("[plugins]\ndir = \"plugins\"\n", ".").unwrap();
        assert!(unbundled.plugin_readable_dirs().is_empty());
    }

    /// The default must cover what the bundled manifests preopen, or `bundled = true` alone
    /// starts with plugins left out (what `examples/agent.toml` promises it does not).
    #[test]
    fn default_readable_dirs_cover_every_bundled_manifest_preopen() {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
        let mut preopens = Vec::new();
        for name in ["device-info", "network", "time"] {
            let text = std::fs::read_to_string(plugins.join(name).join("manifest.toml")).unwrap();
            let manifest: toml::Table = toml::from_str(&text).unwrap();
            let listed = manifest
                .get("grants")
                .and_then(|grants| grants.get("preopens"))
                .and_then(toml::Value::as_array)
                .cloned()
                .unwrap_or_default();
            for preopen in listed {
                let host = preopen.get("host").and_then(toml::Value::as_str).unwrap();
                preopens.push(PathBuf::from(host));
            }
        }
        assert!(!preopens.is_empty());
        let defaults = Config::from_toml("[plugins]\nbundled = true\n", ".")
            .unwrap()
            .plugin_readable_dirs();
        for preopen in preopens {
            assert!(
                defaults.iter().any(|dir| preopen.starts_with(dir)),
                "{} is not approved by default",
                preopen.display()
            );
        }
    }

    #[test]
    fn example_config_plugin_values_are_the_defaults_for_bundled_plugins() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent.toml");
        let text = std::fs::read_to_string(&example).unwrap();
        let config = Config::from_toml(&text, "/x").unwrap();
        let defaults = Config::from_toml("[plugins]\nbundled = true\n", "/x").unwrap();
        assert_eq!(
            config.plugin_readable_dirs(),
            defaults.plugin_readable_dirs()
        );
        assert_eq!(config.plugins.env, defaults.plugins.env);
        assert_eq!(config.plugins.max_memory, defaults.plugins.max_memory);
        assert_eq!(
            config.plugins.max_deadline_ms,
            defaults.plugins.max_deadline_ms
        );
        assert_eq!(config.agent.max_record_size, defaults.agent.max_record_size);
        assert_eq!(config.agent.log, defaults.agent.log);
        assert_eq!(config.agent.serve_untrusted, defaults.agent.serve_untrusted);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::from_toml("[agent]\nendpoint = \"x\"\n", ".").unwrap_err();
        assert!(err.to_string().contains("endpoint"), "{err}");
    }

    #[test]
    fn wrong_type_is_rejected() {
        let err = Config::from_toml("[agent]\nserve_untrusted = \"yes\"\n", ".").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }

    #[test]
    fn lower_case_oui_is_rejected() {
        let err =
            Config::from_toml("[device_info]\nmanufacturer_oui = \"00a0b1\"\n", ".").unwrap_err();
        assert!(
            err.to_string().contains("device_info.manufacturer_oui"),
            "{err}"
        );
    }

    #[test]
    fn empty_reboot_command_is_rejected() {
        let err = Config::from_toml("[commands]\nreboot = []\n", ".").unwrap_err();
        assert!(err.to_string().contains("commands.reboot"), "{err}");
    }

    #[test]
    fn environment_overrides_identity() {
        let mut config = Config::from_toml("[agent]\nendpoint_id = \"os::cfg\"\n", ".").unwrap();
        config.apply_env(|name| match name {
            "USP_ENDPOINT_ID" => Some("os::env".to_string()),
            "USP_BOARD_OUI" => Some("ABCDEF".to_string()),
            "USP_BOARD_SERIAL" => Some(String::new()),
            _ => None,
        });
        assert_eq!(config.endpoint_id(), "os::env");
        assert_eq!(config.device_info.manufacturer_oui, "ABCDEF");
        assert_eq!(config.device_info.serial_number, "0001");
    }

    #[test]
    fn endpoint_id_precedence_is_environment_then_config_then_factory_file_then_derived() {
        let factory = Some("os::from-factory-file");
        let bare = Config::from_toml("", ".").unwrap();
        assert_eq!(
            bare.endpoint_id_with(None),
            ("os::000000-0001".to_string(), EndpointIdSource::Derived)
        );
        assert_eq!(
            bare.endpoint_id_with(factory),
            (
                "os::from-factory-file".to_string(),
                EndpointIdSource::FactoryResetFile
            )
        );
        let configured = Config::from_toml("[agent]\nendpoint_id = \"os::cfg\"\n", ".").unwrap();
        assert_eq!(
            configured.endpoint_id_with(factory),
            ("os::cfg".to_string(), EndpointIdSource::ConfigFile)
        );
        let mut from_env = configured.clone();
        from_env.apply_env(|name| (name == "USP_ENDPOINT_ID").then(|| "os::env".to_string()));
        assert_eq!(
            from_env.endpoint_id_with(factory),
            ("os::env".to_string(), EndpointIdSource::Environment)
        );
    }

    #[test]
    fn default_endpoint_id_follows_oui_and_serial() {
        let mut config = Config::from_toml("", ".").unwrap();
        config.apply_env(|name| match name {
            "USP_BOARD_OUI" => Some("00D09E".to_string()),
            "USP_BOARD_SERIAL" => Some("SN42".to_string()),
            _ => None,
        });
        assert_eq!(config.endpoint_id(), "os::00D09E-SN42");
    }

    #[test]
    fn relative_mtp_paths_resolve_against_the_config_directory() {
        let config = Config::from_toml(
            "[[mtp]]\nname = \"uds\"\nprotocol = \"uds\"\npath = \"state/usp.sock\"\n\
             [[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\n\
             [mtp.tls]\ncert_file = \"tls/agent.pem\"\nkey_file = \"/etc/agent.key\"\n",
            "/opt/agent",
        )
        .unwrap();
        let usp_mtp::TransportConfig::Uds(uds) = &config.mtp[0].transport else {
            panic!("not uds: {:?}", config.mtp[0]);
        };
        assert_eq!(uds.path, PathBuf::from("/opt/agent/state/usp.sock"));
        let usp_mtp::TransportConfig::WebSocketServer(ws) = &config.mtp[1].transport else {
            panic!("not a WebSocket server: {:?}", config.mtp[1]);
        };
        let tls = ws.tls.as_ref().unwrap();
        assert_eq!(
            tls.cert_file,
            Some(PathBuf::from("/opt/agent/tls/agent.pem"))
        );
        assert_eq!(tls.key_file, Some(PathBuf::from("/etc/agent.key")));
    }
}
