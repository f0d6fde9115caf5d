/* Shared region: creation, aligned bump allocation, sharing across fork, forget hooks, sizing
 * for tables. */
#include "core/shm/shm.h"

#include <errno.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/shm/table.h"

/* The table called name, or NULL. */
static srv_table_t *table_named(const char *name)
{
    srv_table_t *t = NULL;
    return srv_table_find(name, &t) == 0 ? t : NULL;
}

static void test_no_region(void)
{
    CHECK(srv__shm_base() == NULL);
    CHECK(srv__shm_alloc(8, 8) == NULL);
    CHECK_INT(srv__shm_used(), ==, 0);
    CHECK_INT(srv__shm_size(), ==, 0);
    srv__shm_destroy(); /* harmless without a region */
    CHECK_INT(srv__shm_create(0), ==, -EINVAL);
}

static void test_alloc(void)
{
    CHECK_INT(srv__shm_create(1 << 20), ==, 0);
    CHECK_INT(srv__shm_create(1 << 20), ==, -EEXIST);
    CHECK_INT(srv__shm_size(), >=, 1 << 20);
    size_t used0 = srv__shm_used();
    CHECK_INT(used0, >, 0);
    char *a = srv__shm_alloc(100, 64);
    CHECK(a != NULL);
    CHECK_INT((uintptr_t)a % 64, ==, 0);
    for (int i = 0; i < 100; i++)
        CHECK_INT(a[i], ==, 0);
    char *b = srv__shm_alloc(1, 1);
    CHECK(b == a + 100);
    char *c = srv__shm_alloc(8, 4096);
    CHECK_INT((uintptr_t)c % 4096, ==, 0);
    CHECK(srv__shm_alloc(8, 3) == NULL);
    CHECK(srv__shm_alloc(8, 0) == NULL);
    CHECK(srv__shm_alloc(8, 8192) == NULL);
    CHECK(srv__shm_alloc(SIZE_MAX - 8, 8) == NULL);
    CHECK(srv__shm_alloc(srv__shm_size(), 8) == NULL);
    CHECK_INT(srv__shm_used(), >=, used0 + 109);
    CHECK(srv__shm_ptr(srv__shm_off(c)) == c);

    /* Fill to the end: the last chunk fits exactly, the next fails. */
    size_t left = srv__shm_size() - srv__shm_used();
    CHECK(srv__shm_alloc(left, 1) != NULL);
    CHECK(srv__shm_alloc(1, 1) == NULL);
    srv__shm_destroy();
    CHECK(srv__shm_base() == NULL);
}

static void test_fork(void)
{
    CHECK_INT(srv__shm_create(1 << 16), ==, 0);
    int64_t *v = srv__shm_alloc(sizeof(int64_t), 8);
    CHECK(v != NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child's chunk comes from the shared cursor and its pid is its own. */
        int64_t *w = srv__shm_alloc(sizeof(int64_t), 8);
        *v = w != NULL ? (int64_t)srv__shm_off(w) : -1;
        _exit(srv__shm_pid() == getpid() ? 0 : 2);
    }
    int st;
    CHECK_INT(waitpid(pid, &st, 0), ==, pid);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
    CHECK_INT(*v, >, 0);
    int64_t *mine = srv__shm_alloc(sizeof(int64_t), 8);
    CHECK(mine != NULL);
    CHECK_INT(srv__shm_off(mine), >, *v); /* never the child's chunk */
    CHECK_INT(srv__shm_pid(), ==, getpid());
    srv__shm_destroy();
}

