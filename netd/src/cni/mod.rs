//! netd as a CNI plugin (spec 1.0, and 1.1's STATUS and GC): the same binary, run by a runtime (podman, containerd,
//! Kubernetes) with `CNI_COMMAND` set. ADD attaches the runtime's namespace to a netd network
//! through the daemon (a container adopted with that namespace, `-p` from
//! `runtimeConfig.portMappings`), DEL removes it, CHECK compares, VERSION answers, STATUS says
//! whether ADD can work, GC removes what the runtime no longer has; the plugin holds no state
//! of its own, the daemon does.
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
        Command::Status => status(&conf).map(|()| None),
        Command::Gc => gc(&conf).map(|()| None),
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

/// ADD: the runtime's namespace attached to the network. The first network makes and starts
/// the container (removed again if that fails half-way); a further one (`CNI_IFNAME` `eth1`, as
/// podman's `--network a,b` and Multus ask) connects the same container, with the interface
/// name the runtime chose.
fn add(conf: &NetConf, inv: &Invocation) -> Result<String, CniError> {
    let netns = inv.netns.as_deref().expect("checked for ADD");
    let socket = conf.socket();
    let name = inv.container_name();
    let view = match ours(&socket, &name, netns)? {
        Some(view) if view.networks.contains_key(conf.network()) => view,
        Some(_) => connect(&socket, conf, inv, &name)?,
        None => create(&socket, conf, inv, netns)?,
    };
    let mut result = result::of(&view, conf.network(), &inv.ifname, netns)?;
    result.cni_version = conf.cni_version.clone();
    serde_json::to_string(&result)
        .map_err(|e| CniError::new(code::DAEMON, format!("cannot write the result: {e}")))
}

/// The container of this name if this plugin made it for the namespace at `netns`; `None` if
/// there is none; an error if the name is another's.
fn ours(socket: &Path, name: &str, netns: &Path) -> Result<Option<ContainerView>, CniError> {
    let Some(view) = lookup(socket, name)? else {
        return Ok(None);
    };
    if view.runtime.as_deref() != Some(RUNTIME) {
        return Err(CniError::new(
            code::DAEMON,
            format!("the name {name} is taken by a container that netd made itself"),
        ));
    }
    if view.netns.as_deref() != Some(netns) {
        return Err(CniError::new(
            code::DAEMON,
            format!(
                "the name {name} is taken by a container in another namespace ({})",
                view.netns.as_deref().unwrap_or(Path::new("none")).display()
            ),
        ));
    }
    Ok(Some(view))
}

/// The first network: the container made, with the runtime's ports, and started.
fn create(
    socket: &Path,
    conf: &NetConf,
    inv: &Invocation,
    netns: &Path,
) -> Result<ContainerView, CniError> {
    let name = inv.container_name();
    let create = ContainerCreate {
        name: name.clone(),
        network: conf.network().into(),
        ip: None,
        ip6: None,
        aliases: vec![],
        publish: conf.publish_specs()?,
        publish_allow: vec![],
        publish_all: false,
        expose: vec![],
        links: vec![],
        env: vec![],
        hostname: None,
        netns: Some(netns.to_path_buf()),
        runtime: Some(RUNTIME.into()),
        runtime_id: Some(inv.container_id.clone()),
        ifname: Some(inv.ifname.clone()),
        handover: None,
    };
    call(socket, &Request::ContainerCreate(create))?;
    let started = call(socket, &Request::ContainerStart { name: name.clone() })
        .and_then(|_| inspect(socket, &name));
    if started.is_err() {
        let _ = call(socket, &Request::ContainerRm { name, force: true });
    }
    started
}

/// A further network: the container connected to it. Its ports were published with the first.
fn connect(
    socket: &Path,
    conf: &NetConf,
    inv: &Invocation,
    name: &str,
) -> Result<ContainerView, CniError> {
    let connect = Request::NetworkConnect {
        network: conf.network().into(),
        container: name.into(),
        ip: None,
        ip6: None,
        aliases: vec![],
        ifname: Some(inv.ifname.clone()),
        handover: None,
    };
    call(socket, &connect)?;
    inspect(socket, name)
}

