//! homccd's command line, parsed with clap (flags only), and the [`Keys`] it leads to with the
//! `HOMCCD_*` variables and homcc.conf's [homccd] table (`config`).

use std::{net::IpAddr, path::PathBuf};

use clap::Parser;
use homcc_proto::config::ConfigError;
use serde::Serialize;

use crate::config::{cache_size_alias, Keys};

/// Where settings come from, for the end of `--help`.
const SOURCES_HELP: &str = "\
Each setting is taken from its flag, else its HOMCCD_* variable, else the [homccd] table of \
homcc.conf in $HOMCC_DIR, ~/.homcc, ~/.config/homcc or /etc/homcc (the first file that sets the \
key), else its default.";

/// The build server of homcc: compiles C and C++ for homcc clients, with their own headers.
///
/// A client sends the content hash of every file its compile reads; homccd asks for those its
/// size-bounded cache lacks, rebuilds the client's file tree in a private job root, runs an
/// allowed compiler there, confined to the job's files, and returns the outputs. Run it as a user
/// of its own, never as root. On SIGTERM or SIGINT it stops accepting, lets running compiles
/// finish (up to 60 s) and exits 0; a setting it cannot use stops it at start with status 2.
//
// Every field is a flag that, when given, overrides its variable and homcc.conf; serialized
// (without the flags not given) as the top layer of [`Keys::load`].
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "homccd", version, after_help = SOURCES_HELP)]
pub struct Cli {
    /// Maximum concurrent compiles; more wait in the queue [env: HOMCCD_LIMIT] [default: number of CPUs + 2]
    #[arg(long, short = 'j', visible_alias = "jobs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Compiles beyond the limit that may upload their files and wait for a slot (0: none); a freed slot goes to the waiting client address with the fewest compiles running; more are refused as busy [env: HOMCCD_QUEUE] [default: the limit]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// A compile waiting this many seconds in the queue is refused as busy [env: HOMCCD_QUEUE_TIMEOUT] [default: 120]
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_timeout: Option<u64>,
    /// IP address to listen on [env: HOMCCD_ADDRESS] [default: 0.0.0.0]
    #[arg(long, visible_alias = "address")]
    #[serde(rename = "address", skip_serializing_if = "Option::is_none")]
    pub listen: Option<IpAddr>,
    /// TCP port to listen on (0: any free port, printed at start) [env: HOMCCD_PORT] [default: 3126]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Dependency cache directory [env: HOMCCD_CACHE_DIR] [default: /var/cache/homccd if writable, else $XDG_CACHE_HOME/homccd]
    #[arg(long)]
    // Applied after loading: a path need not be UTF-8, a serialized value must.
    #[serde(skip)]
    pub cache_dir: Option<PathBuf>,
    /// Maximum size of the dependency cache, with a K, M, G or T suffix [env: HOMCCD_MAX_DEPENDENCY_CACHE_SIZE or HOMCC_MAX_DEPENDENCY_CACHE_SIZE] [default: 10G]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_dependency_cache_size: Option<String>,
    /// A compile running longer than this many seconds is killed [env: HOMCCD_COMPILE_TIMEOUT] [default: 300]
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile_timeout: Option<u64>,
    /// A client silent this many seconds (no byte of its request or uploads), or whose machine acknowledges nothing homccd sends for as long (a link gone), is dropped and its compile stopped [env: HOMCCD_IDLE_TIMEOUT] [default: 60]
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (or trace, warn), in any case [env: HOMCCD_LOG_LEVEL] [default: INFO]
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Log at DEBUG level, whatever the log level [env: HOMCCD_VERBOSE] [default: false]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub verbose: bool,
    /// A compiler homccd may run besides those linked in the compiler dir, by name (looked up on PATH at start) or absolute path; repeat for more. With neither, the gcc, g++, cc, c++, clang and clang++ found on PATH, also versioned (gcc-12) or target-prefixed (aarch64-linux-gnu-gcc). Any other compiler is refused [env: HOMCCD_COMPILERS, separated by spaces] [default: none]
    #[arg(long = "compiler", value_name = "NAME_OR_PATH")]
    // Applied after loading, as cache_dir.
    #[serde(skip)]
    pub compilers: Vec<PathBuf>,
    /// Directory of links named after compilers homccd may run (g++ -> /usr/bin/g++), as distcc's /usr/lib/distcc; missing: none [env: HOMCCD_COMPILER_DIR] [default: /usr/lib/homcc]
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub compiler_dir: Option<PathBuf>,
    /// A schroot profile compiles may run in (a client names it with HOMCC_SCHROOT_PROFILE, or its compiler is found only there); repeat for more; checked at start (docs/configuration.md) [env: HOMCCD_SCHROOT_PROFILES, separated by spaces] [default: none]
    #[arg(long = "schroot-profile", value_name = "PROFILE")]
    #[serde(rename = "schroot_profiles", skip_serializing_if = "Vec::is_empty")]
    pub schroot_profiles: Vec<String>,
    /// A running docker container compiles may run in, as --schroot-profile (HOMCC_DOCKER_CONTAINER); it must see the cache's jobs directory at the same path [env: HOMCCD_DOCKER_CONTAINERS, separated by spaces] [default: none]
    #[arg(long = "docker-container", value_name = "CONTAINER")]
    #[serde(rename = "docker_containers", skip_serializing_if = "Vec::is_empty")]
    pub docker_containers: Vec<String>,
    /// Serve clients from this network (10.0.0.0/8, fd00::/8, or one address); repeat for more; other peers are closed at once [env: HOMCCD_ALLOW, separated by spaces] [default: loopback, private and link-local networks]
    #[arg(long, value_name = "NETWORK")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// The most connections one client address holds at once; each compile is one, running or queued; many users behind one NAT or VPN address count as one client [env: HOMCCD_MAX_CONNECTIONS_PER_CLIENT] [default: the limit plus the queue]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<u32>,
    /// The largest frame a client may send: one request, or one compressed file (K, M, G suffix) [env: HOMCCD_MAX_FRAME_SIZE] [default: 64M]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_size: Option<String>,
    /// The most files one compile's manifest may list [env: HOMCCD_MAX_MANIFEST_ENTRIES] [default: 200000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_manifest_entries: Option<u64>,
    /// The largest file of a manifest [env: HOMCCD_MAX_FILE_SIZE] [default: 256M]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<String>,
    /// The most one compile may upload, all files together [env: HOMCCD_MAX_UPLOAD_SIZE] [default: 2G]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_size: Option<String>,
    /// The largest output file of a compile [env: HOMCCD_MAX_OUTPUT_SIZE] [default: 512M]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_size: Option<String>,
    /// The most a compiler may write to stdout, and to stderr; more kills it [env: HOMCCD_MAX_COMPILER_OUTPUT] [default: 16M]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_compiler_output: Option<String>,
    /// The address space each compiler process may take (K, M, G suffix; 0: unbounded); a compile that runs out of it is refused as a limit and compiles on the client [env: HOMCCD_MAX_COMPILER_MEMORY] [default: 4G]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_compiler_memory: Option<String>,
    /// Bytes per second (K, M suffix) an upload must average once it has had the idle timeout (at most 10 s) to start; a slower one is refused, so that no client holds a place for long (0: any rate) [env: HOMCCD_MIN_UPLOAD_RATE] [default: 16K]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_upload_rate: Option<String>,
    /// The memory all clients' frames being read (and uploads being unpacked) may take together; a frame that does not fit now is refused as busy, one larger than all of it as a limit (K, M, G suffix; 0: unbounded) [env: HOMCCD_MAX_FRAME_MEMORY] [default: 512M]
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_memory: Option<String>,
    /// A file holding a shared secret (the whitespace around it is trimmed): only clients that prove they hold the same one, set as homcc's auth_token_file, may compile; the secret never crosses the network [env: HOMCCD_AUTH_TOKEN_FILE] [default: none: any client of the allowed networks]
    #[arg(long, value_name = "FILE")]
    // Applied after loading, as cache_dir.
    #[serde(skip)]
    pub auth_token_file: Option<PathBuf>,
    /// Compile every request, never answering one from the recorded result of an equal compile (docs/cache.md) [env: HOMCCD_NO_RESULT_CACHE] [default: false]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub no_result_cache: bool,
    /// The share of result-cache hits compiled again and compared byte for byte with their record, from 0 to 1; a difference is logged and stops the reuse of that compiler's results [env: HOMCCD_VERIFY_RESULTS] [default: 0]
    #[arg(long, value_name = "SHARE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_results: Option<f64>,
    /// Print the compilers homccd may run (name, path, version, target), on the server and in each environment it offers (probed now), and exit
    #[arg(long)]
    #[serde(skip)]
    pub show_compilers: bool,
    /// Print homccd's man page or a shell's completion script, and exit
    #[arg(long, value_name = "KIND")]
    #[serde(skip)]
    pub generate: Option<homcc_proto::generate::Generate>,
    /// Read no homcc.conf: only flags, variables and defaults
    #[arg(long)]
    #[serde(skip)]
    pub no_config: bool,
}

