/* CLMDB: exposes the system liblmdb (Debian: liblmdb-dev) to Swift. */
#include <lmdb.h>
#include <stdint.h>

/* Helpers for PlinthStorage's leaf-page hints (LeafHints.swift): Swift has
   no prefetch intrinsic, and the hint slots are shared by every event loop,
   so they are read and written with relaxed atomics (plain moves on x86-64
   and arm64) rather than racing plain accesses. */
static inline void plinth_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
static inline uint64_t plinth_load_relaxed(const uint64_t *slot) { return __atomic_load_n(slot, __ATOMIC_RELAXED); }
static inline void plinth_store_relaxed(uint64_t *slot, uint64_t value) { __atomic_store_n(slot, value, __ATOMIC_RELAXED); }
