//! Decisions about a container's outgoing packets, free of packet access so that each reads as
//! the rule it enforces.
use netd_common::{DropReason, Endpoint, ENDPOINT_FLAG_INTERNAL};

/// A sender address may be the endpoint's own, or 0.0.0.0 (ARP probes, DHCP discovery).
#[inline(always)]
pub fn sender_ip_ok(ep: &Endpoint, src: [u8; 4]) -> bool {
    src == ep.addr || src == [0, 0, 0, 0]
}

/// Where an IPv4 packet from `ep` may go, given the network the destination belongs to (if it
/// is inside any netd subnet) and whether it is a broadcast or multicast address.
#[inline(always)]
pub fn destination(
    ep: &Endpoint,
    dst_net: Option<u32>,
    dst_is_group: bool,
) -> Result<(), DropReason> {
    match dst_net {
        Some(net) if net == ep.net_id => Ok(()),
        Some(_) => Err(DropReason::Isolation),
        None if dst_is_group => Ok(()),
        None if ep.flags & ENDPOINT_FLAG_INTERNAL != 0 => Err(DropReason::Internal),
        None => Ok(()),
    }
}

/// 255.255.255.255 and 224.0.0.0/4 never leave the link, so they cross no network boundary.
#[inline(always)]
pub fn is_group(addr: [u8; 4]) -> bool {
    addr == [255, 255, 255, 255] || addr[0] & 0xf0 == 0xe0
}
