//! Hosts lines: `HOST[:PORT][/LIMIT][,COMPRESSION]`, `[IPv6]...`, `@HOST...`, `USER@HOST...` and
//! `localhost[/N]`, one per line of a hosts file or word of $HOMCC_HOSTS, parsed into [`Host`]s.

use std::{fmt, net::Ipv6Addr, str::FromStr};

use homcc_proto::{Compression, DEFAULT_PORT};

/// How many compiles one host runs at a time for this client when its line gives no `/LIMIT`.
pub const DEFAULT_LIMIT: u32 = 2;

/// `localhost` without a port: this machine, not a homccd.
pub const LOCALHOST: &str = "localhost";

/// How many local compiles and dependency scans run at once when no `localhost/N` says: one per
/// CPU.
pub fn default_local_limit() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// One build server from a hosts line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Host name, IPv4 or IPv6 address, without brackets.
    pub name: String,
    /// The port given, or [`DEFAULT_PORT`].
    pub port: u16,
    /// At most this many compiles at a time on this host; [`DEFAULT_LIMIT`] when not given
    /// ([`default_local_limit`] for `localhost`).
    pub limit: u32,
    /// The compression this host asks for; `None` when the line names none.
    pub compression: Option<Compression>,
    pub transport: Transport,
}

/// How the client reaches a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection to homccd at `name:port`.
    Tcp,
    /// Through SSH (`@HOST` or `USER@HOST`): a stream through the user's `ssh` to homccd at
    /// `localhost:port` on the host (`ssh`).
    Ssh { user: Option<String> },
    /// `localhost` without a port: compiles on this machine, `limit` at a time (also the number
    /// of dependency scans at once).
    Local,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp => f.write_str("tcp"),
            Transport::Ssh { user: None } => f.write_str("ssh"),
            Transport::Ssh { user: Some(user) } => write!(f, "ssh as {user}"),
            Transport::Local => f.write_str("local"),
        }
    }
}

/// A hosts line that does not parse. `host` is the whole line as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host: write a host name or address, as in 'build1:3126/8,lzo'")]
    Empty,
    #[error("empty host name in '{host}': write a host name or address before ':', '/' or ','")]
    EmptyName { host: String },
    #[error("bad host name '{name}' in '{host}': use letters, digits, '-', '.' and '_', or an IP address")]
    BadName { name: String, host: String },
    #[error(
        "bad user name '{user}' in '{host}': use letters, digits, '-', '.' and '_' before '@'"
    )]
    BadUser { user: String, host: String },
    #[error("bad IPv6 address '{addr}' in '{host}': write an IPv6 address in brackets, as in '[fe80::1]:3126'")]
    BadIpv6 { addr: String, host: String },
    #[error("unclosed '[' in '{host}': close the IPv6 address with ']', as in '[fe80::1]:3126'")]
    UnclosedBracket { host: String },
    #[error("unexpected '{junk}' after ']' in '{host}': follow ']' only with ':PORT', '/LIMIT' or ',COMPRESSION'")]
    JunkAfterBracket { junk: String, host: String },
    #[error("bad port '{port}' in '{host}': use a number from 1 to 65535")]
    BadPort { port: String, host: String },
    #[error("bad limit '{limit}' in '{host}': use a number of at least 1")]
    BadLimit { limit: String, host: String },
    #[error(
        "unknown compression '{compression}' in '{host}': use one of {}",
        Compression::names()
    )]
    UnknownCompression { compression: String, host: String },
}

/// A hosts file or $HOMCC_HOSTS that does not parse, with the 1-based line of the bad host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct HostsError {
    pub line: usize,
    pub source: HostError,
}

impl Host {
    /// Whether homcc connects to this host (TCP or SSH; not `localhost`).
    pub fn is_usable(&self) -> bool {
        !self.is_local()
    }

    /// Whether this is the `localhost` line: this machine's own slots, not a server.
    pub fn is_local(&self) -> bool {
        self.transport == Transport::Local
    }

    /// A file name for this host's records (slots, health, known chunks): `name_port` (for SSH
    /// `ssh_user_name_port`: each user's SSH connection fails or works on its own), with every
    /// character but letters, digits, `.` and `-` as `_`.
    pub fn key(&self) -> String {
        let prefix = match &self.transport {
            Transport::Local => return LOCALHOST.into(),
            Transport::Tcp => String::new(),
            Transport::Ssh { user } => format!("ssh_{}_", user.as_deref().unwrap_or("")),
        };
        format!("{prefix}{}_{}", self.name, self.port)
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    true => c,
                    false => '_',
                },
            )
            .collect()
    }

    /// `name:port` for `TcpStream::connect` and `lookup_host`, with IPv6 addresses bracketed.
    pub fn address(&self) -> String {
        if self.name.contains(':') {
            format!("[{}]:{}", self.name, self.port)
        } else {
            format!("{}:{}", self.name, self.port)
        }
    }
}

/// `name:port`, IPv6 as `[::1]:3126`, `localhost`, or for SSH `user@name` / `@name` (with
/// `:port` when it is not the default): how messages name a host.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            Transport::Local => f.write_str(LOCALHOST),
            Transport::Tcp => f.write_str(&self.address()),
            Transport::Ssh { user } => {
                let port = match self.port {
                    DEFAULT_PORT => String::new(),
                    port => format!(":{port}"),
                };
                let name = match self.name.contains(':') {
                    true => format!("[{}]", self.name),
                    false => self.name.clone(),
                };
                write!(f, "{}@{name}{port}", user.as_deref().unwrap_or(""))
            }
        }
    }
}

