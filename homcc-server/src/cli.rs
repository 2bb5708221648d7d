//! homccd's command line (and `HOMCCD_*` variables): parsed with clap, turned into a `ServerConfig`.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::Parser;

use crate::server::{default_limit, ServerConfig};

/// homccd: the homcc build server.
#[derive(Debug, Parser)]
#[command(name = "homccd", version, about, long_about = None)]
pub struct Cli {
    /// Maximum concurrent compiles; more are refused as busy [default: number of CPUs + 2]
    #[arg(long, short = 'j', visible_alias = "jobs", env = "HOMCCD_LIMIT", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// IP address to listen on
    #[arg(
        long,
        visible_alias = "address",
        env = "HOMCCD_ADDRESS",
        default_value = "0.0.0.0"
    )]
    pub listen: IpAddr,
    /// TCP port to listen on (0: any free port, printed at start)
    #[arg(long, env = "HOMCCD_PORT", default_value_t = homcc_proto::DEFAULT_PORT)]
    pub port: u16,
    /// Dependency cache directory [default: /var/cache/homccd if writable, else $XDG_CACHE_HOME/homccd]
    #[arg(long, env = "HOMCCD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Maximum size of the dependency cache, with a K, M, G or T suffix
    #[arg(long, env = "HOMCCD_MAX_DEPENDENCY_CACHE_SIZE", default_value = "10G", value_parser = parse_size)]
    pub max_dependency_cache_size: u64,
    /// A compile running longer than this many seconds is killed
    #[arg(long, env = "HOMCCD_COMPILE_TIMEOUT", default_value_t = 300)]
    pub compile_timeout: u64,
    /// A client silent this many seconds (no byte of its request or uploads) is dropped
    #[arg(long, env = "HOMCCD_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Log level: trace, debug, info, warning (warn), error or critical, in any case
    #[arg(long, env = "HOMCCD_LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    pub log_level: tracing::Level,
}

impl Cli {
    /// The server configuration these flags describe.
    pub fn config(&self) -> ServerConfig {
        let mut config =
            ServerConfig::new(self.cache_dir.clone().unwrap_or_else(default_cache_dir));
        config.limit = self.limit.map_or_else(default_limit, |l| l as usize);
        config.max_cache_bytes = self.max_dependency_cache_size;
        config.compile_timeout = Duration::from_secs(self.compile_timeout);
        config.idle_timeout = Duration::from_secs(self.idle_timeout);
        config
    }
}

/// `/var/cache/homccd` when it can be created and written, else `$XDG_CACHE_HOME/homccd`
/// (`~/.cache/homccd`).
pub fn default_cache_dir() -> PathBuf {
    let system = PathBuf::from("/var/cache/homccd");
    if std::fs::create_dir_all(&system).is_ok() && tempfile::tempfile_in(&system).is_ok() {
        return system;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("homccd")
}

/// The Python homcc's level names (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`) and tracing's.
pub fn parse_log_level(text: &str) -> Result<tracing::Level, String> {
    use tracing::Level;
    match text.to_ascii_lowercase().as_str() {
        "trace" => Ok(Level::TRACE),
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warning" | "warn" => Ok(Level::WARN),
        "error" | "critical" => Ok(Level::ERROR),
        _ => Err(format!(
            "unknown log level '{text}': use trace, debug, info, warning, error or critical"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let check =
            |t: &str, want: Result<u64, ()>| assert_eq!(parse_size(t).map_err(|_| ()), want, "{t}");
        check("10G", Ok(10 << 30));
        check("512M", Ok(512 << 20));
        check("64k", Ok(64 << 10));
        check("1T", Ok(1 << 40));
        check("1234", Ok(1234));
        check(" 2 G", Ok(2 << 30));
        check("10X", Err(()));
        check("G", Err(()));
        check("-1G", Err(()));
        check("99999999999T", Err(()));
    }

    #[test]
    fn log_levels() {
        use tracing::Level;
        let check = |t: &str, want: Option<Level>| assert_eq!(parse_log_level(t).ok(), want, "{t}");
        check("DEBUG", Some(Level::DEBUG));
        check("WARNING", Some(Level::WARN));
        check("warn", Some(Level::WARN));
        check("CRITICAL", Some(Level::ERROR));
        check("Info", Some(Level::INFO));
        check("loud", None);
    }

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from([
            "homccd",
            "-j",
            "8",
            "--port",
            "0",
            "--listen",
            "127.0.0.1",
            "--max-dependency-cache-size",
            "1M",
        ])
        .unwrap();
        let config = cli.config();
        assert_eq!((config.limit, config.max_cache_bytes), (8, 1 << 20));
        assert!(Cli::try_parse_from(["homccd", "--jobs", "3"]).is_ok());
        assert!(Cli::try_parse_from(["homccd", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["homccd", "--address", "::1"]).is_ok());
    }
}
