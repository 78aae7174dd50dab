//! `netd`: the daemon and its client in one binary.
use std::process::ExitCode;

use clap::Parser as _;

use netd::{
    cli::{Cli, Command},
    client, daemon, mountns,
};

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`netd maps dump | head`).
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if netd::cni::invoked() {
        return ExitCode::from(netd::cni::main());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("Error: {}", usage_error(&e));
            let args: Vec<String> = std::env::args().skip(1).collect();
            return ExitCode::from(match subcommand(&args) {
                Some("run") => RUN_FAILED,
                _ => 2,
            });
        }
    };
    let failed = match cli.command {
        Command::Run(_) => ExitCode::from(RUN_FAILED),
        _ => ExitCode::FAILURE,
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            failed
        }
    }
}

/// `docker run`'s status when the container could not be run (bad flags, or the daemon
/// refused): 125, apart from any status of the command itself.
const RUN_FAILED: u8 = 125;

/// The subcommand of a command line: its first word that is neither a flag nor the value of
/// the global `--socket`.
fn subcommand(args: &[String]) -> Option<&str> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--socket" => {
                words.next();
            }
            w if w.starts_with('-') => {}
            w => return Some(w),
        }
    }
    None
}

/// Clap's message without its prefix and hints, on one line.
fn usage_error(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    first.trim_start_matches("error: ").to_string()
}

/// The error and its causes on one line; a cause that the message above it already quotes is
/// not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line.replace('\n', " ")
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Daemon(args) => {
            init_tracing();
            // Paths are made absolute where they were given, before the mount namespace (and
            // with it the working directory) may change.
            let mut config = daemon::Config::new(&args);
            // Before the runtime starts threads: only a single-threaded process may move.
            let settled = mountns::settle()?;
            if let Some((pid, comm)) = &settled.joined {
                tracing::info!(pid, comm = %comm, "joined the mount namespace the daemon was launched from: its own would die with it");
            }
            config.resolv_conf = settled.in_launch_ns(&config.resolv_conf);
            if let Some((_, read)) = &mut config.publish_policy {
                *read = settled.in_launch_ns(read);
            }
            let runtime = tokio::runtime::Runtime::new()?;
            if args.cleanup {
                runtime.block_on(daemon::cleanup(&config))?;
            } else {
                runtime.block_on(daemon::run(&args, config))?;
            }
            drop(settled);
            Ok(0)
        }
        Command::Network(cmd) => client::network(&cli.socket, cmd).map(|()| 0),
        Command::Container(cmd) => client::container(&cli.socket, cmd).map(|()| 0),
        Command::Maps(cmd) => client::maps(&cli.socket, cmd).map(|()| 0),
        Command::Explain {
            from,
            to,
            proto,
            format,
        } => client::explain(&cli.socket, from, to, proto, format).map(|()| 0),
        Command::Stats { container, format } => {
            client::stats(&cli.socket, container, format).map(|()| 0)
        }
        Command::Monitor {
            container,
            port,
            drops,
            format,
        } => client::monitor(&cli.socket, container, port, drops, format).map(|()| 0),
        Command::Exec(args) => client::exec_command(&cli.socket, args),
        Command::Run(args) => client::run(&cli.socket, args),
        Command::Check { format } => client::check(&cli.socket, format),
        Command::Policy(cmd) => client::policy(&cli.socket, cmd).map(|()| 0),
        Command::Cni(netd::cli::CniCommand::Install {
            bin_dir,
            conf_dir,
            network,
        }) => netd::cni::install::install(&cli.socket, &bin_dir, &conf_dir, &network).map(|()| 0),
    }
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subcommand_is_found_past_the_global_socket_flag() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(subcommand(&args(&["run", "--bad"])), Some("run"));
        assert_eq!(
            subcommand(&args(&["--socket", "/x.sock", "run", "web"])),
            Some("run")
        );
        assert_eq!(subcommand(&args(&["--socket=/x", "exec"])), Some("exec"));
        assert_eq!(subcommand(&args(&["--help"])), None);
    }
}
