/* srv tables and atomics: state shared by every process of one server (workers, task workers,
 * the timer process, custom processes) without a database, in the region the master maps before
 * it forks. Tables are declared in the config ([[table]]: name, size in rows, columns of type
 * int (int64_t), float (double) or string (max length)); atomics are named 64-bit counters
 * created on first use.
 *
 * Every function here is safe to call from any srv process and any thread, concurrently with
 * every other: reads take no lock (a per-bucket sequence counter makes them retry while a write
 * is in progress, so a row is never seen half written); writes take a per-bucket lock that a
 * killed holder cannot keep (the next writer takes it over). A process killed in the middle of
 * writing a row may leave that one row with part of the new value (each 8-byte number is either
 * old or new, a string keeps its old or new length); the table itself stays usable.
 * Functions that can fail return >= 0 on success and -errno on failure. */
#ifndef SRV_TABLE_H
#define SRV_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks the public API: srv is built with -fvisibility=hidden, so only these functions are
 * exported from the binary for app modules to call (srv.h uses it too). */
#ifndef SRV_API
#define SRV_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Keys are byte strings of 1..63 bytes, passed NUL-terminated. */
#define SRV_TABLE_KEY_MAX 63

typedef enum { SRV_TABLE_INT = 0, SRV_TABLE_FLOAT = 1, SRV_TABLE_STRING = 2 } srv_table_type_t;

/* A table in the shared region; the same pointer is valid in every srv process. Owned by srv,
 * never freed by the app. */
typedef struct srv_table srv_table_t;

/* Store the table named name in the config in *out (as srv_atomic_find does). Returns 0,
 * -ENOENT when there is none (*out is set to NULL), -EINVAL for a NULL name or out. Look it up
 * once and keep the pointer. */
SRV_API int srv_table_find(const char *name, srv_table_t **out);

SRV_API const char *srv_table_name(const srv_table_t *t);
/* Rows the table can hold ([[table]] size). */
SRV_API int64_t srv_table_capacity(const srv_table_t *t);
/* Rows in use now. */
SRV_API int64_t srv_table_count(const srv_table_t *t);

/* Columns are numbered 0..ncolumns-1 in config order. */
SRV_API int srv_table_ncolumns(const srv_table_t *t);
/* Index of the column called name, or -ENOENT. */
SRV_API int srv_table_column(const srv_table_t *t, const char *name);
/* Name of column col, or NULL for a bad index. */
SRV_API const char *srv_table_column_name(const srv_table_t *t, int col);
/* SRV_TABLE_INT / _FLOAT / _STRING, or -EINVAL for a bad index. */
SRV_API int srv_table_column_type(const srv_table_t *t, int col);
/* Max bytes of a string column (8 for numbers), or -EINVAL. */
SRV_API int srv_table_column_size(const srv_table_t *t, int col);

/* One column value for srv_table_set(). The column is name when name is not NULL, else column.
 * The column's type says which member is read: i (int), f (float) or s/len (string; s need not
 * be NUL-terminated and is copied). */
typedef struct srv_table_field {
    const char *name;
    int column;
    int64_t i;
    double f;
    const void *s;
    size_t len;
} srv_table_field_t;

/* Set n columns of key's row in one step (readers see all of them change at once). A new key
 * gets a row whose other columns are 0 / empty; an existing row keeps its other columns.
 * Returns 0, or -ENOSPC when key is new and the table is full (nothing is evicted; the table's
 * full_failures counter in `srv info` goes up), -ENAMETOOLONG (key > 63 bytes), -EINVAL (empty
 * key, n < 0, bad column index), -ENOENT (unknown column name), -E2BIG (string longer than its
 * column). Nothing is written when it fails. */
SRV_API int srv_table_set(srv_table_t *t, const char *key, const srv_table_field_t *fields, int n);
/* One-column shorthands of srv_table_set(); -EPROTOTYPE when col has another type. */
SRV_API int srv_table_set_int(srv_table_t *t, const char *key, int col, int64_t v);
SRV_API int srv_table_set_float(srv_table_t *t, const char *key, int col, double v);
SRV_API int srv_table_set_string(srv_table_t *t, const char *key, int col, const void *s, size_t len);

/* Atomically add delta to an int column and store the new value in *out (out may be NULL).
 * A missing key is created first with every column 0 (as Swoole does). Returns 0, -ENOSPC,
 * -ENAMETOOLONG, -EINVAL, -EPROTOTYPE (not an int column). Wraps around on overflow. */
SRV_API int srv_table_incr(srv_table_t *t, const char *key, int col, int64_t delta, int64_t *out);
/* srv_table_incr() with -delta. */
SRV_API int srv_table_decr(srv_table_t *t, const char *key, int col, int64_t delta, int64_t *out);
/* The same on a float column. */
SRV_API int srv_table_incr_float(srv_table_t *t, const char *key, int col, double delta, double *out);

