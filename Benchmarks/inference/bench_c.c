/* The C side of Benchmarks/inference: times the peers on the same models and
 * rows as plinth-inference-bench, with the same method. Single row: each call
 * timed alone with CLOCK_MONOTONIC, the timer's own cost subtracted, p50 and
 * p99 of 20,000 calls, plus the mean of a tight loop. Batch: all rows, best
 * of 5, on 1 and 2 threads, as rows per wall-second and per CPU-second.
 * Prints one JSON object per measurement.
 *
 *   bench_c xgboost  LIBXGBOOST.so MODEL ROWS.f32 LABEL
 *   bench_c lightgbm LIB_LIGHTGBM.so MODEL ROWS.f32 LABEL
 *   bench_c tl2cgen  COMPILED.so ROWS.f32 LABEL
 *   bench_c lleaves  - ROWS.f32 LABEL      (lleaves object linked in)
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NF 32
#define SAMPLES 20000
#define LOOPS 100000

static double now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static float *rows;
static long nrows;
static volatile double sink;
static const char *impl, *label;

typedef void (*row_fn)(const float *row, double *out);
typedef void (*range_fn)(long begin, long end, double *out);

/* Single-row latency of `fn` over the rows. */
static void single(row_fn fn) {
  static double t[SAMPLES], over[SAMPLES];
  double out[16];
  for (int i = 0; i < SAMPLES; i++) {
    double a = now_ns(CLOCK_MONOTONIC), b = now_ns(CLOCK_MONOTONIC);
    over[i] = b - a;
  }
  qsort(over, SAMPLES, sizeof(double), cmp_double);
  double timer = over[SAMPLES / 2];
  for (int i = 0; i < 2000; i++) fn(rows + (i % nrows) * NF, out);
  for (int i = 0; i < SAMPLES; i++) {
    const float *r = rows + (i % nrows) * NF;
    double a = now_ns(CLOCK_MONOTONIC);
    fn(r, out);
    double b = now_ns(CLOCK_MONOTONIC);
    t[i] = b - a - timer > 0 ? b - a - timer : 0;
    sink += out[0];
  }
  double a = now_ns(CLOCK_MONOTONIC);
  for (int i = 0; i < LOOPS; i++) {
    fn(rows + (i % nrows) * NF, out);
    sink += out[0];
  }
  double mean = (now_ns(CLOCK_MONOTONIC) - a) / LOOPS;
  qsort(t, SAMPLES, sizeof(double), cmp_double);
  printf("{\"impl\":\"%s\",\"model\":\"%s\",\"what\":\"single\",\"p50_ns\":%.0f,\"p99_ns\":%.0f,"
         "\"mean_ns\":%.1f,\"timer_ns\":%.0f}\n",
         impl, label, t[SAMPLES / 2], t[SAMPLES * 99 / 100], mean, timer);
}

struct job { range_fn fn; long begin, end; double *out; };
static void *run_job(void *p) {
  struct job *j = p;
  j->fn(j->begin, j->end, j->out);
  return NULL;
}

/* Batch throughput, best of 5. With `split`, `threads` pthreads each score a
 * share of the rows with `fn`; without, one call scores all rows and the
 * library threads it itself (`threads` is what it was configured with). */
static void batch(range_fn fn, int threads, int split) {
  double *out = calloc(nrows * 4, sizeof(double));
  double best = 1e300, best_cpu = 1e300;
  for (int rep = 0; rep < 5; rep++) {
    double w = now_ns(CLOCK_MONOTONIC), c = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (!split || threads == 1) {
      fn(0, nrows, out);
    } else {
      pthread_t th[8];
      struct job jobs[8];
      for (int k = 0; k < threads; k++) {
        jobs[k] = (struct job){fn, nrows * k / threads, nrows * (k + 1) / threads, out};
        pthread_create(&th[k], NULL, run_job, &jobs[k]);
      }
      for (int k = 0; k < threads; k++) pthread_join(th[k], NULL);
    }
    double dw = now_ns(CLOCK_MONOTONIC) - w, dc = now_ns(CLOCK_PROCESS_CPUTIME_ID) - c;
    if (dw < best) best = dw;
    if (dc < best_cpu) best_cpu = dc;
  }
  sink += out[0];
  printf("{\"impl\":\"%s\",\"model\":\"%s\",\"what\":\"batch\",\"threads\":%d,\"rows\":%ld,"
         "\"rows_per_s\":%.0f,\"rows_per_cpu_s\":%.0f}\n",
         impl, label, threads, nrows, nrows / best * 1e9, nrows / best_cpu * 1e9);
  free(out);
}
static void batch_threads(range_fn fn, int threads) { batch(fn, threads, 1); }
static void batch_library(range_fn fn, int threads) { batch(fn, threads, 0); }

