//! Flags, and which source wins, in figment's `Jail` (a temp dir as working directory, `HOME` and
//! `HOMCC_DIR`, an empty environment restored afterwards), so no real homcc.conf is read.

use super::*;
use clap::CommandFactory;
use figment::Jail;
use homcc_proto::{config::LogLevel, AuthToken};
use std::path::Path;

/// A jail with no variables but `HOME` and `HOMCC_DIR` (its `dir`), both inside it, and the
/// directories homcc.conf is looked for in.
#[allow(clippy::result_large_err)] // Jail's closure returns figment's (large) error type.
fn jail(test: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        let home = jail.directory().to_str().unwrap().to_owned();
        jail.clear_env();
        jail.set_env("HOME", &home);
        jail.set_env("HOMCC_DIR", format!("{home}/dir"));
        for dir in ["dir", ".homcc", ".config/homcc"] {
            std::fs::create_dir_all(format!("{home}/{dir}")).unwrap();
        }
        test(jail);
        Ok(())
    });
}

fn settings(args: &[&str]) -> Result<Keys, String> {
    let cli = Cli::try_parse_from([&["homccd"], args].concat()).map_err(|e| e.to_string())?;
    cli.keys().map_err(|e| e.0)
}

#[test]
fn flags_and_their_aliases() {
    jail(|_| {
        let check = |args: &[&str], test: fn(&Keys) -> bool| {
            let settings = settings(args).unwrap();
            assert!(test(&settings), "{args:?}: {settings:?}");
        };
        check(&["-j", "8"], |s| s.limit == 8);
        check(&["--jobs", "3"], |s| s.limit == 3);
        check(&["--limit", "2"], |s| s.limit == 2);
        check(&["--listen", "127.0.0.1"], |s| s.address.is_loopback());
        check(&["--address", "::1"], |s| s.address.is_ipv6());
        check(&["--port", "0"], |s| s.port == 0);
        check(&["--cache-dir", "/c"], |s| s.cache_dir == Some("/c".into()));
        check(&["--max-dependency-cache-size", "1M"], |s| {
            s.max_dependency_cache_size == 1 << 20
        });
        check(&["--compile-timeout", "9"], |s| s.compile_timeout == 9);
        check(&["--idle-timeout", "4"], |s| s.idle_timeout == 4);
        check(&["--max-compiler-memory", "2G"], |s| {
            s.max_compiler_memory == 2 << 30
        });
        check(&["--min-upload-rate", "1K"], |s| {
            s.min_upload_rate == 1 << 10
        });
        check(&["--max-frame-memory", "0"], |s| s.max_frame_memory == 0);
        check(&["--log-level", "ERROR"], |s| {
            s.log_level == LogLevel::Error
        });
        check(&["--verbose"], |s| s.verbose);
        check(&["--compiler", "gcc", "--compiler", "/opt/cc"], |s| {
            s.compilers == [PathBuf::from("gcc"), "/opt/cc".into()]
        });
        check(&["--compiler-dir", "/d"], |s| {
            s.compiler_dir == Path::new("/d")
        });
        check(&["--show-compilers"], |s| *s == Keys::default());
        check(&[], |s| *s == Keys::default());
    });
}

#[test]
fn bad_flags_are_named() {
    jail(|_| {
        let check = |args: &[&str], want: &str| assert_eq!(settings(args), Err(want.into()));
        check(
            &["--limit", "0"],
            "--limit: 0 is not allowed: use at least 1",
        );
        check(
            &["--idle-timeout", "0"],
            "--idle-timeout: 0 is not allowed: use at least 1",
        );
        check(
            &["--max-dependency-cache-size", "big"],
            "--max-dependency-cache-size: bad size 'big': use a number with a K, M, G or T suffix, e.g. 10G",
        );
        check(
            &["--log-level", "LOUD"],
            "--log-level: unknown log level 'LOUD': use DEBUG, INFO, WARNING, ERROR or CRITICAL",
        );
        assert!(settings(&["--port", "abc"]).unwrap_err().contains("--port"));
    });
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    jail(|jail| {
        let file = "[homccd]\nport = 1001\nlimit = 11\nlog_level = \"ERROR\"\n";
        jail.create_file("dir/homcc.conf", file).unwrap();
        jail.set_env("HOMCCD_PORT", "2002");
        jail.set_env("HOMCCD_LIMIT", "22");
        let got = settings(&["--port", "3003"]).unwrap();
        let port_limit_level_timeout = |s: &Keys| (s.port, s.limit, s.log_level, s.idle_timeout);
        assert_eq!(
            port_limit_level_timeout(&got),
            (3003, 22, LogLevel::Error, 60)
        );
    });
}

