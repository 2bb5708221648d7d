//! The client's keys, their precedence and the hosts sources, in figment's `Jail` (a temp dir
//! as home and `$HOMCC_DIR`, environment restored afterwards).

// figment's Jail closures return figment's (large) error type.
#![allow(clippy::result_large_err)]

use super::*;
use crate::hosts::Transport;
use clap::Parser;
use figment::Jail;

/// A jail with `$HOME` and `$HOMCC_DIR` (`dir/`) inside it and no homcc variable set.
fn jail(test: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("HOMCC")) {
            std::env::remove_var(name);
        }
        let home = jail.directory().to_str().unwrap().to_owned();
        jail.set_env("HOME", &home);
        jail.set_env("HOMCC_DIR", format!("{home}/dir"));
        jail.set_env("XDG_CACHE_HOME", format!("{home}/cache"));
        for dir in ["dir", ".homcc", ".config/homcc"] {
            std::fs::create_dir_all(format!("{home}/{dir}")).unwrap();
        }
        test(jail);
        Ok(())
    });
}

fn load(args: &str) -> Result<Settings, String> {
    let cli = Cli::try_parse_from(format!("homcc {args} gcc -c a.c").split_whitespace()).unwrap();
    Settings::load(&cli).map_err(|e| e.0)
}

#[test]
fn defaults() {
    jail(|_| {
        let s = load("").unwrap();
        assert_eq!(s.config, Keys::default());
        assert_eq!((s.hosts.len(), s.hosts_source), (0, HostsSource::Nowhere));
        assert_eq!(s.compression, Compression::Zstd);
        assert_eq!(s.connect_timeout, Duration::from_secs(10));
        assert_eq!(s.request_timeout, Duration::from_secs(240));
        assert_eq!((s.tries, s.no_local), (3, false));
        assert_eq!(s.log_level, LogLevel::Warning);
        assert_eq!(s.local_limit, default_local_limit());
        assert!(!s.local_is_host);
    });
}

#[test]
fn every_key_is_read_from_the_file() {
    jail(|jail| {
        jail.create_file("token", "t0ken\n").unwrap();
        jail.create_file(
            "dir/homcc.conf",
            r#"
            [homcc]
            auth_token_file = "token"
            compression = "lzma"
            schroot_profile = "jammy"
            docker_container = ""
            compilation_request_timeout = 120
            establish_connection_timeout = 2.5
            remote_compilation_tries = 5
            log_level = "INFO"
            verbose = false
            no_local_compilation = true
            ssh_executable = "/usr/bin/ssh"
            ssh_control_persist = 30
            ssh_options = ["-o", "BatchMode=yes"]
            no_scan_cache = true
            no_include_closure = true
            no_result_cache = true
            "#,
        )
        .unwrap();
        let s = load("").unwrap();
        let want = Keys {
            compression: Compression::Lzma,
            schroot_profile: Some("jammy".into()),
            docker_container: Some("".into()),
            compilation_request_timeout: 120.0,
            establish_connection_timeout: 2.5,
            remote_compilation_tries: 5,
            log_level: LogLevel::Info,
            verbose: false,
            no_local_compilation: true,
            ssh_executable: "/usr/bin/ssh".into(),
            ssh_control_persist: 30,
            ssh_options: vec!["-o".into(), "BatchMode=yes".into()],
            auth_token_file: Some("token".into()),
            no_scan_cache: true,
            no_include_closure: true,
            no_result_cache: true,
        };
        assert_eq!(s.config, want);
        assert_eq!(s.environment, Some(Environment::Schroot("jammy".into())));
        assert_eq!(KEYS.len(), 16, "every key above");
        assert!(s.scan_cache.is_none());
        assert_eq!(s.auth, Some(AuthToken::from_bytes(b"t0ken").unwrap()));
        assert_eq!(s.connect_timeout, Duration::from_millis(2500));
        assert_eq!((s.tries, s.no_local), (5, true));
    });
}

