/* carprice.runtime._treescore: score LightGBM trees from leaf-mask tables (see treepack.py).

   Scorer(n_features, group_feature, group_rule, group_rows, group_table, group_thr, thresholds,
          tables, leaves, leaf_base, booster_end, kzero)

   holds the eleven arrays through the buffer protocol (no copies; the exporters stay referenced
   and must not change afterwards) after checking that every index they contain stays inside
   them: a table that points outside is refused with ValueError naming the array and the index.

   For each row: find the table row of every feature group (a binary search among thresholds, or
   the category value), AND those rows into one reachable-leaves word per tree, take the lowest
   set bit of each word as the tree's leaf and add the leaf values up in tree order. Built without
   fast-math and with -ffp-contract=off, so the additions are exactly the ones LightGBM performs.
   No state is shared between calls (each call allocates its own words): scorers are
   thread-safe, and the loops run without the GIL. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { NAN_RIGHT, NAN_LEFT, NAN_AS_ZERO, ZERO_RIGHT, ZERO_LEFT, CATEGORY, N_RULES };
enum { GFEAT, GRULE, GROWS, GTAB, GTHR, THR, TABLES, LEAVES, LEAF_BASE, BOOSTER_END, N_ARRAYS };

static const struct {
  const char *name;
  char kind; /* 'i' signed, 'u' unsigned, 'f' float */
  Py_ssize_t size;
} SPEC[N_ARRAYS] = {
    {"group_feature", 'i', 4}, {"group_rule", 'i', 4}, {"group_rows", 'i', 4},
    {"group_table", 'i', 8},   {"group_thr", 'i', 4},  {"thresholds", 'f', 8},
    {"tables", 'u', 8},        {"leaves", 'f', 8},     {"leaf_base", 'i', 4},
    {"booster_end", 'i', 4},
};

typedef struct {
  PyObject_HEAD
  Py_buffer view[N_ARRAYS];
  int held; /* views acquired so far */
  int nf, ng, nt, nb;
  const int32_t *gfeat, *grule, *grows, *gthr, *leaf_base, *booster_end;
  const int64_t *gtab;
  const double *thr, *leaves;
  const uint64_t *tables;
  double kzero;
} Scorer;