static void *must_dlopen(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) { fprintf(stderr, "dlopen %s: %s\n", path, dlerror()); exit(1); }
  return h;
}
static void *sym(void *h, const char *name) {
  void *p = dlsym(h, name);
  if (!p) { fprintf(stderr, "missing symbol %s\n", name); exit(1); }
  return p;
}

/* ---- XGBoost C API ---- */
typedef uint64_t bst_ulong;
static int (*XGBoosterCreate)(void *const *, bst_ulong, void **);
static int (*XGBoosterLoadModel)(void *, const char *);
static int (*XGBoosterSetParam)(void *, const char *, const char *);
static int (*XGBoosterPredictFromDense)(void *, const char *, const char *, void *, bst_ulong const **,
                                        bst_ulong *, const float **);
static const char *(*XGBGetLastError)(void);
static void *booster;
static const char *xgb_config =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
    "\"strict_shape\": false, \"missing\": NaN}";

static void xgb_predict(const float *data, long n, double *out) {
  char iface[256];
  snprintf(iface, sizeof iface,
           "{\"data\": [%lu, true], \"shape\": [%ld, %d], \"typestr\": \"<f4\", \"version\": 3}",
           (unsigned long)(uintptr_t)data, n, NF);
  bst_ulong const *shape;
  bst_ulong dim;
  const float *result;
  if (XGBoosterPredictFromDense(booster, iface, xgb_config, NULL, &shape, &dim, &result) != 0) {
    fprintf(stderr, "xgboost: %s\n", XGBGetLastError());
    exit(1);
  }
  for (long i = 0; i < n; i++) out[i] = result[i];
}
static void xgb_row(const float *row, double *out) { xgb_predict(row, 1, out); }
static void xgb_range(long b, long e, double *out) { xgb_predict(rows + b * NF, e - b, out + b); }

/* ---- LightGBM C API ---- */
static int (*LGBM_BoosterCreateFromModelfile)(const char *, int *, void **);
static int (*LGBM_BoosterPredictForMatSingleRowFastInit)(void *, int, int, int, int, int32_t, const char *,
                                                         void **);
static int (*LGBM_BoosterPredictForMatSingleRowFast)(void *, const void *, int64_t *, double *);
static int (*LGBM_BoosterPredictForMat)(void *, const void *, int, int32_t, int32_t, int, int, int, int,
                                        const char *, int64_t *, double *);
static void *lgb, *lgb_fast;
static const char *lgb_params = "num_threads=1";
static void lgb_row(const float *row, double *out) {
  int64_t len;
  LGBM_BoosterPredictForMatSingleRowFast(lgb_fast, row, &len, out);
}
static void lgb_range(long b, long e, double *out) {
  int64_t len;
  LGBM_BoosterPredictForMat(lgb, rows + b * NF, 0, (int32_t)(e - b), NF, 1, 0, 0, -1, lgb_params, &len, out + b);
}

/* ---- tl2cgen ----
 * The generated predict() takes float32 or float64 entries and writes float32
 * or float64 results, as get_threshold_type() / get_leaf_output_type() say
 * (XGBoost and LightGBM: float32 / float32 or float64; scikit-learn: float64),
 * one per target and class: the result buffer holds up to 64. */
union Entry { int missing; float fvalue; int qvalue; };
union Entry64 { int missing; double fvalue; int qvalue; };
static void (*tl_predict)(void *, int, void *);
static int tl_f64_in, tl_f64_out;
static void tl_row(const float *row, double *out) {
  union { double d[64]; float f[128]; } r;
  if (tl_f64_in) {
    union Entry64 e[NF];
    for (int j = 0; j < NF; j++) {
      if (isnan(row[j])) e[j].missing = -1; else e[j].fvalue = row[j];
    }
    tl_predict(e, 0, &r);
  } else {
    union Entry e[NF];
    for (int j = 0; j < NF; j++) {
      if (isnan(row[j])) e[j].missing = -1; else e[j].fvalue = row[j];
    }
    tl_predict(e, 0, &r);
  }
  out[0] = tl_f64_out ? r.d[0] : r.f[0];
}
static void tl_range(long b, long e, double *out) {
  for (long i = b; i < e; i++) tl_row(rows + i * NF, out + i);
}
/* ---- lleaves (object linked in when built with -DWITH_LLEAVES) ---- */
#ifdef WITH_LLEAVES
void forest_root(double *data, double *out, int start, int end);
static void ll_row(const float *row, double *out) {
  double d[NF];
  for (int j = 0; j < NF; j++) d[j] = row[j];
  forest_root(d, out, 0, 1);
}
static void ll_range(long b, long e, double *out) {
  /* lleaves takes float64 rows; converting a block at a time is part of its cost. */
  double buf[256 * NF];
  for (long s = b; s < e; s += 256) {
    long n = e - s < 256 ? e - s : 256;
    for (long k = 0; k < n * NF; k++) buf[k] = rows[s * NF + k];
    forest_root(buf, out + s, 0, (int)n);
  }
}
#endif

