//! A narrow, typed facade over rtnetlink: the handful of link, address and route operations
//! netd needs, each named for what it does. Every device netd creates carries the interface alias
//! `netd:<owner>`, so that a restarted daemon can find (and reap) what it made.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    path::Path,
};

use futures::TryStreamExt as _;
use rtnetlink::{
    packet_route::{
        address::{AddressAttribute, AddressHeaderFlags, AddressMessage},
        link::{
            AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
            LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
        },
        neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
        route::{RouteAttribute, RouteMessage, RouteScope},
        AddressFamily,
    },
    Handle, LinkBridge, LinkMacVlan, LinkUnspec, LinkVeth, LinkVlan, LinkVxlan,
    RouteMessageBuilder,
};
use thiserror::Error;

use crate::netns::{self, NetnsError};

/// Prefix of the alias on every device netd owns.
pub const ALIAS_PREFIX: &str = "netd:";

/// The device group netd creates its devices in ("netd" in ASCII). Unlike the alias, which the
/// kernel takes only on a device that exists, the group is given in the creating request: a
/// device whose daemon was killed before tagging it is still known as netd's.
pub const DEVICE_GROUP: u32 = 0x6e65_7464;

/// The owner [`Netlink::owned_links`] gives a device of [`DEVICE_GROUP`] that was never tagged.
pub const UNTAGGED_OWNER: &str = "(untagged)";

#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{op} {target}: {source}")]
    Request {
        op: &'static str,
        target: String,
        source: rtnetlink::Error,
    },
    #[error("interface {0} does not exist")]
    NoSuchLink(String),
    #[error("look up {name}: {source}")]
    Lookup { name: String, source: nix::Error },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl NetlinkError {
    /// The kernel answered EEXIST.
    pub fn already_exists(&self) -> bool {
        matches!(self, NetlinkError::Request { source, .. } if is_errno(source, libc::EEXIST))
    }

    /// The kernel answered EOPNOTSUPP (a device kind it was built without).
    pub fn unsupported(&self) -> bool {
        matches!(self, NetlinkError::Request { source, .. } if is_errno(source, libc::EOPNOTSUPP))
    }
}

fn req(op: &'static str, target: impl ToString) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let target = target.to_string();
    move |source| NetlinkError::Request { op, target, source }
}

/// A device netd owns, as found by [`Netlink::owned_links`].
#[derive(Debug, Clone)]
pub struct OwnedLink {
    pub index: u32,
    pub name: String,
    /// What follows [`ALIAS_PREFIX`].
    pub owner: String,
}

/// One device of the namespace with what `netd check` compares: owner tag, kind, bridge, state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// What follows [`ALIAS_PREFIX`] in its alias, if netd tagged it.
    pub owner: Option<String>,
    /// `bridge`, `veth`, ... (`None` for devices without a kind, such as loopback).
    pub kind: Option<String>,
    /// Index of the bridge it is plugged into.
    pub master: Option<u32>,
    /// Its device group ([`DEVICE_GROUP`] for every device netd made).
    pub group: u32,
    /// Administratively up.
    pub up: bool,
    pub mac: Option<[u8; 6]>,
}

/// A device made straight inside a container's namespace: the container end of a veth pair
/// ([`Netlink::create_veth_into`]) or a macvlan device ([`Netlink::create_macvlan_into`]).
#[derive(Debug, Clone, Copy)]
pub struct VethPeer<'a> {
    pub name: &'a str,
    pub mac: [u8; 6],
    pub netns: &'a Path,
    /// The MTU of the device (the kernel's default if `None`).
    pub mtu: Option<u32>,
    /// The MTU of a veth pair's host end, if it differs from `mtu`.
    pub host_mtu: Option<u32>,
}

/// A netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    /// The namespace is the process's own (every runtime thread lives there), so an interface
    /// index is one `if_nametoindex` away instead of a link dump.
    own_netns: bool,
}

