/* Tables: API contract and errors, hashing, bucket collisions, deletion and slot reuse, a full
 * table, `srv info` JSON, config refusals, and the iterator while another process writes. */
#include "core/shm/table.h"

#include <errno.h>
#include <math.h>
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

static srv__config_t *g_cfg;

static srv__table_config_t *add_table(const char *name, int64_t size)
{
    srv__table_config_t *t = &g_cfg->table[g_cfg->ntable++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->size = size;
    return t;
}

static void add_col(srv__table_config_t *t, const char *name, srv__col_type_t type, int size)
{
    srv__column_config_t *c = &t->columns[t->ncolumns++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->type = type;
    c->size = size;
}

/* kv: 8 rows of n int, f float, s string(16); big: 4096 rows of the same; bare: no columns. */
static void setup(void)
{
    memset(g_cfg, 0, sizeof(*g_cfg));
    const char *names[] = {"kv", "big"};
    int64_t sizes[] = {8, 4096};
    for (int i = 0; i < 2; i++) {
        srv__table_config_t *t = add_table(names[i], sizes[i]);
        add_col(t, "n", SRV_COL_INT, 8);
        add_col(t, "f", SRV_COL_FLOAT, 8);
        add_col(t, "s", SRV_COL_STRING, 16);
    }
    add_table("bare", 4);
    CHECK_INT(srv__shm_create(srv__tables_region_size(g_cfg)), ==, 0);
    CHECK_INT(srv__tables_create(g_cfg), ==, 0);
}

static void test_api(void)
{
    setup();
    CHECK(table_named("nope") == NULL);
    srv_table_t *none = (srv_table_t *)1;
    CHECK(srv_table_find("nope", &none) == -ENOENT);
    CHECK(none == NULL);
    CHECK(srv_table_find(NULL, &none) == -EINVAL);
    CHECK(srv_table_find("kv", NULL) == -EINVAL);
    srv_table_t *t = table_named("kv");
    CHECK(t != NULL);
    CHECK_STR(srv_table_name(t), "kv");
    CHECK_INT(srv_table_capacity(t), ==, 8);
    CHECK_INT(srv_table_ncolumns(t), ==, 3);
    CHECK_INT(srv_table_column(t, "n"), ==, 0);
    CHECK_INT(srv_table_column(t, "s"), ==, 2);
    CHECK_INT(srv_table_column(t, "x"), ==, -ENOENT);
    CHECK_STR(srv_table_column_name(t, 1), "f");
    CHECK(srv_table_column_name(t, 3) == NULL);
    CHECK_INT(srv_table_column_type(t, 2), ==, SRV_TABLE_STRING);
    CHECK_INT(srv_table_column_type(t, -1), ==, -EINVAL);
    CHECK_INT(srv_table_column_size(t, 2), ==, 16);
    CHECK_INT(srv_table_column_size(t, 0), ==, 8);
    CHECK_INT(srv_table_row_size(t), >=, 8 + 8 + 2 + 16);

    /* Keys: 1..63 bytes. */
    char k63[64], k64[65];
    memset(k63, 'k', 63);
    k63[63] = '\0';
    memset(k64, 'k', 64);
    k64[64] = '\0';
    CHECK_INT(srv_table_set_int(t, k64, 0, 1), ==, -ENAMETOOLONG);
    CHECK_INT(srv_table_set_int(t, "", 0, 1), ==, -EINVAL);
    CHECK_INT(srv_table_exists(t, k64), ==, -ENAMETOOLONG);
    CHECK_INT(srv_table_set_int(t, k63, 0, 7), ==, 0);
    int64_t iv = 0;
    CHECK_INT(srv_table_get_int(t, k63, 0, &iv), ==, 0);
    CHECK_INT(iv, ==, 7);

    /* Types. */
    CHECK_INT(srv_table_set_int(t, "a", 1, 1), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_set_float(t, "a", 0, 1), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_set_string(t, "a", 0, "x", 1), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_set_int(t, "a", 9, 1), ==, -EINVAL);
    CHECK_INT(srv_table_incr(t, "a", 2, 1, NULL), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_incr_float(t, "a", 0, 1, NULL), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_set_string(t, "a", 2, "0123456789abcdefg", 17), ==, -E2BIG);
    CHECK_INT(srv_table_exists(t, "a"), ==, 0); /* failed sets write nothing */

    /* Whole row by name, then one column: the others stay. */
    srv_table_field_t row[] = {
        {.name = "n", .i = -5}, {.name = "f", .f = 2.5}, {.name = "s", .s = "hello", .len = 5}};
    CHECK_INT(srv_table_set(t, "a", row, 3), ==, 0);
    srv_table_field_t bad = {.name = "zz", .i = 1};
    CHECK_INT(srv_table_set(t, "a", &bad, 1), ==, -ENOENT);
    srv_table_field_t badidx = {.column = 5};
    CHECK_INT(srv_table_set(t, "a", &badidx, 1), ==, -EINVAL);
    CHECK_INT(srv_table_set(t, "a", NULL, -1), ==, -EINVAL);
    CHECK_INT(srv_table_set_int(t, "a", 0, 42), ==, 0);
    char buf[64];
    CHECK_INT(srv_table_get_string(t, "a", 2, buf, sizeof(buf)), ==, 5);
    CHECK_STR(buf, "hello");
    CHECK_INT(srv_table_get_string(t, "a", 2, buf, 5), ==, -ERANGE);
    CHECK_INT(srv_table_get_string(t, "a", 0, buf, 5), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_get_string(t, "zz", 2, buf, sizeof(buf)), ==, -ENOENT);
    double fv = 0;
    CHECK_INT(srv_table_get_float(t, "a", 1, &fv), ==, 0);
    CHECK(fv == 2.5);
    CHECK_INT(srv_table_get_float(t, "a", 0, &fv), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_get_int(t, "zz", 0, &iv), ==, -ENOENT);

    uint64_t rowbuf[16];
    CHECK_INT(srv_table_get_row(t, "a", rowbuf, 4), ==, -ERANGE);
    CHECK_INT(srv_table_get_row(t, "a", rowbuf, sizeof(rowbuf)), ==, 0);
    int64_t ri = 0;
    CHECK_INT(srv_table_row_int(t, rowbuf, 0, &ri), ==, 0);
    CHECK_INT(ri, ==, 42);
    double rf = 0;
    CHECK_INT(srv_table_row_float(t, rowbuf, 1, &rf), ==, 0);
    CHECK(rf == 2.5);
    size_t sl = 0;
    const char *sp = srv_table_row_string(t, rowbuf, 2, &sl);
    CHECK_MEM(sp, sl, "hello", 5);
    CHECK(srv_table_row_string(t, rowbuf, 0, &sl) == NULL);
    /* A bad column is an error, never a value (it used to read as a stored 0). */
    ri = 7;
    CHECK_INT(srv_table_row_int(t, rowbuf, 1, &ri), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_row_int(t, rowbuf, -1, &ri), ==, -EINVAL);
    CHECK_INT(srv_table_row_int(t, rowbuf, 3, &ri), ==, -EINVAL);
    CHECK_INT(ri, ==, 7);
    rf = 7;
    CHECK_INT(srv_table_row_float(t, rowbuf, 0, &rf), ==, -EPROTOTYPE);
    CHECK_INT(srv_table_row_float(t, rowbuf, 99, &rf), ==, -EINVAL);
    CHECK(rf == 7);
    CHECK_INT(srv_table_get_row(t, "zz", rowbuf, sizeof(rowbuf)), ==, -ENOENT);

    /* incr creates the row at 0; decr; float incr; wrap-around. */
    int64_t out = 0;
    CHECK_INT(srv_table_incr(t, "c", 0, 5, &out), ==, 0);
    CHECK_INT(out, ==, 5);
    CHECK_INT(srv_table_decr(t, "c", 0, 7, &out), ==, 0);
    CHECK_INT(out, ==, -2);
    double fo = 0;
    CHECK_INT(srv_table_incr_float(t, "c", 1, 0.25, &fo), ==, 0);
    CHECK_INT(srv_table_incr_float(t, "c", 1, 0.5, &fo), ==, 0);
    CHECK(fo == 0.75);
    CHECK_INT(srv_table_get_string(t, "c", 2, buf, sizeof(buf)), ==, 0);
    CHECK_INT(srv_table_set_int(t, "c", 0, INT64_MAX), ==, 0);
    CHECK_INT(srv_table_incr(t, "c", 0, 1, &out), ==, 0);
    CHECK_INT(out, ==, INT64_MIN);

    CHECK_INT(srv_table_count(t), ==, 3);
    CHECK_INT(srv_table_exists(t, "c"), ==, 1);
    CHECK_INT(srv_table_del(t, "c"), ==, 0);
    CHECK_INT(srv_table_del(t, "c"), ==, -ENOENT);
    CHECK_INT(srv_table_exists(t, "c"), ==, 0);
    CHECK_INT(srv_table_count(t), ==, 2);

    /* A table without columns is a set of keys. */
    srv_table_t *bare = table_named("bare");
    CHECK_INT(srv_table_set(bare, "x", NULL, 0), ==, 0);
    CHECK_INT(srv_table_exists(bare, "x"), ==, 1);
    CHECK_INT(srv_table_row_size(bare), ==, 0);
    srv__shm_destroy();
}

static void test_hash(void)
{
    CHECK(srv__table_hash("abc", 3) == srv__table_hash("abc", 3));
    /* Every length and one-byte change gives a different hash. */
    char k[64];
    memset(k, 'x', sizeof(k));
    uint64_t seen[64 * 2];
    int n = 0;
    for (size_t len = 0; len <= 63; len++) {
        seen[n++] = srv__table_hash(k, len);
        if (len > 0) {
            k[len - 1] = 'y';
            seen[n++] = srv__table_hash(k, len);
            k[len - 1] = 'x';
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            CHECK(seen[i] != seen[j]);
    /* Sequential keys spread like random ones over the low bits that pick a bucket: 65536 keys
     * in 65536 buckets leave about 1/e of them empty, and no bucket is crowded. */
    enum { N = 65536 };
    uint16_t *hits = calloc(N, sizeof(*hits));
    CHECK(hits != NULL);
    for (int i = 0; i < N; i++) {
        char key[32];
        int l = snprintf(key, sizeof(key), "user:%d", i);
        hits[srv__table_hash(key, (size_t)l) & (N - 1)]++;
    }
    int empty = 0, most = 0;
    for (int i = 0; i < N; i++) {
        empty += hits[i] == 0;
        most = hits[i] > most ? hits[i] : most;
    }
    free(hits);
    CHECK_INT(empty, >, N * 34 / 100);
    CHECK_INT(empty, <, N * 40 / 100);
    CHECK_INT(most, <=, 10);
}

static void test_collisions(void)
{
    setup();
    srv_table_t *t = table_named("kv");
    CHECK_INT(srv__table_nbuckets(t), ==, 8);
    /* Five keys that share a bucket: the chain is walked, unlinked at head, middle and tail. */
    char keys[5][16];
    int n = 0;
    uint32_t want = srv__table_bucket(t, "c0");
    for (int i = 0; n < 5 && i < 100000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "c%d", i);
        if (srv__table_bucket(t, k) == want)
            memcpy(keys[n++], k, sizeof(k));
    }
    CHECK_INT(n, ==, 5);
    for (int i = 0; i < 5; i++)
        CHECK_INT(srv_table_set_int(t, keys[i], 0, i), ==, 0);
    for (int i = 0; i < 5; i++) {
        int64_t v = -1;
        CHECK_INT(srv_table_get_int(t, keys[i], 0, &v), ==, 0);
        CHECK_INT(v, ==, i);
    }
    int order[] = {2, 4, 0}; /* chain order is newest first: middle, head, tail */
    for (int j = 0; j < 3; j++) {
        CHECK_INT(srv_table_del(t, keys[order[j]]), ==, 0);
        CHECK_INT(srv_table_exists(t, keys[order[j]]), ==, 0);
        for (int i = 0; i < 5; i++) {
            bool gone = false;
            for (int m = 0; m <= j; m++)
                gone |= i == order[m];
            int64_t v = -1;
            CHECK_INT(srv_table_get_int(t, keys[i], 0, &v), ==, gone ? -ENOENT : 0);
            if (!gone)
                CHECK_INT(v, ==, i);
        }
    }
    CHECK_INT(srv_table_count(t), ==, 2);
    for (int i = 0; i < 5; i++)
        CHECK_INT(srv_table_set_int(t, keys[i], 0, 10 + i), ==, 0);
    CHECK_INT(srv_table_count(t), ==, 5);
    for (int i = 0; i < 5; i++) {
        int64_t v = -1;
        CHECK_INT(srv_table_get_int(t, keys[i], 0, &v), ==, 0);
        CHECK_INT(v, ==, 10 + i);
    }
    srv__shm_destroy();
}

static void test_full_and_reuse(void)
{
    setup();
    srv_table_t *t = table_named("kv");
    char k[16];
    for (int i = 0; i < 8; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        CHECK_INT(srv_table_set_int(t, k, 0, i), ==, 0);
    }
    CHECK_INT(srv_table_set_int(t, "new", 0, 1), ==, -ENOSPC);
    CHECK_INT(srv_table_incr(t, "new", 0, 1, NULL), ==, -ENOSPC);
    CHECK_INT(srv__table_full_failures(t), ==, 2);
    CHECK_INT(srv_table_exists(t, "new"), ==, 0);
    CHECK_INT(srv_table_set_int(t, "k3", 0, 33), ==, 0); /* existing keys still update */
    CHECK_INT(srv_table_count(t), ==, 8);

    char json[512];
    int n = srv__tables_info_json(json, sizeof(json));
    CHECK_INT(n, >, 0);
    CHECK_INT(strlen(json), ==, n);
    CHECK(strstr(json, "{\"name\":\"kv\",\"rows\":8,\"capacity\":8,\"bytes\":") == json + 1);
    CHECK(strstr(json, "\"full_failures\":2}") != NULL);
    CHECK(strstr(json, "\"name\":\"big\",\"rows\":0,\"capacity\":4096") != NULL);
    CHECK_INT(json[n - 1], ==, ']');
    CHECK_INT(srv__tables_info_json(json, 20), ==, -ENOSPC);

    /* Deleted slots are reused, over and over, without leaking any. */
    for (int round = 0; round < 1000; round++) {
        snprintf(k, sizeof(k), "k%d", round % 8);
        CHECK_INT(srv_table_del(t, k), ==, 0);
        snprintf(k, sizeof(k), "r%d", round);
        CHECK_INT(srv_table_set_int(t, k, 0, round), ==, 0);
        CHECK_INT(srv_table_set_int(t, "x", 0, 0), ==, -ENOSPC);
        CHECK_INT(srv_table_del(t, k), ==, 0);
        snprintf(k, sizeof(k), "k%d", round % 8);
        CHECK_INT(srv_table_set_int(t, k, 0, round), ==, 0);
    }
    CHECK_INT(srv_table_count(t), ==, 8);
    srv_table_iter_t it;
    srv_table_iter_init(&it, t);
    int rows = 0;
    while (srv_table_iter_next(&it, NULL, 0) == 1)
        rows++;
    CHECK_INT(rows, ==, 8);
    srv__shm_destroy();
}

static void expect_create(int rc)
{
    size_t need = srv__tables_region_size(g_cfg);
    CHECK_INT(srv__shm_create(need > 0 ? need : 4096), ==, 0);
    CHECK_INT(srv__tables_create(g_cfg), ==, rc);
    srv__shm_destroy();
}

static void test_config_refused(void)
{
    memset(g_cfg, 0, sizeof(*g_cfg));
    srv__table_config_t *t = add_table("a", 0);
    expect_create(-EINVAL);
    t->size = 1;
    expect_create(0);
    add_col(t, "s", SRV_COL_STRING, 0);
    expect_create(-EINVAL);
    t->columns[0].size = 70000;
    expect_create(-EINVAL);
    t->columns[0].size = 65535;
    expect_create(0);
    add_col(t, "s", SRV_COL_INT, 8);
    expect_create(-EINVAL);
    t->columns[1].type = (srv__col_type_t)7;
    snprintf(t->columns[1].name, SRV_CONFIG_NAME_MAX, "i");
    expect_create(-EINVAL);
    t->ncolumns = 1;
    add_table("a", 1);
    expect_create(-EINVAL);
    snprintf(g_cfg->table[1].name, SRV_CONFIG_NAME_MAX, "%s", "");
    expect_create(-EINVAL);
}

static void test_iterate(void)
{
    setup();
    srv_table_t *t = table_named("big");
    char k[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "i%d", i);
        CHECK_INT(srv_table_set_int(t, k, 0, i), ==, 0);
    }
    for (int i = 0; i < 100; i += 2) {
        snprintf(k, sizeof(k), "i%d", i);
        CHECK_INT(srv_table_del(t, k), ==, 0);
    }
    bool seen[100] = {false};
    uint64_t row[8];
    srv_table_iter_t it;
    srv_table_iter_init(&it, t);
    CHECK_INT(srv_table_iter_next(&it, row, 4), ==, -ERANGE);
    int rc, n = 0;
    while ((rc = srv_table_iter_next(&it, row, sizeof(row))) == 1) {
        int i = atoi(it.key + 1);
        CHECK_INT(i % 2, ==, 1);
        CHECK(!seen[i]);
        seen[i] = true;
        int64_t v = -1;
        CHECK_INT(srv_table_row_int(t, row, 0, &v), ==, 0);
        CHECK_INT(v, ==, i);
        CHECK_INT(it.klen, ==, strlen(it.key));
        n++;
    }
    CHECK_INT(rc, ==, 0);
    CHECK_INT(n, ==, 50);
    srv__shm_destroy();
}

/* Writer child: rows keep n, f == 2n and s == "v<n>" together while they churn (updates,
 * deletes, re-inserts); the parent iterates and every row it gets must hold that. */
static void test_iterate_concurrent(void)
{
    setup();
    srv_table_t *t = table_named("big");
    int64_t *stop = srv__shm_alloc(sizeof(int64_t), 8);
    CHECK(stop != NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (int64_t v = 0; !__atomic_load_n(stop, __ATOMIC_RELAXED); v++) {
            char key[16], s[16];
            snprintf(key, sizeof(key), "w%d", (int)(v % 512));
            int l = snprintf(s, sizeof(s), "v%lld", (long long)v);
            if (v % 5 == 4) {
                srv_table_del(t, key);
                continue;
            }
            srv_table_field_t f[] = {{.column = 0, .i = v},
                                     {.column = 1, .f = 2.0 * (double)v},
                                     {.column = 2, .s = s, .len = (size_t)l}};
            if (srv_table_set(t, key, f, 3) != 0)
                _exit(3);
        }
        _exit(0);
    }
    uint64_t row[8];
    int64_t checked = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        srv_table_iter_t it;
        srv_table_iter_init(&it, t);
        while (srv_table_iter_next(&it, row, sizeof(row)) == 1) {
            int64_t n = 0;
            double f = 0;
            CHECK_INT(srv_table_row_int(t, row, 0, &n), ==, 0);
            CHECK_INT(srv_table_row_float(t, row, 1, &f), ==, 0);
            CHECK(f == 2.0 * (double)n);
            char s[16];
            int l = snprintf(s, sizeof(s), "v%lld", (long long)n);
            size_t sl;
            const char *sp = srv_table_row_string(t, row, 2, &sl);
            CHECK_MEM(sp, sl, s, l);
            CHECK_INT(atoi(it.key + 1), ==, n % 512);
            checked++;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < 1 || checked < 10000);
    __atomic_store_n(stop, 1, __ATOMIC_RELAXED);
    int st;
    CHECK_INT(waitpid(pid, &st, 0), ==, pid);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
    fprintf(stderr, "iterator checked %lld rows under concurrent writes\n", (long long)checked);
    srv__shm_destroy();
}

int main(void)
{
    (void)check_failures_; /* check.h defines it for tests that count failures */
    g_cfg = calloc(1, sizeof(*g_cfg));
    CHECK(g_cfg != NULL);
    test_api();
    test_hash();
    test_collisions();
    test_full_and_reuse();
    test_config_refused();
    test_iterate();
    test_iterate_concurrent();
    free(g_cfg);
    return 0;
}