#[test]
fn ssh_options_split_as_a_shell_would() {
    jail(|jail| {
        jail.set_env(
            "HOMCC_SSH_OPTIONS",
            "-F '/home/a b/config' -o \"ProxyJump x\" -p 2222",
        );
        let s = load("").unwrap();
        assert_eq!(
            s.ssh.options,
            ["-F", "/home/a b/config", "-o", "ProxyJump x", "-p", "2222"]
        );
        assert_eq!(
            (s.ssh.executable.as_str(), s.ssh.control_persist),
            ("ssh", 600)
        );
        jail.set_env("HOMCC_SSH_OPTIONS", "-F 'unclosed");
        let error = load("").unwrap_err().to_string();
        assert!(
            error.contains("unbalanced quotes in '-F 'unclosed': close every quote"),
            "{error}"
        );
    });
}

#[test]
fn an_environment_is_named_by_flag_variable_or_key_and_only_one() {
    jail(|jail| {
        assert_eq!(load("").unwrap().environment, None);
        jail.set_env("HOMCC_DOCKER_CONTAINER", "box");
        let docker = Some(Environment::Docker("box".into()));
        assert_eq!(load("").unwrap().environment, docker);
        let both = load("--schroot-profile jammy").unwrap_err().to_string();
        assert_eq!(
            both,
            "schroot_profile 'jammy' and docker_container 'box' are both set: a compile runs in one environment, unset the other"
        );
        jail.set_env("HOMCC_DOCKER_CONTAINER", "");
        let jammy = Some(Environment::Schroot("jammy".into()));
        assert_eq!(load("--schroot-profile jammy").unwrap().environment, jammy);
    });
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    jail(|jail| {
        assert_eq!(load("").unwrap().tries, 3);
        jail.create_file("dir/homcc.conf", "[homcc]\nremote_compilation_tries = 4\n")
            .unwrap();
        assert_eq!(load("").unwrap().tries, 4);
        jail.set_env("HOMCC_REMOTE_COMPILATION_TRIES", "5");
        assert_eq!(load("").unwrap().tries, 5);
        assert_eq!(load("--remote-compilation-tries 6").unwrap().tries, 6);
        assert_eq!(load("--no-config").unwrap().tries, 5);
    });
}

#[test]
fn no_config_ignores_every_file() {
    jail(|jail| {
        jail.create_file("dir/homcc.conf", "[homcc]\ncompression = \"lzma\"\n")
            .unwrap();
        jail.create_file(".homcc/homcc.conf", "[homcc]\nbad_key = 1\n")
            .unwrap();
        assert!(load("").unwrap_err().contains("unknown key 'bad_key'"));
        assert_eq!(load("--no-config").unwrap().compression, Compression::Zstd);
    });
}

#[test]
fn compression_in_every_form() {
    jail(|jail| {
        let compression = |args| load(args).unwrap().compression;
        jail.create_file("dir/homcc.conf", "[homcc]\ncompression = \"zstd\"\n")
            .unwrap();
        assert_eq!(compression(""), Compression::Zstd);
        jail.create_file("dir/homcc.conf", "[homcc]\ncompression = \"lzo\"\n")
            .unwrap();
        assert_eq!(compression(""), Compression::Lzo);
        jail.set_env("HOMCC_COMPRESSION", "ZSTD");
        assert_eq!(compression(""), Compression::Zstd);
        jail.set_env("HOMCC_COMPRESSION", "lzma");
        assert_eq!(compression(""), Compression::Lzma);
        assert_eq!(compression("--compression zstd"), Compression::Zstd);
        assert_eq!(compression("--compression none"), Compression::None);
        jail.set_env("HOMCC_HOSTS", "a,zstd b/4,lzo c");
        let hosts = load("").unwrap().hosts;
        let each: Vec<_> = hosts.iter().map(|h| h.compression).collect();
        assert_eq!(
            each,
            [Some(Compression::Zstd), Some(Compression::Lzo), None]
        );
    });
}

