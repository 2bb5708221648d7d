//! The client's settings: the [homcc] keys (flags > `HOMCC_*` > homcc.conf > defaults) and the
//! hosts (`--host` > `$HOMCC_HOSTS` > the first hosts file), resolved into [`Settings`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use homcc_proto::{
    config::{
        at_least_one, config_dirs, from_str, read_auth_token, shell_words, ConfigError, LogLevel,
        Sources,
    },
    AuthToken, Compression, Environment,
};
use serde::{Deserialize, Deserializer};

use crate::{
    cli::Cli,
    hosts::{default_local_limit, parse_hosts, Host},
    scan::ScanCache,
    slots::Slots,
    ssh::SshSettings,
};

/// The keys of [homcc] (and so the `HOMCC_*` variables) in homcc.conf.
pub const KEYS: &[&str] = &[
    "compression",
    "schroot_profile",
    "docker_container",
    "compilation_request_timeout",
    "establish_connection_timeout",
    "remote_compilation_tries",
    "log_level",
    "verbose",
    "no_local_compilation",
    "ssh_executable",
    "ssh_control_persist",
    "ssh_options",
    "auth_token_file",
    "no_scan_cache",
    "no_include_closure",
    "no_result_cache",
];

/// homcc's variables that are not keys of homcc.conf.
pub const OTHER_VARIABLES: &[&str] = &["HOMCC_HOSTS", "HOMCC_DIR"];

/// The [homcc] table: every key, with the Python homcc's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Keys {
    #[serde(deserialize_with = "from_str")]
    pub compression: Compression,
    pub schroot_profile: Option<String>,
    pub docker_container: Option<String>,
    #[serde(deserialize_with = "positive_seconds")]
    pub compilation_request_timeout: f64,
    #[serde(deserialize_with = "positive_seconds")]
    pub establish_connection_timeout: f64,
    #[serde(deserialize_with = "at_least_one")]
    pub remote_compilation_tries: usize,
    pub log_level: LogLevel,
    pub verbose: bool,
    pub no_local_compilation: bool,
    /// The program SSH hosts (`@HOST`, `USER@HOST`) are reached through.
    pub ssh_executable: String,
    /// Seconds an SSH host's master connection stays after its last compile.
    pub ssh_control_persist: u64,
    /// Options for `ssh`, before the host: a TOML array, or text split as a shell would.
    #[serde(deserialize_with = "shell_words")]
    pub ssh_options: Vec<String>,
    /// A file holding the token of the servers that require authentication.
    pub auth_token_file: Option<PathBuf>,
    /// Run the dependency scan of every compile, never answering it from the scan cache.
    pub no_scan_cache: bool,
    /// Always list a compile's files with the local preprocessor, never by following its
    /// `#include`s (docs/scan-cache.md, *The include closure*).
    pub no_include_closure: bool,
    /// Have every remote compile run, never answered from a server's record of an equal one.
    pub no_result_cache: bool,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            compression: Compression::default(),
            schroot_profile: None,
            docker_container: None,
            compilation_request_timeout: 240.0,
            establish_connection_timeout: 10.0,
            remote_compilation_tries: 3,
            log_level: LogLevel::Warning,
            verbose: false,
            no_local_compilation: false,
            ssh_executable: "ssh".into(),
            ssh_control_persist: 600,
            ssh_options: Vec::new(),
            auth_token_file: None,
            no_scan_cache: false,
            no_include_closure: false,
            no_result_cache: false,
        }
    }
}

/// A time limit: a positive, finite number of seconds.
fn positive_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    match seconds.is_finite() && seconds > 0.0 {
        true => Ok(seconds),
        false => Err(serde::de::Error::custom(format!(
            "{seconds} is not a positive number of seconds"
        ))),
    }
}

/// Where the hosts came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostsSource {
    Flag,
    Variable,
    File(PathBuf),
    /// No `--host`, no `$HOMCC_HOSTS`, no hosts file.
    Nowhere,
}

/// Resolved settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The build servers (TCP and SSH), in the order given.
    pub hosts: Vec<Host>,
    /// Local compiles and dependency scans at once (`localhost/N`, else one per CPU).
    pub local_limit: u32,
    /// `localhost` is one of the hosts: a local compile may take a job when every remote slot is
    /// taken.
    pub local_is_host: bool,
    pub hosts_source: HostsSource,
    pub compression: Compression,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub tries: usize,
    pub no_local: bool,
    pub log_level: LogLevel,
    /// homcc's cache of compiler probes, known chunks and scans.
    pub cache_dir: Option<PathBuf>,
    /// Recorded dependency scans (`None`: every compile runs its scan).
    pub scan_cache: Option<ScanCache>,
    /// Slots and host health shared by the user's homcc processes (their state dir, opened
    /// once); `None` when there is no usable state dir.
    pub slots: Option<Slots>,
    /// The token of `auth_token_file`, which answers the servers' challenges.
    pub auth: Option<AuthToken>,
    /// The server environment to compile in (`schroot_profile` or `docker_container`).
    pub environment: Option<Environment>,
    /// How SSH hosts are reached.
    pub ssh: SshSettings,
    pub config: Keys,
}

