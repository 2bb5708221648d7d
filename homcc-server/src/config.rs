//! The [homccd] table of homcc.conf and its `HOMCCD_*` variables: every key, its default and its
//! checks, loaded by homcc-proto's `Sources` (flags > variables > files > defaults) and turned
//! into the listen address, the log level and a [`Settings`].

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use homcc_proto::{
    config::{at_least_one, read_auth_token, words, ConfigError, LogLevel, Sources},
    AuthToken,
};
use serde::{
    de::{Error, Unexpected, Visitor},
    Deserialize, Deserializer, Serialize,
};

use crate::{
    access::AllowedNetworks,
    compilers::{AllowedCompilers, AllowedCompilersError, DEFAULT_COMPILER_DIR},
    server::{Limits, Settings},
};
use ipnet::IpNet;

/// The keys of [homccd] (and so the `HOMCCD_*` variables), in the order of [`Keys`]' fields.
pub const KEYS: &[&str] = &[
    "limit",
    "queue",
    "queue_timeout",
    "port",
    "address",
    "log_level",
    "verbose",
    "max_dependency_cache_size",
    "cache_dir",
    "compile_timeout",
    "idle_timeout",
    "compilers",
    "compiler_dir",
    "schroot_profiles",
    "docker_containers",
    "allow",
    "max_connections_per_client",
    "max_frame_size",
    "max_manifest_entries",
    "max_file_size",
    "max_upload_size",
    "max_output_size",
    "max_compiler_output",
    "max_compiler_memory",
    "min_upload_rate",
    "max_frame_memory",
    "auth_token_file",
    "no_result_cache",
    "verify_results",
];

/// The prefix of homccd's variables: `HOMCCD_` + a key in upper case.
pub const ENV_PREFIX: &str = "HOMCCD_";

/// The Python homcc documents the server's cache size as this variable (`HOMCC_`, not `HOMCCD_`):
/// it counts below `HOMCCD_MAX_DEPENDENCY_CACHE_SIZE` and above the files.
pub const CACHE_SIZE_ALIAS: &str = "HOMCC_MAX_DEPENDENCY_CACHE_SIZE";

/// The [homccd] table: every key, with its default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Keys {
    /// Concurrent compiles; more wait in the queue.
    #[serde(deserialize_with = "at_least_one")]
    pub limit: u32,
    /// Compiles admitted beyond `limit` to upload and wait for a slot (0: none wait); more are
    /// refused as busy. `None`: as many as `limit`.
    pub queue: Option<u32>,
    /// Seconds a compile may wait in the queue.
    #[serde(deserialize_with = "at_least_one")]
    pub queue_timeout: u64,
    pub port: u16,
    pub address: IpAddr,
    pub log_level: LogLevel,
    /// Log at DEBUG, whatever `log_level` says.
    pub verbose: bool,
    /// Bytes: a number, or text with a K, M, G or T suffix (`"10G"`).
    #[serde(deserialize_with = "size")]
    pub max_dependency_cache_size: u64,
    /// `None`: [`default_cache_dir`], looked for only when the server starts.
    pub cache_dir: Option<PathBuf>,
    /// Seconds.
    pub compile_timeout: u64,
    /// Seconds.
    #[serde(deserialize_with = "at_least_one")]
    pub idle_timeout: u64,
    /// Compilers homccd may run, by name (looked up on `PATH` at start) or absolute path: a TOML
    /// array, or text with the entries separated by whitespace (as `HOMCCD_COMPILERS`).
    #[serde(deserialize_with = "names")]
    pub compilers: Vec<PathBuf>,
    /// Links named after the compilers homccd may run, as distcc's `/usr/lib/distcc`.
    pub compiler_dir: PathBuf,
    /// The schroot profiles compiles may run in (docs/configuration.md, *Environments*).
    #[serde(deserialize_with = "environment_names")]
    pub schroot_profiles: Vec<String>,
    /// The docker containers compiles may run in.
    #[serde(deserialize_with = "environment_names")]
    pub docker_containers: Vec<String>,
    /// The client networks served; empty: [`AllowedNetworks::default`].
    #[serde(deserialize_with = "networks")]
    pub allow: Vec<IpNet>,
    /// The most connections (so compiles) one client address holds at once; `None`:
    /// [`default_per_client`]: the limit plus the queue.
    pub max_connections_per_client: Option<u32>,
    /// The largest frame a client may send (one request, or one compressed file).
    #[serde(deserialize_with = "size")]
    pub max_frame_size: u64,
    /// Files in one compile's manifest.
    pub max_manifest_entries: u64,
    /// One file of the manifest.
    #[serde(deserialize_with = "size")]
    pub max_file_size: u64,
    /// The files one compile uploads, together.
    #[serde(deserialize_with = "size")]
    pub max_upload_size: u64,
    /// One output file of a compile.
    #[serde(deserialize_with = "size")]
    pub max_output_size: u64,
    /// What the compiler writes to stdout, and to stderr; more kills it.
    #[serde(deserialize_with = "size")]
    pub max_compiler_output: u64,
    /// The address space of each compiler process (0: unbounded).
    #[serde(deserialize_with = "size")]
    pub max_compiler_memory: u64,
    /// Bytes per second an upload must average once the server asks for files (0: any rate).
    #[serde(deserialize_with = "size")]
    pub min_upload_rate: u64,
    /// The memory the frames being read from all clients may take together (0: unbounded).
    #[serde(deserialize_with = "size")]
    pub max_frame_memory: u64,
    /// A file holding the token clients must prove they hold; `None` (or empty): any client of
    /// the allowed networks may compile.
    pub auth_token_file: Option<PathBuf>,
    /// The token in `auth_token_file`, read by [`Keys::read_auth_token`] (the `Cli` does).
    #[serde(skip)]
    pub auth: Option<AuthToken>,
    /// Compile every request, never answering one from the result of an equal compile.
    pub no_result_cache: bool,
    /// The share of result-cache hits compiled again and compared with their record, 0 to 1.
    #[serde(deserialize_with = "fraction")]
    pub verify_results: f64,
}

