//! BTF-described maps that are pinned by name. aya-ebpf's own BTF maps cannot carry a `pinning`
//! attribute yet, and its legacy maps carry no BTF, so `bpftool map dump` would print bare bytes.
//! This is the same libbpf-style definition (a struct of typed pointers in `.maps`) with
//! `pinning = LIBBPF_PIN_BY_NAME` added; lookups go through the plain map helpers.
use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};

use aya_ebpf::helpers::{bpf_map_delete_elem, bpf_map_lookup_elem, bpf_map_update_elem};

/// A map of kernel type `TYPE`, keys `K`, values `V`, `MAX` entries and flags `FLAGS`, pinned
/// under its name. The fields are never read: the loader reads their types from BTF.
#[repr(C)]
pub struct Pinned<const TYPE: usize, K, V, const MAX: usize, const FLAGS: usize = 0> {
    r#type: *const [i32; TYPE],
    key: *const K,
    value: *const V,
    max_entries: *const [i32; MAX],
    map_flags: *const [i32; FLAGS],
    /// `LIBBPF_PIN_BY_NAME`.
    pinning: *const [i32; 1],
    _marker: PhantomData<(K, V)>,
}

// SAFETY: the fields are placeholders patched by the loader and never dereferenced; the kernel
// serialises map access.
unsafe impl<const TYPE: usize, K, V, const MAX: usize, const FLAGS: usize> Sync
    for Pinned<TYPE, K, V, MAX, FLAGS>
{
}

impl<const TYPE: usize, K, V, const MAX: usize, const FLAGS: usize> Pinned<TYPE, K, V, MAX, FLAGS> {
    pub const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
            pinning: core::ptr::null(),
            _marker: PhantomData,
        }
    }

    #[inline(always)]
    fn def(&self) -> *mut c_void {
        core::ptr::from_ref(self).cast_mut().cast()
    }

    /// The value of `key` (this CPU's, for per-CPU maps).
    #[inline(always)]
    pub fn get_ptr_mut(&self, key: impl core::borrow::Borrow<K>) -> Option<*mut V> {
        // SAFETY: a map helper with a valid map and key pointer.
        let value =
            unsafe { bpf_map_lookup_elem(self.def(), core::ptr::from_ref(key.borrow()).cast()) };
        NonNull::new(value.cast::<V>()).map(NonNull::as_ptr)
    }

    /// The value of `key`.
    ///
    /// # Safety
    /// The value may change under the reference (another CPU, the daemon): copy it out at once.
    #[inline(always)]
    pub unsafe fn get(&self, key: impl core::borrow::Borrow<K>) -> Option<&V> {
        // SAFETY: the kernel returned a valid value pointer, live for this program run.
        self.get_ptr_mut(key).map(|v| unsafe { &*v })
    }

    #[inline(always)]
    pub fn insert(
        &self,
        key: impl core::borrow::Borrow<K>,
        value: impl core::borrow::Borrow<V>,
        flags: u64,
    ) -> Result<(), i64> {
        let key = core::ptr::from_ref(key.borrow()).cast();
        let value = core::ptr::from_ref(value.borrow()).cast();
        // SAFETY: a map helper with valid pointers.
        match unsafe { bpf_map_update_elem(self.def(), key, value, flags) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    #[inline(always)]
    pub fn remove(&self, key: impl core::borrow::Borrow<K>) -> Result<(), i64> {
        // SAFETY: a map helper with valid pointers.
        match unsafe { bpf_map_delete_elem(self.def(), core::ptr::from_ref(key.borrow()).cast()) } {
            0 => Ok(()),
            e => Err(e),
        }
    }
}

/// Kernel map types, as the array lengths the definition encodes them with.
pub const HASH: usize = 1;
pub const ARRAY: usize = 2;
pub const PERCPU_HASH: usize = 5;
pub const PERCPU_ARRAY: usize = 6;
pub const LRU_HASH: usize = 9;
pub const LPM_TRIE: usize = 11;
/// `BPF_F_NO_PREALLOC`, required by LPM tries.
pub const NO_PREALLOC: usize = 1;
