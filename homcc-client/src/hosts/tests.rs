//! Hosts lines, one case a line: every form parses, every bad one is one line naming the fix.

use super::*;

use Compression::{Lzma, Lzo, Zstd};

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
    check("h,zstd", Ok(tcp("h", P, L, Some(Zstd))));
    check("h,ZSTD", Ok(tcp("h", P, L, Some(Zstd))));
    check("h:4000/8,zstd", Ok(tcp("h", 4000, 8, Some(Zstd))));
    check("[::1]:4000/3,zstd", Ok(tcp("::1", 4000, 3, Some(Zstd))));
    check("localhost:3126/3,zstd", Ok(tcp("localhost", P, 3, Some(Zstd))));
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
    check("alice@h/4,zstd", Ok(ssh(Some("alice"), "h", P, 4, Some(Zstd))));
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
    check("h,zip", Err("unknown compression 'zip' in 'h,zip': use one of none, lzo, lzma, zstd"));
    check("h,", Err("unknown compression '' in 'h,': use one of none, lzo, lzma, zstd"));
    check("h,lzo/4", Err("unknown compression 'lzo/4' in 'h,lzo/4': use one of none, lzo, lzma, zstd"));
    check("h,zst", Err("unknown compression 'zst' in 'h,zst': use one of none, lzo, lzma, zstd"));
    check("h,zstd:3", Err("unknown compression 'zstd:3' in 'h,zstd:3': use one of none, lzo, lzma, zstd"));
    check("h,lzo,lzma", Err("unknown compression 'lzo,lzma' in 'h,lzo,lzma': use one of none, lzo, lzma, zstd"));
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
    // An SSH host is named as its hosts line names it, with the port when it is not 3126.
    for (line, shown) in [
        ("alice@h:22", "alice@h:22"),
        ("@h/4,lzo", "@h"),
        ("bob@[::1]:4000", "bob@[::1]:4000"),
    ] {
        let host: Host = line.parse().unwrap();
        assert_eq!(host.to_string(), shown, "{line}");
    }
}

#[test]
fn keys_are_file_names() {
    let key = |line: &str| line.parse::<Host>().unwrap().key();
    assert_eq!(key("10.0.0.1:4000/8,lzo"), "10.0.0.1_4000");
    assert_eq!(key("[fe80::1]:9"), "fe80__1_9");
    assert_eq!(key("alice@build-1"), "ssh_alice_build-1_3126");
    assert_eq!(key("@build-1"), "ssh__build-1_3126");
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
    check_hosts("a,zip", Err("line 1: unknown compression 'zip' in 'a,zip': use one of none, lzo, lzma, zstd"));
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
