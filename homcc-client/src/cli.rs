//! homcc's command line: its own options (flags only; variables and homcc.conf are merged in
//! `config`), the `--show-*` commands, and `COMPILER ARGS...`, which belong to the compiler.

use std::ffi::OsString;

use clap::Parser;
use serde::Serialize;

/// Where settings come from, after the options in `--help` and the man page.
const SETTINGS_HELP: &str = "\
Each setting is taken from its flag, else its HOMCC_* variable, else the [homcc] table of \
homcc.conf in $HOMCC_DIR, ~/.homcc, ~/.config/homcc or /etc/homcc (the first file that sets the \
key), else its default. A variable given as 1, true, yes or on (any case) turns a switch on. \
Hosts come from --host, else HOMCC_HOSTS, else the first hosts file with a host in the same \
directories: one HOST[:PORT][/LIMIT][,COMPRESSION], [IPv6]:PORT, @HOST or USER@HOST per line, \
localhost/N for this machine's own limit. Exit status: the compiler's; 100 if homcc failed and \
local compilation is off; 127 if the compiler is not found.";

/// Compile C and C++ on homccd build servers, with the same bytes as a local compile.
///
/// Use as `homcc g++ -c foo.cpp -o foo.o`, `CCACHE_PREFIX=homcc`,
/// `CMAKE_CXX_COMPILER_LAUNCHER=homcc`, or through a link named after the compiler (see
/// --update-links). Compiles that cannot run remotely, and any remote failure, run the compiler
/// locally.
//
// Every field that is a setting is also the top layer of the configuration (`config`):
// serialized without the flags not given.
#[derive(Debug, Parser, Serialize)]
#[command(
    name = "homcc",
    version,
    override_usage = "homcc [OPTIONS] COMPILER [ARGS]...\n       homcc --show-hosts | -j | --show-variables\n       homcc --update-links DIR | --generate KIND",
    after_long_help = SETTINGS_HELP
)]
pub struct Cli {
    /// Build server HOST[:PORT][/LIMIT][,COMPRESSION]; repeat for several [env: HOMCC_HOSTS, whitespace-separated] [default: the first hosts file of $HOMCC_DIR, ~/.homcc, ~/.config/homcc, /etc/homcc]
    #[arg(long = "host", value_name = "HOST")]
    #[serde(skip)]
    pub hosts: Vec<String>,
    /// Compression of uploaded files and returned outputs: none, lzo, lzma or zstd [env: HOMCC_COMPRESSION] [default: zstd]
    #[arg(long, value_name = "ALGORITHM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Seconds to connect to a host and get its first answer; then the next host is tried [env: HOMCC_ESTABLISH_CONNECTION_TIMEOUT] [default: 10]
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub establish_connection_timeout: Option<f64>,
    /// Seconds a whole remote compile may take (and the wait when every host is full) before compiling locally [env: HOMCC_COMPILATION_REQUEST_TIMEOUT] [default: 240]
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compilation_request_timeout: Option<f64>,
    /// How many hosts may fail one compile (busy ones do not count) [env: HOMCC_REMOTE_COMPILATION_TRIES] [default: 3]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_compilation_tries: Option<usize>,
    /// Never compile locally after a remote failure: exit with status 100 and the reason instead [env: HOMCC_NO_LOCAL_COMPILATION]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub no_local_compilation: bool,
    /// Compile in this schroot profile of the server, if the server offers it (else the next host, or locally) [env: HOMCC_SCHROOT_PROFILE] [default: none: the server's own compilers, or an environment of its with exactly this compiler]
    #[arg(long, value_name = "PROFILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schroot_profile: Option<String>,
    /// Compile in this docker container of the server, if the server offers it, as --schroot-profile; not both [env: HOMCC_DOCKER_CONTAINER] [default: none]
    #[arg(long, value_name = "CONTAINER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_container: Option<String>,
    /// A file holding the token of servers that require authentication (their auth_token_file; the whitespace around it is trimmed); never sent, only used to answer their challenges [env: HOMCC_AUTH_TOKEN_FILE] [default: none]
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// What homcc says on stderr: DEBUG, INFO, WARNING, ERROR or CRITICAL [env: HOMCC_LOG_LEVEL] [default: WARNING]
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Say what homcc does (log level DEBUG): why a compile runs locally, what was sent [env: HOMCC_VERBOSE]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub verbose: bool,
    /// Run every compile's dependency scan, never reusing a recorded one whose inputs are unchanged [env: HOMCC_NO_SCAN_CACHE]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub no_scan_cache: bool,
    /// Always list a compile's files with the local preprocessor, never by following its #includes and letting the server write the dependency file [env: HOMCC_NO_INCLUDE_CLOSURE]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub no_include_closure: bool,
    /// Have every remote compile run, never answered from a server's record of the same compile (docs/cache.md) [env: HOMCC_NO_RESULT_CACHE]
    #[arg(long)]
    #[serde(skip_serializing_if = "homcc_proto::config::is_false")]
    pub no_result_cache: bool,
    /// Read no homcc.conf file (variables and flags still apply)
    #[arg(long)]
    #[serde(skip)]
    pub no_config: bool,
    /// Print the hosts in use, one per line (address, limit, compression, transport), and exit
    #[arg(long)]
    #[serde(skip)]
    pub show_hosts: bool,
    /// Print how many compiles can run at once (the sum of the remote hosts' limits, or the local limit without one), and exit
    #[arg(short = 'j', long)]
    #[serde(skip)]
    pub show_concurrency: bool,
    /// Print the HOMCC_* variables in effect, and exit
    #[arg(long)]
    #[serde(skip)]
    pub show_variables: bool,
    /// Print the files the compile would send (every file it reads), one per line, and exit
    #[arg(long)]
    #[serde(skip)]
    pub scan_includes: bool,
    /// Make DIR a masquerade directory, as distcc's /usr/lib/distcc: a link to homcc named after each compiler on PATH (gcc, g++, cc, c++, clang, clang++, also versioned or target-prefixed), and none for a compiler no longer there; then `PATH=DIR:$PATH make` compiles through homcc. Prints each change, and exits
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub update_links: Option<std::path::PathBuf>,
    /// Print homcc's man page or a shell's completion script, and exit
    #[arg(long, value_name = "KIND")]
    #[serde(skip)]
    pub generate: Option<homcc_proto::generate::Generate>,
    /// The compiler and its arguments
    #[arg(
        value_name = "COMPILER",
        required_unless_present_any = ["show_hosts", "show_concurrency", "show_variables", "update_links", "generate"],
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    #[serde(skip)]
    pub command: Vec<OsString>,
}

