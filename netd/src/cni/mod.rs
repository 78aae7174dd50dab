//! netd as a CNI plugin (spec 1.0): the same binary, run by a runtime (podman, containerd,
//! Kubernetes) with `CNI_COMMAND` set. ADD attaches the runtime's namespace to a netd network
//! through the daemon (a container adopted with that namespace, `-p` from
//! `runtimeConfig.portMappings`), DEL removes it, CHECK compares, VERSION answers; the plugin
//! holds no state of its own, the daemon does.
//!
//! Output is the spec's: the result on stdout for ADD, nothing for DEL and CHECK, the error object
//! on stdout and exit status 1 on failure.
pub mod conf;
pub mod install;
pub mod result;

use std::{io::Read as _, path::Path};

use conf::{code, CniError, Command, Invocation, NetConf, SUPPORTED_VERSIONS};

use crate::{
    api::{ContainerCreate, ContainerView, Reply, Request},
    client::{exchange, Exchange},
};

/// The interface name netd gives a container's first network.
const IFNAME: &str = "eth0";
/// What the plugin's containers are marked with (`container inspect`'s `runtime`).
pub const RUNTIME: &str = "cni";

/// Whether the runtime runs this binary as its CNI plugin.
pub fn invoked() -> bool {
    std::env::var_os("CNI_COMMAND").is_some()
}

/// Runs the plugin and returns its exit status.
pub fn main() -> u8 {
    match run() {
        Ok(out) => {
            if let Some(out) = out {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            println!("{}", serde_json::to_string(&e).unwrap_or_default());
            1
        }
    }
}

fn run() -> Result<Option<String>, CniError> {
    let inv = Invocation::from_env(|k| std::env::var(k).ok())?;
    if inv.command == Command::Version {
        return Ok(Some(version()));
    }
    let mut stdin = vec![];
    std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|e| CniError::new(code::DECODE, format!("cannot read stdin: {e}")))?;
    let conf = NetConf::parse(&stdin)?;
    match inv.command {
        Command::Add => add(&conf, &inv).map(Some),
        Command::Del => del(&conf, &inv).map(|()| None),
        Command::Check => check(&conf, &inv).map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}

fn version() -> String {
    serde_json::json!({
        "cniVersion": SUPPORTED_VERSIONS[0],
        "supportedVersions": SUPPORTED_VERSIONS,
    })
    .to_string()
}

/// ADD: the container made and started on the network in the runtime's namespace; on any
/// failure after it was made, it is removed again.
fn add(conf: &NetConf, inv: &Invocation) -> Result<String, CniError> {
    if inv.ifname != IFNAME {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!(
                "netd names the container's interface {IFNAME}, not {:?}",
                inv.ifname
            ),
        ));
    }
    let netns = inv.netns.as_deref().expect("checked for ADD");
    let socket = conf.socket();
    let name = inv.container_name();
    let create = ContainerCreate {
        name: name.clone(),
        network: conf.network().into(),
        ip: None,
        aliases: vec![],
        publish: conf.publish_specs()?,
        publish_all: false,
        expose: vec![],
        links: vec![],
        env: vec![],
        hostname: None,
        netns: Some(netns.to_path_buf()),
        runtime: Some(RUNTIME.into()),
    };
    call(&socket, &Request::ContainerCreate(create))?;
    let started = call(&socket, &Request::ContainerStart { name: name.clone() })
        .and_then(|_| inspect(&socket, &name))
        .and_then(|view| result::of(&view, conf.network(), &inv.ifname, netns));
    match started {
        Ok(result) => serde_json::to_string(&result)
            .map_err(|e| CniError::new(code::DAEMON, format!("cannot write the result: {e}"))),
        Err(e) => {
            let _ = call(&socket, &Request::ContainerRm { name, force: true });
            Err(e)
        }
    }
}

/// DEL: the container removed. Succeeds when it is already gone, and when the daemon is not
/// running (a daemon that starts again drops adopted containers whose namespace is gone).
fn del(conf: &NetConf, inv: &Invocation) -> Result<(), CniError> {
    let rm = Request::ContainerRm {
        name: inv.container_name(),
        force: true,
    };
    match exchange(&conf.socket(), &rm) {
        Ok(Ok(_)) | Err(Exchange::Unreachable(_)) => Ok(()),
        Ok(Err(e)) if e.starts_with("no such container") => Ok(()),
        Ok(Err(e)) => Err(CniError::new(code::DAEMON, e)),
        Err(Exchange::Broken(e)) => Err(CniError::new(code::TRY_AGAIN_LATER, format!("{e:#}"))),
    }
}

/// CHECK: the container is running, on the network, in the runtime's namespace.
fn check(conf: &NetConf, inv: &Invocation) -> Result<(), CniError> {
    let view = inspect(&conf.socket(), &inv.container_name())?;
    let netns = inv.netns.as_deref().expect("checked for CHECK");
    let wrong = |what: String| Err(CniError::new(code::DAEMON, what));
    if view.status != "running" {
        return wrong(format!("container {} is {}", view.name, view.status));
    }
    if view.netns.as_deref() != Some(netns) {
        return wrong(format!(
            "container {} is not in namespace {}",
            view.name,
            netns.display()
        ));
    }
    result::of(&view, conf.network(), &inv.ifname, netns).map(|_| ())
}

fn inspect(socket: &Path, name: &str) -> Result<ContainerView, CniError> {
    match call(socket, &Request::ContainerInspect { name: name.into() })? {
        Reply::Containers(mut views) if !views.is_empty() => Ok(views.remove(0)),
        other => Err(CniError::new(
            code::DAEMON,
            format!("unexpected answer to inspect: {other:?}"),
        )),
    }
}

/// One request; the daemon's refusal or absence as the plugin's error.
fn call(socket: &Path, request: &Request) -> Result<Reply, CniError> {
    match exchange(socket, request) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(CniError::new(code::DAEMON, e)),
        Err(Exchange::Unreachable(e)) => Err(CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "the netd daemon is not running (cannot reach {}: {e})",
                socket.display()
            ),
        )),
        Err(Exchange::Broken(e)) => Err(CniError::new(code::TRY_AGAIN_LATER, format!("{e:#}"))),
    }
}