/* The AND loop, built for AVX2 and for plain x86-64 where gcc can dispatch at load time (glibc
   ifunc); one plain version elsewhere. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define AND_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef AND_CLONES
#define AND_CLONES
#endif

AND_CLONES
static void and_words(uint64_t *restrict reach, const uint64_t *restrict row, int nt) {
  for (int t = 0; t < nt; ++t) reach[t] &= row[t];
}

static int32_t below(const double *t, int32_t n, double v) { /* thresholds < v */
  int32_t lo = 0, hi = n;
  while (lo < hi) {
    int32_t mid = lo + ((hi - lo) >> 1);
    if (t[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

static int32_t table_row(const Scorer *m, int g, double v) {
  int32_t n = m->grows[g];
  const double *t = m->thr + m->gthr[g];
  if (fabs(v) <= m->kzero) v = 0.0; /* LightGBM's dense reader drops tiny values */
  switch (m->grule[g]) {
    case NAN_RIGHT: return isnan(v) ? n : below(t, n, v);
    case NAN_LEFT: return isnan(v) ? 0 : below(t, n, v);
    case NAN_AS_ZERO: return below(t, n, isnan(v) ? 0.0 : v);
    case ZERO_RIGHT: return (isnan(v) || v == 0.0) ? n : below(t, n, v);
    case ZERO_LEFT: return (isnan(v) || v == 0.0) ? 0 : below(t, n, v);
    default: { /* int(v) as x86 converts it: NaN and out-of-range values become INT_MIN */
      int32_t i = (v > -2147483649.0 && v < 2147483648.0) ? (int32_t)v : INT32_MIN;
      return (i >= 0 && i < n) ? i : n;
    }
  }
}

static const uint64_t *group_row(const Scorer *m, int g, const double *x) {
  return m->tables + m->gtab[g] + (int64_t)table_row(m, g, x[m->gfeat[g]]) * m->nt;
}

static void score(const Scorer *m, const double *x, double *out, uint64_t *reach) {
  int nt = m->nt;
  for (int t = 0; t < nt; ++t) reach[t] = ~(uint64_t)0;
  for (int g = 0; g < m->ng; ++g) and_words(reach, group_row(m, g, x), nt);
  int t = 0;
  for (int b = 0; b < m->nb; ++b) {
    double s = 0.0; /* in tree order, as LightGBM sums */
    for (; t < m->booster_end[b]; ++t) s += m->leaves[m->leaf_base[t] + __builtin_ctzll(reach[t])];
    out[b] = s;
  }
}

/* ---- checks: every index the tables hold stays inside them ---- */

static int kind_of(const Py_buffer *v, char *kind) {
  const char *f = v->format ? v->format : "B";
  if (*f == '@' || *f == '=') f++;
#if PY_LITTLE_ENDIAN
  else if (*f == '<') f++;
#else
  else if (*f == '>') f++;
#endif
  if (!f[0] || f[1]) return 0;
  if (strchr("bhilqn", f[0])) *kind = 'i';
  else if (strchr("BHILQN", f[0])) *kind = 'u';
  else if (f[0] == 'd') *kind = 'f';
  else return 0;
  return 1;
}

static int acquire(Scorer *m, int k, PyObject *obj) {
  Py_buffer *v = &m->view[k];
  char kind = 0;
  if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s: not a C-contiguous array", SPEC[k].name);
    return -1;
  }
  m->held = k + 1;
  if (v->ndim != 1 || !kind_of(v, &kind) || kind != SPEC[k].kind || v->itemsize != SPEC[k].size) {
    PyErr_Format(PyExc_ValueError, "%s: expected a 1-d array of %c%zd, got format %s ndim %d",
                 SPEC[k].name, SPEC[k].kind, SPEC[k].size * 8, v->format ? v->format : "B",
                 v->ndim);
    return -1;
  }
  return 0;
}

static Py_ssize_t count(const Scorer *m, int k) { return m->view[k].len / SPEC[k].size; }

static int refuse(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  PyObject *msg = PyUnicode_FromFormatV(fmt, args);
  va_end(args);
  if (msg) {
    PyErr_SetObject(PyExc_ValueError, msg);
    Py_DECREF(msg);
  }
  return -1;
}

static int check_groups(Scorer *m, const uint64_t *last) {
  Py_ssize_t n_thr = count(m, THR), n_tab = count(m, TABLES), nt = m->nt;
  for (Py_ssize_t g = 0; g < m->ng; ++g) {
    int32_t f = m->gfeat[g], rule = m->grule[g], n = m->grows[g];
    Py_ssize_t start = (Py_ssize_t)m->gtab[g];
    if (f < 0 || f >= m->nf)
      return refuse("group %zd: feature index %d outside [0, %d)", g, f, m->nf);
    if (rule < 0 || rule >= N_RULES) return refuse("group %zd: unknown rule %d", g, rule);
    if (n < 0 || n == INT32_MAX) return refuse("group %zd: %d table rows", g, n);
    if (rule != CATEGORY) {
      Py_ssize_t first = m->gthr[g];
      if (first < 0 || first + n > n_thr)
        return refuse("group %zd: thresholds [%zd, %zd) outside thresholds[0:%zd]", g, first,
                      first + n, n_thr);
      for (int32_t i = 0; i < n; ++i)
        if (isnan(m->thr[first + i]) || (i && !(m->thr[first + i - 1] < m->thr[first + i])))
          return refuse("group %zd: thresholds not strictly increasing at %d", g, i);
    }
    if (start < 0 || start > n_tab || (Py_ssize_t)(n + 1) * nt > n_tab - start)
      return refuse("group %zd: table rows [%zd, %zd) outside tables[0:%zd]", g, start,
                    start + (Py_ssize_t)(n + 1) * nt, n_tab);
    /* The last leaf of a tree is in no node's left subtree, so no mask may clear it: every word
       keeps it, and the AND of any rows leaves at least that leaf (ctz of 0 is undefined). */
    for (int32_t r = 0; r <= n; ++r) {
      const uint64_t *row = m->tables + start + (Py_ssize_t)r * nt;
      for (Py_ssize_t t = 0; t < nt; ++t)
        if (!(row[t] & last[t]))
          return refuse("group %zd, table row %d, tree %zd: the tree's last leaf is masked out",
                        g, r, t);
    }
  }
  return 0;
}

static int check(Scorer *m) {
  Py_ssize_t ng = count(m, GFEAT), nt = count(m, LEAF_BASE), nb = count(m, BOOSTER_END);
  Py_ssize_t n_leaves = count(m, LEAVES);
  if (m->nf < 1) return refuse("n_features %d: at least 1 expected", m->nf);
  for (int k = GRULE; k <= GTHR; ++k)
    if (count(m, k) != ng)
      return refuse("%s has %zd entries, group_feature %zd", SPEC[k].name, count(m, k), ng);
  if (ng > INT32_MAX || nt > INT32_MAX || nb > INT32_MAX) return refuse("too many groups or trees");
  if (nb < 1) return refuse("booster_end: no booster");
  if (!(m->kzero >= 0.0 && m->kzero < 1.0)) return refuse("kzero: not in [0, 1)");
  m->ng = (int)ng; m->nt = (int)nt; m->nb = (int)nb;
  for (Py_ssize_t b = 0, prev = 0; b < nb; prev = m->booster_end[b++])
    if (m->booster_end[b] < prev || m->booster_end[b] > nt)
      return refuse("booster_end[%zd] = %d: not in [%zd, %zd]", b, m->booster_end[b], prev, nt);
  if (m->booster_end[nb - 1] != nt)
    return refuse("booster_end ends at %d, not at the tree count %zd", m->booster_end[nb - 1], nt);
  uint64_t *last = PyMem_Malloc(sizeof(uint64_t) * (size_t)(nt ? nt : 1));
  if (!last) { PyErr_NoMemory(); return -1; }
  for (Py_ssize_t t = 0; t < nt; ++t) {
    Py_ssize_t base = m->leaf_base[t], end = t + 1 < nt ? m->leaf_base[t + 1] : n_leaves;
    if (base < 0 || end > n_leaves || end - base < 1 || end - base > 64) {
      PyMem_Free(last);
      return refuse("tree %zd: leaves [%zd, %zd) are not 1 to 64 leaves inside leaves[0:%zd]", t,
                    base, end, n_leaves);
    }
    last[t] = (uint64_t)1 << (end - base - 1);
  }
  int result = check_groups(m, last);
  PyMem_Free(last);
  return result;
}

static PyObject *Scorer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *names[] = {"n_features", "group_feature", "group_rule", "group_rows", "group_table",
                          "group_thr", "thresholds", "tables", "leaves", "leaf_base",
                          "booster_end", "kzero", NULL};
  PyObject *obj[N_ARRAYS];
  int nf;
  double kzero;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOOOOOOOOOOd:Scorer", names, &nf, &obj[0],
                                   &obj[1], &obj[2], &obj[3], &obj[4], &obj[5], &obj[6], &obj[7],
                                   &obj[8], &obj[9], &kzero))
    return NULL;
  Scorer *m = (Scorer *)type->tp_alloc(type, 0);
  if (!m) return NULL;
  m->nf = nf;
  m->kzero = kzero;
  for (int k = 0; k < N_ARRAYS; ++k)
    if (acquire(m, k, obj[k]) < 0) goto fail;
  m->gfeat = m->view[GFEAT].buf; m->grule = m->view[GRULE].buf; m->grows = m->view[GROWS].buf;
  m->gtab = m->view[GTAB].buf; m->gthr = m->view[GTHR].buf; m->thr = m->view[THR].buf;
  m->tables = m->view[TABLES].buf; m->leaves = m->view[LEAVES].buf;
  m->leaf_base = m->view[LEAF_BASE].buf; m->booster_end = m->view[BOOSTER_END].buf;
  if (check(m) < 0) goto fail;
  return (PyObject *)m;