#[test]
fn compilers_and_compiler_dir_come_from_one_source_each() {
    jail(|jail| {
        let get = |args: &[&str]| {
            let s = settings(args).unwrap();
            let names: Vec<_> = s.compilers.iter().map(|c| c.to_str().unwrap()).collect();
            (names.join(","), s.compiler_dir.to_str().unwrap().to_owned())
        };
        let check = |args: &[&str], names: &str, dir: &str| {
            assert_eq!(get(args), (names.into(), dir.into()), "{args:?}");
        };
        check(&[], "", "/usr/lib/homcc");
        jail.create_file(
            ".homcc/homcc.conf",
            "[homccd]\ncompilers = [\"cc\"]\ncompiler_dir = \"/low\"\n",
        )
        .unwrap();
        jail.create_file(
            "dir/homcc.conf",
            "[homccd]\ncompilers = [\"gcc\", \"/opt/bin/g++\"]\n",
        )
        .unwrap();
        // The first file's list replaces the other's; a key it lacks comes from the other.
        check(&[], "gcc,/opt/bin/g++", "/low");
        jail.set_env("HOMCCD_COMPILERS", " clang  clang++ ");
        jail.set_env("HOMCCD_COMPILER_DIR", "/var");
        check(&[], "clang,clang++", "/var");
        check(
            &["--compiler", "cc-12", "--compiler-dir", "/flag"],
            "cc-12",
            "/flag",
        );
        check(&["--no-config"], "clang,clang++", "/var");
        jail.set_env("HOMCCD_COMPILERS", "");
        check(&[], "", "/var");
    });
}

#[test]
fn no_config_reads_no_file() {
    jail(|jail| {
        jail.create_file("dir/homcc.conf", "[homccd]\nport = 1001\nlimit = 11\n")
            .unwrap();
        jail.create_file(".homcc/homcc.conf", "[homccd]\nnot_a_key = 1\n")
            .unwrap();
        jail.set_env("HOMCCD_LIMIT", "22");
        assert!(settings(&[]).unwrap_err().contains("not_a_key"));
        let got = settings(&["--no-config"]).unwrap();
        assert_eq!((got.port, got.limit), (3126, 22));
    });
}

#[test]
fn the_verbose_flag_beats_a_false_variable() {
    jail(|jail| {
        jail.set_env("HOMCCD_VERBOSE", "False");
        assert!(!settings(&[]).unwrap().verbose);
        assert!(settings(&["--verbose"]).unwrap().verbose);
        jail.set_env("HOMCCD_VERBOSE", "True");
        assert!(settings(&[]).unwrap().verbose);
    });
}

#[test]
fn bad_files_name_the_file_and_the_key() {
    jail(|jail| {
        let conf = jail.directory().join("dir/homcc.conf");
        let check = |body: &str, want: &str| {
            std::fs::write(&conf, body).unwrap();
            let error = settings(&[]).unwrap_err();
            assert_eq!(error, format!("{}: {want}", conf.display()), "{body}");
        };
        check(
            "[homccd]\nport = \"abc\"\n",
            "key 'port' in [homccd]: invalid type: found string \"abc\", expected u16",
        );
        check(
            "[homccd]\nmax_dependency_cache_size = \"10X\"\n",
            "key 'max_dependency_cache_size' in [homccd]: unknown size suffix 'X' in '10X': use K, M, G or T",
        );
        check(
            "[homccd]\nlimit = 0\n",
            "key 'limit' in [homccd]: 0 is not allowed: use at least 1",
        );
        check(
            "[homccd]\njobs = 4\n",
            &format!(
                "unknown key 'jobs' in [homccd]: the keys are {}",
                crate::config::KEYS.join(", ")
            ),
        );
    });
}