/* Bytes of a row copy: the buffer size srv_table_get_row() and srv_table_iter_next() need. */
SRV_API size_t srv_table_row_size(const srv_table_t *t);
/* Copy key's whole row (a consistent snapshot) into row (cap bytes, at least
 * srv_table_row_size(), 8-byte aligned); read it with srv_table_row_*(). Returns 0, -ENOENT,
 * -ERANGE (cap too small), -ENAMETOOLONG, -EINVAL. */
SRV_API int srv_table_get_row(const srv_table_t *t, const char *key, void *row, size_t cap);
/* Columns of a row copy (from srv_table_get_row() or srv_table_iter_next() on the same table).
 * The int and float ones store the value in *out and return 0, or return -EINVAL (bad index)
 * or -EPROTOTYPE (col has another type) and leave *out alone, as srv_table_get_int() does.
 * The string one returns a pointer into row (not NUL-terminated) and its length in *len, or
 * NULL for a bad index or type. */
SRV_API int srv_table_row_int(const srv_table_t *t, const void *row, int col, int64_t *out);
SRV_API int srv_table_row_float(const srv_table_t *t, const void *row, int col, double *out);
SRV_API const char *srv_table_row_string(const srv_table_t *t, const void *row, int col, size_t *len);

/* One column of key's row. Return 0, -ENOENT (no such key), -EPROTOTYPE (col has another type),
 * -EINVAL, -ENAMETOOLONG. get_string copies the value NUL-terminated into buf and returns its
 * length, or -ERANGE when buf cannot hold it and the NUL. */
SRV_API int srv_table_get_int(const srv_table_t *t, const char *key, int col, int64_t *out);
SRV_API int srv_table_get_float(const srv_table_t *t, const char *key, int col, double *out);
SRV_API int srv_table_get_string(const srv_table_t *t, const char *key, int col, char *buf, size_t cap);

/* 1 when key has a row, 0 when not, -ENAMETOOLONG / -EINVAL for a bad key. */
SRV_API int srv_table_exists(const srv_table_t *t, const char *key);
/* Remove key's row; its slot is reused by later inserts. Returns 0 or -ENOENT. */
SRV_API int srv_table_del(srv_table_t *t, const char *key);

/* Walk the live rows: caller-owned state, no lock held between calls, so it is safe while other
 * processes write. Each row returned is a consistent snapshot; rows added or removed during the
 * walk may or may not be seen; a row is never returned twice unless it was deleted and added
 * again meanwhile. */
typedef struct srv_table_iter {
    const srv_table_t *t;
    uint32_t pos;
    char key[SRV_TABLE_KEY_MAX + 1]; /* the current row's key, NUL-terminated */
    size_t klen;
} srv_table_iter_t;

SRV_API void srv_table_iter_init(srv_table_iter_t *it, const srv_table_t *t);
/* Move to the next live row: its key goes to it->key, its row copy to row (cap bytes, as for
 * srv_table_get_row(); row may be NULL for keys only). Returns 1 for a row, 0 at the end,
 * -ERANGE when cap is too small. */
SRV_API int srv_table_iter_next(srv_table_iter_t *it, void *row, size_t cap);

/* ---- atomics ---- */

/* A named 64-bit counter in the shared region; the same pointer is valid in every srv process.
 * Owned by srv. */
typedef struct srv_atomic srv_atomic_t;

/* Names are 1..47 bytes. */
#define SRV_ATOMIC_NAME_MAX 47
/* Counters one server can hold. */
#define SRV_ATOMIC_MAX 256

/* Find the counter called name, creating it (value 0) on first use, and store it in *out.
 * Callable from any process; two processes creating the same name get the same counter.
 * Returns 0, -ENOSPC (SRV_ATOMIC_MAX counters exist), -ENAMETOOLONG, -EINVAL (empty name),
 * -ENODEV (no shared region: called outside a server). Look it up once and keep the pointer. */
SRV_API int srv_atomic_find(const char *name, srv_atomic_t **out);
/* Add / subtract and return the new value (wraps around on overflow). */
SRV_API int64_t srv_atomic_add(srv_atomic_t *a, int64_t delta);
SRV_API int64_t srv_atomic_sub(srv_atomic_t *a, int64_t delta);
SRV_API int64_t srv_atomic_get(const srv_atomic_t *a);
SRV_API void srv_atomic_set(srv_atomic_t *a, int64_t v);
/* Compare-and-swap: store desired when the value is expected; true when it did. */
SRV_API bool srv_atomic_cmpset(srv_atomic_t *a, int64_t expected, int64_t desired);
/* Sleep until the value differs from expected and a srv_atomic_wakeup() (or the timeout) comes.
 * Returns 0 at once when the value already differs, 0 after a wakeup that finds it changed,
 * -ETIMEDOUT after timeout_ms (< 0: no timeout), -EINTR when a signal interrupted the wait.
 * Changing the value does not wake sleepers by itself: call srv_atomic_wakeup() after. */
SRV_API int srv_atomic_wait(srv_atomic_t *a, int64_t expected, int timeout_ms);
/* Wake up to n sleepers (n <= 0: all). Returns how many were woken, or -errno. */
SRV_API int srv_atomic_wakeup(srv_atomic_t *a, int n);

#ifdef __cplusplus
}
#endif

#endif
