"""The C source of the compiled tree scorer (see treecode.py and treepack.py).

For each row: find the table row of every feature group (a binary search among thresholds, or
the category value), AND those rows into one reachable-leaves word per tree, take the lowest set
bit of each word as the tree's leaf, and add the leaf values up in tree order. Compiled without
fast-math, so the additions are the ones LightGBM performs.
"""

SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { NAN_RIGHT, NAN_LEFT, NAN_AS_ZERO, ZERO_RIGHT, ZERO_LEFT, CATEGORY };

typedef struct {
  int nf, ng, nt, nb;
  const int32_t *gfeat, *grule, *grows, *gthr, *leaf_base, *booster_end;
  const int64_t *gtab;
  const double *thr, *leaves;
  const uint64_t *tables;
  double kzero;
  uint64_t *reach;
} model_t;

void *cp_model(int nf, int ng, int nt, int nb, const int32_t *gfeat, const int32_t *grule,
               const int32_t *grows, const int64_t *gtab, const int32_t *gthr,
               const double *thr, const uint64_t *tables, const double *leaves,
               const int32_t *leaf_base, const int32_t *booster_end, double kzero) {
  model_t *m = calloc(1, sizeof(model_t));
  if (!m) return 0;
  m->nf = nf; m->ng = ng; m->nt = nt; m->nb = nb; m->gfeat = gfeat; m->grule = grule;
  m->grows = grows; m->gtab = gtab; m->gthr = gthr; m->thr = thr; m->tables = tables;
  m->leaves = leaves; m->leaf_base = leaf_base; m->booster_end = booster_end; m->kzero = kzero;
  m->reach = malloc(sizeof(uint64_t) * (size_t)(nt > 0 ? nt : 1));
  if (!m->reach) { free(m); return 0; }
  return m;
}

void cp_free(void *p) {
  model_t *m = p;
  if (m) { free(m->reach); free(m); }
}

static int32_t below(const double *t, int32_t n, double v) {  /* thresholds < v */
  int32_t lo = 0, hi = n;
  while (lo < hi) { int32_t mid = (lo + hi) >> 1; if (t[mid] < v) lo = mid + 1; else hi = mid; }
  return lo;
}

static int32_t table_row(const model_t *m, int g, double v) {
  int32_t n = m->grows[g];
  const double *t = m->thr + m->gthr[g];
  if (fabs(v) <= m->kzero) v = 0.0;  /* LightGBM's dense reader drops tiny values */
  switch (m->grule[g]) {
    case NAN_RIGHT: return isnan(v) ? n : below(t, n, v);
    case NAN_LEFT: return isnan(v) ? 0 : below(t, n, v);
    case NAN_AS_ZERO: return below(t, n, isnan(v) ? 0.0 : v);
    case ZERO_RIGHT: return (isnan(v) || v == 0.0) ? n : below(t, n, v);
    case ZERO_LEFT: return (isnan(v) || v == 0.0) ? 0 : below(t, n, v);
    default: {  /* int(v) as x86 converts it: NaN and out-of-range values become INT_MIN */
      int32_t i = (v > -2147483649.0 && v < 2147483648.0) ? (int32_t)v : INT32_MIN;
      return (i >= 0 && i < n) ? i : n;
    }
  }
}

/* The AND loop, built for AVX2 and for plain x86-64; the loader picks what the CPU has. */
__attribute__((target_clones("avx2", "default")))
void cp_and(uint64_t *restrict reach, const uint64_t *restrict row, int32_t nt) {
  for (int32_t t = 0; t < nt; ++t) reach[t] &= row[t];
}

static void score_row(const model_t *m, const double *x, double *out) {
  int32_t nt = m->nt;
  uint64_t *reach = m->reach;
  for (int32_t t = 0; t < nt; ++t) reach[t] = ~(uint64_t)0;
  for (int g = 0; g < m->ng; ++g) {
    const uint64_t *row = m->tables + m->gtab[g] + (int64_t)table_row(m, g, x[m->gfeat[g]]) * nt;
    cp_and(reach, row, nt);
  }
  const double *leaves = m->leaves;
  const int32_t *base = m->leaf_base;
  int32_t t = 0;
  for (int b = 0; b < m->nb; ++b) {
    double s = 0.0;  /* in tree order, as LightGBM sums */
    for (; t < m->booster_end[b]; ++t) s += leaves[base[t] + __builtin_ctzll(reach[t])];
    out[b] = s;
  }
}

void cp_score(void *p, const double *X, long n, double *out) {
  const model_t *m = p;
  for (long i = 0; i < n; ++i) score_row(m, X + i * m->nf, out + i * m->nb);
}
"""
