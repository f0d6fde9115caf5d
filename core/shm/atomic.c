/* Named 64-bit atomics in the shared region: a fixed registry of SRV_ATOMIC_MAX slots, one cache
 * line each, claimed by name on first use under a registry lock that survives its holder's
 * death. wait/wakeup sleep on a separate 32-bit futex word (futexes are 32-bit) that wakeup
 * bumps, shared futexes because the waiters are in other processes. */
#include "core/shm/atomic.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdalign.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/shm/shm.h"

struct srv_atomic {
    alignas(64) int64_t value;
    uint32_t wake; /* futex word: bumped by every wakeup */
    uint32_t used; /* 1 once name is set; written with release */
    char name[SRV_ATOMIC_NAME_MAX + 1];
};

typedef struct registry {
    alignas(64) int32_t lock; /* srv__shm_lock: serializes creation only */
    uint32_t n;               /* slots in use; read with acquire */
    srv_atomic_t slots[SRV_ATOMIC_MAX];
} registry_t;

_Static_assert(sizeof(srv_atomic_t) == 64, "one cache line per counter");

static registry_t *g_reg;

size_t srv__atomics_region_size(void)
{
    return sizeof(registry_t) + 64;
}

/* The region is going away: its forget hook. */
static void atomics_forget(void)
{
    g_reg = NULL;
}

int srv__atomics_create(void)
{
    if (srv__shm_base() == NULL)
        return -ENODEV;
    int rc = srv__shm_on_forget(atomics_forget);
    if (rc < 0)
        return rc;
    g_reg = srv__shm_alloc(sizeof(registry_t), 64);
    return g_reg != NULL ? 0 : -ENOMEM;
}

static srv_atomic_t *lookup(uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(g_reg->slots[i].name, name) == 0)
            return &g_reg->slots[i];
    return NULL;
}

int srv_atomic_find(const char *name, srv_atomic_t **out)
{
    if (g_reg == NULL)
        return -ENODEV;
    if (name == NULL || name[0] == '\0')
        return -EINVAL;
    if (strnlen(name, SRV_ATOMIC_NAME_MAX + 1) > SRV_ATOMIC_NAME_MAX)
        return -ENAMETOOLONG;
    /* Slots are filled in order and never freed: the first n are complete and immutable. */
    srv_atomic_t *a = lookup(__atomic_load_n(&g_reg->n, __ATOMIC_ACQUIRE), name);
    if (a != NULL) {
        *out = a;
        return 0;
    }
    /* A holder killed mid-creation leaves at most a slot past n half written: n is bumped
     * last, so nobody sees it and the next creator overwrites it. */
    srv__shm_lock(&g_reg->lock);
    uint32_t n = g_reg->n;
    a = lookup(n, name);
    int rc = 0;
    if (a == NULL) {
        if (n >= SRV_ATOMIC_MAX) {
            rc = -ENOSPC;
        } else {
            a = &g_reg->slots[n];
            memset(a, 0, sizeof(*a));
            strcpy(a->name, name);
            a->used = 1;
            __atomic_store_n(&g_reg->n, n + 1, __ATOMIC_RELEASE);
        }
    }
    srv__shm_unlock(&g_reg->lock);
    if (rc == 0)
        *out = a;
    return rc;
}

int64_t srv_atomic_add(srv_atomic_t *a, int64_t delta)
{
    /* Through uint64_t: wraps around instead of overflowing (undefined for int64_t). */
    return (int64_t)__atomic_add_fetch((uint64_t *)&a->value, (uint64_t)delta, __ATOMIC_SEQ_CST);
}

int64_t srv_atomic_sub(srv_atomic_t *a, int64_t delta)
{
    return (int64_t)__atomic_sub_fetch((uint64_t *)&a->value, (uint64_t)delta, __ATOMIC_SEQ_CST);
}

int64_t srv_atomic_get(const srv_atomic_t *a)
{
    return __atomic_load_n(&a->value, __ATOMIC_SEQ_CST);
}

void srv_atomic_set(srv_atomic_t *a, int64_t v)
{
    __atomic_store_n(&a->value, v, __ATOMIC_SEQ_CST);
}

bool srv_atomic_cmpset(srv_atomic_t *a, int64_t expected, int64_t desired)
{
    return __atomic_compare_exchange_n(&a->value, &expected, desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
    /* No FUTEX_PRIVATE_FLAG: sleepers and wakers are different processes. */
    return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

int srv_atomic_wait(srv_atomic_t *a, int64_t expected, int timeout_ms)
{
    struct timespec deadline = {0};
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    for (;;) {
        /* Read the wake word before the value: a wakeup between the two changes the word, so
         * FUTEX_WAIT returns EAGAIN at once instead of missing it. */
        uint32_t w = __atomic_load_n(&a->wake, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&a->value, __ATOMIC_SEQ_CST) != expected)
            return 0;
        struct timespec rel, *tsp = NULL;
        if (timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            rel.tv_sec = deadline.tv_sec - now.tv_sec;
            rel.tv_nsec = deadline.tv_nsec - now.tv_nsec;
            if (rel.tv_nsec < 0) {
                rel.tv_sec--;
                rel.tv_nsec += 1000000000L;
            }
            if (rel.tv_sec < 0)
                return -ETIMEDOUT;
            tsp = &rel;
        }
        /* FUTEX_WAIT takes a relative timeout. */
        if (futex(&a->wake, FUTEX_WAIT, w, tsp) < 0) {
            if (errno == ETIMEDOUT)
                return __atomic_load_n(&a->value, __ATOMIC_SEQ_CST) != expected ? 0 : -ETIMEDOUT;
            if (errno == EINTR)
                return -EINTR;
            if (errno != EAGAIN)
                return -errno;
        }
    }
}

int srv_atomic_wakeup(srv_atomic_t *a, int n)
{
    __atomic_add_fetch(&a->wake, 1, __ATOMIC_SEQ_CST);
    long r = futex(&a->wake, FUTEX_WAKE, n <= 0 ? INT_MAX : (uint32_t)n, NULL);
    return r < 0 ? -errno : (int)r;
}

int srv__atomics_info_json(char *buf, size_t cap)
{
    size_t len = 0;
    int n = snprintf(buf, cap, "[");
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    len = (size_t)n;
    uint32_t used = g_reg ? __atomic_load_n(&g_reg->n, __ATOMIC_ACQUIRE) : 0;
    for (uint32_t i = 0; i < used; i++) {
        const srv_atomic_t *a = &g_reg->slots[i];
        if (!__atomic_load_n(&a->used, __ATOMIC_ACQUIRE))
            continue;
        /* Names are the app's; keep the JSON valid whatever bytes they hold. */
        char name[SRV_ATOMIC_NAME_MAX + 1];
        size_t k = 0;
        for (const char *p = a->name; *p && k < SRV_ATOMIC_NAME_MAX; p++)
            name[k++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '_' : *p;
        name[k] = '\0';
        n = snprintf(buf + len, cap - len, "%s{\"name\":\"%s\",\"value\":%lld}", len > 1 ? "," : "",
                     name, (long long)__atomic_load_n(&a->value, __ATOMIC_RELAXED));
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    n = snprintf(buf + len, cap - len, "]");
    if (n < 0 || (size_t)n >= cap - len)
        return -ENOSPC;
    return (int)(len + (size_t)n);
}
