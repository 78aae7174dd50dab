//! The overlay's VXLAN tunnel, both ends, in the programs themselves.
//!
//! Out: the endpoint program hands a frame for an overlay endpoint on another host to
//! [`encap`], which makes room in front of it (`bpf_skb_adjust_room`), writes the outer IPv4,
//! UDP and VXLAN headers (that host's underlay address and the network's VNI, from
//! [`NETD_TUNNEL`]), and sends it out of the underlay device with `bpf_redirect_neigh`: the
//! kernel's route and neighbour lookup for the outer destination, and nothing else of the host
//! stack. No bridge forwarding database, no flooding: the container learnt the remote MAC from
//! the ARP responder.
//!
//! A GSO super-packet goes to the kernel's VXLAN device with the tunnel key set instead
//! ([`encap_by_device`]): `bpf_skb_adjust_room` marks it `SKB_GSO_DODGY`, which a device
//! without `NETIF_F_GSO_ROBUST` (a veth, most NICs) segments in software, while the device's
//! own encapsulation keeps it whole to the wire.
//!
//! A packet too big for the tunnel gets ICMP "fragmentation needed" if it may not be
//! fragmented ([`icmp::frag_needed`]), which is what makes path-MTU discovery work for a
//! container whose MTU was raised; without DF it goes to the kernel's VXLAN device
//! ([`encap_by_device`]), which fragments the outer packet.
//!
//! In: [`decap`], on the underlay device's ingress ([`underlay`](crate::underlay)), takes
//! VXLAN frames to this host's address off the wire before the host stack (no UDP socket
//! lookup, no VXLAN device, no second NAPI pass) and puts the inner frame straight into its
//! container (`bpf_redirect_peer`). [`netd_tunnel_ingress`] on the VXLAN device does the same
//! for frames the kernel decapsulated (outer fragments, or frames that came in through another
//! device). Either way a frame is delivered only if its VNI is that endpoint's network's and
//! its source is an endpoint that the sending host has on that network: a host on the underlay
//! cannot inject frames into a network or as a container that is not its own.
use core::{
    mem::{size_of, zeroed},
    ptr::null_mut,
};

use aya_ebpf::{
    bindings::{
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, bpf_tunnel_key, BPF_CSUM_LEVEL_DEC,
        BPF_F_ADJ_ROOM_ENCAP_L2_ETH, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L4_UDP,
        BPF_F_ADJ_ROOM_FIXED_GSO, BPF_F_ZERO_CSUM_TX, TC_ACT_UNSPEC,
    },
    helpers::{
        bpf_check_mtu, bpf_csum_level, bpf_get_hash_recalc, bpf_get_prandom_u32, bpf_redirect,
        bpf_redirect_neigh, bpf_redirect_peer, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key,
    },
    macros::classifier,
    programs::TcContext,
};
use netd_common::{
    wire::{vxlan_outer, TunnelEnds, VXLAN_OUTER_LEN},
    DropReason, Endpoint, Tunnel, CONFIG_UNDERLAY_ADDR, CONFIG_UNDERLAY_IFINDEX,
    CONFIG_VXLAN_IFINDEX, IPPROTO_TCP, IPPROTO_UDP, TUNNEL_STAT_DECAP, TUNNEL_STAT_ENCAP,
    TUNNEL_STAT_FRAGMENTED, TUNNEL_STAT_TOO_BIG, VXLAN_OVERHEAD, VXLAN_PORT,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    icmp,
    maps::{self, NETD_OVERLAY_PORTS, NETD_TUNNEL},
    nat, parse,
};

/// TTL of the outer IPv4 header when the kernel's device encapsulates.
const OUTER_TTL: u8 = 64;
/// No outer UDP checksum, as Linux's VXLAN devices (and Docker's overlay) send over IPv4: the
/// inner packet carries its own checksums.
const TUNNEL_FLAGS: u64 = BPF_F_ZERO_CSUM_TX as u64;
/// Room for the outer headers in front of the inner frame, as a UDP tunnel carrying Ethernet;
/// a GSO packet keeps its segment size (the container's MTU already leaves room for them).
const ENCAP_FLAGS: u64 = (BPF_F_ADJ_ROOM_FIXED_GSO
    | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
    | BPF_F_ADJ_ROOM_ENCAP_L4_UDP
    | BPF_F_ADJ_ROOM_ENCAP_L2_ETH) as u64
    | ((EthHdr::LEN as u64) << 56);
