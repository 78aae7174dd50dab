//! `netd`: the daemon and its client in one binary.
use std::process::ExitCode;

use clap::Parser as _;
use netd::{
    cli::{Cli, Command},
    client, daemon,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ").replace('\n', " ")
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Daemon(args) => {
            init_tracing();
            let runtime = tokio::runtime::Runtime::new()?;
            let config = daemon::Config::new(&args);
            if args.cleanup {
                runtime.block_on(daemon::cleanup(&config))?;
            } else {
                runtime.block_on(daemon::run(&args))?;
            }
            Ok(0)
        }
        Command::Network(cmd) => client::network(&cli.socket, cmd).map(|()| 0),
        Command::Container(cmd) => client::container(&cli.socket, cmd).map(|()| 0),
        Command::Maps(cmd) => client::maps(&cli.socket, cmd).map(|()| 0),
        Command::Exec(args) => client::exec(&cli.socket, args),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
