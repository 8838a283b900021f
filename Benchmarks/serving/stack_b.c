/* Stack (b) of Benchmarks/serving: the C reference. Per request, a redis GET
 * of `serve:<id>` (32 float32 values packed little-endian, written by
 * prepare.py) over a blocking TCP socket with a hand-written RESP request,
 * then XGBoost's C API (XGBoosterPredictFromDense, one row) on the values.
 * Closed loop: each connection (a thread with its own socket and its own
 * booster, nthread=1) sends its next request when the last one is scored.
 * Latency runs from the send() of the GET to the score in hand.
 *
 *   stack_b LIBXGBOOST.so MODEL.json PORT KEYSPACE EXPECTED.f64 CONNECTIONS
 *           DURATION_S WARMUP_S MODE SEED [SERVER_PID]
 *
 * MODE: predict (GET + predict) or get (the GET alone). With SERVER_PID the
 * CPU time (user + system, /proc/PID/stat) of redis-server and of this
 * process over the measured seconds is reported, for throughput per core.
 * Every score is compared with EXPECTED (XGBoost's batch prediction of the
 * same row). Prints one JSON object. Traffic goes to 127.0.0.1 only.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NF 32
#define ROW_BYTES (NF * 4)

typedef uint64_t bst_ulong;
static int (*XGBoosterCreate)(void *const *, bst_ulong, void **);
static int (*XGBoosterLoadModel)(void *, const char *);
static int (*XGBoosterSetParam)(void *, const char *, const char *);
static int (*XGBoosterPredictFromDense)(void *, const char *, const char *, void *, bst_ulong const **, bst_ulong *,
                                        const float **);
static const char *(*XGBGetLastError)(void);
static const char *predict_config =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
    "\"strict_shape\": false, \"missing\": NaN}";

static const char *model_path;
static int port, predicting;
static long keyspace;
static double *expected;
static uint64_t warmup_end, deadline;
/* Every thread loads its booster and connects, then all start together. */
static pthread_barrier_t ready, go;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_until(uint64_t t) {
  for (uint64_t n; (n = now_ns()) < t;) {
    struct timespec ts = {(time_t)((t - n) / 1000000000ull), (long)((t - n) % 1000000000ull)};
    nanosleep(&ts, NULL);
  }
}

static void die(const char *what) {
  fprintf(stderr, "stack_b: %s\n", what);
  exit(1);
}

static void *sym(void *h, const char *name) {
  void *p = dlsym(h, name);
  if (!p) die(name);
  return p;
}

struct conn {
  pthread_t thread;
  uint64_t seed;
  uint32_t *lat; /* measured latencies, ns */
  long n, cap;
  long errors, mismatches;
  uint64_t last_done;
  char error[256];
};

