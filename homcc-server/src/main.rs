//! `homccd`: parse the command line, bind, print the address, serve until SIGTERM/SIGINT.

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use homcc_server::{cli::Cli, Server};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    match runtime.block_on(serve(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homccd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let server = Server::bind(SocketAddr::new(cli.listen, cli.port), cli.config()).await?;
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
