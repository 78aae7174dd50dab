//! The client side of every command but `daemon`: one request over the socket, the reply printed
//! as a table or JSON.
mod exec;
mod print;

use std::{
    io::{BufRead as _, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
};

use anyhow::{anyhow, Context as _};

use crate::{
    api::{ContainerCreate, NetworkCreate, Reply, Request, Response},
    cli::{
        ContainerCommand, ContainerCreateArgs, ExecArgs, Format, MapsCommand, NetworkCommand,
        RunArgs,
    },
};

/// Sends one request and returns the daemon's reply, or its error as ours.
pub fn request(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    match exchange(socket, request) {
        Ok(response) => response.map_err(|e| anyhow!(e)),
        Err(Exchange::Unreachable(e)) => Err(anyhow!(
            "cannot reach the netd daemon at {} ({e}): is it running? Start it with `netd daemon`",
            socket.display()
        )),
        Err(Exchange::Broken(e)) => Err(e),
    }
}

/// Why a request got no answer from the daemon.
#[derive(Debug)]
pub enum Exchange {
    /// Nothing listens on the socket.
    Unreachable(std::io::Error),
    /// The connection broke or the reply does not read.
    Broken(anyhow::Error),
}

/// Sends one request and returns the daemon's response (its reply or its one-line error).
pub fn exchange(socket: &Path, request: &Request) -> Result<Response, Exchange> {
    let mut stream = UnixStream::connect(socket).map_err(Exchange::Unreachable)?;
    let broken = |e: anyhow::Error| Exchange::Broken(e);
    stream
        .write_all(&serde_json::to_vec(request).map_err(|e| broken(e.into()))?)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .map_err(|e| broken(anyhow!("sending the request: {e}")))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .context("reading the daemon's reply")
        .map_err(broken)?;
    serde_json::from_slice(&buf)
        .context("malformed reply from the daemon")
        .map_err(broken)
}

pub fn network(socket: &Path, cmd: NetworkCommand) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Create(a) => {
            let subnets = a.subnets().map_err(anyhow::Error::msg)?;
            let gateways = a.gateways().map_err(anyhow::Error::msg)?;
            let ranges = a.ip_ranges().map_err(anyhow::Error::msg)?;
            let req = NetworkCreate {
                name: a.name,
                driver: a.driver,
                subnet: subnets.v4,
                gateway: gateways.v4,
                ip_range: ranges.v4,
                ipv6: a.ipv6,
                subnet6: subnets.v6,
                gateway6: gateways.v6,
                ip_range6: ranges.v6,
                internal: a.internal,
                options: a.options,
                id: None,
            };
            print::created(request(socket, &Request::NetworkCreate(req))?);
        }
        NetworkCommand::Ls { format } => {
            print::networks(request(socket, &Request::NetworkLs)?, format)?
        }
        NetworkCommand::Inspect { names } => {
            print::json(&request(socket, &Request::NetworkInspect { names })?)?
        }
        NetworkCommand::Rm { names } => {
            request(
                socket,
                &Request::NetworkRm {
                    names: names.clone(),
                },
            )?;
            names.iter().for_each(|n| println!("{n}"));
        }
        NetworkCommand::Connect {
            ip,
            ip6,
            aliases,
            network,
            container,
        } => {
            request(
                socket,
                &Request::NetworkConnect {
                    network,
                    container,
                    ip,
                    ip6,
                    aliases,
                    ifname: None,
                    handover: None,
                },
            )?;
        }
        NetworkCommand::Disconnect { network, container } => {
            request(socket, &Request::NetworkDisconnect { network, container })?;
        }
    }
    Ok(())
}

