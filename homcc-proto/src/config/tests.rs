//! Precedence, merging and error messages of [`Sources::load`], in figment's `Jail` (a temp dir
//! as working directory and home, environment restored afterwards).

// figment's Jail closures return figment's (large) error type.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    timeout: f64,
    tries: u32,
    verbose: bool,
    #[serde(deserialize_with = "from_str")]
    level: LogLevel,
    name: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: 10.0,
            tries: 3,
            verbose: false,
            level: LogLevel::Warning,
            name: None,
        }
    }
}

#[derive(Default, Serialize)]
struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    tries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<String>,
}

const KEYS: &[&str] = &["timeout", "tries", "verbose", "level", "name"];

/// A jail whose home is its own directory, so that no real config file is read.
fn jail(test: impl FnOnce(&mut Jail) -> figment::Result<()>) {
    Jail::expect_with(|jail| {
        let home = jail.directory().to_str().unwrap().to_owned();
        jail.set_env("HOME", &home);
        jail.set_env("HOMCC_DIR", format!("{home}/dir"));
        for dir in ["dir", ".homcc", ".config/homcc"] {
            std::fs::create_dir_all(format!("{home}/{dir}")).unwrap();
        }
        test(jail)
    });
}

fn sources() -> Sources {
    Sources {
        table: "homcc",
        keys: KEYS,
        env_prefix: "HOMCC_",
        files: config_files(),
    }
}

fn load(flags: &Flags) -> Result<Settings, String> {
    sources().load(flags).map_err(|e| e.0)
}

#[test]
fn defaults_without_any_source() {
    jail(|_| {
        assert_eq!(load(&Flags::default()), Ok(Settings::default()));
        Ok(())
    });
}

#[test]
fn flag_beats_variable_beats_files_beat_defaults() {
    jail(|jail| {
        jail.create_file(
            "dir/homcc.conf",
            "[homcc]\ntries = 5\ntimeout = 2.5\nlevel = \"INFO\"\n[homccd]\nlimit = 3\n",
        )?;
        let from_file = load(&Flags::default()).unwrap();
        assert_eq!((from_file.tries, from_file.timeout), (5, 2.5));
        assert_eq!(from_file.level, LogLevel::Info);

        jail.set_env("HOMCC_TRIES", "7");
        jail.set_env("HOMCC_LEVEL", "debug");
        let from_env = load(&Flags::default()).unwrap();
        assert_eq!((from_env.tries, from_env.timeout), (7, 2.5));
        assert_eq!(from_env.level, LogLevel::Debug);

        let flags = Flags {
            tries: Some(9),
            level: None,
        };
        let from_flag = load(&flags).unwrap();
        assert_eq!((from_flag.tries, from_flag.level), (9, LogLevel::Debug));
        Ok(())
    });
}

#[test]
fn files_merge_key_by_key_and_the_earlier_wins() {
    jail(|jail| {
        jail.create_file("dir/homcc.conf", "[homcc]\ntries = 1\n")?;
        jail.create_file(".homcc/homcc.conf", "[homcc]\ntries = 2\nverbose = true\n")?;
        jail.create_file(
            ".config/homcc/homcc.conf",
            "[homcc]\ntries = 3\nverbose = false\nname = \"third\"\ntimeout = 4\n",
        )?;
        let settings = load(&Flags::default()).unwrap();
        assert_eq!(
            settings,
            Settings {
                timeout: 4.0,
                tries: 1,
                verbose: true,
                level: LogLevel::Warning,
                name: Some("third".into()),
            }
        );
        Ok(())
    });
}

#[test]
fn no_files_means_defaults_and_variables_only() {
    jail(|jail| {
        jail.create_file("dir/homcc.conf", "[homcc]\ntries = 1\n")?;
        jail.set_env("HOMCC_VERBOSE", "1");
        let no_config = Sources {
            files: Vec::new(),
            ..sources()
        };
        let settings: Settings = no_config.load(&Flags::default()).unwrap();
        assert_eq!((settings.tries, settings.verbose), (3, true));
        Ok(())
    });
}

#[test]
fn booleans_and_numbers_as_the_python_homcc_writes_them() {
    jail(|jail| {
        for (text, want) in [("True", true), ("yes", true), ("0", false), ("off", false)] {
            jail.set_env("HOMCC_VERBOSE", text);
            assert_eq!(load(&Flags::default()).unwrap().verbose, want, "{text}");
        }
        jail.set_env("HOMCC_TIMEOUT", "120");
        assert_eq!(load(&Flags::default()).unwrap().timeout, 120.0);
        Ok(())
    });
}

