//! The [homccd] keys as figment reads them (TOML text, lossy like a variable), sizes and levels.

use super::*;
use crate::server::default_limit;
use figment::{
    providers::{Format, Serialized, Toml},
    value::Dict,
    Figment,
};

/// The settings from a [homccd] table's body, or figment's error message.
fn from_toml(body: &str) -> Result<Keys, String> {
    Figment::from(Toml::string(body))
        .extract_lossy()
        .map_err(|e| e.kind.to_string())
}

#[test]
fn keys_are_exactly_the_fields() {
    let mut unknown = Dict::new();
    unknown.insert("not_a_key".into(), 1.into());
    let error = Figment::from(Serialized::defaults(unknown))
        .extract::<Keys>()
        .unwrap_err();
    match error.kind {
        figment::error::Kind::UnknownField(key, fields) => {
            assert_eq!((key.as_str(), fields), ("not_a_key", KEYS));
        }
        kind => panic!("unexpected error: {kind}"),
    }
}

#[test]
fn an_empty_table_is_the_defaults() {
    let want = Keys {
        limit: default_limit() as u32,
        queue: None,
        queue_timeout: 120,
        port: 3126,
        address: "0.0.0.0".parse().unwrap(),
        log_level: LogLevel::Info,
        verbose: false,
        max_dependency_cache_size: 10 << 30,
        cache_dir: None,
        compile_timeout: 300,
        idle_timeout: 60,
        compilers: Vec::new(),
        compiler_dir: "/usr/lib/homcc".into(),
        schroot_profiles: Vec::new(),
        docker_containers: Vec::new(),
        allow: Vec::new(),
        max_connections_per_client: None,
        max_frame_size: 64 << 20,
        max_manifest_entries: 200_000,
        max_file_size: 256 << 20,
        max_upload_size: 2 << 30,
        max_output_size: 512 << 20,
        max_compiler_output: 16 << 20,
        max_compiler_memory: 4 << 30,
        min_upload_rate: 16 << 10,
        max_frame_memory: 512 << 20,
        auth_token_file: None,
        auth: None,
        no_result_cache: false,
        verify_results: 0.0,
    };
    assert_eq!(from_toml(""), Ok(want));
}

