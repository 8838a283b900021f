/* CLMDB: exposes the system liblmdb (Debian: liblmdb-dev) to Swift. */
#include <lmdb.h>
#include <stdint.h>

/* For PlinthStorage's batched tree search (TreeSearch.swift): Swift has no
   prefetch intrinsic. */
static inline void plinth_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