#[test]
fn unrelated_variables_are_ignored() {
    jail(|jail| {
        jail.set_env("HOMCC_HOSTS", "a b");
        jail.set_env("HOMCCD_TRIES", "1");
        jail.set_env("HOMCC_SOMETHING_ELSE", "x");
        assert_eq!(load(&Flags::default()), Ok(Settings::default()));
        Ok(())
    });
}

/// Loads with `file` as `$HOMCC_DIR/homcc.conf`; the error with the jail's path as `DIR`.
fn error_for_file(jail: &mut Jail, file: &str) -> String {
    jail.create_file("dir/homcc.conf", file).unwrap();
    let dir = jail.directory().join("dir");
    load(&Flags::default())
        .unwrap_err()
        .replace(dir.to_str().unwrap(), "DIR")
}

#[rustfmt::skip]
#[test]
fn bad_files_name_the_file_and_the_key() {
    jail(|jail| {
        let check = |jail: &mut Jail, file: &str, want: &str| {
            assert_eq!(error_for_file(jail, file), want, "{file:?}");
        };
        check(jail, "[homcc]\ntimeot = 1\n",
            "DIR/homcc.conf: unknown key 'timeot' in [homcc]: the keys are timeout, tries, verbose, level, name");
        check(jail, "[homcc]\ntries = \"many\"\n",
            "DIR/homcc.conf: key 'tries' in [homcc]: invalid type: found string \"many\", expected u32");
        check(jail, "[homcc]\nlevel = \"LOUD\"\n",
            "DIR/homcc.conf: key 'level' in [homcc]: unknown log level 'LOUD': use DEBUG, INFO, WARNING, ERROR or CRITICAL");
        check(jail, "[homcc]\ntries = -1\n",
            "DIR/homcc.conf: key 'tries' in [homcc]: invalid value signed int `-1`, expected u32");
        check(jail, "[client]\ntries = 1\n",
            "DIR/homcc.conf: unknown table [client]: homcc.conf holds only [homcc] and [homccd]");
        check(jail, "tries = 1\n",
            "DIR/homcc.conf: key 'tries' outside a table: put it under [homcc] or [homccd]");
        check(jail, "[homcc]\nname = plain\n",
            "DIR/homcc.conf: TOML parse error at line 2, column 8: invalid string, expected `\"`, `'` (values are TOML: quote text, as in compression = \"lzo\")");
        Ok(())
    });
}

#[test]
fn the_other_binarys_table_is_not_checked_here() {
    jail(|jail| {
        jail.create_file("dir/homcc.conf", "[homccd]\nanything = 1\n")?;
        assert_eq!(load(&Flags::default()), Ok(Settings::default()));
        Ok(())
    });
}

#[test]
fn bad_variables_and_flags_are_named() {
    jail(|jail| {
        jail.set_env("HOMCC_TRIES", "lots");
        assert_eq!(
            load(&Flags::default()),
            Err("variable HOMCC_TRIES: invalid type: found string \"lots\", expected u32".into())
        );
        jail.set_env("HOMCC_TRIES", "1");
        let flags = Flags {
            tries: None,
            level: Some("LOUD".into()),
        };
        assert_eq!(
            load(&flags),
            Err(
                "--level: unknown log level 'LOUD': use DEBUG, INFO, WARNING, ERROR or CRITICAL"
                    .into()
            )
        );
        Ok(())
    });
}

#[test]
fn variables_lists_only_this_binarys_keys() {
    jail(|jail| {
        jail.set_env("HOMCC_TRIES", "2");
        jail.set_env("HOMCC_VERBOSE", "1");
        jail.set_env("HOMCC_HOSTS", "a");
        jail.set_env("HOMCCD_TRIES", "1");
        assert_eq!(
            sources().variables(),
            [
                ("HOMCC_TRIES".to_string(), "2".to_string()),
                ("HOMCC_VERBOSE".to_string(), "1".to_string())
            ]
        );
        Ok(())
    });
}

#[test]
fn a_token_file_that_cannot_be_used_is_named() {
    jail(|jail| {
        jail.create_file("good", "s3cret\n")?;
        jail.create_file("blank", " \n\t\n")?;
        let path = |name: &str| jail.directory().join(name);
        assert_eq!(
            read_auth_token(&path("good")),
            Ok(AuthToken::from_bytes(b"s3cret").unwrap())
        );
        let check = |name: &str, want: &str| {
            let file = path(name);
            let want = format!("auth_token_file {}: {want}", file.display());
            assert_eq!(read_auth_token(&file), Err(ConfigError(want)));
        };
        check(
            "blank",
            "the token is empty: put the shared secret in the file",
        );
        check(
            "missing",
            "cannot read it: No such file or directory (os error 2)",
        );
        Ok(())
    });
}