impl FromStr for Host {
    type Err = HostError;

    /// One host, `[[USER]@]HOST[:PORT][/LIMIT][,COMPRESSION]` with HOST a name, an IPv4 address,
    /// `[IPv6]`, or a bare IPv6 address when no port follows; surrounding whitespace is ignored.
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim();
        if line.is_empty() {
            return Err(HostError::Empty);
        }
        let host = || line.to_string();

        let (rest, compression) = match line.split_once(',') {
            Some((rest, name)) => (rest, Some(parse_compression(name, line)?)),
            None => (line, None),
        };
        let (rest, limit) = match rest.split_once('/') {
            Some((rest, limit)) => (rest, Some(parse_limit(limit, line)?)),
            None => (rest, None),
        };
        let (rest, transport) = match rest.split_once('@') {
            Some(("", rest)) => (rest, Transport::Ssh { user: None }),
            Some((user, rest)) if is_name(user) => (
                rest,
                Transport::Ssh {
                    user: Some(user.to_string()),
                },
            ),
            Some((user, _)) => {
                return Err(HostError::BadUser {
                    user: user.to_string(),
                    host: host(),
                });
            }
            None => (rest, Transport::Tcp),
        };
        let (name, port) = split_port(rest, line)?;
        if name.eq_ignore_ascii_case(LOCALHOST) && port.is_none() && transport == Transport::Tcp {
            return Ok(Host {
                name: LOCALHOST.to_string(),
                port: DEFAULT_PORT,
                limit: limit.unwrap_or_else(default_local_limit),
                compression,
                transport: Transport::Local,
            });
        }
        let port = match port {
            Some(port) => parse_port(port, line)?,
            None => DEFAULT_PORT,
        };
        Ok(Host {
            name: name.to_string(),
            port,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            compression,
            transport,
        })
    }
}

/// Parses a hosts file or $HOMCC_HOSTS: hosts separated by newlines or whitespace, `#` starts a
/// comment (whole-line or trailing), blank lines ignored. The error carries the 1-based line
/// number.
pub fn parse_hosts(text: &str) -> Result<Vec<Host>, HostsError> {
    let mut hosts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line
            .split_once('#')
            .map_or(line, |(before, _comment)| before);
        for word in line.split_whitespace() {
            let host = word.parse().map_err(|source| HostsError {
                line: index + 1,
                source,
            })?;
            hosts.push(host);
        }
    }
    Ok(hosts)
}

/// Splits `HOST[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address into the name (no brackets) and
/// the port text, checking the name.
fn split_port<'a>(text: &'a str, line: &str) -> Result<(&'a str, Option<&'a str>), HostError> {
    let host = || line.to_string();
    if let Some(bracketed) = text.strip_prefix('[') {
        let (addr, after) = bracketed
            .split_once(']')
            .ok_or_else(|| HostError::UnclosedBracket { host: host() })?;
        check_ipv6(addr, line)?;
        return match after {
            "" => Ok((addr, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((addr, Some(port))),
                None => Err(HostError::JunkAfterBracket {
                    junk: after.to_string(),
                    host: host(),
                }),
            },
        };
    }
    let (name, port) = match text.split_once(':') {
        // Two colons or more: only a bare IPv6 address, which cannot carry a port.
        Some((_, after)) if after.contains(':') => {
            check_ipv6(text, line)?;
            return Ok((text, None));
        }
        Some((name, port)) => (name, Some(port)),
        None => (text, None),
    };
    if name.is_empty() {
        return Err(HostError::EmptyName { host: host() });
    }
    if !is_name(name) {
        return Err(HostError::BadName {
            name: name.to_string(),
            host: host(),
        });
    }
    Ok((name, port))
}

fn check_ipv6(addr: &str, line: &str) -> Result<(), HostError> {
    match addr.parse::<Ipv6Addr>() {
        Ok(_) => Ok(()),
        Err(_) if addr.is_empty() => Err(HostError::EmptyName {
            host: line.to_string(),
        }),
        Err(_) => Err(HostError::BadIpv6 {
            addr: addr.to_string(),
            host: line.to_string(),
        }),
    }
}

/// Host and user names: letters, digits, `-`, `.` and `_` (IPv4 addresses included).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// A plain decimal number: no sign, no spaces.
fn parse_number<T: FromStr>(text: &str) -> Option<T> {
    match !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        true => text.parse().ok(),
        false => None,
    }
}

fn parse_port(port: &str, line: &str) -> Result<u16, HostError> {
    parse_number(port)
        .filter(|&port| port >= 1)
        .ok_or_else(|| HostError::BadPort {
            port: port.to_string(),
            host: line.to_string(),
        })
}

fn parse_limit(limit: &str, line: &str) -> Result<u32, HostError> {
    parse_number(limit)
        .filter(|&limit| limit >= 1)
        .ok_or_else(|| HostError::BadLimit {
            limit: limit.to_string(),
            host: line.to_string(),
        })
}

fn parse_compression(name: &str, line: &str) -> Result<Compression, HostError> {
    name.parse().map_err(|_| HostError::UnknownCompression {
        compression: name.to_string(),
        host: line.to_string(),
    })
}

#[cfg(test)]
mod tests;
