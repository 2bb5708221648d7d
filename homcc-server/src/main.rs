//! `homccd`: parse the command line, load the settings and the compilers it may run, bind, print
//! the address, serve until SIGTERM/SIGINT (or, with `--show-compilers`, list the compilers).

use std::process::ExitCode;

use clap::Parser;
use homcc_server::{
    cli::Cli,
    compilers::{AllowedCompilers, Compilers},
    config::Keys,
    Server,
};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        print!("{}", runtime.block_on(Compilers::new(compilers).table()));
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