fail:
  Py_DECREF(m);
  return NULL;
}

static void Scorer_dealloc(Scorer *m) {
  for (int k = 0; k < m->held; ++k) PyBuffer_Release(&m->view[k]);
  Py_TYPE(m)->tp_free((PyObject *)m);
}

/* ---- scoring ---- */

static PyObject *numpy_call(const char *name, PyObject *args, PyObject *kwargs) {
  PyObject *np = PyImport_ImportModule("numpy"), *fn = NULL, *out = NULL;
  if (np) fn = PyObject_GetAttrString(np, name);
  if (fn) out = PyObject_Call(fn, args, kwargs);
  Py_XDECREF(fn);
  Py_XDECREF(np);
  return out;
}

/* A C-contiguous (rows, n_features) float64 view of X, converting X when it is anything else. */
static int matrix_view(const Scorer *m, PyObject *x, Py_buffer *v) {
  char kind = 0;
  int ok = PyObject_GetBuffer(x, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0;
  if (ok && !(v->ndim == 2 && kind_of(v, &kind) && kind == 'f' && v->itemsize == 8)) {
    PyBuffer_Release(v);
    ok = 0;
  }
  if (!ok) {
    PyErr_Clear();
    PyObject *args = Py_BuildValue("(Os)", x, "float64");
    PyObject *arr = args ? numpy_call("ascontiguousarray", args, NULL) : NULL;
    Py_XDECREF(args);
    if (!arr) return -1;
    int got = PyObject_GetBuffer(arr, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT);
    Py_DECREF(arr); /* the view keeps it alive */
    if (got < 0) return -1;
    if (v->ndim != 2) {
      PyBuffer_Release(v);
      PyErr_Format(PyExc_ValueError, "expected a 2-d matrix, got %d dimensions", v->ndim);
      return -1;
    }
  }
  if (v->shape[1] != m->nf) {
    PyErr_Format(PyExc_ValueError, "expected a matrix with %d columns, got %zd", m->nf,
                 v->shape[1]);
    PyBuffer_Release(v);
    return -1;
  }
  return 0;
}

static PyObject *new_array(Py_ssize_t rows, Py_ssize_t cols, const char *dtype, Py_buffer *v) {
  PyObject *args = cols ? Py_BuildValue("((nn)s)", rows, cols, dtype)
                        : Py_BuildValue("((n)s)", rows, dtype);
  PyObject *out = args ? numpy_call("empty", args, NULL) : NULL;
  Py_XDECREF(args);
  if (out && PyObject_GetBuffer(out, v, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) Py_CLEAR(out);
  return out;
}

static PyObject *Scorer_score_matrix(Scorer *m, PyObject *x) {
  Py_buffer in, outv;
  if (matrix_view(m, x, &in) < 0) return NULL;
  Py_ssize_t rows = in.shape[0];
  PyObject *out = new_array(rows, m->nb, "float64", &outv);
  uint64_t *reach = out ? PyMem_RawMalloc(sizeof(uint64_t) * (size_t)(m->nt ? m->nt : 1)) : NULL;
  if (!reach) {
    if (out) { PyBuffer_Release(&outv); Py_DECREF(out); PyErr_NoMemory(); }
    PyBuffer_Release(&in);
    return NULL;
  }
  const double *X = in.buf;
  double *o = outv.buf;
  Py_BEGIN_ALLOW_THREADS
  for (Py_ssize_t i = 0; i < rows; ++i) score(m, X + i * m->nf, o + i * m->nb, reach);
  Py_END_ALLOW_THREADS
  PyMem_RawFree(reach);
  PyBuffer_Release(&outv);
  PyBuffer_Release(&in);
  return out;
}

static PyObject *Scorer_score_row(Scorer *m, PyObject *values) {
  PyObject *seq = PySequence_Fast(values, "score_row expects a sequence of floats");
  if (!seq) return NULL;
  if (PySequence_Fast_GET_SIZE(seq) != m->nf) {
    PyErr_Format(PyExc_ValueError, "expected %d values, got %zd", m->nf,
                 PySequence_Fast_GET_SIZE(seq));
    Py_DECREF(seq);
    return NULL;
  }
  size_t words = (size_t)m->nt + (size_t)m->nf + (size_t)m->nb; /* reach, row, out */
  uint64_t *scratch = PyMem_RawMalloc(sizeof(uint64_t) * (words ? words : 1));
  if (!scratch) { Py_DECREF(seq); return PyErr_NoMemory(); }
  double *x = (double *)(scratch + m->nt), *out = x + m->nf;
  PyObject **items = PySequence_Fast_ITEMS(seq);
  for (int i = 0; i < m->nf; ++i) {
    x[i] = PyFloat_AsDouble(items[i]);
    if (x[i] == -1.0 && PyErr_Occurred()) { PyMem_RawFree(scratch); Py_DECREF(seq); return NULL; }
  }
  Py_DECREF(seq);
  Py_BEGIN_ALLOW_THREADS
  score(m, x, out, scratch);
  Py_END_ALLOW_THREADS
  PyObject *result = PyTuple_New(m->nb);
  for (int b = 0; result && b < m->nb; ++b) {
    PyObject *f = PyFloat_FromDouble(out[b]);
    if (!f) { Py_CLEAR(result); break; }
    PyTuple_SET_ITEM(result, b, f);
  }
  PyMem_RawFree(scratch);
  return result;
}

static PyObject *Scorer_tree_leaves(Scorer *m, PyObject *args) {
  PyObject *x, *trees_obj;
  Py_buffer in, tv, outv;
  char kind = 0;
  if (!PyArg_ParseTuple(args, "OO:tree_leaves", &x, &trees_obj)) return NULL;
  if (matrix_view(m, x, &in) < 0) return NULL;
  if (PyObject_GetBuffer(trees_obj, &tv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    PyBuffer_Release(&in);
    return NULL;
  }
  Py_ssize_t rows = in.shape[0];
  const int32_t *trees = tv.buf;
  const char *bad = NULL;
  if (tv.ndim != 1 || !kind_of(&tv, &kind) || kind != 'i' || tv.itemsize != 4)
    bad = "trees: expected a 1-d int32 array";
  else if (tv.shape[0] != rows)
    bad = "trees: one tree index per row expected";
  for (Py_ssize_t i = 0; !bad && i < rows; ++i)
    if (trees[i] < 0 || trees[i] >= m->nt) bad = "trees: index outside [0, tree count)";
  PyObject *out = bad ? NULL : new_array(rows, 0, "int32", &outv);
  if (!out) {
    if (bad) PyErr_SetString(PyExc_ValueError, bad);
    PyBuffer_Release(&tv);
    PyBuffer_Release(&in);
    return NULL;
  }
  const double *X = in.buf;
  int32_t *o = outv.buf;
  Py_BEGIN_ALLOW_THREADS
  for (Py_ssize_t i = 0; i < rows; ++i) {
    uint64_t reach = ~(uint64_t)0;
    for (int g = 0; g < m->ng; ++g) reach &= group_row(m, g, X + i * m->nf)[trees[i]];
    o[i] = __builtin_ctzll(reach);
  }
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&outv);
  PyBuffer_Release(&tv);
  PyBuffer_Release(&in);
  return out;
}

static PyMethodDef Scorer_methods[] = {
    {"score_matrix", (PyCFunction)Scorer_score_matrix, METH_O,
     "score_matrix(X) -> ndarray (rows, n_boosters): each booster's raw prediction per row."},
    {"score_row", (PyCFunction)Scorer_score_row, METH_O,
     "score_row(values) -> tuple: each booster's raw prediction for one row."},
    {"tree_leaves", (PyCFunction)Scorer_tree_leaves, METH_VARARGS,
     "tree_leaves(X, trees) -> int32 ndarray: the leaf (left-to-right position) that row i "
     "reaches in tree trees[i]."},
    {NULL, NULL, 0, NULL},
};

static PyObject *get_int(Scorer *m, void *which) {
  switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromLong(m->nf);
    case 1: return PyLong_FromLong(m->nb);
    default: return PyLong_FromLong(m->nt);
  }
}

static PyGetSetDef Scorer_getset[] = {
    {"n_features", (getter)get_int, NULL, "columns a row has", (void *)0},
    {"n_boosters", (getter)get_int, NULL, "outputs per row", (void *)1},
    {"n_trees", (getter)get_int, NULL, "trees of all boosters", (void *)2},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "carprice.runtime._treescore.Scorer",
    .tp_doc = PyDoc_STR("Scorer(n_features, group_feature, group_rule, group_rows, group_table, "
                        "group_thr, thresholds, tables, leaves, leaf_base, booster_end, kzero)"),
    .tp_basicsize = sizeof(Scorer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Scorer_new,
    .tp_dealloc = (destructor)Scorer_dealloc,
    .tp_methods = Scorer_methods,
    .tp_getset = Scorer_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_treescore", "Leaf-mask tree scoring (see treepack.py).", -1, NULL,
};

PyMODINIT_FUNC PyInit__treescore(void) {
  if (PyType_Ready(&ScorerType) < 0) return NULL;
  PyObject *mod = PyModule_Create(&module);
  if (!mod) return NULL;
  Py_INCREF(&ScorerType);
  if (PyModule_AddObject(mod, "Scorer", (PyObject *)&ScorerType) < 0) {
    Py_DECREF(&ScorerType);
    Py_DECREF(mod);
    return NULL;
  }
  return mod;
}
