//! homcc.conf and the `HOMCC_*`/`HOMCCD_*` variables, shared by both binaries: where the files
//! are, and how one binary's settings merge from defaults, files, variables and flags (figment).
//! The only module of this crate that touches the filesystem, and only to read those files and
//! the file `auth_token_file` names.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Value},
    Figment, Provider, Source,
};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};

use crate::AuthToken;

/// The configuration file's name in each of [`config_dirs`].
pub const CONFIG_FILE: &str = "homcc.conf";

/// The tables a homcc.conf may hold: the client's and the server's.
const TABLES: [&str; 2] = ["homcc", "homccd"];

/// Where homcc.conf and the hosts file are looked for, first wins: `$HOMCC_DIR`, `~/.homcc`,
/// `~/.config/homcc`, `/etc/homcc`.
pub fn config_dirs() -> Vec<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let mut dirs = Vec::new();
    if let Some(dir) = var("HOMCC_DIR") {
        dirs.push(std::path::absolute(&dir).unwrap_or_else(|_| dir.into()));
    }
    if let Some(home) = var("HOME").map(PathBuf::from) {
        dirs.push(home.join(".homcc"));
        dirs.push(home.join(".config/homcc"));
    }
    dirs.push(PathBuf::from("/etc/homcc"));
    dirs
}

/// The homcc.conf files that exist, highest priority first.
pub fn config_files() -> Vec<PathBuf> {
    config_dirs()
        .into_iter()
        .map(|dir| dir.join(CONFIG_FILE))
        .filter(|file| file.is_file())
        .collect()
}

/// Where one binary's settings come from, besides its flags.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `homcc` or `homccd`: this binary's table in homcc.conf.
    pub table: &'static str,
    /// The keys of that table; the variables are the prefix plus the key in upper case.
    pub keys: &'static [&'static str],
    /// `HOMCC_` or `HOMCCD_`.
    pub env_prefix: &'static str,
    /// homcc.conf files, highest priority first (none with `--no-config`).
    pub files: Vec<PathBuf>,
}

/// A setting that cannot be used, as one line naming where it came from and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Sources {
    /// The sources of the `table` of homcc.conf: its `keys`, as variables with `env_prefix`, and
    /// the homcc.conf files found ([`config_files`]) unless `no_config`.
    pub fn new(
        table: &'static str,
        keys: &'static [&'static str],
        env_prefix: &'static str,
        no_config: bool,
    ) -> Sources {
        let files = match no_config {
            true => Vec::new(),
            false => config_files(),
        };
        Sources {
            table,
            keys,
            env_prefix,
            files,
        }
    }

    /// The settings: `T`'s defaults, overridden key by key by the files (earlier wins), then by
    /// the variables, then by `flags` (a struct whose `None` fields are skipped when serialized).
    pub fn load<T: DeserializeOwned>(&self, flags: &impl Serialize) -> Result<T, ConfigError> {
        let mut figment = Figment::new();
        for file in self.files.iter().rev() {
            self.check_file(file)?;
            figment = figment.merge(Figment::from(Toml::file_exact(file)).focus(self.table));
        }
        let env = Env::prefixed(self.env_prefix).only(self.keys);
        figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract_lossy()
            .map_err(|e| self.describe(e))
    }

    /// The variables of this binary that are set, as `(NAME, value)`.
    pub fn variables(&self) -> Vec<(String, String)> {
        let mut vars: Vec<_> = std::env::vars()
            .filter(|(name, _)| {
                name.strip_prefix(self.env_prefix)
                    .is_some_and(|key| self.keys.iter().any(|k| k.eq_ignore_ascii_case(key)))
            })
            .collect();
        vars.sort();
        vars
    }

    /// A file holds only the two tables, and this binary's table only its keys.
    fn check_file(&self, file: &Path) -> Result<(), ConfigError> {
        let fail = |what: String| Err(ConfigError(format!("{}: {what}", file.display())));
        let data = match Toml::file_exact(file).data() {
            Ok(mut profiles) => profiles
                .remove(&figment::Profile::Default)
                .unwrap_or_default(),
            Err(e) => return fail(one_line_toml_error(&e.to_string())),
        };
        for (name, value) in &data {
            match value {
                Value::Dict(_, table) if name == self.table => {
                    if let Err(key) = self.check_keys(table) {
                        return fail(format!(
                            "unknown key '{key}' in [{}]: the keys are {}",
                            self.table,
                            self.keys.join(", ")
                        ));
                    }
                }
                Value::Dict(..) if TABLES.contains(&name.as_str()) => {}
                Value::Dict(..) => {
                    return fail(format!(
                        "unknown table [{name}]: homcc.conf holds only [homcc] and [homccd]"
                    ))
                }
                _ => {
                    return fail(format!(
                        "key '{name}' outside a table: put it under [homcc] or [homccd]"
                    ))
                }
            }
        }
        Ok(())
    }

    fn check_keys<'a>(&self, table: &'a Dict) -> Result<(), &'a str> {
        match table.keys().find(|key| !self.keys.contains(&key.as_str())) {
            Some(key) => Err(key),
            None => Ok(()),
        }
    }

    /// figment's error as one line that names the file and key, the variable, or the flag.
    fn describe(&self, error: figment::Error) -> ConfigError {
        let key = error.path.join(".");
        let place = match error.metadata.as_ref() {
            Some(md) => match &md.source {
                Some(Source::File(path)) => {
                    format!("{}: key '{key}' in [{}]", path.display(), self.table)
                }
                _ if md.name.contains("environment") => {
                    format!("variable {}{}", self.env_prefix, key.to_ascii_uppercase())
                }
                _ => format!("--{}", key.replace('_', "-")),
            },
            None => format!("setting '{key}'"),
        };
        ConfigError(format!("{place}: {}", error.kind))
    }
}