impl Netlink {
    /// A connection in the calling process's namespace.
    pub fn current() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        tokio::spawn(conn);
        Ok(Self {
            handle,
            own_netns: true,
        })
    }

    /// A connection inside the namespace at `path` (the socket is opened there and stays there).
    pub fn in_netns(path: &Path) -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Handle::current();
        netns::run_in(path, || Self::open_here(&runtime))?
    }

    /// Creates a new network namespace pinned at `path` and opens a connection there, on the
    /// thread that made it (see [`netns::create_with`]).
    pub fn in_new_netns(path: &Path) -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Handle::current();
        netns::create_with(path, || Self::open_here(&runtime))
    }

    /// Opens a connection on the calling thread (inside the namespace the connection is for: the
    /// socket stays there); the connection is driven on `runtime`.
    fn open_here(runtime: &tokio::runtime::Handle) -> Result<Self, NetlinkError> {
        let _guard = runtime.enter();
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        runtime.spawn(conn);
        Ok(Self {
            handle,
            own_netns: false,
        })
    }

    /// Index of the interface called `name`, if there is one.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        if self.own_netns {
            return match nix::net::if_::if_nametoindex(name) {
                Ok(index) => Ok(Some(index)),
                Err(nix::Error::ENODEV) => Ok(None),
                Err(e) => Err(NetlinkError::Lookup {
                    name: name.into(),
                    source: e,
                }),
            };
        }
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(req("look up", name)(e)),
        }
    }

    /// Like [`Self::link_index`], but a missing interface is an error.
    pub async fn require_link(&self, name: &str) -> Result<u32, NetlinkError> {
        self.link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoSuchLink(name.into()))
    }

    /// Every device whose alias marks it as netd's.
    pub async fn owned_links(&self) -> Result<Vec<OwnedLink>, NetlinkError> {
        Ok(self
            .link_messages()
            .await?
            .iter()
            .filter_map(owned_link)
            .collect())
    }

    /// Every device of the namespace, as [`LinkState`]s.
    pub async fn links(&self) -> Result<Vec<LinkState>, NetlinkError> {
        Ok(self
            .link_messages()
            .await?
            .iter()
            .filter_map(link_state)
            .collect())
    }

    /// One dump of the namespace's devices.
    async fn link_messages(&self) -> Result<Vec<LinkMessage>, NetlinkError> {
        self.handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(req("list", "links"))
    }

    /// Every permanent IPv4 neighbour entry of the namespace, as (device index, address).
    pub async fn all_pinned_neighbors(&self) -> Result<Vec<(u32, Ipv4Addr)>, NetlinkError> {
        Ok(self
            .all_pinned(AddressFamily::Inet)
            .await?
            .into_iter()
            .filter_map(|(i, ip)| match ip {
                IpAddr::V4(ip) => Some((i, ip)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// Every permanent IPv6 neighbour entry of the namespace, as (device index, address).
    pub async fn all_pinned_neighbors6(&self) -> Result<Vec<(u32, Ipv6Addr)>, NetlinkError> {
        Ok(self
            .all_pinned(AddressFamily::Inet6)
            .await?
            .into_iter()
            .filter_map(|(i, ip)| match ip {
                IpAddr::V6(ip) => Some((i, ip)),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    async fn all_pinned(&self, family: AddressFamily) -> Result<Vec<(u32, IpAddr)>, NetlinkError> {
        let entries: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(req("list", "neighbours"))?;
        Ok(entries
            .iter()
            .filter(|m| m.header.state == NeighbourState::Permanent)
            .flat_map(|m| {
                m.attributes.iter().filter_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                        Some((m.header.ifindex, IpAddr::V4(*ip)))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                        Some((m.header.ifindex, IpAddr::V6(*ip)))
                    }
                    _ => None,
                })
            })
            .collect())
    }

    /// Creates a bridge (down) with the address `mac`, tagged as owned by `owner`. A bridge
    /// whose address was set keeps it; otherwise it takes the lowest of its ports' as they come
    /// and go.
    pub async fn create_bridge(
        &self,
        name: &str,
        owner: &str,
        mac: [u8; 6],
    ) -> Result<u32, NetlinkError> {
        let msg = LinkBridge::new(name).address(mac.to_vec()).build();
        self.add_tagged(msg, name, owner, "create bridge", &[])
            .await
    }

    /// Creates a container's veth pair: the host end `host`, down, tagged as owned by `owner` and
    /// plugged into the bridge `master` (if any); the peer `peer` with address `mac`, made directly in the
    /// namespace at `netns` (moving a device into a namespace afterwards waits for an RCU grace
    /// period). Returns the host end's index.
    pub async fn create_veth_into(
        &self,
        host: &str,
        owner: &str,
        master: Option<u32>,
        peer: &VethPeer<'_>,
    ) -> Result<u32, NetlinkError> {
        let netns = std::fs::File::open(peer.netns).map_err(|source| NetnsError::Io {
            what: "open",
            path: peer.netns.into(),
            source,
        })?;
        self.create_veth(host, owner, master, peer, Some(&netns))
            .await
    }

    /// As [`Netlink::create_veth_into`], with the peer left in this namespace (`peer.netns` is
    /// not used): a runtime moves it into the container and configures it there itself.
    pub async fn create_veth_here(
        &self,
        host: &str,
        owner: &str,
        master: Option<u32>,
        peer: &VethPeer<'_>,
    ) -> Result<u32, NetlinkError> {
        self.create_veth(host, owner, master, peer, None).await
    }

    async fn create_veth(
        &self,
        host: &str,
        owner: &str,
        master: Option<u32>,
        peer: &VethPeer<'_>,
        netns: Option<&std::fs::File>,
    ) -> Result<u32, NetlinkError> {
        let mut peer_msg = LinkUnspec::new_with_name(peer.name).address(peer.mac.to_vec());
        if let Some(netns) = netns {
            peer_msg = peer_msg.setns_by_fd(netns.as_raw_fd());
        }
        let mut msg = LinkVeth::new(host, peer.name);
        if let Some(master) = master {
            msg = msg.controller(master);
        }
        if let Some(mtu) = peer.mtu {
            peer_msg = peer_msg.mtu(mtu);
        }
        if let Some(mtu) = peer.host_mtu.or(peer.mtu) {
            msg = msg.mtu(mtu);
        }
        let msg = msg
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        self.add_tagged(msg, host, owner, "create veth", &[no_ipv6_addresses()])
            .await
    }

    /// Creates a macvlan device on the parent `parent` in `mode`, made directly in the namespace
    /// at `peer.netns` as `peer.name` with address `peer.mac` (down, IPv6 addresses off as on a
    /// veth peer). The namespace is netd's, so the device needs no tag.
    pub async fn create_macvlan_into(
        &self,
        parent: u32,
        mode: MacVlanMode,
        peer: &VethPeer<'_>,
    ) -> Result<(), NetlinkError> {
        let netns = std::fs::File::open(peer.netns).map_err(|source| NetnsError::Io {
            what: "open",
            path: peer.netns.into(),
            source,
        })?;
        let mut msg = LinkMacVlan::new(peer.name, parent, mode)
            .address(peer.mac.to_vec())
            .setns_by_fd(netns.as_raw_fd())
            .build();
        msg.attributes.push(LinkAttribute::Group(DEVICE_GROUP));
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(req("create macvlan", peer.name))
    }

    /// Creates the 802.1q sub-interface `name` of `base` for VLAN `vid`, tagged as owned by
    /// `owner`, and sets it up (its parent's state is the user's). Returns its index.
    pub async fn create_vlan(
        &self,
        name: &str,
        base: u32,
        vid: u16,
        owner: &str,
    ) -> Result<u32, NetlinkError> {
        let msg = LinkVlan::new(name, base, vid).build();
        let index = self
            .add_tagged(msg, name, owner, "create vlan", &[])
            .await?;
        self.set_up(index).await?;
        Ok(index)
    }

    /// Creates an external (`collect_md`) VXLAN device on UDP `port`, without learning, tagged
    /// as owned by `owner`, and sets it up: the tunnel program chooses each frame's remote and
    /// VNI. Returns its index.
    pub async fn create_vxlan(
        &self,
        name: &str,
        owner: &str,
        port: u16,
        mtu: u32,
    ) -> Result<u32, NetlinkError> {
        let msg = LinkVxlan::new(name, 0)
            .port(port)
            .learning(false)
            .collect_metadata(true)
            .mtu(mtu)
            .build();
        let index = self
            .add_tagged(msg, name, owner, "create vxlan", &[])
            .await?;
        self.set_up(index).await?;
        Ok(index)
    }

    /// Sets a device's MTU.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set_link(msg, "set the MTU of", index).await
    }

    /// The MTU of the device with index `index`.
    pub async fn mtu(&self, index: u32) -> Result<Option<u32>, NetlinkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.and_then(|l| {
                l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(mtu) => Some(*mtu),
                    _ => None,
                })
            })),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(req("look up", index)(e)),
        }
    }

    /// Creates a veth pair `name` and `peer` here, both down and tagged as owned by `owner`.
    /// Returns their indexes.
    pub async fn create_veth_pair(
        &self,
        name: &str,
        peer: &str,
        owner: &str,
    ) -> Result<(u32, u32), NetlinkError> {
        let mut peer_msg = LinkUnspec::new_with_name(peer).build();
        peer_msg.attributes.push(LinkAttribute::Group(DEVICE_GROUP));
        let msg = LinkVeth::new(name, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        let index = self
            .add_tagged(msg, name, owner, "create veth", &[no_ipv6_addresses()])
            .await?;
        let peer_index = self.require_link(peer).await?;
        let tag = LinkUnspec::new_with_index(peer_index)
            .append_extra_attribute(alias(owner))
            .build();
        if let Err(e) = self.set_link(tag, "tag", peer).await {
            if let Err(del) = self.delete_link(name).await {
                tracing::error!(%del, "cannot delete untagged device {name}");
            }
            return Err(e);
        }
        Ok((index, peer_index))
    }

    /// Creates the device `msg` describes, called `name`, in [`DEVICE_GROUP`], and marks it as
    /// netd's along with `settings` (the kernel ignores an alias, and refuses IPv6 settings,
    /// given at creation). A device that cannot be tagged is deleted at once.
    async fn add_tagged(
        &self,
        mut msg: LinkMessage,
        name: &str,
        owner: &str,
        what: &'static str,
        settings: &[LinkAttribute],
    ) -> Result<u32, NetlinkError> {
        msg.attributes.push(LinkAttribute::Group(DEVICE_GROUP));
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(req(what, name))?;
        let index = self.require_link(name).await?;
        let tag = |settings: &[LinkAttribute]| {
            let mut msg = LinkUnspec::new_with_index(index)
                .append_extra_attribute(alias(owner))
                .build();
            msg.attributes.extend_from_slice(settings);
            msg
        };
        let mut tagged = self.handle.link().set(tag(settings)).execute().await;
        if matches!(&tagged, Err(e) if is_errno(e, libc::EAFNOSUPPORT)) {
            // A device without IPv6 (a kernel without it, an MTU below 1280) takes no IPv6 setting.
            tagged = self.handle.link().set(tag(&[])).execute().await;
        }
        if let Err(e) = tagged {
            if let Err(del) = self.delete_link(name).await {
                tracing::error!(%del, "cannot delete untagged device {name}");
            }
            return Err(req("tag", name)(e));
        }
        Ok(index)
    }

    /// Sends one link change.
    async fn set_link(
        &self,
        msg: LinkMessage,
        op: &'static str,
        target: impl ToString,
    ) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(req(op, target))
    }

    /// Sets a device's MAC address.
    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.set_link(msg, "set the MAC of", index).await
    }

    /// Turns IPv6 address generation off on a device that is still down: a container's interface,
    /// whose networks are IPv4 only. (Writing `disable_ipv6` under `/proc/sys` would do more, but
    /// its cost grows with the number of namespaces: 0.8 ms with a thousand containers.)
    /// A device without IPv6 (a kernel booted without it) has nothing to turn off.
    pub async fn turn_off_ipv6_addresses(&self, index: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index)
            .append_extra_attribute(no_ipv6_addresses())
            .build();
        match self.handle.link().set(msg).execute().await {
            Err(e) if is_errno(&e, libc::EAFNOSUPPORT) => Ok(()),
            result => result.map_err(req("turn off IPv6 addresses of", index)),
        }
    }

    /// Removes IPv6's `::1` from the loopback device (which gets it when it comes up), if there.
    pub async fn remove_ipv6_loopback(&self, lo: u32) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.prefix_len = 128;
        msg.header.index = lo;
        msg.attributes
            .push(AddressAttribute::Address(Ipv6Addr::LOCALHOST.into()));
        match self.handle.address().del(msg).execute().await {
            Err(e) if is_errno(&e, libc::EADDRNOTAVAIL) || is_errno(&e, libc::EAFNOSUPPORT) => {
                Ok(())
            }
            result => result.map_err(req("remove", "::1 from loopback")),
        }
    }

    /// Sets a device up.
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.set_link(msg, "set up", index).await
    }

    /// Adds an address with its prefix length. An IPv6 address is usable at once: netd gives
    /// each address to one interface only, so duplicate address detection is skipped (`nodad`).
    pub async fn add_address(
        &self,
        index: u32,
        ip: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut request = self.handle.address().add(index, ip, prefix);
        if ip.is_ipv6() {
            request.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        request.execute().await.map_err(req("add address", ip))
    }

    /// Adds the default route of `gateway`'s family via it.
    pub async fn add_default_route(&self, gateway: IpAddr) -> Result<(), NetlinkError> {
        let msg = match gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw).build(),
        };
        self.handle
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(req("add default route via", gateway))
    }

    /// Routes `ip` (a /32) through the device `index`, with `src` as the host's source address:
    /// made, or replaced if there.
    pub async fn replace_host_route(
        &self,
        ip: Ipv4Addr,
        index: u32,
        src: Ipv4Addr,
    ) -> Result<(), NetlinkError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(ip, 32)
            .output_interface(index)
            .pref_source(src)
            .scope(RouteScope::Link)
            .build();
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(req("route", ip))
    }

    /// Deletes a device; one that is already gone is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<(), NetlinkError> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
            other => other.map_err(req("delete", name)),
        }
    }

    /// Pins `ip` to `mac` on the device `index` (a permanent neighbour entry, made or replaced):
    /// the host never has to ask for it.
    pub async fn pin_neighbor(
        &self,
        index: u32,
        ip: impl Into<IpAddr>,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        let ip = ip.into();
        self.handle
            .neighbours()
            .add(index, ip)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(req("pin the neighbour", ip))
    }

    /// Removes the neighbour entry of `ip` on the device `index`; one already gone is no error.
    pub async fn unpin_neighbor(
        &self,
        index: u32,
        ip: impl Into<IpAddr>,
    ) -> Result<(), NetlinkError> {
        let ip = ip.into();
        let mut msg = NeighbourMessage::default();
        msg.header.ifindex = index;
        let (family, destination) = match ip {
            IpAddr::V4(ip) => (AddressFamily::Inet, NeighbourAddress::Inet(ip)),
            IpAddr::V6(ip) => (AddressFamily::Inet6, NeighbourAddress::Inet6(ip)),
        };
        msg.header.family = family;
        msg.attributes
            .push(NeighbourAttribute::Destination(destination));
        match self.handle.neighbours().del(msg).execute().await {
            Err(e) if is_errno(&e, libc::ENOENT) || is_errno(&e, libc::ENODEV) => Ok(()),
            other => other.map_err(req("unpin the neighbour", ip)),
        }
    }

    /// The IPv6 addresses pinned on the device `index` (its permanent neighbour entries).
    pub async fn pinned_neighbors6(&self, index: u32) -> Result<Vec<Ipv6Addr>, NetlinkError> {
        Ok(self
            .all_pinned_neighbors6()
            .await?
            .into_iter()
            .filter_map(|(i, ip)| (i == index).then_some(ip))
            .collect())
    }

    /// The IPv4 addresses pinned on the device `index` (its permanent neighbour entries).
    pub async fn pinned_neighbors(&self, index: u32) -> Result<Vec<Ipv4Addr>, NetlinkError> {
        Ok(self
            .all_pinned_neighbors()
            .await?
            .into_iter()
            .filter_map(|(i, ip)| (i == index).then_some(ip))
            .collect())
    }

    /// Every IPv4 address of this namespace with the index of its interface.
    pub async fn ipv4_addresses(&self) -> Result<Vec<(u32, Ipv4Addr)>, NetlinkError> {
        let addrs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(req("list", "addresses"))?;
        Ok(addrs
            .iter()
            .flat_map(|m| {
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some((m.header.index, *ip)),
                    _ => None,
                })
            })
            .collect())
    }

    /// Names of the interfaces that carry an IPv4 default route.
    pub async fn default_route_interfaces(&self) -> Result<Vec<String>, NetlinkError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(msg)
            .execute()
            .try_collect()
            .await
            .map_err(req("list", "routes"))?;
        let mut names = vec![];
        for route in routes
            .iter()
            .filter(|r| r.header.destination_prefix_length == 0)
        {
            for a in &route.attributes {
                if let RouteAttribute::Oif(index) = a {
                    if let Some(name) = self.link_name(*index).await? {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
            }
        }
        Ok(names)
    }

    /// Name of the interface with index `index`.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>, NetlinkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.as_ref().and_then(link_name)),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(req("look up", index)(e)),
        }
    }
}

