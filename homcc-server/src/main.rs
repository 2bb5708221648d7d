//! `homccd`: parse the command line, load the settings, bind, print the address, serve until
//! SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use homcc_server::{cli::Cli, config::Settings, Server};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let settings = match Cli::parse().settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("homccd: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(settings.tracing_level())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homccd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let server = Server::bind(settings.listen_addr(), settings.server_config()).await?;
    // Handlers first: a SIGTERM right after the address is printed must stop gracefully too.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping: no new compiles, waiting for running ones");
        token.cancel();
    });
    eprintln!("listening on {}", server.local_addr());
    server.run(shutdown).await
}
