/* Shared-memory tables: fixed-size rows in the shared region, found in O(1) through a bucket
 * array of chain heads (separate chaining through a `next` index in each row), free rows kept on
 * a lock-free stack. Readers never lock: each bucket has a sequence counter that writers make odd
 * while they change the bucket's chain or any of its rows, and readers retry when it was odd or
 * moved. Writers serialize per bucket on a pid-stamped lock that the next writer (or a reader
 * stuck on an odd sequence) takes over when its holder died; see "Dying writers" below. */
#include "core/shm/table.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/base/log.h"
#include "core/shm/shm.h"

/* Dying writers. A write takes its bucket's lock, makes the sequence odd, changes memory with
 * single stores, makes the sequence even and unlocks. A process killed in between leaves the
 * lock word holding its pid and the sequence odd. The next writer (or a reader that has seen the
 * sequence odd for long) finds the pid gone and takes the lock over (srv__shm_lock), then
 * repairs the bucket: rows on its chain that are not LIVE are unlinked and freed, and the
 * sequence is made even again. A new row is linked while still FREE and marked LIVE last, and a
 * deleted row is marked FREE first, so a killed insert or delete is rolled back or completed by
 * that repair. What a killed writer can leave behind: the one row it was updating, with some
 * columns new and some old (every 8-byte number and every string length/bytes pair is written
 * before the sequence closes, but not all of them atomically together); the row count off by
 * one when it died between two adjacent stores; and one row slot lost when it died between
 * taking a slot off the free list and linking it (two instructions apart). Never a frozen
 * table. */

#define ROW_FREE 0u
#define ROW_LIVE 1u

typedef struct row {
    uint32_t next;  /* 1-based index of the next row on the bucket chain or free list, 0 ends */
    uint32_t state; /* ROW_FREE / ROW_LIVE; written with release, read with acquire */
    uint64_t hash;
    uint8_t klen;
    char key[SRV_TABLE_KEY_MAX];
    /* column data follows, 8-byte aligned */
} row_t;

typedef struct bucket {
    uint32_t seq;  /* odd while a writer changes the chain or one of its rows */
    uint32_t head; /* 1-based index of the first row, 0 = empty */
    int32_t lock;  /* holder's pid, 0 = free (srv__shm_lock) */
    uint32_t pad;
} bucket_t;

typedef struct column {
    char name[SRV_CONFIG_NAME_MAX];
    int32_t type;
    int32_t size;    /* string max bytes; 8 for numbers */
    uint32_t offset; /* in the row's data; strings are a uint16_t length then the bytes */
    uint32_t pad;
} column_t;

struct srv_table {
    char name[SRV_CONFIG_NAME_MAX];
    int32_t ncolumns;
    uint32_t capacity;
    uint32_t nbuckets; /* a power of two */
    uint32_t data_size;
    uint32_t stride; /* bytes per row slot: header + data */
    uint32_t pad;
    uint64_t buckets_off; /* offsets from the table's own start: the region holds no pointers */
    uint64_t rows_off;
    uint64_t bytes;
    column_t columns[SRV_CONFIG_MAX_COLUMN];
    /* Counters written by every process get their own cache lines, away from the read-mostly
     * fields above. */
    alignas(64) uint64_t free_head; /* ABA tag << 32 | 1-based row index */
    uint32_t hwm;                   /* highest row index ever taken: iterators stop there */
    alignas(64) int64_t count;
    uint64_t full_failures;
    uint64_t steals;
};

_Static_assert(sizeof(row_t) == 80, "row header must keep the data 8-byte aligned");

int srv__table_test_crash;

static inline void crash_point(int where)
{
    if (__builtin_expect(srv__table_test_crash == where, 0))
        raise(SIGKILL);
}

static struct {
    srv_table_t *tables[SRV_CONFIG_MAX_TABLE];
    int n;
} g_tables;

/* ---- hashing ---- */

static inline uint64_t rd8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* wyhash's structure (a 64x64->128 multiply folded, over 16-byte steps) trimmed for keys of at
 * most a few dozen bytes: a handful of multiplies, no byte loop, and every output bit depends on
 * every input bit, so the low bits that pick a bucket are as good as the high ones. */