/// Whether the kernel refused a request with `errno`.
fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

/// No IPv6 address generation, for both ends of a container's veth: netd's networks are IPv4, and
/// on the host end, a bridge port, an address would serve nothing while bringing the port up
/// would pay for making it (duplicate address detection, multicast joins).
fn no_ipv6_addresses() -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        In6AddrGenMode::None,
    )])])
}

fn alias(owner: &str) -> LinkAttribute {
    LinkAttribute::IfAlias(format!("{ALIAS_PREFIX}{owner}"))
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn link_state(link: &LinkMessage) -> Option<LinkState> {
    let mut state = LinkState {
        index: link.header.index,
        name: link_name(link)?,
        owner: None,
        kind: None,
        master: None,
        group: 0,
        up: link.header.flags.contains(LinkFlags::Up),
        mac: None,
    };
    for a in &link.attributes {
        match a {
            LinkAttribute::IfAlias(s) => {
                state.owner = s.strip_prefix(ALIAS_PREFIX).map(str::to_string)
            }
            LinkAttribute::Controller(m) => state.master = Some(*m),
            LinkAttribute::Group(g) => state.group = *g,
            LinkAttribute::Address(mac) => state.mac = mac.as_slice().try_into().ok(),
            LinkAttribute::LinkInfo(infos) => {
                state.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(InfoKind::Bridge) => Some("bridge".to_string()),
                    LinkInfo::Kind(InfoKind::Veth) => Some("veth".to_string()),
                    LinkInfo::Kind(other) => Some(format!("{other:?}").to_lowercase()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    Some(state)
}

/// A device tagged as netd's, or one netd created but never tagged (a daemon killed between the
/// two requests): in [`DEVICE_GROUP`] without an alias.
fn owned_link(link: &LinkMessage) -> Option<OwnedLink> {
    let alias = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    });
    let in_group = link
        .attributes
        .contains(&LinkAttribute::Group(DEVICE_GROUP));
    let owner = match alias {
        Some(a) => a.strip_prefix(ALIAS_PREFIX)?.to_string(),
        None if in_group => UNTAGGED_OWNER.to_string(),
        None => return None,
    };
    Some(OwnedLink {
        index: link.header.index,
        name: link_name(link)?,
        owner,
    })
}
