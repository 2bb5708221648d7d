//! homcc's own options, from its command line and `HOMCC_*` variables (config files come with the
//! configuration issue); `COMPILER ARGS...` after them belong to the compiler.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{builder::BoolishValueParser, Parser};
use homcc_proto::Compression;

use crate::hosts::{parse_hosts, Host};

/// homcc: compile C and C++ on homccd build servers, with the same bytes as a local compile.
///
/// Use as `homcc g++ -c foo.cpp -o foo.o`, `CCACHE_PREFIX=homcc`, or
/// `CMAKE_CXX_COMPILER_LAUNCHER=homcc`. Compiles that cannot run remotely, and any remote failure,
/// run the compiler locally.
#[derive(Debug, Parser)]
#[command(
    name = "homcc",
    version,
    override_usage = "homcc [OPTIONS] COMPILER [ARGS]..."
)]
pub struct Cli {
    /// Build server HOST[:PORT][/LIMIT][,COMPRESSION]; repeat for several [env: HOMCC_HOSTS, whitespace-separated]
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Compression of uploaded files and returned outputs: none, lzo or lzma [default: lzo]
    #[arg(long, env = "HOMCC_COMPRESSION", value_name = "ALGORITHM")]
    pub compression: Option<Compression>,
    /// Seconds to wait for a TCP connection to a host
    #[arg(
        long,
        env = "HOMCC_ESTABLISH_CONNECTION_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub establish_connection_timeout: f64,
    /// Seconds a whole remote compile may take before compiling locally
    #[arg(
        long,
        env = "HOMCC_COMPILATION_REQUEST_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 240.0
    )]
    pub compilation_request_timeout: f64,
    /// How many hosts to try for one compile
    #[arg(
        long,
        env = "HOMCC_REMOTE_COMPILATION_TRIES",
        value_name = "N",
        default_value_t = 3
    )]
    pub remote_compilation_tries: usize,
    /// Never compile locally after a remote failure: exit with status 100 and the reason instead
    #[arg(long, env = "HOMCC_NO_LOCAL_COMPILATION", value_parser = BoolishValueParser::new())]
    pub no_local_compilation: bool,
    /// Print what homcc does (why a compile runs locally, what was sent) to stderr
    #[arg(long, env = "HOMCC_VERBOSE", value_parser = BoolishValueParser::new())]
    pub verbose: bool,
    /// Print the files the compile would send (every file it reads), one per line, and exit
    #[arg(long)]
    pub scan_includes: bool,
    /// The compiler and its arguments
    #[arg(
        value_name = "COMPILER",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// Resolved settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hosts: Vec<Host>,
    pub compression: Compression,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub tries: usize,
    pub no_local: bool,
    pub verbose: bool,
    /// homcc's cache of compiler probes and known chunks.
    pub cache_dir: Option<PathBuf>,
}

impl Settings {
    /// The settings `cli` and the environment describe, or a one-line reason they are unusable.
    pub fn from_cli(cli: &Cli) -> Result<Settings, String> {
        let hosts = if cli.hosts.is_empty() {
            match std::env::var("HOMCC_HOSTS") {
                Ok(text) => parse_hosts(&text).map_err(|e| format!("HOMCC_HOSTS {e}"))?,
                Err(_) => Vec::new(),
            }
        } else {
            cli.hosts
                .iter()
                .map(|h| h.parse::<Host>().map_err(|e| format!("--host {e}")))
                .collect::<Result<_, _>>()?
        };
        let seconds = |v: f64, name: &str| {
            (v.is_finite() && v > 0.0)
                .then(|| Duration::from_secs_f64(v))
                .ok_or_else(|| format!("{name} must be a positive number of seconds, not {v}"))
        };
        Ok(Settings {
            compression: cli.compression.unwrap_or_default(),
            connect_timeout: seconds(
                cli.establish_connection_timeout,
                "establish_connection_timeout",
            )?,
            request_timeout: seconds(
                cli.compilation_request_timeout,
                "compilation_request_timeout",
            )?,
            heartbeat_timeout: Duration::from_secs(30),
            tries: cli.remote_compilation_tries.max(1),
            no_local: cli.no_local_compilation,
            verbose: cli.verbose,
            cache_dir: cache_dir(),
            hosts,
        })
    }
}

/// `$XDG_CACHE_HOME/homcc`, else `~/.cache/homcc`.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("homcc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Cli {
        Cli::try_parse_from(std::iter::once("homcc").chain(line.split_whitespace())).unwrap()
    }

    #[test]
    fn compiler_arguments_are_not_homcc_options() {
        let cli = parse("--verbose --host h:1 g++ -c a.cpp -o a.o --verbose --host x");
        assert!(cli.verbose);
        assert_eq!(cli.hosts, ["h:1"]);
        assert_eq!(
            cli.command,
            [
                "g++",
                "-c",
                "a.cpp",
                "-o",
                "a.o",
                "--verbose",
                "--host",
                "x"
            ]
            .map(OsString::from)
        );
        let cli = parse("gcc --version");
        assert_eq!(cli.command, ["gcc", "--version"].map(OsString::from));
    }

    #[test]
    fn bad_hosts_are_reported() {
        let cli = parse("--host h:x gcc -c a.c");
        let err = Settings::from_cli(&cli).unwrap_err();
        assert!(err.contains("bad port 'x'"), "{err}");
    }
}
