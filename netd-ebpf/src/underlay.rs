//! TC ingress of the underlay device, the one with this host's advertised address: VXLAN frames
//! of the overlay are taken off and delivered into their container here, before the host stack
//! ([`tunnel::decap`]). Everything else goes on untouched, to the uplink program if the device is
//! also an uplink (this program runs first) or to the host.
use aya_ebpf::{macros::classifier, programs::TcContext};

use crate::{nat, tunnel};

#[classifier]
pub fn netd_underlay_ingress(ctx: TcContext) -> i32 {
    match tunnel::decap(&ctx) {
        Ok(action) => action,
        Err(reason) => nat::drop(&ctx, reason),
    }
}