static int connect_redis(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Reads one bulk-string answer of a packed row into `row`: 0 on success. */
static int read_row(int fd, char *buf, size_t cap, float *row, struct conn *c) {
  size_t have = 0;
  for (;;) {
    ssize_t n = recv(fd, buf + have, cap - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { snprintf(c->error, sizeof c->error, "redis closed the connection"); return -1; }
    have += (size_t)n;
    char *crlf = memchr(buf, '\r', have);
    if (!crlf || (size_t)(crlf - buf) + 2 > have) continue;
    if (buf[0] != '$') {
      snprintf(c->error, sizeof c->error, "redis answered %.*s", (int)(crlf - buf), buf);
      return -1;
    }
    long len = strtol(buf + 1, NULL, 10);
    if (len != ROW_BYTES) {
      snprintf(c->error, sizeof c->error, "redis returned %ld bytes for a %d-byte row (was the data loaded?)", len,
               ROW_BYTES);
      return -1;
    }
    size_t start = (size_t)(crlf - buf) + 2;
    if (have < start + ROW_BYTES + 2) continue;
    memcpy(row, buf + start, ROW_BYTES); /* little-endian on this machine, as written */
    return 0;
  }
}

static void *run(void *arg) {
  struct conn *c = arg;
  void *booster = NULL;
  if (predicting) {
    XGBoosterCreate(NULL, 0, &booster);
    if (XGBoosterLoadModel(booster, model_path) != 0) die(XGBGetLastError());
    XGBoosterSetParam(booster, "nthread", "1");
  }
  int fd = connect_redis();
  if (fd < 0) die("cannot connect to redis-server");
  pthread_barrier_wait(&ready);
  pthread_barrier_wait(&go);
  uint64_t s = c->seed * 0x2545F4914F6CDD1Dull | 1;
  char req[96], buf[4096], iface[256];
  float row[NF];
  for (;;) {
    uint64_t start = now_ns();
    if (start >= deadline) break;
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    long key = (long)((s * 0x2545F4914F6CDD1Dull) % (uint64_t)keyspace);
    char name[32];
    int nlen = snprintf(name, sizeof name, "serve:%ld", key);
    int len = snprintf(req, sizeof req, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", nlen, name);
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) { snprintf(c->error, sizeof c->error, "send failed"); break; }
    if (read_row(fd, buf, sizeof buf, row, c) != 0) { c->errors++; break; }
    if (predicting) {
      snprintf(iface, sizeof iface,
               "{\"data\": [%lu, true], \"shape\": [1, %d], \"typestr\": \"<f4\", \"version\": 3}",
               (unsigned long)(uintptr_t)row, NF);
      bst_ulong const *shape;
      bst_ulong dim;
      const float *result;
      if (XGBoosterPredictFromDense(booster, iface, predict_config, NULL, &shape, &dim, &result) != 0) {
        snprintf(c->error, sizeof c->error, "xgboost: %s", XGBGetLastError());
        c->errors++;
        break;
      }
      if (fabs((double)result[0] - expected[key]) > 1e-5) c->mismatches++;
    }
    uint64_t done = now_ns();
    if (start >= warmup_end) {
      if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1 << 16;
        c->lat = realloc(c->lat, (size_t)c->cap * sizeof *c->lat);
        if (!c->lat) die("out of memory");
      }
      c->lat[c->n++] = (uint32_t)(done - start > UINT32_MAX ? UINT32_MAX : done - start);
      c->last_done = done;
    }
  }
  close(fd);
  return NULL;
}

/* utime + stime of a process in clock ticks, or -1. */
static long long cpu_ticks(int pid) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  char *p = strrchr(text, ')');
  if (!p) return -1;
  /* After ") " come fields 3 (state) ... 14 (utime), 15 (stime). */
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (long long)(ut + st);
}

