/* Multi-process stress: 4 writers and 4 readers on one table for SRV_TABLE_STRESS_SECONDS
 * (default 3; CI's slow run uses 10). Writers keep an invariant inside every shared row
 * (b == ~a, s == "<a>/<b>"), increment a hot counter and their own counter, and churn private
 * keys in and out; readers check every row they get or iterate. At the end: no torn row was
 * seen, every counter equals the increments made, and the row count is exact. */
#include "core/shm/table.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/shm/shm.h"

/* The table called name, or NULL. */
static srv_table_t *table_named(const char *name)
{
    srv_table_t *t = NULL;
    return srv_table_find(name, &t) == 0 ? t : NULL;
}

enum { WRITERS = 4, READERS = 4, SHARED_KEYS = 256, PRIVATE_KEYS = 64 };
enum { COL_A, COL_B, COL_S, COL_C };

typedef struct results {
    int64_t stop;
    int64_t incrs[WRITERS];
    int64_t live_private[WRITERS];
    int64_t reads[READERS];
} results_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int set_shared(srv_table_t *t, const char *key, int64_t a)
{
    char s[64];
    int l = snprintf(s, sizeof(s), "%lld/%lld", (long long)a, (long long)~a);
    srv_table_field_t f[] = {{.column = COL_A, .i = a},
                             {.column = COL_B, .i = ~a},
                             {.column = COL_S, .s = s, .len = (size_t)l}};
    return srv_table_set(t, key, f, 3);
}

/* 0 when the row copy holds the invariant (or is a counter/private row: c != 0 or no s). */
static int row_ok(srv_table_t *t, const void *row)
{
    int64_t a = 0, b = 0;
    if (srv_table_row_int(t, row, COL_A, &a) != 0 || srv_table_row_int(t, row, COL_B, &b) != 0)
        return -1;
    size_t sl;
    const char *sp = srv_table_row_string(t, row, COL_S, &sl);
    if (sl == 0)
        return a == 0 && b == 0 ? 0 : -1; /* counters and private keys never set a, b or s */
    char s[64];
    int l = snprintf(s, sizeof(s), "%lld/%lld", (long long)a, (long long)~a);
    return b == ~a && sl == (size_t)l && memcmp(sp, s, sl) == 0 ? 0 : -1;
}

static int writer(srv_table_t *t, results_t *r, int id, double until)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    bool live[PRIVATE_KEYS] = {false};
    char key[32], mine[16];
    snprintf(mine, sizeof(mine), "w%d", id);
    int64_t incrs = 0;
    for (unsigned i = 0;; i++) {
        if ((i & 255) == 0 && now_s() > until)
            break;
        uint64_t x = rnd(&seed);
        snprintf(key, sizeof(key), "k%d", (int)(x % SHARED_KEYS));
        if (set_shared(t, key, (int64_t)(x >> 8)) != 0)
            return 10;
        if (srv_table_incr(t, "hot", COL_C, 1, NULL) != 0 ||
            srv_table_incr(t, mine, COL_C, 1, NULL) != 0)
            return 11;
        incrs++;
        int p = (int)((x >> 40) % PRIVATE_KEYS);
        snprintf(key, sizeof(key), "p%d-%d", id, p);
        if (live[p]) {
            if (srv_table_del(t, key) != 0)
                return 12;
        } else if (srv_table_incr(t, key, COL_C, 1, NULL) != 0) {
            return 13;
        }
        live[p] = !live[p];
    }
    int n = 0;
    for (int p = 0; p < PRIVATE_KEYS; p++)
        n += live[p];
    r->live_private[id] = n;
    r->incrs[id] = incrs;
    return 0;
}

