//! cgroup socket hooks for processes of the host namespace: `connect` and `sendmsg` to a
//! published port on a host address (127.0.0.1 included) go straight to the container, and
//! `getpeername` and `recvmsg` show the address the process asked for. This replaces
//! docker-proxy. A socket of another network namespace is left alone, so several daemons can
//! hook the same cgroup.
use aya_ebpf::{
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
    EbpfContext as _,
};
use netd_common::{SockOrig, CONFIG_NETNS_COOKIE};

use crate::maps::{self, NETD_SOCK_ORIG};

/// Let the call go on.
const ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn netd_sock_connect4(ctx: SockAddrContext) -> i32 {
    to_backend(&ctx);
    ALLOW
}

#[cgroup_sock_addr(sendmsg4)]
pub fn netd_sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    to_backend(&ctx);
    ALLOW
}

#[cgroup_sock_addr(getpeername4)]
pub fn netd_sock_getpeername4(ctx: SockAddrContext) -> i32 {
    to_original(&ctx);
    ALLOW
}

#[cgroup_sock_addr(recvmsg4)]
pub fn netd_sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    to_original(&ctx);
    ALLOW
}

/// Whether the socket lives in the daemon's network namespace.
#[inline(always)]
fn ours(ctx: &SockAddrContext) -> bool {
    let cookie = maps::config(CONFIG_NETNS_COOKIE);
    // SAFETY: a plain helper call on our own context.
    cookie != 0 && unsafe { bpf_get_netns_cookie(ctx.as_ptr()) } == cookie
}

#[inline(always)]
fn to_backend(ctx: &SockAddrContext) {
    if !ours(ctx) {
        return;
    }
    // SAFETY: the context pointer is valid for this run; the fields read are plain integers.
    let sa = unsafe { &mut *ctx.sock_addr };
    let addr = sa.user_ip4.to_ne_bytes();
    let port_be = sa.user_port as u16;
    let Some((_, backend)) = maps::published(sa.protocol as u8, addr, port_be) else {
        return;
    };
    let orig = SockOrig {
        addr,
        port_be,
        _pad: 0,
        backend_addr: backend.addr,
        backend_port_be: backend.port_be,
        _pad2: 0,
    };
    // SAFETY: a plain helper call on our own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if NETD_SOCK_ORIG.insert(cookie, orig, 0).is_err() {
        return;
    }
    sa.user_ip4 = u32::from_ne_bytes(backend.addr);
    sa.user_port = backend.port_be as u32;
}

#[inline(always)]
fn to_original(ctx: &SockAddrContext) {
    if !ours(ctx) {
        return;
    }
    // SAFETY: as above.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(orig) = (unsafe { NETD_SOCK_ORIG.get(cookie) }) else {
        return;
    };
    let sa = unsafe { &mut *ctx.sock_addr };
    if sa.user_ip4.to_ne_bytes() == orig.backend_addr && sa.user_port as u16 == orig.backend_port_be
    {
        sa.user_ip4 = u32::from_ne_bytes(orig.addr);
        sa.user_port = orig.port_be as u32;
    }
}
