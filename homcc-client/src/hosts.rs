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
    /// Through SSH (`@HOST` or `USER@HOST`); parsed and shown, not yet connected to.
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
        compression_names()
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
    /// Whether homcc connects to this host (today: TCP; SSH hosts come with a later version).
    pub fn is_usable(&self) -> bool {
        self.transport == Transport::Tcp
    }

    /// Whether this is the `localhost` line: this machine's own slots, not a server.
    pub fn is_local(&self) -> bool {
        self.transport == Transport::Local
    }

    /// A file name for this host's records (slots, health, known chunks): `name_port`, with
    /// every character but letters, digits, `.` and `-` as `_`.
    pub fn key(&self) -> String {
        if self.is_local() {
            return LOCALHOST.into();
        }
        format!("{}_{}", self.name, self.port)
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

/// `name:port`, IPv6 as `[::1]:3126`, or `localhost`: how messages name a host.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.is_local() {
            true => f.write_str(LOCALHOST),
            false => f.write_str(&self.address()),
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

/// "none, lzo, lzma": the names [`Compression`] parses, for error messages.
fn compression_names() -> String {
    Compression::ALL.map(|c| c.to_string()).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use Compression::{Lzma, Lzo};

    fn tcp(name: &str, port: u16, limit: u32, compression: Option<Compression>) -> Host {
        Host {
            name: name.into(),
            port,
            limit,
            compression,
            transport: Transport::Tcp,
        }
    }

    fn local(limit: u32) -> Host {
        Host {
            transport: Transport::Local,
            ..tcp("localhost", P, limit, None)
        }
    }

    fn ssh(user: Option<&str>, name: &str, port: u16, limit: u32, c: Option<Compression>) -> Host {
        let transport = Transport::Ssh {
            user: user.map(String::from),
        };
        Host {
            name: name.into(),
            port,
            limit,
            compression: c,
            transport,
        }
    }

    /// Parses `input` as one host; an error is compared by its message.
    fn check(input: &str, expected: Result<Host, &str>) {
        let actual = input.parse::<Host>().map_err(|e| e.to_string());
        assert_eq!(actual, expected.map_err(String::from), "input {input:?}");
    }

    /// The defaults, written out so that a change to them fails here.
    const P: u16 = 3126;
    const L: u32 = 2;

    #[rustfmt::skip]
    #[test]
    fn valid_hosts() {
        check("localhost", Ok(local(default_local_limit())));
        check("localhost/3", Ok(local(3)));
        check("LocalHost/3", Ok(local(3)));
        check("localhost:3126", Ok(tcp("localhost", P, L, None)));
        check("localhost:4000/8", Ok(tcp("localhost", 4000, 8, None)));
        check("@localhost", Ok(ssh(None, "localhost", P, L, None)));
        check("  remotehost/12 \t", Ok(tcp("remotehost", P, 12, None)));
        check("build-1.example.com", Ok(tcp("build-1.example.com", P, L, None)));
        check("build_1", Ok(tcp("build_1", P, L, None)));
        check("h:3633", Ok(tcp("h", 3633, L, None)));
        check("h:1", Ok(tcp("h", 1, L, None)));
        check("h:65535", Ok(tcp("h", 65535, L, None)));
        check("h/1", Ok(tcp("h", P, 1, None)));
        check("h,lzo", Ok(tcp("h", P, L, Some(Lzo))));
        check("h,LZMA", Ok(tcp("h", P, L, Some(Lzma))));
        check("h,none", Ok(tcp("h", P, L, Some(Compression::None))));
        check("h:4000/8", Ok(tcp("h", 4000, 8, None)));
        check("h:4000,lzma", Ok(tcp("h", 4000, L, Some(Lzma))));
        check("h/8,lzo", Ok(tcp("h", P, 8, Some(Lzo))));
        check("192.168.0.1:3126/21", Ok(tcp("192.168.0.1", 3126, 21, None)));
        check("192.168.0.1:4000/21,lzo", Ok(tcp("192.168.0.1", 4000, 21, Some(Lzo))));
        check("[FC00::1]:3126/42,lzo", Ok(tcp("FC00::1", 3126, 42, Some(Lzo))));
        check("[::1]", Ok(tcp("::1", P, L, None)));
        check("[::1]:4000", Ok(tcp("::1", 4000, L, None)));
        check("[::1]/3", Ok(tcp("::1", P, 3, None)));
        check("[::1],lzma", Ok(tcp("::1", P, L, Some(Lzma))));
        check("[::ffff:10.0.0.1]:9", Ok(tcp("::ffff:10.0.0.1", 9, L, None)));
        check("::1", Ok(tcp("::1", P, L, None)));
        check("fe80::1/4", Ok(tcp("fe80::1", P, 4, None)));
        check("fe80::1/4,lzo", Ok(tcp("fe80::1", P, 4, Some(Lzo))));
        check("@h", Ok(ssh(None, "h", P, L, None)));
        check("@h:22/4,lzo", Ok(ssh(None, "h", 22, 4, Some(Lzo))));
        check("alice@h", Ok(ssh(Some("alice"), "h", P, L, None)));
        check("alice@build-1.lan:22/16,lzma", Ok(ssh(Some("alice"), "build-1.lan", 22, 16, Some(Lzma))));
        check("bob@[::1]:22", Ok(ssh(Some("bob"), "::1", 22, L, None)));
        check("@::1/3", Ok(ssh(None, "::1", P, 3, None)));
    }

    #[rustfmt::skip]
    #[test]
    fn invalid_hosts() {
        check("", Err("empty host: write a host name or address, as in 'build1:3126/8,lzo'"));
        check("  ", Err("empty host: write a host name or address, as in 'build1:3126/8,lzo'"));
        check(":3126", Err("empty host name in ':3126': write a host name or address before ':', '/' or ','"));
        check("/4", Err("empty host name in '/4': write a host name or address before ':', '/' or ','"));
        check(",lzo", Err("empty host name in ',lzo': write a host name or address before ':', '/' or ','"));
        check("@", Err("empty host name in '@': write a host name or address before ':', '/' or ','"));
        check("alice@:22", Err("empty host name in 'alice@:22': write a host name or address before ':', '/' or ','"));
        check("[]:1", Err("empty host name in '[]:1': write a host name or address before ':', '/' or ','"));
        check("h:x", Err("bad port 'x' in 'h:x': use a number from 1 to 65535"));
        check("h:", Err("bad port '' in 'h:': use a number from 1 to 65535"));
        check("h:0", Err("bad port '0' in 'h:0': use a number from 1 to 65535"));
        check("h:65536", Err("bad port '65536' in 'h:65536': use a number from 1 to 65535"));
        check("h:+80", Err("bad port '+80' in 'h:+80': use a number from 1 to 65535"));
        check("[::1]:x/2", Err("bad port 'x' in '[::1]:x/2': use a number from 1 to 65535"));
        check("h/0", Err("bad limit '0' in 'h/0': use a number of at least 1"));
        check("h/", Err("bad limit '' in 'h/': use a number of at least 1"));
        check("h/-1", Err("bad limit '-1' in 'h/-1': use a number of at least 1"));
        check("h/4:3126", Err("bad limit '4:3126' in 'h/4:3126': use a number of at least 1"));
        check("h/99999999999", Err("bad limit '99999999999' in 'h/99999999999': use a number of at least 1"));
        check("h,zip", Err("unknown compression 'zip' in 'h,zip': use one of none, lzo, lzma"));
        check("h,", Err("unknown compression '' in 'h,': use one of none, lzo, lzma"));
        check("h,lzo/4", Err("unknown compression 'lzo/4' in 'h,lzo/4': use one of none, lzo, lzma"));
        check("h,lzo,lzma", Err("unknown compression 'lzo,lzma' in 'h,lzo,lzma': use one of none, lzo, lzma"));
        check("[::1", Err("unclosed '[' in '[::1': close the IPv6 address with ']', as in '[fe80::1]:3126'"));
        check("[::1:3126/4", Err("unclosed '[' in '[::1:3126/4': close the IPv6 address with ']', as in '[fe80::1]:3126'"));
        check("[::1]x", Err("unexpected 'x' after ']' in '[::1]x': follow ']' only with ':PORT', '/LIMIT' or ',COMPRESSION'"));
        check("[::1]]:1", Err("unexpected ']:1' after ']' in '[::1]]:1': follow ']' only with ':PORT', '/LIMIT' or ',COMPRESSION'"));
        check("[localhost]:1", Err("bad IPv6 address 'localhost' in '[localhost]:1': write an IPv6 address in brackets, as in '[fe80::1]:3126'"));
        check("fe80::1:x", Err("bad IPv6 address 'fe80::1:x' in 'fe80::1:x': write an IPv6 address in brackets, as in '[fe80::1]:3126'"));
        check("h:1:2", Err("bad IPv6 address 'h:1:2' in 'h:1:2': write an IPv6 address in brackets, as in '[fe80::1]:3126'"));
        check("a b", Err("bad host name 'a b' in 'a b': use letters, digits, '-', '.' and '_', or an IP address"));
        check("h;x:1", Err("bad host name 'h;x' in 'h;x:1': use letters, digits, '-', '.' and '_', or an IP address"));
        check("a@b@c", Err("bad host name 'b@c' in 'a@b@c': use letters, digits, '-', '.' and '_', or an IP address"));
        check("u:x@h", Err("bad user name 'u:x' in 'u:x@h': use letters, digits, '-', '.' and '_' before '@'"));
    }

    fn check_display(input: &str, display: &str) {
        let host: Host = input.parse().unwrap();
        assert_eq!(
            (host.to_string(), host.address()),
            (display.into(), display.into()),
            "{input:?}"
        );
    }

    #[test]
    fn display_and_address() {
        check_display("localhost:3126", "localhost:3126");
        assert_eq!(
            "localhost/2".parse::<Host>().unwrap().to_string(),
            "localhost"
        );
        check_display("10.0.0.1:4000/8,lzo", "10.0.0.1:4000");
        check_display("::1", "[::1]:3126");
        check_display("[FC00::1]:3126/42,lzo", "[FC00::1]:3126");
        check_display("alice@h:22", "h:22");
    }

    #[test]
    fn keys_are_file_names() {
        let key = |line: &str| line.parse::<Host>().unwrap().key();
        assert_eq!(key("10.0.0.1:4000/8,lzo"), "10.0.0.1_4000");
        assert_eq!(key("[fe80::1]:9"), "fe80__1_9");
        assert_eq!(key("alice@build-1"), "build-1_3126");
        assert_eq!(key("localhost/4"), "localhost");
        assert_eq!(key("localhost:3126"), "localhost_3126");
    }

    #[test]
    fn addresses_are_what_std_parses() {
        for input in ["[::1]:4000", "::1", "127.0.0.1:9"] {
            let address = input.parse::<Host>().unwrap().address();
            assert!(address.parse::<std::net::SocketAddr>().is_ok(), "{address}");
        }
    }

    fn check_hosts(text: &str, expected: Result<Vec<Host>, &str>) {
        let actual = parse_hosts(text).map_err(|e| e.to_string());
        assert_eq!(actual, expected.map_err(String::from), "text {text:?}");
    }

    #[rustfmt::skip]
    #[test]
    fn hosts_files() {
        check_hosts("", Ok(vec![]));
        check_hosts("\n  \n# only a comment\n", Ok(vec![]));
        check_hosts("localhost/4", Ok(vec![local(4)]));
        check_hosts("a b\tc", Ok(vec![tcp("a", P, L, None), tcp("b", P, L, None), tcp("c", P, L, None)]));
        check_hosts("a/4 # fast one\n  b:9 \n", Ok(vec![tcp("a", P, 4, None), tcp("b", 9, L, None)]));
        check_hosts("a\r\nb\r\n", Ok(vec![tcp("a", P, L, None), tcp("b", P, L, None)]));
        check_hosts("a#b\n#c\n", Ok(vec![tcp("a", P, L, None)]));
        check_hosts(
            "# homcc: hosts\nlocalhost\nremotehost/12\n192.168.0.1:3126/21\n[FC00::1]:3126/42,lzo\n\n# Comment\n",
            Ok(vec![
                local(default_local_limit()),
                tcp("remotehost", P, 12, None),
                tcp("192.168.0.1", 3126, 21, None),
                tcp("FC00::1", 3126, 42, Some(Lzo)),
            ]),
        );
        check_hosts("a\n# c\n\nb c:0 # d\n", Err("line 4: bad port '0' in 'c:0': use a number from 1 to 65535"));
        check_hosts("a,zip", Err("line 1: unknown compression 'zip' in 'a,zip': use one of none, lzo, lzma"));
        check_hosts("ok\n[::1 # oops\n", Err("line 2: unclosed '[' in '[::1': close the IPv6 address with ']', as in '[fe80::1]:3126'"));
    }

    #[test]
    fn hosts_error_carries_the_line() {
        let error = parse_hosts("a\n\nb/0\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert_eq!(
            error.source,
            HostError::BadLimit {
                limit: "0".into(),
                host: "b/0".into()
            }
        );
    }
}