impl Cli {
    /// The man page's parts that are not in `--help`.
    pub const MAN_PAGE: homcc_proto::generate::ManPage<'static> = homcc_proto::generate::ManPage {
        section: "8",
        files: "/etc/homcc/homcc.conf: settings (TOML, table [homccd]); also ~/.homcc/homcc.conf and ~/.config/homcc/homcc.conf of the user homccd runs as.
/usr/lib/homcc: links named after the compilers homccd may run (--compiler-dir).
/var/cache/homccd: the cache of client files and the compiles' job roots (--cache-dir).
homccd.service: the Debian package's systemd unit, which runs homccd as user homccd.",
        see_also: "homcc(1), distccd(1). /usr/share/doc/homccd: the README and the docs (configuration, security, the cache, the protocol).",
    };

    /// The settings: these flags, over the variables, over homcc.conf (unless `--no-config`),
    /// over the defaults; with the token of `auth_token_file` read.
    pub fn keys(&self) -> Result<Keys, ConfigError> {
        let mut flags = self.clone();
        if flags.max_dependency_cache_size.is_none() {
            // Below the HOMCCD_ variable (`cache_size_alias` is None when it is set), over files.
            flags.max_dependency_cache_size = cache_size_alias()?.map(|bytes| bytes.to_string());
        }
        let mut settings = Keys::load(&flags, self.no_config)?;
        if let Some(dir) = &self.cache_dir {
            settings.cache_dir = Some(dir.clone());
        }
        if !self.compilers.is_empty() {
            settings.compilers = self.compilers.clone();
        }
        if let Some(dir) = &self.compiler_dir {
            settings.compiler_dir = dir.clone();
        }
        if let Some(file) = &self.auth_token_file {
            settings.auth_token_file = Some(file.clone());
        }
        settings.read_auth_token()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests;
