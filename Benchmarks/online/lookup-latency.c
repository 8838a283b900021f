/* lookup-latency: what one mdb_get of a random key costs on the online
 * table of a plinthd data directory, and how much of it a prefetch of the
 * key's leaf page removes (the question behind LeafHints.swift).
 *
 *   cc -O2 -o /tmp/lookup-latency Benchmarks/online/lookup-latency.c -llmdb
 *   /tmp/lookup-latency DATA_DIR KEYS [LINES]
 *
 * DATA_DIR holds an online table of int64 entities 0..<KEYS of one view (as
 * `plinth-bench load` writes it); plinthd may be running on it. Prints ns
 * per lookup, in batches of 100 keys, for: random keys; random keys with
 * each key's leaf page (found beforehand: an oracle) prefetched 4 keys
 * ahead, LINES lines of it (default 16); the same 100 keys over and over
 * (no cache misses: the instructions alone). */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 100, ROUNDS = 20000, AHEAD = 4 };

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
    const char **leaf = malloc(keys * sizeof *leaf);
    unsigned char key[BATCH][12];
    uint64_t ids[BATCH];
    for (uint64_t id = 0; id < keys; id++) {
        unsigned char kb[12];
        make_key(kb, view, id);
        MDB_val kk = {12, kb}, vv;
        leaf[id] = mdb_get(txn, dbi, &kk, &vv) == 0 ? (const char *)((uintptr_t)vv.mv_data & ~(uintptr_t)4095) : NULL;
    }
    const char *names[] = {"random keys", "random keys, leaf prefetched", "the same 100 keys"};
    for (int mode = 0; mode < 3; mode++) {
        double total = 0;
        long found = 0;
        for (int r = 0; r < ROUNDS; r++) {
            if (mode < 2 || r == 0)
                for (int i = 0; i < BATCH; i++) {
                    ids[i] = next_random() % keys;
                    make_key(key[i], view, ids[i]);
                }
            double start = now_ns();
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