#[test]
fn no_local_compilation_in_every_form() {
    jail(|jail| {
        assert!(load("--no-local-compilation").unwrap().no_local);
        jail.set_env("HOMCC_NO_LOCAL_COMPILATION", "True");
        assert!(load("").unwrap().no_local);
        jail.set_env("HOMCC_NO_LOCAL_COMPILATION", "0");
        assert!(!load("").unwrap().no_local);
        jail.create_file(
            ".config/homcc/homcc.conf",
            "[homcc]\nno_local_compilation = true\n",
        )
        .unwrap();
        assert!(!load("").unwrap().no_local, "the variable beats the file");
        std::env::remove_var("HOMCC_NO_LOCAL_COMPILATION");
        assert!(load("").unwrap().no_local);
    });
}

#[test]
fn verbose_means_debug() {
    jail(|jail| {
        assert_eq!(load("--verbose").unwrap().log_level, LogLevel::Debug);
        jail.set_env("HOMCC_VERBOSE", "yes");
        assert_eq!(load("").unwrap().log_level, LogLevel::Debug);
        assert_eq!(
            load("--log-level error").unwrap().log_level,
            LogLevel::Debug
        );
        std::env::remove_var("HOMCC_VERBOSE");
        assert_eq!(
            load("--log-level error").unwrap().log_level,
            LogLevel::Error
        );
    });
}

#[test]
fn bad_values_name_their_source() {
    jail(|jail| {
        assert_eq!(
            load("--compression zip").unwrap_err(),
            "--compression: unknown compression 'zip': use one of none, lzo, lzma, zstd"
        );
        jail.set_env("HOMCC_ESTABLISH_CONNECTION_TIMEOUT", "soon");
        assert_eq!(
            load("").unwrap_err(),
            "variable HOMCC_ESTABLISH_CONNECTION_TIMEOUT: invalid type: found string \"soon\", expected f64"
        );
        jail.set_env("HOMCC_ESTABLISH_CONNECTION_TIMEOUT", "0");
        assert_eq!(
            load("").unwrap_err(),
            "variable HOMCC_ESTABLISH_CONNECTION_TIMEOUT: 0 is not a positive number of seconds"
        );
        std::env::remove_var("HOMCC_ESTABLISH_CONNECTION_TIMEOUT");
        assert_eq!(
            load("--remote-compilation-tries 0").unwrap_err(),
            "--remote-compilation-tries: 0 is not allowed: use at least 1"
        );
    });
}

#[test]
fn the_auth_token_file_flag_beats_variable_beats_file() {
    jail(|jail| {
        for (name, token) in [("file", "f"), ("var", " v "), ("flag", "g\n")] {
            jail.create_file(name, token).unwrap();
        }
        let token = |bytes: &[u8]| Some(AuthToken::from_bytes(bytes).unwrap());
        let got = |args: &str| {
            let s = load(args).unwrap();
            (s.config.auth_token_file.clone(), s.auth.clone())
        };
        assert_eq!(got(""), (None, None));
        jail.create_file(".homcc/homcc.conf", "[homcc]\nauth_token_file = \"file\"\n")
            .unwrap();
        assert_eq!(got(""), (Some("file".into()), token(b"f")));
        jail.set_env("HOMCC_AUTH_TOKEN_FILE", "var");
        assert_eq!(got(""), (Some("var".into()), token(b"v")));
        assert_eq!(
            got("--auth-token-file flag"),
            (Some("flag".into()), token(b"g"))
        );
        jail.set_env("HOMCC_AUTH_TOKEN_FILE", "");
        assert_eq!(got("").1, None, "an empty variable turns the file's off");
    });
}

