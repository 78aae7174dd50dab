//! TC egress of a container's macvlan device, inside the container's namespace: everything the
//! container sends onto the parent's wire passes here. A frame must carry a MAC netd gave one
//! of this host's macvlan devices, and the IPv4 (or ARP sender) address that goes with it;
//! anything else, and anything but IPv4 and ARP, is dropped (anti-spoofing). The program knows
//! devices by their MAC, not their namespace, so a container that takes over both the MAC and
//! the address of another macvlan container of this host is not caught. Nothing else is
//! decided here: macvlan networks are apart by their parents and VLANs. Drops are not counted
//! per port (the device's index is the container namespace's, not the host's).
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    macros::classifier,
    programs::TcContext,
};
use netd_common::{DropReason, Endpoint, MacvlanKey};

use crate::{maps::NETD_MACVLAN, parse, policy};

#[classifier]
pub fn netd_macvlan_egress(ctx: TcContext) -> i32 {
    match check(&ctx) {
        Ok(()) => TC_ACT_OK,
        Err(reason) => {
            if parse::is_probe(&ctx) {
                crate::maps::note_probe_drop(reason);
            }
            TC_ACT_SHOT
        }
    }
}

fn check(ctx: &TcContext) -> Result<(), DropReason> {
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    let key = MacvlanKey {
        mac: eth.src_addr,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once.
    let ep: Endpoint = *unsafe { NETD_MACVLAN.get(key) }.ok_or(DropReason::SpoofedMac)?;
    match eth.ether_type {
        parse::ETH_P_IP => {
            let ip = parse::ipv4(ctx).map_err(|()| DropReason::Malformed)?;
            match ip.src_addr == ep.addr {
                true => Ok(()),
                false => Err(DropReason::SpoofedIp),
            }
        }
        parse::ETH_P_ARP => {
            let arp = parse::arp(ctx).map_err(|()| DropReason::Malformed)?;
            if arp.sha != ep.mac {
                return Err(DropReason::SpoofedMac);
            }
            match policy::sender_ip_ok(&ep, arp.spa) {
                true => Ok(()),
                false => Err(DropReason::SpoofedIp),
            }
        }
        _ => Err(DropReason::UnsupportedProtocol),
    }
}
