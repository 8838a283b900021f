/* CLMDB: exposes the system liblmdb (Debian: liblmdb-dev) to Swift. */
#include <lmdb.h>
