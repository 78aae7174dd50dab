//! TC ingress of a trunk interface (the base of eBPF 802.1q sub-interfaces, `eth1` of
//! `eth1.10`): a frame tagged with a VLAN that has a sub-interface here loses the tag and goes
//! into that sub-interface, ahead of anything else on the trunk (its own macvlan devices never
//! see it). Untagged frames and other VLANs pass as before (the kernel drops frames of VLANs it
//! does not know).
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_redirect, bpf_skb_vlan_pop},
    macros::classifier,
    programs::TcContext,
};
use netd_common::VlanPort;

use crate::{maps::NETD_VLAN_UNTAG, nat::ifindex};

#[classifier]
pub fn netd_trunk(ctx: TcContext) -> i32 {
    // SAFETY: the skb is valid for this program run; the kernel took the tag off the frame
    // into these fields before TC ingress.
    let (present, tci) = unsafe { ((*ctx.skb.skb).vlan_present, (*ctx.skb.skb).vlan_tci) };
    if present == 0 {
        return TC_ACT_OK;
    }
    let key = VlanPort {
        trunk: ifindex(&ctx),
        vid: (tci & 0x0fff) as u16,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let Some(inner) = (unsafe { NETD_VLAN_UNTAG.get(key) }).copied() else {
        return TC_ACT_OK;
    };
    // SAFETY: plain helper calls on our own skb; the return value of the redirect is the action.
    unsafe {
        if bpf_skb_vlan_pop(ctx.skb.skb.cast()) != 0 {
            return TC_ACT_SHOT;
        }
        bpf_redirect(inner, 0) as i32
    }
}