/// The token in the file that the setting `auth_token_file` names, or one line naming the file.
pub fn read_auth_token(path: &Path) -> Result<AuthToken, ConfigError> {
    let fail = |what: String| ConfigError(format!("auth_token_file {}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    AuthToken::from_bytes(&bytes).map_err(|e| fail(e.to_string()))
}

/// toml's multi-line report (position, source excerpt, message) as one line.
fn one_line_toml_error(report: &str) -> String {
    let mut lines = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('|'));
    let first = lines.next().unwrap_or("not valid TOML");
    let rest: Vec<_> = lines.collect();
    let hint = "(values are TOML: quote text, as in compression = \"lzo\")";
    match rest.is_empty() {
        true => format!("{first} {hint}"),
        false => format!("{first}: {} {hint}", rest.join(", ")),
    }
}

/// For `#[serde(deserialize_with)]`: a value written as text, parsed by `T`'s `FromStr`.
pub fn from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// For `skip_serializing_if` on a flag given as a bool: leaves it out of the flags layer
/// unless it is set.
pub fn is_false(flag: &bool) -> bool {
    !flag
}

/// A number of at least one (a count, a limit, seconds): 0 would refuse every compile, drop
/// every client or try no host.
pub fn at_least_one<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default + PartialEq,
{
    let value = T::deserialize(deserializer)?;
    match value == T::default() {
        true => Err(serde::de::Error::custom("0 is not allowed: use at least 1")),
        false => Ok(value),
    }
}

/// For `#[serde(deserialize_with)]`: a list of words, or one text with the words separated by
/// whitespace (how a variable gives a list).
pub fn words<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let split = |text: &str| Ok(text.split_whitespace().map(String::from).collect());
    deserializer.deserialize_any(Words(split))
}

/// For `#[serde(deserialize_with)]`: a list of words, or one text split as a shell would
/// (`-F '/a b/config'` is two words).
pub fn shell_words<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let split = |text: &str| {
        shlex::split(text)
            .ok_or_else(|| format!("unbalanced quotes in '{text}': close every quote"))
    };
    deserializer.deserialize_any(Words(split))
}

/// A list as it is, or text split by the function.
struct Words<F>(F);

impl<'de, F: Fn(&str) -> Result<Vec<String>, String>> serde::de::Visitor<'de> for Words<F> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list, or text with the entries separated by spaces")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<String>, E> {
        (self.0)(text).map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut words = Vec::new();
        while let Some(word) = seq.next_element::<String>()? {
            words.push(word);
        }
        Ok(words)
    }
}

/// Log levels by the Python homcc's names (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`),
/// in any case; `trace` and `warn` are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warning" | "warn" => Ok(LogLevel::Warning),
            "error" => Ok(LogLevel::Error),
            "critical" => Ok(LogLevel::Critical),
            _ => Err(format!(
                "unknown log level '{text}': use DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        })
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str(deserializer)
    }
}

#[cfg(test)]
mod tests;