/// Where the outer headers of a tunnel frame start and end, and the inner frame's headers.
const OUTER_IP_OFF: usize = EthHdr::LEN;
const OUTER_UDP_OFF: usize = OUTER_IP_OFF + Ipv4Hdr::LEN;
const VXLAN_OFF: usize = OUTER_UDP_OFF + 8;
const INNER_ETH_OFF: usize = OUTER_IP_OFF + VXLAN_OUTER_LEN;
const INNER_IP_OFF: usize = INNER_ETH_OFF + EthHdr::LEN;
/// `BPF_MTU_CHK_RET_FRAG_NEEDED` of `bpf_check_mtu`.
const MTU_FRAG_NEEDED: i64 = 1;
/// The IPv4 "don't fragment" bit, in the first byte of the flags and fragment offset.
const IP_DF: u8 = 0x40;
/// `skb->pkt_type` of a frame for another host's MAC (seen in promiscuous mode).
const PACKET_OTHERHOST: u32 = 3;

/// The overlay endpoint on another host at `addr`, if there is one.
#[inline(always)]
pub fn remote(addr: [u8; 4]) -> Option<Tunnel> {
    // SAFETY: copied out at once.
    unsafe { NETD_TUNNEL.get(addr) }.copied()
}

/// Sends the frame of `ep` (IPv4 header `ip`) into the tunnel towards `to`.
#[inline(always)]
pub fn encap(ctx: &TcContext, ep: &Endpoint, ip: &Ipv4Hdr, to: &Tunnel) -> Result<i32, DropReason> {
    let underlay = maps::config(CONFIG_UNDERLAY_IFINDEX) as u32;
    if underlay == 0 {
        return Err(DropReason::UnknownEndpoint);
    }
    if let Some(mtu) = too_big(ctx, ip, underlay)? {
        if ip.frags[0] & IP_DF != 0 {
            count(ctx, TUNNEL_STAT_TOO_BIG);
            return icmp::frag_needed(ctx, ep, mtu - VXLAN_OVERHEAD);
        }
        count(ctx, TUNNEL_STAT_FRAGMENTED);
        return encap_by_device(ctx, to);
    }
    // SAFETY: the skb is valid for this program run.
    if unsafe { (*ctx.skb.skb).gso_size } != 0 {
        // bpf_skb_adjust_room marks a GSO packet SKB_GSO_DODGY, which a device without
        // NETIF_F_GSO_ROBUST (a veth, most NICs) segments in software before sending: the
        // kernel's device keeps a super-packet whole to the wire (UDP tunnel segmentation
        // offload), and the far side still takes it off in its program.
        count(ctx, TUNNEL_STAT_ENCAP);
        return encap_by_device(ctx, to);
    }
    native(ctx, underlay, to)
}

/// Wraps the frame in the outer headers here and sends it out of the `underlay` device.
#[inline(always)]
fn native(ctx: &TcContext, underlay: u32, to: &Tunnel) -> Result<i32, DropReason> {
    let ends = TunnelEnds {
        local: (maps::config(CONFIG_UNDERLAY_ADDR) as u32).to_be_bytes(),
        remote: to.host,
        vni: to.vni,
    };
    let inner_len = ctx.len();
    // SAFETY: plain helper calls on our own skb.
    let (hash, id) = unsafe { (bpf_get_hash_recalc(ctx.skb.skb), bpf_get_prandom_u32()) };
    let outer = vxlan_outer(&ends, inner_len, hash, id as u16);
    let inner_eth = parse::read::<[u8; EthHdr::LEN]>(ctx, 0).map_err(|()| DropReason::Malformed)?;
    ctx.adjust_room(VXLAN_OVERHEAD as i32, BPF_ADJ_ROOM_MAC, ENCAP_FLAGS)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(OUTER_IP_OFF, &outer, 0)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(INNER_ETH_OFF, &inner_eth, 0)
        .map_err(|_| DropReason::Malformed)?;
    count(ctx, TUNNEL_STAT_ENCAP);
    // SAFETY: a plain helper call; without next-hop parameters the kernel routes the outer
    // destination and fills in the outer Ethernet header. The return value is the action.
    Ok(unsafe { bpf_redirect_neigh(underlay, null_mut(), 0, 0) } as i32)
}

