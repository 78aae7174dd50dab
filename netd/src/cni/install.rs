//! `netd cni install`: the plugin (this binary, under the name `netd`) in the runtime's plugin
//! dir and `NETWORK.conflist` in its config dir, for a network the daemon has. Both files are
//! written whole and renamed into place; if the second cannot be, the first is taken back.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context as _};

use crate::{
    api::{Reply, Request},
    client,
};

/// The conflist for netd network `network`, served by the daemon at `socket`.
pub fn conflist(network: &str, socket: &Path) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": super::conf::SUPPORTED_VERSIONS[0],
        "name": network,
        "plugins": [{
            "type": "netd",
            "network": network,
            "socket": socket,
            "capabilities": {"portMappings": true},
        }],
    })
}

pub fn install(
    socket: &Path,
    bin_dir: &Path,
    conf_dir: &Path,
    network: &str,
) -> anyhow::Result<()> {
    let socket = std::path::absolute(socket).context("the socket path")?;
    for dir in [bin_dir, conf_dir] {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
    }
    match client::request(
        &socket,
        &Request::NetworkInspect {
            names: vec![network.into()],
        },
    )? {
        Reply::Networks(n) if !n.is_empty() => {}
        _ => bail!("the daemon has no network {network}"),
    }
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let plugin = bin_dir.join("netd");
    let bytes = fs::read(&exe).with_context(|| format!("read {}", exe.display()))?;
    put(&plugin, &bytes, 0o755)?;
    let list = conf_dir.join(format!("{network}.conflist"));
    let text = serde_json::to_vec_pretty(&conflist(network, &socket))?;
    if let Err(e) = put(&list, &text, 0o644) {
        if exe != plugin {
            let _ = fs::remove_file(&plugin);
        }
        return Err(e);
    }
    println!("{}\n{}", plugin.display(), list.display());
    Ok(())
}

/// Writes `path` whole (a temporary file renamed over it) with mode `mode`.
fn put(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.netd-tmp", path.display()));
    let written = fs::write(&tmp, bytes)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_is_one_netd_plugin_with_port_mappings() {
        let list = conflist("front", Path::new("/run/netd/netd.sock"));
        assert_eq!(list["name"], "front");
        let plugin = &list["plugins"][0];
        assert_eq!(plugin["type"], "netd");
        assert_eq!(plugin["network"], "front");
        assert_eq!(plugin["socket"], "/run/netd/netd.sock");
        assert_eq!(plugin["capabilities"]["portMappings"], true);
    }
}