impl Cli {
    /// Whether one of the `--show-*` commands was asked for.
    pub fn shows(&self) -> bool {
        self.show_hosts || self.show_concurrency || self.show_variables
    }

    /// The man page's parts that are not in `--help`.
    pub const MAN_PAGE: homcc_proto::generate::ManPage<'static> = homcc_proto::generate::ManPage {
        section: "1",
        files: "~/.homcc/hosts, ~/.config/homcc/hosts, /etc/homcc/hosts: the build servers, the first file with a host.
~/.homcc/homcc.conf, ~/.config/homcc/homcc.conf, /etc/homcc/homcc.conf: settings (TOML, table [homcc]).
$XDG_CACHE_HOME/homcc (~/.cache/homcc): compiler probes, the scan cache, host slots and back-off, SSH sockets.
/usr/lib/homcc/bin: the masquerade directory of the Debian package, kept up to date with homcc --update-links as compilers come and go.",
        see_also: "homccd(8), gcc(1), clang(1), ccache(1), distcc(1). /usr/share/doc/homcc: the README and the docs (configuration, command lines, security, protocol).",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Cli {
        Cli::try_parse_from(std::iter::once("homcc").chain(line.split_whitespace())).unwrap()
    }

    #[test]
    fn compiler_arguments_are_not_homcc_options() {
        let cli = parse("--verbose --host h:1 g++ -c a.cpp -o a.o --verbose --host x -j");
        assert!(cli.verbose);
        assert!(!cli.show_concurrency);
        assert_eq!(cli.hosts, ["h:1"]);
        let want = "g++ -c a.cpp -o a.o --verbose --host x -j";
        assert_eq!(
            cli.command,
            want.split(' ').map(OsString::from).collect::<Vec<_>>()
        );
        let cli = parse("gcc --version");
        assert_eq!(cli.command, ["gcc", "--version"].map(OsString::from));
    }

    #[test]
    fn show_commands_need_no_compiler() {
        assert!(parse("-j").show_concurrency);
        assert!(parse("--show-concurrency").show_concurrency);
        assert!(parse("--show-hosts --host a").show_hosts);
        assert!(parse("--show-variables").show_variables);
        assert!(Cli::try_parse_from(["homcc", "--verbose"]).is_err());
    }

    #[test]
    fn only_given_flags_are_a_layer() {
        use figment::{providers::Serialized, value::Value, Figment};
        let layer = |line: &str| {
            let cli = parse(line);
            let values: std::collections::BTreeMap<String, Value> =
                Figment::from(Serialized::defaults(&cli)).extract().unwrap();
            values.into_keys().collect::<Vec<_>>()
        };
        assert_eq!(
            layer("--verbose --remote-compilation-tries 2 --host h --no-config gcc -c a.c"),
            ["remote_compilation_tries", "verbose"]
        );
        assert_eq!(layer("gcc"), Vec::<String>::new());
        assert_eq!(
            layer("--no-local-compilation --compression lzma gcc").len(),
            2
        );
    }
}