/// Where the [homcc] settings come from (no homcc.conf with `--no-config`).
pub fn sources(no_config: bool) -> Sources {
    Sources::new("homcc", KEYS, "HOMCC_", no_config)
}

impl Settings {
    /// The settings `cli`, the environment and the config files describe, or a one-line reason
    /// they are unusable.
    pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
        let mut config: Keys = sources(cli.no_config).load(cli)?;
        // Applied after loading: a path need not be UTF-8, a serialized flag must.
        if let Some(file) = &cli.auth_token_file {
            config.auth_token_file = Some(file.clone());
        }
        let auth = (config.auth_token_file.as_deref())
            .filter(|file| !file.as_os_str().is_empty())
            .map(read_auth_token)
            .transpose()?;
        let environment = environment(&config)?;
        let (all_hosts, hosts_source) = load_hosts(&cli.hosts)?;
        let local = all_hosts.iter().find(|h| h.is_local());
        let cache_dir = cache_dir();
        let state = state_dir(cache_dir.as_deref());
        let ssh = SshSettings {
            executable: config.ssh_executable.clone(),
            control_persist: config.ssh_control_persist,
            options: config.ssh_options.clone(),
            dir: state.clone(),
        };
        Ok(Settings {
            local_limit: local.map_or_else(default_local_limit, |h| h.limit),
            local_is_host: local.is_some(),
            hosts: all_hosts
                .iter()
                .filter(|h| !h.is_local())
                .cloned()
                .collect(),
            hosts_source,
            compression: config.compression,
            connect_timeout: Duration::from_secs_f64(config.establish_connection_timeout),
            request_timeout: Duration::from_secs_f64(config.compilation_request_timeout),
            heartbeat_timeout: Duration::from_secs(30),
            tries: config.remote_compilation_tries,
            no_local: config.no_local_compilation,
            log_level: match config.verbose {
                true => config.log_level.min(LogLevel::Debug),
                false => config.log_level,
            },
            slots: state.and_then(|dir| Slots::open(&dir).ok()),
            scan_cache: (cache_dir.as_deref())
                .filter(|_| !config.no_scan_cache)
                .map(ScanCache::new),
            cache_dir,
            auth,
            environment,
            ssh,
            config,
        })
    }

    /// The sum of the limits of the remote hosts homcc connects to.
    pub fn remote_limit(&self) -> u32 {
        (self.hosts.iter().filter(|h| h.is_usable()))
            .map(|h| h.limit)
            .fold(0, u32::saturating_add)
    }

    /// Whether messages of `level` are shown.
    pub fn shows(&self, level: LogLevel) -> bool {
        level >= self.log_level
    }
}

/// The environment `schroot_profile` or `docker_container` names (an empty one names none); not
/// both: a compile runs in one.
fn environment(config: &Keys) -> Result<Option<Environment>, ConfigError> {
    let named = |name: &Option<String>| name.clone().filter(|n| !n.trim().is_empty());
    match (named(&config.schroot_profile), named(&config.docker_container)) {
        (Some(profile), Some(container)) => Err(ConfigError(format!(
            "schroot_profile '{profile}' and docker_container '{container}' are both set: a compile runs in one environment, unset the other"
        ))),
        (Some(profile), None) => Ok(Some(Environment::Schroot(profile))),
        (None, Some(container)) => Ok(Some(Environment::Docker(container))),
        (None, None) => Ok(None),
    }
}

/// `--host` values, else `$HOMCC_HOSTS`, else the first hosts file with a host in it.
fn load_hosts(flags: &[String]) -> Result<(Vec<Host>, HostsSource), ConfigError> {
    if !flags.is_empty() {
        let hosts = parse_hosts(&flags.join("\n"))
            .map_err(|e| ConfigError(format!("--host {}", e.source)))?;
        return Ok((hosts, HostsSource::Flag));
    }
    if let Some(text) = std::env::var("HOMCC_HOSTS")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        let hosts = parse_hosts(&text).map_err(|e| ConfigError(format!("HOMCC_HOSTS {e}")))?;
        return Ok((hosts, HostsSource::Variable));
    }
    for file in config_dirs().into_iter().map(|dir| dir.join("hosts")) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let hosts = parse_hosts(&text)
            .map_err(|e| ConfigError(format!("{}:{}: {}", file.display(), e.line, e.source)))?;
        if !hosts.is_empty() {
            return Ok((hosts, HostsSource::File(file)));
        }
    }
    Ok((Vec::new(), HostsSource::Nowhere))
}

/// `$XDG_CACHE_HOME/homcc`, else `~/.cache/homcc`.
fn cache_dir() -> Option<PathBuf> {
    Some(homcc_proto::sys::cache_home()?.join("homcc"))
}

/// `$XDG_RUNTIME_DIR/homcc` (per user, emptied at logout), else `<cache dir>/run`.
fn state_dir(cache_dir: Option<&Path>) -> Option<PathBuf> {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(runtime) => Some(PathBuf::from(runtime).join("homcc")),
        None => cache_dir.map(|c| c.join("run")),
    }
}

#[cfg(test)]
mod tests;