#[rustfmt::skip]
#[test]
fn values() {
    let check = |body: &str, want: Result<fn(&Keys) -> bool, &str>| {
        match (from_toml(body), want) {
            (Ok(settings), Ok(test)) => assert!(test(&settings), "{body}: {settings:?}"),
            (Err(error), Err(want)) => assert_eq!(error, want, "{body}"),
            (got, _) => panic!("{body}: {got:?}"),
        }
    };
    check("max_dependency_cache_size = \"512M\"", Ok(|s| s.max_dependency_cache_size == 512 << 20));
    check("verify_results = 0.25", Ok(|s| s.verify_results == 0.25));
    check("no_result_cache = true", Ok(|s| s.no_result_cache));
    check("allow = [\"10.1.0.0/16\", \"fd00::/8\", \"192.0.2.7\"]", Ok(|s| s.allow.len() == 3 && s.allow[2].to_string() == "192.0.2.7/32"));
    check("allow = \"10.0.0.0/8 192.168.0.0/16\"", Ok(|s| s.allow.len() == 2));
    check("allow = [\"10.0.0.0/33\"]", Err("'10.0.0.0/33' is not a network: write an address with a prefix length, as in 10.0.0.0/8 or fd00::/8"));
    check("queue = 0\nqueue_timeout = 5", Ok(|s| {
        let config = s.settings();
        config.queue == Some(0) && config.queue_timeout == std::time::Duration::from_secs(5)
    }));
    check("queue_timeout = 0", Err("0 is not allowed: use at least 1"));
    check("max_connections_per_client = 3", Ok(|s| s.settings().max_connections_per_client == Some(3)));
    check("max_compiler_output = \"1M\"", Ok(|s| s.settings().max_compiler_output == 1 << 20));
    check("max_upload_size = \"1G\"\nmax_manifest_entries = 10", Ok(|s| {
        let limits = s.settings().limits;
        limits.upload_size == 1 << 30 && limits.manifest_entries == 10
    }));
    check("max_frame_size = 4096", Ok(|s| s.settings().max_frame == 4096));
    check("max_compiler_memory = \"1G\"\nmin_upload_rate = 0\nmax_frame_memory = \"64M\"", Ok(|s| {
        let config = s.settings();
        config.max_compiler_memory == 1 << 30 && config.min_upload_rate == 0 && config.max_frame_memory == 64 << 20
    }));
    check("max_frame_memory = 0", Ok(|s| s.settings().max_frame_memory == usize::MAX));
    check("auth_token_file = \"/etc/homcc/token\"", Ok(|s| s.auth_token_file == Some("/etc/homcc/token".into()) && s.auth.is_none()));
    check("max_dependency_cache_size = 4096", Ok(|s| s.max_dependency_cache_size == 4096));
    check("max_dependency_cache_size = \"4096\"", Ok(|s| s.max_dependency_cache_size == 4096));
    check("max_dependency_cache_size = \"10X\"", Err("unknown size suffix 'X' in '10X': use K, M, G or T"));
    check("max_dependency_cache_size = -1", Err("invalid value signed int `-1`, expected a size such as \"10G\" or a number of bytes"));
    check("max_dependency_cache_size = 1.5", Err("invalid type: found float `1.5`, expected a size such as \"10G\" or a number of bytes"));
    check("limit = 1", Ok(|s| s.limit == 1));
    check("limit = 0", Err("0 is not allowed: use at least 1"));
    check("idle_timeout = 0", Err("0 is not allowed: use at least 1"));
    check("compile_timeout = 0", Ok(|s| s.compile_timeout == 0));
    check("address = \"::1\"", Ok(|s| s.address == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)));
    check("address = \"localhost\"", Err("invalid IP address syntax"));
    check("port = 70000", Err("invalid value signed int `70000`, expected u16"));
    check("log_level = \"warning\"", Ok(|s| s.log_level == LogLevel::Warning));
    check("verbose = \"True\"", Ok(|s| s.verbose));
    check("cache_dir = \"/srv/cache\"", Ok(|s| s.cache_dir == Some("/srv/cache".into())));
    check("compilers = [\"gcc\", \"/opt/bin/my cc\"]", Ok(|s| s.compilers == [PathBuf::from("gcc"), "/opt/bin/my cc".into()]));
    check("compilers = \" gcc\tclang++  \"", Ok(|s| s.compilers == [PathBuf::from("gcc"), "clang++".into()]));
    check("compilers = []", Ok(|s| s.compilers.is_empty()));
    check("compilers = 3", Err("invalid type: found signed int `3`, expected a list, or text with the entries separated by spaces"));
    check("compilers = [3]", Err("invalid type: found signed int `3`, expected a string"));
    check("compiler_dir = \"/srv/homcc\"", Ok(|s| s.compiler_dir == std::path::Path::new("/srv/homcc")));
    check("schroot_profiles = [\"jammy\", \"bookworm-gcc12\"]\ndocker_containers = \"ci-1 ci.2\"", Ok(|s| {
        let config = s.settings();
        config.schroot_profiles == ["jammy", "bookworm-gcc12"] && config.docker_containers == ["ci-1", "ci.2"]
    }));
    check("docker_containers = [\"-v\"]", Err("'-v' is not a schroot profile or container name (a letter or digit, then letters, digits, '_', '.' and '-')"));
    check("schroot_profiles = \"chroot:jammy\"", Err("'chroot:jammy' is not a schroot profile or container name (a letter or digit, then letters, digits, '_', '.' and '-')"));
}

#[test]
fn verbose_forces_debug() {
    use tracing::Level;
    let check = |level: LogLevel, verbose: bool, want: Level| {
        let settings = Keys {
            log_level: level,
            verbose,
            ..Keys::default()
        };
        assert_eq!(settings.tracing_level(), want, "{level} {verbose}");
    };
    check(LogLevel::Info, false, Level::INFO);
    check(LogLevel::Critical, false, Level::ERROR);
    check(LogLevel::Error, true, Level::DEBUG);
    check(LogLevel::Trace, true, Level::DEBUG);
}

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
    let level = |t: &str| t.parse::<LogLevel>().map(tracing_level).ok();
    let check = |t: &str, want: Option<Level>| assert_eq!(level(t), want, "{t}");
    check("DEBUG", Some(Level::DEBUG));
    check("WARNING", Some(Level::WARN));
    check("warn", Some(Level::WARN));
    check("CRITICAL", Some(Level::ERROR));
    check("Info", Some(Level::INFO));
    check("trace", Some(Level::TRACE));
    check("loud", None);
}

#[test]
fn the_keys_make_the_settings() {
    let token = AuthToken::from_bytes(b"t").unwrap();
    let settings = Keys {
        auth: Some(token.clone()),
        limit: 3,
        max_dependency_cache_size: 1 << 20,
        cache_dir: Some("/srv/cache".into()),
        compile_timeout: 5,
        idle_timeout: 7,
        ..Keys::default()
    };
    let config = settings.settings();
    assert_eq!((config.limit, config.max_cache_bytes), (3, 1 << 20));
    assert_eq!(config.cache_dir, PathBuf::from("/srv/cache"));
    assert_eq!(config.compile_timeout, Duration::from_secs(5));
    assert_eq!(config.idle_timeout, Duration::from_secs(7));
    assert_eq!(
        config.compilers, None,
        "from Keys::allowlist, when homccd starts"
    );
    assert_eq!(config.auth, Some(token));
    assert_eq!(Keys::default().settings().auth, None);
}
