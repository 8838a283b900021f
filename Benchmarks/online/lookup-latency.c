/* lookup-latency: what one mdb_get of a random key costs on the online
 * table of a plinthd data directory, and how much of it a prefetch of the
 * key's leaf page removes (the question behind the leaf-page hints plinthd
 * once kept; removed for TreeSearch.swift, see docs/performance-log.md).
 *
 *   cc -O2 -o /tmp/lookup-latency Benchmarks/online/lookup-latency.c -llmdb
 *   /tmp/lookup-latency DATA_DIR KEYS [LINES]
 *
 * DATA_DIR holds an online table of int64 entities 0..<KEYS of one view (as
 * `plinth-bench load` writes it); plinthd may be running on it. Prints ns
 * per lookup, in batches of 100 keys, for: random keys; random keys with
 * each key's leaf page (found beforehand: an oracle) prefetched 4 keys
 * ahead, LINES lines of it (default 16); the same 100 keys over and over
 * (no cache misses: the instructions alone); random keys searched eight
 * abreast by walking LMDB 0.9's pages, as TreeSearch.swift does (each
 * answer checked against mdb_get's first). */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 100, ROUNDS = 20000, AHEAD = 4, LANES = 8 };

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static uint64_t state = 88172645463325252ull;
static uint64_t next_random(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* The online key: the view id (big-endian, as the first key has it), then
 * the int64 with its sign bit flipped, big-endian (KeyCodec.swift). */
static void make_key(unsigned char key[12], const unsigned char view[4], uint64_t id) {
    uint64_t u = id ^ (1ull << 63);
    memcpy(key, view, 4);
    for (int b = 0; b < 8; b++) key[4 + b] = (unsigned char)(u >> (56 - 8 * b));
}

/* LMDB 0.9's pages (mdb.c): header pgno(8) pad(2) flags(2) lower(2)
 * upper(2), then node offsets; a node is lo hi flags ksize (2 bytes each),
 * key, data. The same walk as TreeSearch.swift, without its checks. */
static const unsigned char *map_base;
static size_t page_size;
static uint64_t root_page;
static inline uint16_t u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline int page_keys(const unsigned char *pg) { return (u16(pg + 12) - 16) >> 1; }
static inline const unsigned char *page_node(const unsigned char *pg, int i) { return pg + u16(pg + 16 + 2 * i); }
static inline int node_compare(const unsigned char *key, size_t size, const unsigned char *node) {
    size_t other = u16(node + 6);
    int c = memcmp(key, node + 8, size < other ? size : other);
    return c ? c : (size < other ? -1 : size > other);
}
static void walk_lanes(unsigned char (*keys)[12], int lanes, const void **out) {
    const unsigned char *pg[LANES];
    int lo[LANES], hi[LANES], exact[LANES];
    for (int j = 0; j < lanes; j++) pg[j] = map_base + root_page * page_size;
    for (;;) {
        int leaf = u16(pg[0] + 10) == 2, active = 0;
        for (int j = 0; j < lanes; j++) {
            lo[j] = leaf ? 0 : 1; hi[j] = page_keys(pg[j]) - 1; exact[j] = 0;
            if (lo[j] <= hi[j]) { active++; __builtin_prefetch(page_node(pg[j], (lo[j] + hi[j]) >> 1)); }
        }
        while (active) {
            active = 0;
            for (int j = 0; j < lanes; j++) {
                if (lo[j] > hi[j]) continue;
                int m = (lo[j] + hi[j]) >> 1, c = node_compare(keys[j], 12, page_node(pg[j], m));
                if (c == 0) { lo[j] = m; hi[j] = m - 1; exact[j] = 1; continue; }
                if (c > 0) lo[j] = m + 1; else hi[j] = m - 1;
                if (lo[j] <= hi[j]) { active++; __builtin_prefetch(page_node(pg[j], (lo[j] + hi[j]) >> 1)); }
            }
        }
        if (leaf) {
            for (int j = 0; j < lanes; j++) out[j] = exact[j] ? page_node(pg[j], lo[j]) + 8 + 12 : NULL;
            return;
        }
        for (int j = 0; j < lanes; j++) {
            const unsigned char *n = page_node(pg[j], exact[j] ? lo[j] : lo[j] - 1);
            uint64_t child = (uint64_t)u16(n) | (uint64_t)u16(n + 2) << 16 | (uint64_t)u16(n + 4) << 32;
            pg[j] = map_base + child * page_size;
            __builtin_prefetch(pg[j]);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATA_DIR KEYS [LINES]\n", argv[0]);
        return 2;
    }
    uint64_t keys = strtoull(argv[2], NULL, 10);
    int lines = argc > 3 ? atoi(argv[3]) : 16;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cursor;
    MDB_val k, v;
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 64);
    mdb_env_set_mapsize(env, 1ull << 36);
    if (mdb_env_open(env, argv[1], MDB_RDONLY | MDB_NOTLS, 0644) || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) ||
        mdb_dbi_open(txn, "online", 0, &dbi) || mdb_cursor_open(txn, dbi, &cursor) ||
        mdb_cursor_get(cursor, &k, &v, MDB_FIRST) || k.mv_size != 12) {
        fprintf(stderr, "%s: no online table of int64 keys there\n", argv[1]);
        return 1;
    }
    unsigned char view[4];
    memcpy(view, k.mv_data, 4);
    /* The walk's start: the table's record in the main table (root page at
     * byte 40), and page 0's address from a main-table page's header. */
    MDB_dbi main_dbi;
    MDB_val name = {6, "online"}, record;
    MDB_stat stat;
    if (mdb_dbi_open(txn, NULL, 0, &main_dbi) || mdb_get(txn, main_dbi, &name, &record) || record.mv_size != 48 ||
        mdb_env_stat(env, &stat)) {
        fprintf(stderr, "%s: no record of the online table\n", argv[1]);
        return 1;
    }
    page_size = stat.ms_psize;
    memcpy(&root_page, (const char *)record.mv_data + 40, 8);
    const unsigned char *record_page = (const unsigned char *)((uintptr_t)record.mv_data & ~(uintptr_t)(page_size - 1));
    uint64_t record_pgno;
    memcpy(&record_pgno, record_page, 8);
    map_base = record_page - record_pgno * page_size;
    const char **leaf = malloc(keys * sizeof *leaf);
    unsigned char key[BATCH][12];
    uint64_t ids[BATCH];
    for (uint64_t id = 0; id < keys; id++) {
        unsigned char kb[12];
        make_key(kb, view, id);
        MDB_val kk = {12, kb}, vv;
        leaf[id] = mdb_get(txn, dbi, &kk, &vv) == 0 ? (const char *)((uintptr_t)vv.mv_data & ~(uintptr_t)4095) : NULL;
    }
    const char *names[] = {"random keys", "random keys, leaf prefetched", "the same 100 keys", "random keys, 8 abreast"};
    const void *walked[BATCH];
    for (int mode = 0; mode < 4; mode++) {
        double total = 0;
        long found = 0;
        for (int r = 0; r < ROUNDS; r++) {
            if (mode != 2 || r == 0)
                for (int i = 0; i < BATCH; i++) {
                    ids[i] = next_random() % keys;
                    make_key(key[i], view, ids[i]);
                }
            if (mode == 3 && r < 100)
                for (int i = 0; i < BATCH; i += LANES) {
                    walk_lanes(key + i, BATCH - i < LANES ? BATCH - i : LANES, walked + i);
                    for (int j = i; j < i + LANES && j < BATCH; j++) {
                        MDB_val kk = {12, key[j]}, vv;
                        if ((mdb_get(txn, dbi, &kk, &vv) == 0 ? vv.mv_data : NULL) != walked[j]) {
                            fprintf(stderr, "the walk and mdb_get disagree on key %lu\n", (unsigned long)ids[j]);
                            return 1;
                        }
                    }
                }
            double start = now_ns();
            if (mode == 3) {
                for (int i = 0; i < BATCH; i += LANES) walk_lanes(key + i, BATCH - i < LANES ? BATCH - i : LANES, walked + i);
                for (int i = 0; i < BATCH; i++) found += walked[i] != NULL;
                total += now_ns() - start;
                continue;
            }
            for (int i = 0; i < BATCH; i++) {
                if (mode == 1 && i + AHEAD < BATCH && leaf[ids[i + AHEAD]])
                    for (int l = 0; l < lines; l++) __builtin_prefetch(leaf[ids[i + AHEAD]] + 64 * l);
                MDB_val kk = {12, key[i]}, vv;
                if (mdb_get(txn, dbi, &kk, &vv) == 0) found++;
            }
            total += now_ns() - start;
        }
        printf("%-30s %6.1f ns per lookup (%ld of %d found)\n", names[mode], total / ROUNDS / BATCH, found, ROUNDS * BATCH);
    }
    return 0;
}
