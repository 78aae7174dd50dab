//! netd's eBPF programs. One file per attach point, over small shared modules:
//!
//! - [`endpoint`]: TC ingress of the host side of each container veth (what the container sends):
//!   anti-spoofing, isolation between networks, hairpin to published ports, replies of
//!   published ports straight out of their uplink; its IPv6 half is [`endpoint6`].
//! - [`uplink`]: TC ingress and egress of the uplinks: published ports (DNAT, straight into the
//!   container) and egress SNAT.
//! - [`allow`]: who may open a flow to a published port, and the closed-port answer the others
//!   get.
//! - [`arp`]: answers containers' ARP requests for addresses netd knows.
//! - [`ndp`]: the same for IPv6 neighbour solicitations, and the checks of containers'
//!   neighbour discovery.
//! - [`icmp`]: translation of ICMP errors about translated flows.
//! - [`nat`]: flow lookup, rewriting with checksum updates, new translations, and the redirects
//!   that let translated packets skip the host.
//! - [`sock`]: cgroup socket hooks that send host processes straight to published ports.
//! - [`macvlan`]: TC egress of a container's macvlan device: anti-spoofing.
//! - [`subif`] and [`trunk`]: TC ingress of an eBPF 802.1q sub-interface and of its trunk
//!   (VLAN parents of macvlan networks on a kernel without 802.1q).
//! - [`tunnel`]: the overlay's VXLAN tunnel: encapsulation and decapsulation in the programs,
//!   and TC ingress of the host's VXLAN device (frames the kernel decapsulated).
//! - [`underlay`]: TC ingress of the underlay device: the tunnel's frames straight into their
//!   container.
//! - [`parse`]: bounds-checked header access.
//! - [`maps`]: the maps both programs and the daemon share (pinned by name under `--bpffs`).
//! - [`policy`]: the pure decisions, kept apart from packet access.
#![no_std]
#![no_main]

mod allow;
mod arp;
mod btf;
mod endpoint;
mod endpoint6;
mod events;
mod icmp;
mod macvlan;
mod maps;
mod nat;
mod ndp;
mod parse;
mod policy;
mod sock;
mod subif;
mod trunk;
mod tunnel;
mod underlay;
mod uplink;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