#[test]
fn bad_variables_are_named() {
    jail(|jail| {
        let mut check = |name: &str, value: &str, want: &str| {
            jail.set_env(name, value);
            assert_eq!(settings(&[]), Err(format!("variable {name}: {want}")));
            jail.set_env(name, "1");
        };
        check(
            "HOMCCD_PORT",
            "abc",
            "invalid type: found string \"abc\", expected u16",
        );
        check(
            "HOMCCD_IDLE_TIMEOUT",
            "0",
            "0 is not allowed: use at least 1",
        );
        check("HOMCCD_ADDRESS", "here", "invalid IP address syntax");
        check(
            "HOMCC_MAX_DEPENDENCY_CACHE_SIZE",
            "big",
            "bad size 'big': use a number with a K, M, G or T suffix, e.g. 10G",
        );
    });
}

#[test]
fn the_python_homccs_cache_size_variable_sits_between_files_and_homccd_variable() {
    jail(|jail| {
        let size = |args: &[&str]| settings(args).unwrap().max_dependency_cache_size;
        jail.create_file(
            "dir/homcc.conf",
            "[homccd]\nmax_dependency_cache_size = \"1K\"\n",
        )
        .unwrap();
        assert_eq!(size(&[]), 1 << 10);
        jail.set_env("HOMCC_MAX_DEPENDENCY_CACHE_SIZE", "2M");
        assert_eq!(size(&[]), 2 << 20);
        jail.set_env("HOMCCD_MAX_DEPENDENCY_CACHE_SIZE", "3G");
        assert_eq!(size(&[]), 3 << 30);
        assert_eq!(size(&["--max-dependency-cache-size", "4"]), 4);
        // With HOMCCD_'s set, the alias is not read at all, not even to complain.
        jail.set_env("HOMCC_MAX_DEPENDENCY_CACHE_SIZE", "big");
        assert_eq!(size(&[]), 3 << 30);
    });
}

#[test]
fn the_auth_token_file_comes_from_one_source_and_is_read() {
    jail(|jail| {
        for (name, token) in [("file", "f"), ("var", "v\n"), ("flag", "  g  ")] {
            jail.create_file(name, token).unwrap();
        }
        let token = |bytes: &[u8]| Some(AuthToken::from_bytes(bytes).unwrap());
        let got = |args: &[&str]| {
            let s = settings(args).unwrap();
            (s.auth_token_file.clone(), s.auth.clone())
        };
        assert_eq!(got(&[]), (None, None));
        let dir = jail.directory().to_owned();
        let conf = format!("[homccd]\nauth_token_file = \"{}/file\"\n", dir.display());
        jail.create_file("dir/homcc.conf", &conf).unwrap();
        assert_eq!(got(&[]), (Some(dir.join("file")), token(b"f")));
        jail.set_env("HOMCCD_AUTH_TOKEN_FILE", "var");
        assert_eq!(got(&[]), (Some("var".into()), token(b"v")));
        assert_eq!(
            got(&["--auth-token-file", "flag"]),
            (Some("flag".into()), token(b"g"))
        );
        // An empty variable turns the file's setting off.
        jail.set_env("HOMCCD_AUTH_TOKEN_FILE", "");
        assert_eq!(got(&[]).1, None);
        assert_eq!(
            got(&["--auth-token-file", "flag"]).1,
            token(b"g"),
            "the flag beats the empty variable"
        );
    });
}

#[test]
fn an_unusable_token_file_is_a_bad_setting_naming_it() {
    jail(|jail| {
        jail.create_file("blank", "\n \n").unwrap();
        assert_eq!(
            settings(&["--auth-token-file", "blank"]),
            Err(
                "auth_token_file blank: the token is empty: put the shared secret in the file"
                    .into()
            )
        );
        jail.set_env("HOMCCD_AUTH_TOKEN_FILE", "/nonexistent/token");
        assert_eq!(
            settings(&[]),
            Err("auth_token_file /nonexistent/token: cannot read it: No such file or directory (os error 2)".into())
        );
    });
}

#[test]
fn help_names_every_variable_and_default() {
    let help = Cli::command().render_help().to_string();
    for key in crate::config::KEYS {
        let variable = format!("[env: HOMCCD_{}", key.to_ascii_uppercase());
        assert!(help.contains(&variable), "{variable} missing from:\n{help}");
    }
    assert_eq!(
        help.matches("[default: ").count(),
        crate::config::KEYS.len(),
        "{help}"
    );
    assert!(
        help.contains("[env: HOMCCD_PORT] [default: 3126]"),
        "{help}"
    );
}