/// homccd's defaults, as [`Settings::new`] has them (the one place they are written),
/// in the form of the keys.
impl Default for Keys {
    fn default() -> Self {
        let resolved = Settings::new(PathBuf::new());
        let limits = resolved.limits;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Keys {
            limit: count(resolved.limit),
            queue: resolved.queue.map(count),
            queue_timeout: resolved.queue_timeout.as_secs(),
            port: homcc_proto::DEFAULT_PORT,
            address: Ipv4Addr::UNSPECIFIED.into(),
            log_level: LogLevel::Info,
            verbose: false,
            max_dependency_cache_size: resolved.max_cache_bytes,
            cache_dir: None,
            compile_timeout: resolved.compile_timeout.as_secs(),
            idle_timeout: resolved.idle_timeout.as_secs(),
            compilers: Vec::new(),
            compiler_dir: DEFAULT_COMPILER_DIR.into(),
            schroot_profiles: Vec::new(),
            docker_containers: Vec::new(),
            allow: Vec::new(),
            max_connections_per_client: resolved.max_connections_per_client.map(count),
            max_frame_size: resolved.max_frame as u64,
            max_manifest_entries: limits.manifest_entries as u64,
            max_file_size: limits.file_size,
            max_upload_size: limits.upload_size,
            max_output_size: limits.output_size,
            max_compiler_output: resolved.max_compiler_output as u64,
            max_compiler_memory: resolved.max_compiler_memory,
            min_upload_rate: resolved.min_upload_rate,
            max_frame_memory: resolved.max_frame_memory as u64,
            auth_token_file: None,
            auth: None,
            no_result_cache: !resolved.result_cache,
            verify_results: resolved.verify_results,
        }
    }
}

impl Keys {
    /// The settings from `flags` (a struct whose `None` fields are skipped when serialized),
    /// the variables, and the homcc.conf files unless `no_config`.
    pub fn load(flags: &impl Serialize, no_config: bool) -> Result<Keys, ConfigError> {
        let sources = Sources::new("homccd", KEYS, ENV_PREFIX, no_config);
        sources.load(flags)
    }

    /// The address and port to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// The most detailed level logged: DEBUG with `verbose`, else `log_level`.
    pub fn tracing_level(&self) -> tracing::Level {
        match self.verbose {
            true => tracing::Level::DEBUG,
            false => tracing_level(self.log_level),
        }
    }

    /// The compilers homccd may run: [`AllowedCompilers::load`] with `compilers` and `compiler_dir`.
    pub fn allowlist(&self) -> Result<AllowedCompilers, AllowedCompilersError> {
        AllowedCompilers::load(&self.compilers, &self.compiler_dir)
    }

    /// Reads the token of `auth_token_file` into `auth` (no file, or an empty path: no token); a
    /// file that cannot be read or holds no token is a bad setting.
    pub fn read_auth_token(&mut self) -> Result<(), ConfigError> {
        let file = (self.auth_token_file.as_deref()).filter(|f| !f.as_os_str().is_empty());
        self.auth = file.map(read_auth_token).transpose()?;
        Ok(())
    }

