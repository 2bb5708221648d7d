//! `homccd`: parse the command line, load the settings and the compilers it may run, bind, print
//! the address, serve until SIGTERM/SIGINT (or, with `--show-compilers`, list the compilers).

use std::{os::unix::fs::DirBuilderExt, process::ExitCode};

use clap::Parser;
use homcc_server::{
    cli::Cli,
    compilers::{AllowedCompilers, Compilers},
    config::Keys,
    environments::Environments,
    Server,
};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(kind) = cli.generate {
        let command = <Cli as clap::CommandFactory>::command();
        return homcc_proto::generate::print(kind, command, Cli::MAN_PAGE);
    }
    let keys = match cli.keys() {
        Ok(keys) => keys,
        Err(e) => return bad_setting(e),
    };
    tracing_subscriber::fmt()
        .with_max_level(keys.tracing_level())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let compilers = match keys.allowlist() {
        Ok(compilers) => compilers,
        Err(e) => return bad_setting(e),
    };
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    if cli.show_compilers {
        print!("{}", runtime.block_on(show_compilers(&keys, compilers)));
        return ExitCode::SUCCESS;
    }
    match runtime.block_on(serve(keys, compilers)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homccd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server's compilers, then those of each environment it would offer (checked now, in a
/// directory of its own in the cache's jobs directory).
async fn show_compilers(keys: &Keys, compilers: AllowedCompilers) -> String {
    let mut table = Compilers::new(compilers).table().await;
    let settings = keys.settings();
    if settings.schroot_profiles.is_empty() && settings.docker_containers.is_empty() {
        return table;
    }
    let jobs = settings.cache_dir.join("jobs");
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&jobs);
    if let Err(e) = made {
        return table
            + &format!(
                "no environment checked: cannot make {}: {e}\n",
                jobs.display()
            );
    }
    let (schroot, docker) = (&settings.schroot_profiles, &settings.docker_containers);
    table += &Environments::offer(schroot, docker, &jobs)
        .await
        .table()
        .await;
    table
}

/// A setting that cannot be used: one line, exit 2.
fn bad_setting(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("homccd: {e}");
    ExitCode::from(2)
}

async fn serve(keys: Keys, compilers: AllowedCompilers) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if nix::unistd::geteuid().is_root() {
        tracing::info!(
            "running as root: compilers run as root without capabilities, and the cache's files \
             belong to user 65534, so that no compile can write them (see docs/security.md)"
        );
    }
    let mut settings = keys.settings();
    settings.compilers = Some(compilers);
    let server = Server::bind(keys.listen_addr(), settings).await?;
    // Handlers first: a SIGTERM right after the address is printed must stop gracefully too.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        // Stop first: logging may fail (a closed stderr), stopping must not.
        token.cancel();
        tracing::info!("stopping: no new compiles, waiting for running ones");
    });
    eprintln!("listening on {}", server.local_addr());
    server.run(shutdown).await
}