static int server_pid;
static double cpu_window_s, server_cpu_s, client_cpu_s;
static void *sample_cpu(void *unused) {
  (void)unused;
  double hz = (double)sysconf(_SC_CLK_TCK);
  sleep_until(warmup_end);
  uint64_t t0 = now_ns();
  long long s0 = cpu_ticks(server_pid), c0 = cpu_ticks(getpid());
  sleep_until(deadline);
  uint64_t t1 = now_ns();
  long long s1 = cpu_ticks(server_pid), c1 = cpu_ticks(getpid());
  if (s0 >= 0 && s1 >= 0 && c0 >= 0 && c1 >= 0) {
    cpu_window_s = (double)(t1 - t0) / 1e9;
    server_cpu_s = (double)(s1 - s0) / hz;
    client_cpu_s = (double)(c1 - c0) / hz;
  }
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 11) {
    fprintf(stderr,
            "usage: stack_b LIBXGBOOST MODEL PORT KEYSPACE EXPECTED.f64 CONNECTIONS DURATION WARMUP predict|get SEED "
            "[SERVER_PID]\n");
    return 2;
  }
  model_path = argv[2];
  port = atoi(argv[3]);
  keyspace = atol(argv[4]);
  int connections = atoi(argv[6]);
  double duration = atof(argv[7]), warmup = atof(argv[8]);
  predicting = strcmp(argv[9], "predict") == 0;
  uint64_t seed = strtoull(argv[10], NULL, 10);
  server_pid = argc > 11 ? atoi(argv[11]) : 0;
  if (keyspace <= 0 || connections <= 0 || connections > 1024 || duration <= 0 || duration > 600 || warmup < 0)
    die("bad arguments");

  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) die(dlerror());
  XGBoosterCreate = sym(h, "XGBoosterCreate");
  XGBoosterLoadModel = sym(h, "XGBoosterLoadModel");
  XGBoosterSetParam = sym(h, "XGBoosterSetParam");
  XGBoosterPredictFromDense = sym(h, "XGBoosterPredictFromDense");
  XGBGetLastError = sym(h, "XGBGetLastError");

  FILE *f = fopen(argv[5], "rb");
  if (!f) die("cannot open the expected scores");
  expected = malloc((size_t)keyspace * sizeof *expected);
  if (!expected || fread(expected, sizeof *expected, (size_t)keyspace, f) != (size_t)keyspace)
    die("the expected scores file is shorter than KEYSPACE");
  fclose(f);

  struct conn *conns = calloc((size_t)connections, sizeof *conns);
  pthread_barrier_init(&ready, NULL, (unsigned)connections + 1);
  pthread_barrier_init(&go, NULL, (unsigned)connections + 1);
  for (int i = 0; i < connections; i++) {
    conns[i].seed = seed + (uint64_t)i * 7919;
    pthread_create(&conns[i].thread, NULL, run, &conns[i]);
  }
  pthread_barrier_wait(&ready); /* boosters loaded, sockets connected: the clock starts now */
  warmup_end = now_ns() + (uint64_t)(warmup * 1e9);
  deadline = warmup_end + (uint64_t)(duration * 1e9);
  pthread_t sampler;
  if (server_pid > 0) pthread_create(&sampler, NULL, sample_cpu, NULL);
  pthread_barrier_wait(&go);
  long total = 0, errors = 0, mismatches = 0;
  uint64_t last = warmup_end;
  const char *first_error = "";
  for (int i = 0; i < connections; i++) {
    pthread_join(conns[i].thread, NULL);
    total += conns[i].n;
    errors += conns[i].errors;
    mismatches += conns[i].mismatches;
    if (conns[i].last_done > last) last = conns[i].last_done;
    if (!*first_error && conns[i].error[0]) first_error = conns[i].error;
  }
  if (server_pid > 0) pthread_join(sampler, NULL);
  uint32_t *all = malloc((size_t)(total ? total : 1) * sizeof *all);
  long k = 0;
  for (int i = 0; i < connections; i++) {
    memcpy(all + k, conns[i].lat, (size_t)conns[i].n * sizeof *all);
    k += conns[i].n;
  }
  qsort(all, (size_t)total, sizeof *all, cmp_u32);
  double sum = 0;
  for (long i = 0; i < total; i++) sum += all[i];
#define PCT(p) (total ? all[(long)((total - 1) * (p))] / 1000.0 : 0.0)
  double seconds = (double)(last - warmup_end) / 1e9;
  double rps = seconds > 0 ? total / seconds : 0;
  printf("{\"stack\": \"b\", \"mode\": \"%s\", \"connections\": %d, \"requests\": %ld, \"seconds\": %.3f, "
         "\"requests_per_second\": %.1f, \"latency_micros\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, "
         "\"p99.9\": %.2f, \"max\": %.2f, \"mean\": %.2f}, \"errors\": %ld, \"first_error\": \"%s\", "
         "\"score_mismatches\": %ld",
         predicting ? "redis_get+xgboost_predict" : "redis_get", connections, total, seconds, rps, PCT(0.5), PCT(0.9),
         PCT(0.99), PCT(0.999), total ? all[total - 1] / 1000.0 : 0.0, total ? sum / total / 1000.0 : 0.0, errors,
         first_error, mismatches);
  if (cpu_window_s > 0) {
    double cores = (server_cpu_s + client_cpu_s) / cpu_window_s;
    printf(", \"cpu\": {\"seconds\": %.3f, \"server_cpu_seconds\": %.2f, \"client_cpu_seconds\": %.2f}, "
           "\"requests_per_cpu_second\": %.0f",
           cpu_window_s, server_cpu_s, client_cpu_s, cores > 0 ? rps / cores : 0.0);
  }
  printf("}\n");
  return errors ? 3 : 0;
}