static void load_rows(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  rows = malloc(bytes);
  if (fread(rows, 1, bytes, f) != (size_t)bytes) { perror("read"); exit(1); }
  fclose(f);
  nrows = bytes / (NF * sizeof(float));
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "see the comment at the top of bench_c.c\n"); return 2; }
  impl = argv[1];
  if (!strcmp(impl, "xgboost") || !strcmp(impl, "lightgbm")) {
    if (argc < 6) return 2;
    load_rows(argv[4]);
    label = argv[5];
  } else {
    load_rows(argv[3]);
    label = argv[4];
  }
  if (!strcmp(impl, "xgboost")) {
    void *h = must_dlopen(argv[2]);
    XGBoosterCreate = sym(h, "XGBoosterCreate");
    XGBoosterLoadModel = sym(h, "XGBoosterLoadModel");
    XGBoosterSetParam = sym(h, "XGBoosterSetParam");
    XGBoosterPredictFromDense = sym(h, "XGBoosterPredictFromDense");
    XGBGetLastError = sym(h, "XGBGetLastError");
    XGBoosterCreate(NULL, 0, &booster);
    if (XGBoosterLoadModel(booster, argv[3]) != 0) { fprintf(stderr, "%s\n", XGBGetLastError()); return 1; }
    XGBoosterSetParam(booster, "nthread", "1");
    single(xgb_row);
    batch_threads(xgb_range, 1);
    /* Two threads: XGBoost's own threading over the whole batch. */
    XGBoosterSetParam(booster, "nthread", "2");
    batch_library(xgb_range, 2);
  } else if (!strcmp(impl, "lightgbm")) {
    void *h = must_dlopen(argv[2]);
    LGBM_BoosterCreateFromModelfile = sym(h, "LGBM_BoosterCreateFromModelfile");
    LGBM_BoosterPredictForMatSingleRowFastInit = sym(h, "LGBM_BoosterPredictForMatSingleRowFastInit");
    LGBM_BoosterPredictForMatSingleRowFast = sym(h, "LGBM_BoosterPredictForMatSingleRowFast");
    LGBM_BoosterPredictForMat = sym(h, "LGBM_BoosterPredictForMat");
    int iters;
    if (LGBM_BoosterCreateFromModelfile(argv[3], &iters, &lgb) != 0) return 1;
    LGBM_BoosterPredictForMatSingleRowFastInit(lgb, 0, 0, -1, 0, NF, "num_threads=1", &lgb_fast);
    single(lgb_row);
    batch_threads(lgb_range, 1);
    /* Two threads: LightGBM's own threading over the whole batch. */
    lgb_params = "num_threads=2";
    batch_library(lgb_range, 2);
  } else if (!strcmp(impl, "tl2cgen")) {
    void *h = must_dlopen(argv[2]);
    tl_predict = sym(h, "predict");
    const char *(*tt)(void) = dlsym(h, "get_threshold_type"), *(*lt)(void) = dlsym(h, "get_leaf_output_type");
    tl_f64_in = tt && !strcmp(tt(), "float64");
    tl_f64_out = lt && !strcmp(lt(), "float64");
    single(tl_row);
    batch_threads(tl_range, 1);
    batch_threads(tl_range, 2);
  } else if (!strcmp(impl, "lleaves")) {
#ifdef WITH_LLEAVES
    single(ll_row);
    batch_threads(ll_range, 1);
    batch_threads(ll_range, 2);
#else
    fprintf(stderr, "built without lleaves\n");
    return 2;
#endif
  } else {
    fprintf(stderr, "unknown implementation %s\n", impl);
    return 2;
  }
  return sink == 12345.678 ? 3 : 0;
}