static int reader(srv_table_t *t, results_t *r, int id)
{
    uint64_t seed = 0x2545f4914f6cdd1dull * (uint64_t)(id + 1);
    uint64_t row[32];
    char key[32];
    int64_t reads = 0;
    for (unsigned i = 0; !__atomic_load_n(&r->stop, __ATOMIC_RELAXED); i++) {
        if ((i & 4095) == 4095) {
            srv_table_iter_t it;
            srv_table_iter_init(&it, t);
            while (srv_table_iter_next(&it, row, sizeof(row)) == 1) {
                if (row_ok(t, row) != 0)
                    return 20;
                reads++;
            }
            continue;
        }
        snprintf(key, sizeof(key), "k%d", (int)(rnd(&seed) % SHARED_KEYS));
        int rc = srv_table_get_row(t, key, row, sizeof(row));
        if (rc == 0 && row_ok(t, row) != 0)
            return 21;
        if (rc != 0 && rc != -ENOENT)
            return 22;
        reads++;
    }
    r->reads[id] = reads;
    return 0;
}

int main(void)
{
    (void)check_failures_; /* check.h defines it for tests that count failures */
    double secs = 3;
    const char *env = getenv("SRV_TABLE_STRESS_SECONDS");
    if (env != NULL && atof(env) > 0)
        secs = atof(env);
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    cfg->ntable = 1;
    srv__table_config_t *tc = &cfg->table[0];
    snprintf(tc->name, sizeof(tc->name), "stress");
    tc->size = 1024; /* small: long chains and constant slot reuse */
    const char *cols[] = {"a", "b", "s", "c"};
    srv__col_type_t types[] = {SRV_COL_INT, SRV_COL_INT, SRV_COL_STRING, SRV_COL_INT};
    for (int i = 0; i < 4; i++) {
        snprintf(tc->columns[i].name, SRV_CONFIG_NAME_MAX, "%s", cols[i]);
        tc->columns[i].type = types[i];
        tc->columns[i].size = types[i] == SRV_COL_STRING ? 48 : 8;
    }
    tc->ncolumns = 4;
    CHECK_INT(srv__shm_create(srv__tables_region_size(cfg) + 4096), ==, 0);
    CHECK_INT(srv__tables_create(cfg), ==, 0);
    srv_table_t *t = table_named("stress");
    results_t *r = srv__shm_alloc(sizeof(*r), 64);
    CHECK(r != NULL);

    double until = now_s() + secs;
    pid_t pids[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(i < WRITERS ? writer(t, r, i, until) : reader(t, r, i - WRITERS));
    }
    for (int i = 0; i < WRITERS + READERS; i++) {
        if (i == WRITERS)
            __atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED); /* writers are done */
        int st;
        CHECK_INT(waitpid(pids[i], &st, 0), ==, pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "child %d: status %#x\n", i, st);
        CHECK(WIFEXITED(st));
        CHECK_INT(WEXITSTATUS(st), ==, 0);
    }

    int64_t total = 0, priv = 0, reads = 0;
    for (int i = 0; i < WRITERS; i++) {
        char mine[16];
        snprintf(mine, sizeof(mine), "w%d", i);
        int64_t v = -1;
        CHECK_INT(srv_table_get_int(t, mine, COL_C, &v), ==, 0);
        CHECK_INT(v, ==, r->incrs[i]);
        total += r->incrs[i];
        priv += r->live_private[i];
    }
    for (int i = 0; i < READERS; i++)
        reads += r->reads[i];
    int64_t hot = -1;
    CHECK_INT(srv_table_get_int(t, "hot", COL_C, &hot), ==, 0);
    CHECK_INT(hot, ==, total);
    int64_t shared = 0;
    for (int k = 0; k < SHARED_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        shared += srv_table_exists(t, key);
    }
    CHECK_INT(srv_table_count(t), ==, shared + 1 + WRITERS + priv);
    srv_table_iter_t it;
    srv_table_iter_init(&it, t);
    int64_t rows = 0;
    while (srv_table_iter_next(&it, NULL, 0) == 1)
        rows++;
    CHECK_INT(rows, ==, srv_table_count(t));
    CHECK_INT(srv__table_steals(t), ==, 0);
    fprintf(stderr, "%.1f s: %lld increments per counter key, %lld checked reads\n", secs,
            (long long)total, (long long)reads);
    srv__shm_destroy();
    free(cfg);
    return 0;
}