/// DEL: the container's attachment to the network undone: disconnected if it has others,
/// removed with the last. Succeeds when it is already gone, when the container is not this
/// plugin's, and when the daemon is not running (a daemon that starts again drops the
/// runtime's containers whose namespace is gone).
fn del(conf: &NetConf, inv: &Invocation) -> Result<(), CniError> {
    let socket = conf.socket();
    let name = inv.container_name();
    let view = match lookup(&socket, &name) {
        Ok(Some(view)) => view,
        Ok(None) => return Ok(()),
        Err(e) if e.code == code::TRY_AGAIN_LATER && !daemon_running(&socket) => return Ok(()),
        Err(e) => return Err(e),
    };
    let on_network = view.networks.contains_key(conf.network());
    if view.runtime.as_deref() != Some(RUNTIME) || (!on_network && !view.networks.is_empty()) {
        return Ok(());
    }
    let request = if view.networks.len() > 1 {
        Request::NetworkDisconnect {
            network: conf.network().into(),
            container: name,
        }
    } else {
        Request::ContainerRm { name, force: true }
    };
    match exchange(&socket, &request) {
        Ok(Ok(_)) | Err(Exchange::Unreachable(_)) => Ok(()),
        Ok(Err(e)) if crate::api::is_no_such_container(&e) => Ok(()),
        Ok(Err(e)) => Err(CniError::new(code::DAEMON, e)),
        Err(Exchange::Broken(e)) => Err(CniError::new(code::TRY_AGAIN_LATER, format!("{e:#}"))),
    }
}

/// STATUS: the daemon answers and has the network.
fn status(conf: &NetConf) -> Result<(), CniError> {
    let names = vec![conf.network().to_string()];
    call(&conf.socket(), &Request::NetworkInspect { names })
        .map(|_| ())
        .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))
}

/// GC: every container this plugin attached to the network that is not among the runtime's
/// valid attachments is detached from it (removed if it was its only network).
fn gc(conf: &NetConf) -> Result<(), CniError> {
    let socket = conf.socket();
    let Reply::Containers(views) = call(&socket, &Request::ContainerLs)? else {
        return Err(CniError::new(code::DAEMON, "unexpected answer to ls"));
    };
    let network = conf.network();
    let mut errors = vec![];
    for view in views
        .iter()
        .filter(|v| v.runtime.as_deref() == Some(RUNTIME))
    {
        let Some(ep) = view.networks.get(network) else {
            continue;
        };
        let kept = conf.valid_attachments.iter().any(|a| {
            Some(&a.container_id) == view.runtime_id.as_ref()
                && Some(&a.ifname) == ep.interface.as_ref()
        });
        if kept {
            continue;
        }
        let request = if view.networks.len() > 1 {
            Request::NetworkDisconnect {
                network: network.into(),
                container: view.name.clone(),
            }
        } else {
            Request::ContainerRm {
                name: view.name.clone(),
                force: true,
            }
        };
        if let Err(e) = call(&socket, &request) {
            errors.push(format!("{}: {}", view.name, e.msg));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(code::DAEMON, errors.join("; ")))
    }
}

/// Whether a daemon answers at `socket` at all.
fn daemon_running(socket: &Path) -> bool {
    !matches!(
        exchange(socket, &Request::NetworkLs),
        Err(Exchange::Unreachable(_))
    )
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

/// The container called `name`, or `None` if the daemon has none.
fn lookup(socket: &Path, name: &str) -> Result<Option<ContainerView>, CniError> {
    match inspect(socket, name) {
        Ok(view) => Ok(Some(view)),
        Err(e) if crate::api::is_no_such_container(&e.msg) => Ok(None),
        Err(e) => Err(e),
    }
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