static void test_tables_size(void)
{
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    cfg->ntable = 2;
    snprintf(cfg->table[0].name, sizeof(cfg->table[0].name), "a");
    cfg->table[0].size = 1000;
    cfg->table[0].ncolumns = 1;
    snprintf(cfg->table[0].columns[0].name, SRV_CONFIG_NAME_MAX, "s");
    cfg->table[0].columns[0].type = SRV_COL_STRING;
    cfg->table[0].columns[0].size = 1024;
    snprintf(cfg->table[1].name, sizeof(cfg->table[1].name), "b");
    cfg->table[1].size = 3;
    size_t need = srv__tables_region_size(cfg);
    CHECK_INT(need, >, 1000 * 1024);
    /* Exactly the computed size is enough (the header rounds up to a page anyway). */
    CHECK_INT(srv__shm_create(need), ==, 0);
    CHECK_INT(srv__tables_create(cfg), ==, 0);
    CHECK(table_named("a") != NULL);
    CHECK(table_named("b") != NULL);
    srv__shm_destroy();
    CHECK(table_named("a") == NULL);
    /* Too small: the table that does not fit is refused. */
    CHECK_INT(srv__shm_create(4096), ==, 0);
    CHECK_INT(srv__tables_create(cfg), ==, -ENOMEM);
    CHECK(table_named("a") == NULL);
    srv__shm_destroy();
    CHECK_INT(srv__tables_create(cfg), ==, -ENODEV);
    free(cfg);
}

static int g_order[SRV_SHM_MAX_HOOKS + 1];
static int g_nhooks_run;

/* Distinct hooks (the list keeps one of each): hook_N records N. */
#define HOOK(n)                                                                                    \
    static void hook_##n(void)                                                                     \
    {                                                                                              \
        g_order[g_nhooks_run++] = n;                                                               \
    }
HOOK(0)
HOOK(1)
HOOK(2)
HOOK(3)
HOOK(4)
HOOK(5)
HOOK(6)
HOOK(7)
HOOK(8)
HOOK(9)
HOOK(10)
HOOK(11)
HOOK(12)
HOOK(13)
HOOK(14)
HOOK(15)
HOOK(16)
static void (*const g_hooks[])(void) = {hook_0,  hook_1,  hook_2,  hook_3,  hook_4,  hook_5,
                                        hook_6,  hook_7,  hook_8,  hook_9,  hook_10, hook_11,
                                        hook_12, hook_13, hook_14, hook_15, hook_16};
_Static_assert(sizeof(g_hooks) / sizeof(g_hooks[0]) == SRV_SHM_MAX_HOOKS + 1, "one hook too many");

/* Hooks run once each at destroy, latest first, and are dropped with the region. */
static void test_forget_hooks(void)
{
    srv__shm_destroy();
    CHECK_INT(srv__shm_create(4096), ==, 0);
    CHECK_INT(srv__shm_on_forget(hook_1), ==, 0);
    CHECK_INT(srv__shm_on_forget(hook_2), ==, 0);
    CHECK_INT(srv__shm_on_forget(hook_1), ==, 0); /* already there: still once */
    srv__shm_destroy();
    CHECK_INT(g_nhooks_run, ==, 2);
    CHECK_INT(g_order[0], ==, 2);
    CHECK_INT(g_order[1], ==, 1);
    srv__shm_destroy(); /* no region: no hook runs */
    CHECK_INT(g_nhooks_run, ==, 2);
    CHECK_INT(srv__shm_create(4096), ==, 0);
    srv__shm_destroy(); /* the old registrations went with the old region */
    CHECK_INT(g_nhooks_run, ==, 2);

    /* A bounded list: the hook past the last slot is refused, the others all run. */
    g_nhooks_run = 0;
    CHECK_INT(srv__shm_create(4096), ==, 0);
    for (int i = 0; i < SRV_SHM_MAX_HOOKS; i++)
        CHECK_INT(srv__shm_on_forget(g_hooks[i]), ==, 0);
    CHECK_INT(srv__shm_on_forget(g_hooks[SRV_SHM_MAX_HOOKS]), ==, -ENOSPC);
    srv__shm_destroy();
    CHECK_INT(g_nhooks_run, ==, SRV_SHM_MAX_HOOKS);
    for (int i = 0; i < SRV_SHM_MAX_HOOKS; i++)
        CHECK_INT(g_order[i], ==, SRV_SHM_MAX_HOOKS - 1 - i);
}

int main(void)
{
    (void)check_failures_; /* check.h defines it for tests that count failures */
    test_no_region();
    test_alloc();
    test_fork();
    test_forget_hooks();
    test_tables_size();
    return 0;
}