#[test]
fn an_unusable_token_file_is_a_bad_setting_naming_it() {
    jail(|jail| {
        jail.create_file("empty", "").unwrap();
        assert_eq!(
            load("--auth-token-file empty").unwrap_err(),
            "auth_token_file empty: the token is empty: put the shared secret in the file"
        );
        jail.set_env("HOMCC_AUTH_TOKEN_FILE", "missing");
        assert_eq!(
            load("").unwrap_err(),
            "auth_token_file missing: cannot read it: No such file or directory (os error 2)"
        );
    });
}

#[test]
fn help_names_every_variable_and_default() {
    use clap::CommandFactory;
    let help = Cli::command().render_help().to_string();
    assert!(
        help.contains("[env: HOMCC_AUTH_TOKEN_FILE] [default: none]"),
        "{help}"
    );
    for key in KEYS.iter().filter(|k| !k.starts_with("ssh_")) {
        let variable = format!("[env: HOMCC_{}", key.to_ascii_uppercase());
        assert!(help.contains(&variable), "{variable} missing from:\n{help}");
    }
}

/// The hosts of `load("")` as their display strings, and where they came from.
fn hosts() -> (Vec<String>, HostsSource) {
    let s = load("").unwrap();
    (
        s.hosts.iter().map(|h| h.to_string()).collect(),
        s.hosts_source,
    )
}

#[test]
fn hosts_come_from_the_flag_the_variable_or_the_first_file_with_hosts() {
    jail(|jail| {
        let dir = jail.directory().to_owned();
        assert_eq!(hosts(), (vec![], HostsSource::Nowhere));
        jail.create_file(".config/homcc/hosts", "c1\n").unwrap();
        let third = dir.join(".config/homcc/hosts");
        assert_eq!(hosts(), (vec!["c1:3126".into()], HostsSource::File(third)));
        jail.create_file(".homcc/hosts", "# nothing here\n\n")
            .unwrap();
        let third = dir.join(".config/homcc/hosts");
        assert_eq!(hosts(), (vec!["c1:3126".into()], HostsSource::File(third)));
        jail.create_file("dir/hosts", "a:1/4 # first\n b\n")
            .unwrap();
        let first = dir.join("dir/hosts");
        let want = vec!["a:1".to_string(), "b:3126".into()];
        assert_eq!(hosts(), (want, HostsSource::File(first)));
        jail.set_env("HOMCC_HOSTS", "v1\nv2:9 v3");
        let want = vec!["v1:3126".to_string(), "v2:9".into(), "v3:3126".into()];
        assert_eq!(hosts(), (want, HostsSource::Variable));
        let s = load("--host f1 --host f2/3").unwrap();
        assert_eq!((s.hosts.len(), s.hosts[1].limit), (2, 3));
        assert_eq!(s.hosts_source, HostsSource::Flag);
    });
}

#[test]
fn a_bad_hosts_line_names_the_file_and_line() {
    jail(|jail| {
        jail.create_file("dir/hosts", "good\n\nbad:0\n").unwrap();
        let file = jail.directory().join("dir/hosts");
        assert_eq!(
            load("").unwrap_err(),
            format!(
                "{}:3: bad port '0' in 'bad:0': use a number from 1 to 65535",
                file.display()
            )
        );
        jail.set_env("HOMCC_HOSTS", "a b,zip");
        assert_eq!(
            load("").unwrap_err(),
            "HOMCC_HOSTS line 1: unknown compression 'zip' in 'b,zip': use one of none, lzo, lzma, zstd"
        );
        assert_eq!(
            load("--host a/x").unwrap_err(),
            "--host bad limit 'x' in 'a/x': use a number of at least 1"
        );
    });
}

#[test]
fn localhost_sets_the_local_slots() {
    jail(|jail| {
        jail.set_env("HOMCC_HOSTS", "localhost/3 build:4000/8,lzma");
        let s = load("").unwrap();
        assert_eq!((s.local_limit, s.local_is_host), (3, true));
        assert_eq!(s.hosts.len(), 1);
        assert_eq!(s.hosts[0].transport, Transport::Tcp);
        assert_eq!(s.hosts[0].compression, Some(Compression::Lzma));
    });
}