pub fn container(socket: &Path, cmd: ContainerCommand) -> anyhow::Result<()> {
    match cmd {
        ContainerCommand::Create(a) => {
            print::created(request(
                socket,
                &Request::ContainerCreate(create_request(a)),
            )?);
        }
        ContainerCommand::Start { name } => done(
            socket,
            Request::ContainerStart { name: name.clone() },
            &name,
        )?,
        ContainerCommand::Stop { name } => {
            done(socket, Request::ContainerStop { name: name.clone() }, &name)?
        }
        ContainerCommand::Rm { force, name } => {
            let req = Request::ContainerRm {
                name: name.clone(),
                force,
            };
            match request(socket, &req) {
                Ok(_) => println!("{name}"),
                // As `docker rm -f`: a container that is not there is said, not failed, so
                // that cleanup scripts under `set -e` go on.
                Err(e) if force && crate::api::is_no_such_container(&e.to_string()) => {
                    eprintln!("Error: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        ContainerCommand::Ls { format } => {
            print::containers(request(socket, &Request::ContainerLs)?, format)?
        }
        ContainerCommand::Inspect { name } => {
            print::container(request(socket, &Request::ContainerInspect { name })?)?
        }
        ContainerCommand::Port { name, port: None } => {
            print::ports(request(socket, &Request::ContainerPort { name })?)
        }
        ContainerCommand::Port {
            name,
            port: Some(port),
        } => {
            let Reply::Ports(lines) =
                request(socket, &Request::ContainerPort { name: name.clone() })?
            else {
                return Err(anyhow!("unexpected reply from the daemon"));
            };
            let found =
                crate::ports::docker_port_of(&lines, &name, &port).map_err(|e| anyhow!(e))?;
            found.iter().for_each(|l| println!("{l}"));
        }
        ContainerCommand::Publish { name, spec, allow } => {
            if spec.is_none() && allow.is_empty() {
                return Err(anyhow!(
                    "container publish {name}: give a port SPEC, --publish-allow, or both"
                ));
            }
            let spec = spec.unwrap_or_default();
            request(socket, &Request::ContainerPublish { name, spec, allow })?;
        }
        ContainerCommand::Unpublish { name, spec } => {
            request(socket, &Request::ContainerUnpublish { name, spec })?;
        }
    }
    Ok(())
}

fn create_request(a: ContainerCreateArgs) -> ContainerCreate {
    ContainerCreate {
        name: a.name,
        network: a.network,
        ip: a.ip,
        ip6: a.ip6,
        aliases: a.aliases,
        publish: a.publish,
        publish_allow: a.publish_allow,
        publish_all: a.publish_all,
        expose: a.expose,
        links: a.links,
        env: a.env,
        hostname: a.hostname,
        netns: a.netns,
        runtime: None,
        runtime_id: None,
        ifname: None,
        handover: None,
    }
}

/// `netd run`: create, start (a container that cannot start is removed again, so a failed run
/// leaves nothing), then run CMD in it if given and return its status; `--rm` removes the
/// container when CMD ends.
pub fn run(socket: &Path, args: RunArgs) -> anyhow::Result<i32> {
    let name = args.create.name.clone();
    let created = request(
        socket,
        &Request::ContainerCreate(create_request(args.create)),
    )?;
    if let Err(e) = request(socket, &Request::ContainerStart { name: name.clone() }) {
        let undo = request(socket, &rm(&name));
        return Err(match undo {
            Ok(_) => e,
            Err(u) => e.context(format!("and removing {name} again failed: {u}")),
        });
    }
    if args.cmd.is_empty() {
        print::created(created);
        return Ok(0);
    }
    let exec_args = ExecArgs {
        detach: args.detach,
        env: vec![],
        name: name.clone(),
        cmd: args.cmd,
    };
    let status = exec_status(exec(socket, exec_args), NOT_FOUND_IN_RUN);
    if args.rm {
        request(socket, &rm(&name))?;
    }
    status
}

fn rm(name: &str) -> Request {
    Request::ContainerRm {
        name: name.to_string(),
        force: true,
    }
}

/// Requests that print the name they acted on, as Docker's do.
fn done(socket: &Path, req: Request, name: &str) -> anyhow::Result<()> {
    request(socket, &req)?;
    println!("{name}");
    Ok(())
}

pub fn maps(socket: &Path, cmd: MapsCommand) -> anyhow::Result<()> {
    let MapsCommand::Dump { map, format } = cmd;
    print::maps(request(socket, &Request::MapsDump { map })?, format)
}

pub fn explain(
    socket: &Path,
    from: String,
    to: std::net::SocketAddrV4,
    proto: crate::cli::ExplainProto,
    format: Format,
) -> anyhow::Result<()> {
    let proto = match proto {
        crate::cli::ExplainProto::Tcp => crate::ports::Proto::Tcp,
        crate::cli::ExplainProto::Udp => crate::ports::Proto::Udp,
    };
    print::explain(
        request(socket, &Request::Explain { from, to, proto })?,
        format,
    )
}

pub fn stats(socket: &Path, container: Option<String>, format: Format) -> anyhow::Result<()> {
    print::stats(request(socket, &Request::Stats { container })?, format)
}

/// Prints events as they come until the daemon or the user ends the stream.
pub fn monitor(
    socket: &Path,
    container: Option<String>,
    port: Option<u16>,
    drops_only: bool,
    format: Format,
) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        anyhow!(
            "cannot reach the netd daemon at {} ({e}): is it running? Start it with `netd daemon`",
            socket.display()
        )
    })?;
    stream.write_all(&serde_json::to_vec(&Request::Monitor {
        container,
        port,
        drops_only,
    })?)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut lines = std::io::BufReader::new(stream).lines();
    let first = lines
        .next()
        .ok_or_else(|| anyhow!("the daemon closed the stream"))??;
    let response: Response =
        serde_json::from_str(&first).context("malformed reply from the daemon")?;
    response.map_err(|e| anyhow!(e))?;
    if let Format::Table = format {
        print::event_header();
    }
    for line in lines {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match format {
            Format::Json => println!("{line}"),
            Format::Table => print::event(&serde_json::from_str(&line)?),
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// `docker run`'s status for a command that is not there (`docker exec` gives 126 for it too).
const NOT_FOUND_IN_RUN: i32 = 127;
/// Docker's status for a command that cannot be run.
const CANNOT_RUN: i32 = 126;

/// `netd exec`: the command's exit status, or Docker's 126 when it cannot be run.
pub fn exec_command(socket: &Path, args: ExecArgs) -> anyhow::Result<i32> {
    exec_status(exec(socket, args), CANNOT_RUN)
}

/// The status of an exec: a command that is missing gets `not_found`, one that cannot be
/// executed 126, as Docker's; the error is printed, with Docker's words for it.
fn exec_status(result: anyhow::Result<i32>, not_found: i32) -> anyhow::Result<i32> {
    let Err(e) = result else { return result };
    let kind = e.downcast_ref::<exec::CannotRun>().map(|c| c.source.kind());
    let status = match kind {
        Some(std::io::ErrorKind::NotFound) => not_found,
        Some(std::io::ErrorKind::PermissionDenied) => CANNOT_RUN,
        _ => return Err(e),
    };
    eprintln!("Error: {e}");
    Ok(status)
}

/// Runs the command and returns its exit status (or 0 with `-d`, after printing the PID).
pub fn exec(socket: &Path, args: ExecArgs) -> anyhow::Result<i32> {
    let Reply::Exec(info) = request(
        socket,
        &Request::Exec {
            name: args.name.clone(),
        },
    )?
    else {
        return Err(anyhow!("unexpected reply from the daemon"));
    };
    exec::run(&info, &args)
}

/// `netd check`: prints every difference and returns 1 if there is any.
/// `netd policy show` and `netd policy reload`.
pub fn policy(socket: &Path, cmd: crate::cli::PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        crate::cli::PolicyCommand::Show { format } => {
            print::policy(request(socket, &Request::PolicyShow)?, format)
        }
        crate::cli::PolicyCommand::Reload => {
            request(socket, &Request::PolicyReload)?;
            Ok(())
        }
    }
}

pub fn check(socket: &Path, format: Format) -> anyhow::Result<i32> {
    print::check(request(socket, &Request::Check)?, format)
}
