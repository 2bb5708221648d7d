//! `--show-hosts`, `-j`/`--show-concurrency` and `--show-variables`: what homcc would use, on
//! stdout, one item per line.

use std::io::Write;

use crate::{
    cli::Cli,
    config::{sources, Settings, OTHER_VARIABLES},
    ssh::Ssh,
};

/// Prints what `cli` asks to see; the exit code.
pub fn show(cli: &Cli) -> u8 {
    let settings = match Settings::load(cli) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("homcc: {e}");
            return 1;
        }
    };
    let mut lines = Vec::new();
    if cli.show_hosts {
        lines.extend(host_lines(&settings));
    }
    if cli.show_concurrency {
        lines.push(concurrency(&settings).to_string());
    }
    if cli.show_variables {
        lines.extend(variables(cli.no_config));
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    0
}

/// One line per host: address, limit, compression, transport, and a back-off if one runs.
fn host_lines(settings: &Settings) -> Vec<String> {
    let slots = settings.slots.as_ref();
    let mut lines = Vec::new();
    if settings.local_is_host {
        lines.push(format!(
            "localhost limit={} transport=local",
            settings.local_limit
        ));
    }
    for host in &settings.hosts {
        let compression = host.compression.unwrap_or(settings.compression);
        let mut line = format!(
            "{host} limit={} compression={compression} transport={}",
            host.limit, host.transport
        );
        if let Some(ssh) = Ssh::of(&settings.ssh, host) {
            let up = ssh.master_is_up();
            line.push_str(if up { " master=up" } else { " master=down" });
        }
        if let Some((left, reason)) = slots.and_then(|s| s.backing_off(&host.key())) {
            line.push_str(&format!(" skipped-for={}s ({reason})", left.as_secs() + 1));
        }
        lines.push(line);
    }
    lines
}

/// How many compiles can run at once: the limits of the remote hosts homcc connects to, or the
/// local limit when there is none (so that `make -j$(homcc -j)` is always a valid command).
fn concurrency(settings: &Settings) -> u32 {
    match settings.remote_limit() {
        0 => settings.local_limit,
        sum => sum,
    }
}

/// `NAME=value` for each of homcc's variables that is set, sorted.
fn variables(no_config: bool) -> Vec<String> {
    let mut vars = sources(no_config).variables();
    for name in OTHER_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            vars.push((name.to_string(), value.to_string_lossy().into_owned()));
        }
    }
    vars.sort();
    vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}
