//! TC ingress of the inner end of an eBPF 802.1q sub-interface (`eth1.10` is one end of a veth
//! pair; this program runs on the other): what the sub-interface sends (its macvlan devices'
//! frames) leaves by the trunk with the VLAN's tag. Frames of a port that is not in the map are
//! dropped: nothing leaves untagged. With [`crate::trunk`], this stands in for the kernel's
//! 802.1q driver where the kernel was built without one.
use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_redirect, bpf_skb_vlan_push},
    macros::classifier,
    programs::TcContext,
};

use crate::{maps::NETD_VLAN_TAG, nat::ifindex};

/// The 802.1Q ethertype, in network order as the helper takes it.
const ETH_P_8021Q_BE: u16 = 0x8100u16.to_be();

#[classifier]
pub fn netd_subif(ctx: TcContext) -> i32 {
    // SAFETY: copied out at once.
    let Some(port) = (unsafe { NETD_VLAN_TAG.get(ifindex(&ctx)) }).copied() else {
        return TC_ACT_SHOT;
    };
    // SAFETY: plain helper calls on our own skb; the return value of the redirect is the action.
    unsafe {
        if bpf_skb_vlan_push(ctx.skb.skb.cast(), ETH_P_8021Q_BE, port.vid) != 0 {
            return TC_ACT_SHOT;
        }
        bpf_redirect(port.trunk, 0) as i32
    }
}