    /// The server's configuration (without its compilers: see [`Keys::allowlist`]); finds
    /// the default cache directory if none is set.
    pub fn settings(&self) -> Settings {
        let cache_dir = self.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let mut config = Settings::new(cache_dir);
        config.limit = self.limit as usize;
        config.queue = self.queue.map(|n| n as usize);
        config.queue_timeout = Duration::from_secs(self.queue_timeout);
        config.max_cache_bytes = self.max_dependency_cache_size;
        config.compile_timeout = Duration::from_secs(self.compile_timeout);
        config.idle_timeout = Duration::from_secs(self.idle_timeout);
        if !self.allow.is_empty() {
            config.allow = AllowedNetworks::new(self.allow.clone());
        }
        config.max_connections_per_client =
            (self.max_connections_per_client).map(|n| (n as usize).max(1));
        let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        config.max_frame = bytes(self.max_frame_size).min(homcc_proto::codec::FRAME_LIMIT_CEILING);
        config.max_compiler_output = bytes(self.max_compiler_output);
        config.max_compiler_memory = self.max_compiler_memory;
        config.min_upload_rate = self.min_upload_rate;
        config.max_frame_memory = match bytes(self.max_frame_memory) {
            0 => usize::MAX,
            n => n,
        };
        config.limits = Limits {
            manifest_entries: bytes(self.max_manifest_entries),
            file_size: self.max_file_size,
            upload_size: self.max_upload_size,
            output_size: self.max_output_size,
        };
        config.auth = self.auth.clone();
        config.schroot_profiles = self.schroot_profiles.clone();
        config.docker_containers = self.docker_containers.clone();
        config.result_cache = !self.no_result_cache;
        config.verify_results = self.verify_results;
        config
    }
}

/// `$HOMCC_MAX_DEPENDENCY_CACHE_SIZE` in bytes, when it is set and
/// `$HOMCCD_MAX_DEPENDENCY_CACHE_SIZE` is not; checked here, so that an error names it.
pub fn cache_size_alias() -> Result<Option<u64>, ConfigError> {
    let own = format!("{ENV_PREFIX}MAX_DEPENDENCY_CACHE_SIZE");
    if std::env::var_os(own).is_some() {
        return Ok(None);
    }
    let fail = |e: String| ConfigError(format!("variable {CACHE_SIZE_ALIAS}: {e}"));
    match std::env::var_os(CACHE_SIZE_ALIAS) {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Some(text) => parse_size(text).map(Some).map_err(fail),
            None => Err(fail("not valid UTF-8".into())),
        },
    }
}

/// A share: a number from 0 to 1.
fn fraction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let share = f64::deserialize(deserializer)?;
    match (0.0..=1.0).contains(&share) {
        true => Ok(share),
        false => Err(Error::custom(format!("{share} is not a share from 0 to 1"))),
    }
}

/// A size as a number of bytes or as text for [`parse_size`].
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Size;
    impl Visitor<'_> for Size {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"10G\" or a number of bytes")
        }

        fn visit_u64<E: Error>(self, bytes: u64) -> Result<u64, E> {
            Ok(bytes)
        }

        fn visit_i64<E: Error>(self, bytes: i64) -> Result<u64, E> {
            u64::try_from(bytes).map_err(|_| E::invalid_value(Unexpected::Signed(bytes), &self))
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<u64, E> {
            parse_size(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(Size)
}

/// Compiler names or paths: a list, or text with them separated by whitespace.
fn names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(words(deserializer)?
        .into_iter()
        .map(PathBuf::from)
        .collect())
}

/// Schroot profile or docker container names: a list, or text separated by whitespace; each
/// a letter or digit, then letters, digits, `_`, `.` and `-`, as docker allows.
fn environment_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = words(deserializer)?;
    let usable = |name: &String| {
        name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    match names.iter().find(|name| !usable(name)) {
        Some(bad) => Err(D::Error::custom(format!(
            "'{bad}' is not a schroot profile or container name (a letter or digit, then letters, digits, '_', '.' and '-')"
        ))),
        None => Ok(names),
    }
}

/// Client networks (`10.0.0.0/8`, or one address): a list, or text separated by whitespace.
fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    words(deserializer)?
        .iter()
        .map(|word| {
            (word.parse::<IpNet>())
                .or_else(|_| word.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    D::Error::custom(format!(
                        "'{word}' is not a network: write an address with a prefix length, as in 10.0.0.0/8 or fd00::/8"
                    ))
                })
        })
        .collect()
}

/// `10G`, `512M`, `64K`, `1T` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => {
                    return Err(format!(
                        "unknown size suffix '{c}' in '{text}': use K, M, G or T"
                    ))
                }
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| {
        format!("bad size '{text}': use a number with a K, M, G or T suffix, e.g. 10G")
    })?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| format!("size '{text}' is too large"))
}

/// tracing's level for the Python homcc's (CRITICAL is ERROR: tracing has nothing above it).
pub fn tracing_level(level: LogLevel) -> tracing::Level {
    use tracing::Level;
    match level {
        LogLevel::Trace => Level::TRACE,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warning => Level::WARN,
        LogLevel::Error | LogLevel::Critical => Level::ERROR,
    }
}

/// `/var/cache/homccd` when it can be created and written, else `$XDG_CACHE_HOME/homccd`
/// (`~/.cache/homccd`).
pub fn default_cache_dir() -> PathBuf {
    let system = PathBuf::from("/var/cache/homccd");
    if std::fs::create_dir_all(&system).is_ok() && tempfile::tempfile_in(&system).is_ok() {
        return system;
    }
    let base = homcc_proto::sys::cache_home().unwrap_or_else(std::env::temp_dir);
    base.join("homccd")
}

#[cfg(test)]
mod tests;