/// The underlay's MTU if the packet, encapsulated, would not fit it (for a GSO packet: its
/// segments would not).
#[inline(always)]
fn too_big(ctx: &TcContext, ip: &Ipv4Hdr, underlay: u32) -> Result<Option<u32>, DropReason> {
    let mut mtu: u32 = 0;
    let overhead = VXLAN_OVERHEAD as i32;
    // SAFETY: our own skb and a stack value.
    let ret = unsafe { bpf_check_mtu(ctx.skb.skb.cast(), underlay, &mut mtu, overhead, 0) };
    if ret < 0 {
        return Err(DropReason::UnknownEndpoint);
    }
    // SAFETY: the skb is valid for this program run.
    let gso_size = unsafe { (*ctx.skb.skb).gso_size };
    if gso_size == 0 {
        return Ok((ret == MTU_FRAG_NEEDED).then_some(mtu));
    }
    let segment = segment_headers(ctx, ip)? + gso_size + VXLAN_OVERHEAD - EthHdr::LEN as u32;
    Ok((segment > mtu).then_some(mtu))
}

/// The IPv4 and L4 headers each segment of a GSO packet repeats.
#[inline(always)]
fn segment_headers(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<u32, DropReason> {
    let ip_len = u32::from(ip.vihl & 0x0f) * 4;
    let l4 = match ip.proto {
        IPPROTO_TCP => {
            let off = parse::IP_OFF + ip_len as usize + 12;
            let doff = ctx.load::<u8>(off).map_err(|_| DropReason::Malformed)?;
            u32::from(doff >> 4) * 4
        }
        IPPROTO_UDP => 8,
        _ => 0,
    };
    Ok(ip_len + l4)
}

/// Hands the frame to the kernel's VXLAN device with the tunnel key set: for what the program
/// cannot send itself (a packet bigger than the underlay without DF: the device fragments).
#[inline(always)]
fn encap_by_device(ctx: &TcContext, to: &Tunnel) -> Result<i32, DropReason> {
    let vxlan = maps::config(CONFIG_VXLAN_IFINDEX) as u32;
    if vxlan == 0 {
        return Err(DropReason::UnknownEndpoint);
    }
    // SAFETY: a plain C struct for which all zeroes is a valid value.
    let mut key: bpf_tunnel_key = unsafe { zeroed() };
    key.tunnel_id = to.vni;
    key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes(to.host);
    key.tunnel_ttl = OUTER_TTL;
    // SAFETY: our own skb and a stack value of the size given.
    let ret = unsafe {
        bpf_skb_set_tunnel_key(
            ctx.skb.skb.cast(),
            &mut key,
            size_of::<bpf_tunnel_key>() as u32,
            TUNNEL_FLAGS,
        )
    };
    if ret != 0 {
        return Err(DropReason::Malformed);
    }
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect(vxlan, 0) } as i32)
}

/// Counts a tunnel event, unless the packet is a `netd explain` probe.
#[inline(always)]
fn count(ctx: &TcContext, stat: u32) {
    if !parse::is_probe(ctx) {
        maps::count_tunnel(stat);
    }
}

/// A VXLAN frame to this host's underlay address, taken off and delivered; anything else goes
/// on to the host (`TC_ACT_UNSPEC`: the next program on the device, if any, decides).
#[inline(always)]
pub fn decap(ctx: &TcContext) -> Result<i32, DropReason> {
    let Some(vni) = vxlan_to_us(ctx) else {
        return Ok(TC_ACT_UNSPEC);
    };
    let outer = parse::ipv4(ctx).map_err(|()| DropReason::Malformed)?;
    let eth = parse::read::<EthHdr>(ctx, INNER_ETH_OFF).map_err(|()| DropReason::Malformed)?;
    if eth.ether_type != parse::ETH_P_IP {
        // ARP is answered on each host; nothing else crosses the overlay.
        return Err(DropReason::UnsupportedProtocol);
    }
    let ip = parse::read::<Ipv4Hdr>(ctx, INNER_IP_OFF).map_err(|()| DropReason::Malformed)?;
    let port = admit(outer.src_addr, vni, &ip)?;
    ctx.adjust_room(
        -(VXLAN_OVERHEAD as i32),
        BPF_ADJ_ROOM_MAC,
        BPF_F_ADJ_ROOM_FIXED_GSO as u64,
    )
    .map_err(|_| DropReason::Malformed)?;
    let macs = [port.mac, eth.src_addr];
    ctx.store(0, &macs, 0).map_err(|_| DropReason::Malformed)?;
    // SAFETY: plain helper calls on our own skb. A checksum the device verified was the
    // outer one (or none, as the outer UDP checksum is 0): the inner one is not vouched for.
    unsafe { bpf_csum_level(ctx.skb.skb, BPF_CSUM_LEVEL_DEC as u64) };
    count(ctx, TUNNEL_STAT_DECAP);
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect_peer(port.ifindex, 0) } as i32)
}