uint64_t srv__table_hash(const void *key, size_t len)
{
    static const uint64_t s0 = 0xa0761d6478bd642full, s1 = 0xe7037ed1a0b428dbull,
                          s2 = 0x8ebc6af09c88c6e3ull;
    const uint8_t *p = key;
    uint64_t seed = mum(s0 ^ len, s1);
    uint64_t a, b;
    if (len <= 16) {
        if (len >= 4) {
            a = (rd4(p) << 32) | rd4(p + ((len >> 3) << 2));
            b = (rd4(p + len - 4) << 32) | rd4(p + len - 4 - ((len >> 3) << 2));
        } else if (len > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        while (i > 16) {
            seed = mum(rd8(p) ^ s1, rd8(p + 8) ^ seed);
            p += 16;
            i -= 16;
        }
        a = rd8(p + i - 16);
        b = rd8(p + i - 8);
    }
    return mum(s2 ^ len, mum(a ^ s1, b ^ seed));
}

/* ---- layout ---- */

static inline bucket_t *bucket_at(const srv_table_t *t, uint64_t h)
{
    return (bucket_t *)((char *)t + t->buckets_off) + (h & (t->nbuckets - 1));
}

static inline row_t *row_at(const srv_table_t *t, uint32_t i)
{
    return (row_t *)((char *)t + t->rows_off + (size_t)i * t->stride);
}

static inline char *row_data(row_t *r)
{
    return (char *)(r + 1);
}

static uint32_t next_pow2(uint32_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

typedef struct layout {
    uint32_t data_size, stride, nbuckets;
    size_t buckets_off, rows_off, bytes;
} layout_t;

/* The table's size in the region; -EINVAL (logged) for what a loader should have refused. */
static int table_layout(const srv__table_config_t *tc, column_t *cols, layout_t *lo)
{
    /* Sizing (cols == NULL) stays quiet: creation logs the same problem once. */
    srv__log_level_t lvl = cols != NULL ? SRV_LOG_ERROR : SRV_LOG_DEBUG;
    if (tc->name[0] == '\0' || strnlen(tc->name, sizeof(tc->name)) == sizeof(tc->name)) {
        srv__log(lvl, "table", 0, "table without a valid name");
        return -EINVAL;
    }
    /* Row indexes are 32-bit with 0 meaning none. */
    if (tc->size < 1 || tc->size > (1 << 30)) {
        srv__log(lvl, "table", 0, "table %s: size %lld out of 1..%d", tc->name, (long long)tc->size,
                1 << 30);
        return -EINVAL;
    }
    if (tc->ncolumns < 0 || tc->ncolumns > SRV_CONFIG_MAX_COLUMN) {
        srv__log(lvl, "table", 0, "table %s: %d columns", tc->name, tc->ncolumns);
        return -EINVAL;
    }
    size_t off = 0;
    for (int i = 0; i < tc->ncolumns; i++) {
        const srv__column_config_t *c = &tc->columns[i];
        if (c->name[0] == '\0' || strnlen(c->name, sizeof(c->name)) == sizeof(c->name)) {
            srv__log(lvl, "table", 0, "table %s: column %d without a valid name", tc->name, i);
            return -EINVAL;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(tc->columns[j].name, c->name) == 0) {
                srv__log(lvl, "table", 0, "table %s: column %s declared twice", tc->name, c->name);
                return -EINVAL;
            }
        }
        int32_t size;
        if (c->type == SRV_COL_INT || c->type == SRV_COL_FLOAT) {
            off = align_up(off, 8);
            size = 8;
        } else if (c->type == SRV_COL_STRING) {
            /* The length prefix is 16-bit. */
            if (c->size < 1 || c->size > 65535) {
                srv__log(lvl, "table", 0, "table %s: column %s: size %d out of 1..65535", tc->name,
                        c->name, c->size);
                return -EINVAL;
            }
            off = align_up(off, 2);
            size = c->size;
        } else {
            srv__log(lvl, "table", 0, "table %s: column %s: unknown type %d", tc->name, c->name,
                    (int)c->type);
            return -EINVAL;
        }
        if (cols != NULL) {
            memset(&cols[i], 0, sizeof(cols[i]));
            snprintf(cols[i].name, sizeof(cols[i].name), "%s", c->name);
            cols[i].type = (int32_t)c->type;
            cols[i].size = size;
            cols[i].offset = (uint32_t)off;
        }
        off += c->type == SRV_COL_STRING ? 2 + (size_t)size : 8;
    }
    lo->data_size = (uint32_t)align_up(off, 8);
    lo->stride = (uint32_t)sizeof(row_t) + lo->data_size;
    /* Index at least as large as the table: chains average at most one row. */
    lo->nbuckets = next_pow2((uint32_t)tc->size);
    lo->buckets_off = align_up(sizeof(srv_table_t), 64);
    lo->rows_off = align_up(lo->buckets_off + (size_t)lo->nbuckets * sizeof(bucket_t), 64);
    lo->bytes = align_up(lo->rows_off + (size_t)tc->size * lo->stride, 64);
    return 0;
}

size_t srv__tables_region_size(const srv__config_t *cfg)
{
    size_t total = 64;
    for (int i = 0; i < cfg->ntable && i < SRV_CONFIG_MAX_TABLE; i++) {
        layout_t lo;
        if (table_layout(&cfg->table[i], NULL, &lo) == 0)
            total += lo.bytes + 64;
    }
    return total;
}

/* The region is going away (its forget hook), or creation starts over. */
static void tables_forget(void)
{
    memset(&g_tables, 0, sizeof(g_tables));
}

int srv__tables_create(const srv__config_t *cfg)
{
    if (srv__shm_base() == NULL)
        return -ENODEV;
    if (cfg->ntable < 0 || cfg->ntable > SRV_CONFIG_MAX_TABLE)
        return -EINVAL;
    tables_forget();
    int rc = srv__shm_on_forget(tables_forget);
    if (rc < 0)
        return rc;
    for (int i = 0; i < cfg->ntable; i++) {
        const srv__table_config_t *tc = &cfg->table[i];
        for (int j = 0; j < i; j++) {
            if (strcmp(cfg->table[j].name, tc->name) == 0) {
                srv__log(SRV_LOG_ERROR, "table", 0, "table %s declared twice", tc->name);
                rc = -EINVAL;
                goto fail;
            }
        }
        column_t cols[SRV_CONFIG_MAX_COLUMN];
        layout_t lo;
        rc = table_layout(tc, cols, &lo);
        if (rc < 0)
            goto fail;
        srv_table_t *t = srv__shm_alloc(lo.bytes, 64);
        if (t == NULL) {
            srv__log(SRV_LOG_ERROR, "table", 0, "table %s: shared region too small for %zu bytes",
                    tc->name, lo.bytes);
            rc = -ENOMEM;
            goto fail;
        }
        snprintf(t->name, sizeof(t->name), "%s", tc->name);
        t->ncolumns = tc->ncolumns;
        memcpy(t->columns, cols, sizeof(cols[0]) * (size_t)tc->ncolumns);
        t->capacity = (uint32_t)tc->size;
        t->nbuckets = lo.nbuckets;
        t->data_size = lo.data_size;
        t->stride = lo.stride;
        t->buckets_off = lo.buckets_off;
        t->rows_off = lo.rows_off;
        t->bytes = lo.bytes;
        /* Free list in index order so live rows stay packed low and iterators stop early. */
        for (uint32_t r = 0; r < t->capacity; r++)
            row_at(t, r)->next = r + 1 < t->capacity ? r + 2 : 0;
        t->free_head = 1;
        g_tables.tables[g_tables.n++] = t;
    }
    return 0;
fail:
    /* Region chunks cannot be returned; the master exits on this error anyway. */
    tables_forget();
    return rc;
}

int srv_table_find(const char *name, srv_table_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (name == NULL || out == NULL)
        return -EINVAL;
    for (int i = 0; i < g_tables.n; i++)
        if (strcmp(g_tables.tables[i]->name, name) == 0) {
            *out = g_tables.tables[i];
            return 0;
        }
    return -ENOENT;
}

/* ---- locks, sequences and the free list ---- */

static inline void write_begin(bucket_t *b)
{
    __atomic_store_n(&b->seq, __atomic_load_n(&b->seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    /* Orders the odd sequence before the data stores that follow (the seqlock writer side). */
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void write_end(bucket_t *b)
{
    __atomic_store_n(&b->seq, __atomic_load_n(&b->seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

static void free_push(srv_table_t *t, uint32_t idx)
{
    row_t *r = row_at(t, idx - 1);
    uint64_t old = __atomic_load_n(&t->free_head, __ATOMIC_RELAXED);
    uint64_t nw;
    do {
        __atomic_store_n(&r->next, (uint32_t)old, __ATOMIC_RELAXED);
        nw = ((old >> 32) + 1) << 32 | idx;
    } while (!__atomic_compare_exchange_n(&t->free_head, &old, nw, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

/* A free row's 1-based index, or 0 when the table is full. The tag in the head's high half
 * makes a stale `next` (the row was popped and pushed again meanwhile) fail the CAS. */
static uint32_t free_pop(srv_table_t *t)
{
    uint64_t old = __atomic_load_n(&t->free_head, __ATOMIC_ACQUIRE);
    for (;;) {
        uint32_t idx = (uint32_t)old;
        if (idx == 0)
            return 0;
        uint32_t next = __atomic_load_n(&row_at(t, idx - 1)->next, __ATOMIC_RELAXED);
        uint64_t nw = ((old >> 32) + 1) << 32 | next;
        if (__atomic_compare_exchange_n(&t->free_head, &old, nw, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_ACQUIRE)) {
            uint32_t hwm = __atomic_load_n(&t->hwm, __ATOMIC_RELAXED);
            while (hwm < idx && !__atomic_compare_exchange_n(&t->hwm, &hwm, idx, true,
                                                             __ATOMIC_RELEASE, __ATOMIC_RELAXED))
                ;
            return idx;
        }
    }
}

/* Called holding the lock taken over from a dead writer: close its write and roll back or
 * finish what it left on the chain (see "Dying writers"). */
static void bucket_repair(srv_table_t *t, bucket_t *b)
{
    __atomic_add_fetch(&t->steals, 1, __ATOMIC_RELAXED);
    if ((__atomic_load_n(&b->seq, __ATOMIC_RELAXED) & 1) == 0)
        write_begin(b);
    uint32_t *link = &b->head;
    uint32_t idx = *link;
    for (uint32_t steps = 0; idx != 0 && idx <= t->capacity && steps < t->capacity; steps++) {
        row_t *r = row_at(t, idx - 1);
        uint32_t next = r->next;
        if (r->state != ROW_LIVE) {
            __atomic_store_n(link, next, __ATOMIC_RELAXED);
            free_push(t, idx);
            srv__log(SRV_LOG_WARN, "table", 0, "table %s: freed a row a dead writer left", t->name);
        } else {
            link = &r->next;
        }
        idx = next;
    }
    write_end(b);
}

static inline void bucket_lock(srv_table_t *t, bucket_t *b)
{
    if (srv__shm_lock(&b->lock))
        bucket_repair(t, b);
}

static inline void bucket_unlock(bucket_t *b)
{
    srv__shm_unlock(&b->lock);
}

static uint32_t read_begin_slow(const srv_table_t *t, bucket_t *b)
{
    for (unsigned spins = 0;; spins++) {
        uint32_t s = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
        if ((s & 1) == 0)
            return s;
        /* Odd for long: if the writer is dead, nobody else may come to repair the bucket. */
        if (spins >= 256 && (spins & 63) == 0) {
            int32_t holder = __atomic_load_n(&b->lock, __ATOMIC_RELAXED);
            if (srv__shm_pid_dead(holder)) {
                /* Readers hold const pointers; the repair is a writer's job done on their behalf.
                 */
                bucket_lock((srv_table_t *)t, b);
                bucket_unlock(b);
            }
        }
        srv__shm_backoff(spins);
    }
}

static inline uint32_t read_begin(const srv_table_t *t, bucket_t *b)
{
    uint32_t s = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
    if (__builtin_expect((s & 1) == 0, 1))
        return s;
    return read_begin_slow(t, b);
}

static inline bool read_ok(const bucket_t *b, uint32_t s)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&b->seq, __ATOMIC_RELAXED) == s;
}

/* The live row holding key on b's chain, or NULL. Under a read section the row may change under
 * us: every index is bounds-checked and the caller validates the sequence afterwards. */
static inline row_t *chain_find(const srv_table_t *t, const bucket_t *b, uint64_t h,
                                const char *key, size_t len)
{
    uint32_t idx = __atomic_load_n(&b->head, __ATOMIC_RELAXED);
    for (uint32_t steps = 0; idx != 0 && steps < t->capacity; steps++) {
        if (idx > t->capacity)
            return NULL;
        row_t *r = row_at(t, idx - 1);
        if (r->hash == h && r->klen == len &&
            __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == ROW_LIVE &&
            memcmp(r->key, key, len) == 0)
            return r;
        idx = __atomic_load_n(&r->next, __ATOMIC_RELAXED);
    }
    return NULL;
}

static inline int key_check(const char *key, size_t *len)
{
    if (key == NULL)
        return -EINVAL;
    size_t n = strnlen(key, SRV_TABLE_KEY_MAX + 1);
    if (n == 0)
        return -EINVAL;
    if (n > SRV_TABLE_KEY_MAX)
        return -ENAMETOOLONG;
    *len = n;
    return 0;
}

/* ---- writes ---- */

typedef struct resolved {
    const column_t *col;
    const srv_table_field_t *f;
} resolved_t;

/* Apply fn to key's row under the bucket lock, inside a write section, creating the row (all
 * columns zero) when it is missing. */
typedef void (*row_fn)(srv_table_t *t, char *data, void *arg);

static int with_row(srv_table_t *t, const char *key, size_t len, row_fn fn, void *arg)
{
    uint64_t h = srv__table_hash(key, len);
    bucket_t *b = bucket_at(t, h);
    bucket_lock(t, b);
    row_t *r = chain_find(t, b, h, key, len);
    uint32_t idx = 0;
    if (r == NULL) {
        idx = free_pop(t);
        if (idx == 0) {
            bucket_unlock(b);
            __atomic_add_fetch(&t->full_failures, 1, __ATOMIC_RELAXED);
            return -ENOSPC;
        }
    }
    write_begin(b);
    if (r == NULL) {
        /* Linked while still FREE: a writer killed from here on leaves a row the repair frees. */
        r = row_at(t, idx - 1);
        __atomic_store_n(&r->next, b->head, __ATOMIC_RELAXED);
        __atomic_store_n(&b->head, idx, __ATOMIC_RELAXED);
        r->hash = h;
        r->klen = (uint8_t)len;
        memcpy(r->key, key, len);
        memset(row_data(r), 0, t->data_size);
        crash_point(1);
    }
    fn(t, row_data(r), arg);
    if (idx != 0) {
        __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&r->state, ROW_LIVE, __ATOMIC_RELEASE);
    }
    write_end(b);
    bucket_unlock(b);
    return 0;
}

typedef struct set_arg {
    const resolved_t *res;
    int n;
} set_arg_t;

static void set_fn(srv_table_t *t, char *data, void *arg)
{
    const set_arg_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        const column_t *c = a->res[i].col;
        const srv_table_field_t *f = a->res[i].f;
        char *p = data + c->offset;
        if (c->type == SRV_COL_INT) {
            memcpy(p, &f->i, 8);
        } else if (c->type == SRV_COL_FLOAT) {
            memcpy(p, &f->f, 8);
        } else {
            uint16_t l = (uint16_t)f->len;
            memcpy(p, &l, 2);
            if (l > 0)
                memcpy(p + 2, f->s, l);
        }
    }
}

int srv_table_column(const srv_table_t *t, const char *name)
{
    for (int i = 0; i < t->ncolumns; i++)
        if (strcmp(t->columns[i].name, name) == 0)
            return i;
    return -ENOENT;
}

int srv_table_set(srv_table_t *t, const char *key, const srv_table_field_t *fields, int n)
{
    size_t len;
    int rc = key_check(key, &len);
    if (rc < 0)
        return rc;
    if (n < 0 || n > SRV_CONFIG_MAX_COLUMN * 4 || (n > 0 && fields == NULL))
        return -EINVAL;
    resolved_t res[SRV_CONFIG_MAX_COLUMN * 4];
    for (int i = 0; i < n; i++) {
        int col = fields[i].column;
        if (fields[i].name != NULL) {
            col = srv_table_column(t, fields[i].name);
            if (col < 0)
                return col;
        } else if (col < 0 || col >= t->ncolumns) {
            return -EINVAL;
        }
        const column_t *c = &t->columns[col];
        if (c->type == SRV_COL_STRING &&
            (fields[i].len > (size_t)c->size || (fields[i].len > 0 && fields[i].s == NULL)))
            return fields[i].len > (size_t)c->size ? -E2BIG : -EINVAL;
        res[i].col = c;
        res[i].f = &fields[i];
    }
    set_arg_t a = {res, n};
    return with_row(t, key, len, set_fn, &a);
}

static int typed_col(const srv_table_t *t, int col, int type)
{
    if (col < 0 || col >= t->ncolumns)
        return -EINVAL;
    if (t->columns[col].type != type)
        return -EPROTOTYPE;
    return 0;
}

int srv_table_set_int(srv_table_t *t, const char *key, int col, int64_t v)
{
    int rc = typed_col(t, col, SRV_COL_INT);
    if (rc < 0)
        return rc;
    srv_table_field_t f = {.column = col, .i = v};
    return srv_table_set(t, key, &f, 1);
}

int srv_table_set_float(srv_table_t *t, const char *key, int col, double v)
{
    int rc = typed_col(t, col, SRV_COL_FLOAT);
    if (rc < 0)
        return rc;
    srv_table_field_t f = {.column = col, .f = v};
    return srv_table_set(t, key, &f, 1);
}

int srv_table_set_string(srv_table_t *t, const char *key, int col, const void *s, size_t len)
{
    int rc = typed_col(t, col, SRV_COL_STRING);
    if (rc < 0)
        return rc;
    srv_table_field_t f = {.column = col, .s = s, .len = len};
    return srv_table_set(t, key, &f, 1);
}

typedef struct incr_arg {
    uint32_t offset;
    bool is_float;
    int64_t di;
    double df;
    int64_t oi;
    double of;
} incr_arg_t;

static void incr_fn(srv_table_t *t, char *data, void *arg)
{
    incr_arg_t *a = arg;
    char *p = data + a->offset;
    if (a->is_float) {
        double v;
        memcpy(&v, p, 8);
        a->of = v + a->df;
        memcpy(p, &a->of, 8);
    } else {
        uint64_t v;
        memcpy(&v, p, 8);
        v += (uint64_t)a->di; /* unsigned: wraps without undefined behaviour */
        a->oi = (int64_t)v;
        memcpy(p, &v, 8);
    }
}

int srv_table_incr(srv_table_t *t, const char *key, int col, int64_t delta, int64_t *out)
{
    size_t len;
    int rc = key_check(key, &len);
    if (rc == 0)
        rc = typed_col(t, col, SRV_COL_INT);
    if (rc < 0)
        return rc;
    incr_arg_t a = {.offset = t->columns[col].offset, .di = delta};
    rc = with_row(t, key, len, incr_fn, &a);
    if (rc == 0 && out != NULL)
        *out = a.oi;
    return rc;
}

int srv_table_decr(srv_table_t *t, const char *key, int col, int64_t delta, int64_t *out)
{
    return srv_table_incr(t, key, col, (int64_t)(0 - (uint64_t)delta), out);
}

int srv_table_incr_float(srv_table_t *t, const char *key, int col, double delta, double *out)
{
    size_t len;
    int rc = key_check(key, &len);
    if (rc == 0)
        rc = typed_col(t, col, SRV_COL_FLOAT);
    if (rc < 0)
        return rc;
    incr_arg_t a = {.offset = t->columns[col].offset, .is_float = true, .df = delta};
    rc = with_row(t, key, len, incr_fn, &a);
    if (rc == 0 && out != NULL)
        *out = a.of;
    return rc;
}

int srv_table_del(srv_table_t *t, const char *key)
{
    size_t len;
    int rc = key_check(key, &len);
    if (rc < 0)
        return rc;
    uint64_t h = srv__table_hash(key, len);
    bucket_t *b = bucket_at(t, h);
    bucket_lock(t, b);
    uint32_t *link = &b->head;
    uint32_t idx = *link;
    for (uint32_t steps = 0; idx != 0 && steps < t->capacity; steps++) {
        row_t *r = row_at(t, idx - 1);
        if (r->hash == h && r->klen == len && r->state == ROW_LIVE &&
            memcmp(r->key, key, len) == 0) {
            write_begin(b);
            /* FREE before unlinking: a writer killed in between leaves a row the repair frees. */
            __atomic_store_n(&r->state, ROW_FREE, __ATOMIC_RELEASE);
            __atomic_add_fetch(&t->count, -1, __ATOMIC_RELAXED);
            crash_point(2);
            __atomic_store_n(link, r->next, __ATOMIC_RELAXED);
            write_end(b);
            bucket_unlock(b);
            free_push(t, idx);
            return 0;
        }
        link = &r->next;
        idx = *link;
    }
    bucket_unlock(b);
    return -ENOENT;
}

/* ---- reads ---- */

/* Copy n bytes at off of key's row data into dst, consistently. */
static int read_bytes(const srv_table_t *t, const char *key, void *dst, uint32_t off, uint32_t n)
{
    size_t len;
    int rc = key_check(key, &len);
    if (rc < 0)
        return rc;
    uint64_t h = srv__table_hash(key, len);
    bucket_t *b = bucket_at(t, h);
    for (;;) {
        uint32_t s = read_begin(t, b);
        row_t *r = chain_find(t, b, h, key, len);
        if (r != NULL && n > 0)
            memcpy(dst, row_data(r) + off, n);
        if (read_ok(b, s))
            return r != NULL ? 0 : -ENOENT;
    }
}

size_t srv_table_row_size(const srv_table_t *t)
{
    return t->data_size;
}

int srv_table_get_row(const srv_table_t *t, const char *key, void *row, size_t cap)
{
    if (cap < t->data_size)
        return -ERANGE;
    return read_bytes(t, key, row, 0, t->data_size);
}

int srv_table_get_int(const srv_table_t *t, const char *key, int col, int64_t *out)
{
    int rc = typed_col(t, col, SRV_COL_INT);
    if (rc < 0)
        return rc;
    return read_bytes(t, key, out, t->columns[col].offset, 8);
}

int srv_table_get_float(const srv_table_t *t, const char *key, int col, double *out)
{
    int rc = typed_col(t, col, SRV_COL_FLOAT);
    if (rc < 0)
        return rc;
    return read_bytes(t, key, out, t->columns[col].offset, 8);
}

int srv_table_get_string(const srv_table_t *t, const char *key, int col, char *buf, size_t cap)
{
    size_t len;
    int rc = typed_col(t, col, SRV_COL_STRING);
    if (rc == 0)
        rc = key_check(key, &len);
    if (rc < 0)
        return rc;
    const column_t *c = &t->columns[col];
    uint64_t h = srv__table_hash(key, len);
    bucket_t *b = bucket_at(t, h);
    for (;;) {
        uint32_t s = read_begin(t, b);
        row_t *r = chain_find(t, b, h, key, len);
        uint16_t l = 0;
        if (r != NULL) {
            memcpy(&l, row_data(r) + c->offset, 2);
            if (l > c->size) /* torn: the sequence check below fails */
                l = 0;
            if ((size_t)l < cap)
                memcpy(buf, row_data(r) + c->offset + 2, l);
        }
        if (!read_ok(b, s))
            continue;
        if (r == NULL)
            return -ENOENT;
        if ((size_t)l >= cap)
            return -ERANGE;
        buf[l] = '\0';
        return l;
    }
}

int srv_table_exists(const srv_table_t *t, const char *key)
{
    int rc = read_bytes(t, key, NULL, 0, 0);
    return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

int srv_table_row_int(const srv_table_t *t, const void *row, int col, int64_t *out)
{
    int rc = typed_col(t, col, SRV_COL_INT);
    if (rc == 0)
        memcpy(out, (const char *)row + t->columns[col].offset, 8);
    return rc;
}

int srv_table_row_float(const srv_table_t *t, const void *row, int col, double *out)
{
    int rc = typed_col(t, col, SRV_COL_FLOAT);
    if (rc == 0)
        memcpy(out, (const char *)row + t->columns[col].offset, 8);
    return rc;
}

const char *srv_table_row_string(const srv_table_t *t, const void *row, int col, size_t *len)
{
    if (typed_col(t, col, SRV_COL_STRING) < 0)
        return NULL;
    const char *p = (const char *)row + t->columns[col].offset;
    uint16_t l;
    memcpy(&l, p, 2);
    if (len != NULL)
        *len = l <= t->columns[col].size ? l : 0;
    return p + 2;
}

void srv_table_iter_init(srv_table_iter_t *it, const srv_table_t *t)
{
    memset(it, 0, sizeof(*it));
    it->t = t;
}

int srv_table_iter_next(srv_table_iter_t *it, void *row, size_t cap)
{
    const srv_table_t *t = it->t;
    if (row != NULL && cap < t->data_size)
        return -ERANGE;
    uint32_t hwm = __atomic_load_n(&t->hwm, __ATOMIC_ACQUIRE);
    for (; it->pos < hwm; it->pos++) {
        row_t *r = row_at(t, it->pos);
        /* A row changes only under the lock of the bucket its hash names while it is LIVE; read
         * the hash, then check under that bucket's sequence that the row is LIVE with that same
         * hash, else it moved: retry with the new hash. */
        uint64_t h = __atomic_load_n(&r->hash, __ATOMIC_RELAXED);
        for (;;) {
            bucket_t *b = bucket_at(t, h);
            uint32_t s = read_begin(t, b);
            uint32_t st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
            uint64_t h2 = __atomic_load_n(&r->hash, __ATOMIC_RELAXED);
            size_t klen = r->klen;
            bool live = st == ROW_LIVE && h2 == h && klen >= 1 && klen <= SRV_TABLE_KEY_MAX;
            if (live) {
                memcpy(it->key, r->key, klen);
                if (row != NULL)
                    memcpy(row, row_data(r), t->data_size);
            }
            if (!read_ok(b, s))
                continue;
            if (st == ROW_LIVE && h2 != h) {
                h = h2;
                continue;
            }
            if (live) {
                it->key[klen] = '\0';
                it->klen = klen;
                it->pos++;
                return 1;
            }
            break;
        }
    }
    return 0;
}

/* ---- introspection ---- */

const char *srv_table_name(const srv_table_t *t)
{
    return t->name;
}

int64_t srv_table_capacity(const srv_table_t *t)
{
    return t->capacity;
}

int64_t srv_table_count(const srv_table_t *t)
{
    return __atomic_load_n(&t->count, __ATOMIC_RELAXED);
}

int srv_table_ncolumns(const srv_table_t *t)
{
    return t->ncolumns;
}

const char *srv_table_column_name(const srv_table_t *t, int col)
{
    return col >= 0 && col < t->ncolumns ? t->columns[col].name : NULL;
}

int srv_table_column_type(const srv_table_t *t, int col)
{
    return col >= 0 && col < t->ncolumns ? t->columns[col].type : -EINVAL;
}

int srv_table_column_size(const srv_table_t *t, int col)
{
    return col >= 0 && col < t->ncolumns ? t->columns[col].size : -EINVAL;
}

/* Append s to buf as a JSON string body (no quotes). */
static size_t json_escape(char *buf, size_t cap, size_t at, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[8];
        int n;
        if (ch == '"' || ch == '\\')
            n = snprintf(tmp, sizeof(tmp), "\\%c", ch);
        else if (ch < 0x20)
            n = snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
        else
            n = snprintf(tmp, sizeof(tmp), "%c", ch);
        if (at + (size_t)n < cap)
            memcpy(buf + at, tmp, (size_t)n);
        at += (size_t)n;
    }
    return at;
}

int srv__tables_info_json(char *buf, size_t cap)
{
    size_t at = 0;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        int n_ = snprintf(at < cap ? buf + at : NULL, at < cap ? cap - at : 0, __VA_ARGS__);       \
        at += (size_t)(n_ > 0 ? n_ : 0);                                                           \
    } while (0)
    APPEND("[");
    for (int i = 0; i < g_tables.n; i++) {
        const srv_table_t *t = g_tables.tables[i];
        APPEND("%s{\"name\":\"", i ? "," : "");
        at = json_escape(buf, cap, at, t->name);
        APPEND("\",\"rows\":%lld,\"capacity\":%u,\"bytes\":%llu,\"full_failures\":%llu}",
               (long long)srv_table_count(t), t->capacity, (unsigned long long)t->bytes,
               (unsigned long long)__atomic_load_n(&t->full_failures, __ATOMIC_RELAXED));
    }
    APPEND("]");
#undef APPEND
    if (at >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return -ENOSPC;
    }
    return (int)at;
}

/* ---- test hooks ---- */

uint32_t srv__table_bucket(const srv_table_t *t, const char *key)
{
    return (uint32_t)(srv__table_hash(key, strlen(key)) & (t->nbuckets - 1));
}

uint32_t srv__table_nbuckets(const srv_table_t *t)
{
    return t->nbuckets;
}

void srv__table_lock_key(srv_table_t *t, const char *key)
{
    bucket_t *b = bucket_at(t, srv__table_hash(key, strlen(key)));
    bucket_lock(t, b);
    write_begin(b);
}

void srv__table_unlock_key(srv_table_t *t, const char *key)
{
    bucket_t *b = bucket_at(t, srv__table_hash(key, strlen(key)));
    write_end(b);
    bucket_unlock(b);
}

uint64_t srv__table_steals(const srv_table_t *t)
{
    return __atomic_load_n(&t->steals, __ATOMIC_RELAXED);
}

uint64_t srv__table_full_failures(const srv_table_t *t)
{
    return __atomic_load_n(&t->full_failures, __ATOMIC_RELAXED);
}
