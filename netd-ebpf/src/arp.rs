//! The ARP responder of container ports. A container's ARP request for its gateway or for
//! another container on its network is answered at the container's own port, from
//! `NETD_NEIGHBORS`, and never reaches the bridge: a broadcast on a bridge with a thousand ports
//! is a thousand copies queued at once, more than a CPU's receive backlog takes
//! (`net.core.netdev_max_backlog`, 1000 by default), and the answer queued behind them is lost.
//! Requests for anything else (an address netd does not know, another network's) go their usual
//! way.
use aya_ebpf::{helpers::bpf_redirect, programs::TcContext};
use netd_common::{DropReason, Endpoint, Neighbor};
use network_types::{arp::ArpHdr, eth::EthHdr};

use crate::maps::NETD_NEIGHBORS;

/// ARP operation codes, as they sit in the header (network order).
const ARP_REQUEST: [u8; 2] = [0, 1];
const ARP_REPLY: [u8; 2] = [0, 2];

/// Who answers `arp`, a request the endpoint `ep` sent (its sender already checked): only a
/// request from the endpoint's own address (an RFC 5227 probe, from 0.0.0.0, is left to the
/// network), for another address on its own network.
#[inline(always)]
pub fn answerer(ep: &Endpoint, arp: &ArpHdr) -> Option<Neighbor> {
    if arp.oper != ARP_REQUEST || arp.spa != ep.addr || arp.tpa == ep.addr {
        return None;
    }
    // SAFETY: copied out at once.
    let neighbor = *unsafe { NETD_NEIGHBORS.get(arp.tpa) }?;
    (neighbor.net_id == ep.net_id).then_some(neighbor)
}

/// Turns the request `arp` in the packet into `by`'s reply and sends it back out of the port
/// `ifindex`, to the container that asked.
#[inline(always)]
pub fn answer(
    ctx: &TcContext,
    arp: &ArpHdr,
    by: &Neighbor,
    ifindex: u32,
) -> Result<i32, DropReason> {
    let eth = EthHdr {
        dst_addr: arp.sha,
        src_addr: by.mac,
        ether_type: crate::parse::ETH_P_ARP,
    };
    let reply = ArpHdr {
        oper: ARP_REPLY,
        sha: by.mac,
        spa: arp.tpa,
        tha: arp.sha,
        tpa: arp.spa,
        ..*arp
    };
    ctx.store(0, &eth, 0).map_err(|_| DropReason::Malformed)?;
    ctx.store(EthHdr::LEN, &reply, 0)
        .map_err(|_| DropReason::Malformed)?;
    // SAFETY: a plain helper call; the return value is the action (the port exists: the packet
    // came in on it).
    Ok(unsafe { bpf_redirect(ifindex, 0) } as i32)
}