/// The VNI of an unfragmented VXLAN frame (outer IPv4 without options) to this host's
/// underlay address; `None` for anything else.
#[inline(always)]
fn vxlan_to_us(ctx: &TcContext) -> Option<u32> {
    // SAFETY: the skb is valid for this program run.
    if unsafe { (*ctx.skb.skb).pkt_type } == PACKET_OTHERHOST {
        return None;
    }
    let eth = parse::eth(ctx).ok()?;
    if eth.ether_type != parse::ETH_P_IP {
        return None;
    }
    let ip = parse::ipv4(ctx).ok()?;
    let local = (maps::config(CONFIG_UNDERLAY_ADDR) as u32).to_be_bytes();
    let fragment = ip.frags[0] & 0x3f != 0 || ip.frags[1] != 0;
    if ip.proto != IPPROTO_UDP || ip.vihl != 0x45 || fragment || ip.dst_addr != local {
        return None;
    }
    let ports = parse::read::<[u16; 2]>(ctx, OUTER_UDP_OFF).ok()?;
    if ports[1] != VXLAN_PORT.to_be() {
        return None;
    }
    let vxlan = parse::read::<[u8; 8]>(ctx, VXLAN_OFF).ok()?;
    if vxlan[0] & 0x08 == 0 {
        return None;
    }
    Some(u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]))
}

/// The local endpoint a frame from the underlay host `from_host` on `vni` with inner header
/// `ip` goes to, if that host may send it there.
#[inline(always)]
fn admit(
    from_host: [u8; 4],
    vni: u32,
    ip: &Ipv4Hdr,
) -> Result<netd_common::OverlayPort, DropReason> {
    let sender = remote(ip.src_addr).ok_or(DropReason::SpoofedIp)?;
    if sender.host != from_host || sender.vni != vni {
        return Err(DropReason::SpoofedIp);
    }
    // SAFETY: copied out at once.
    let port = unsafe { NETD_OVERLAY_PORTS.get(ip.dst_addr) }
        .copied()
        .ok_or(DropReason::UnknownEndpoint)?;
    if port.vni != vni {
        return Err(DropReason::Isolation);
    }
    Ok(port)
}

#[classifier]
pub fn netd_tunnel_ingress(ctx: TcContext) -> i32 {
    match try_device_decap(&ctx) {
        Ok(action) => action,
        Err(reason) => nat::drop(&ctx, reason),
    }
}

/// A frame the kernel's VXLAN device decapsulated.
fn try_device_decap(ctx: &TcContext) -> Result<i32, DropReason> {
    // SAFETY: as in `encap_by_device`.
    let mut key: bpf_tunnel_key = unsafe { zeroed() };
    // SAFETY: our own skb and a stack value of the size given.
    let ret = unsafe {
        bpf_skb_get_tunnel_key(
            ctx.skb.skb.cast(),
            &mut key,
            size_of::<bpf_tunnel_key>() as u32,
            0,
        )
    };
    if ret != 0 {
        return Err(DropReason::Malformed);
    }
    // SAFETY: the kernel filled the IPv4 member (the key was asked for without BPF_F_TUNINFO_IPV6).
    let from_host = unsafe { key.__bindgen_anon_1.remote_ipv4 }.to_be_bytes();
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.ether_type != parse::ETH_P_IP {
        return Err(DropReason::UnsupportedProtocol);
    }
    let ip = parse::ipv4(ctx).map_err(|()| DropReason::Malformed)?;
    let port = admit(from_host, key.tunnel_id, &ip)?;
    ctx.store(0, &port.mac, 0)
        .map_err(|_| DropReason::Malformed)?;
    count(ctx, TUNNEL_STAT_DECAP);
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect_peer(port.ifindex, 0) } as i32)
}
