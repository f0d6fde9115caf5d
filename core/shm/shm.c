/* The shared region, its bump allocator and its forget hooks; see shm.h. The allocator's cursor
 * lives in the region's header so chunks taken after fork, from any process, never overlap. */
#include "core/shm/shm.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SRV_SHM_MAGIC 0x73727673686d3031ull /* "srvshm01" */

typedef struct srv__shm_header {
    uint64_t magic;
    uint64_t size;
    uint64_t used; /* bump cursor, an offset from the region's start; atomic */
} srv__shm_header_t;

static struct {
    srv__shm_header_t *hdr;
    size_t size;
    pid_t pid;
    bool atfork;
    void (*hooks[SRV_SHM_MAX_HOOKS])(void); /* srv__shm_on_forget, in registration order */
    int nhooks;
} g_shm;

static void shm_atfork_child(void)
{
    g_shm.pid = getpid();
}

pid_t srv__shm_pid(void)
{
    if (g_shm.pid == 0)
        g_shm.pid = getpid();
    return g_shm.pid;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void srv__shm_backoff(unsigned spins)
{
    if (spins < 16) {
        /* Exponential: a waiter that re-reads a hot line at once steals it from the holder. */
        for (unsigned i = 1u << (spins < 8 ? spins : 8); i > 0; i--)
            cpu_relax();
    } else {
        sched_yield();
    }
}

int srv__shm_pid_dead(int32_t pid)
{
    return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

int srv__shm_lock_slow(int32_t *word)
{
    int32_t me = (int32_t)srv__shm_pid();
    for (unsigned spins = 0;; spins++) {
        int32_t cur = __atomic_load_n(word, __ATOMIC_RELAXED);
        if (cur == 0) {
            if (__atomic_compare_exchange_n(word, &cur, me, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return 0;
            continue;
        }
        /* Probe the holder only now and then: kill() is a system call, and a live holder is
         * by far the common case. */
        if (spins >= 16 && (spins & 15) == 0 && srv__shm_pid_dead(cur) &&
            __atomic_compare_exchange_n(word, &cur, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 1;
        srv__shm_backoff(spins);
    }
}

int srv__shm_create(size_t bytes)
{
    if (g_shm.hdr != NULL)
        return -EEXIST;
    if (bytes == 0)
        return -EINVAL;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    if (bytes > SIZE_MAX - pg - sizeof(srv__shm_header_t))
        return -ENOMEM;
    size_t size = (bytes + sizeof(srv__shm_header_t) + pg - 1) / pg * pg;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (!g_shm.atfork) {
        /* Once per process: the child must not stamp locks with its parent's pid. */
        if (pthread_atfork(NULL, NULL, shm_atfork_child) != 0) {
            munmap(p, size);
            return -ENOMEM;
        }
        g_shm.atfork = true;
    }
    g_shm.pid = getpid();
    g_shm.hdr = p;
    g_shm.size = size;
    g_shm.hdr->magic = SRV_SHM_MAGIC;
    g_shm.hdr->size = size;
    __atomic_store_n(&g_shm.hdr->used, sizeof(srv__shm_header_t), __ATOMIC_RELEASE);
    return 0;
}

void *srv__shm_alloc(size_t bytes, size_t align)
{
    if (g_shm.hdr == NULL || align == 0 || (align & (align - 1)) != 0 || align > 4096)
        return NULL;
    uint64_t cur = __atomic_load_n(&g_shm.hdr->used, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t start = (cur + align - 1) & ~(uint64_t)(align - 1);
        if (start > g_shm.size || bytes > g_shm.size - start)
            return NULL;
        if (__atomic_compare_exchange_n(&g_shm.hdr->used, &cur, start + bytes, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            /* mmap'd memory starts zeroed and chunks are never recycled: no memset needed. */
            return (char *)g_shm.hdr + start;
    }
}

int srv__shm_on_forget(void (*fn)(void))
{
    for (int i = 0; i < g_shm.nhooks; i++)
        if (g_shm.hooks[i] == fn)
            return 0;
    if (g_shm.nhooks == SRV_SHM_MAX_HOOKS)
        return -ENOSPC;
    g_shm.hooks[g_shm.nhooks++] = fn;
    return 0;
}

void srv__shm_destroy(void)
{
    if (g_shm.hdr == NULL)
        return;
    /* Latest first, as atexit does: a subsystem built on another forgets before it. */
    while (g_shm.nhooks > 0)
        g_shm.hooks[--g_shm.nhooks]();
    munmap(g_shm.hdr, g_shm.size);
    g_shm.hdr = NULL;
    g_shm.size = 0;
}

size_t srv__shm_used(void)
{
    return g_shm.hdr ? (size_t)__atomic_load_n(&g_shm.hdr->used, __ATOMIC_RELAXED) : 0;
}

size_t srv__shm_size(void)
{
    return g_shm.size;
}

void *srv__shm_base(void)
{
    return g_shm.hdr;
}

uint64_t srv__shm_off(const void *p)
{
    return (uint64_t)((const char *)p - (const char *)g_shm.hdr);
}

void *srv__shm_ptr(uint64_t off)
{
    return (char *)g_shm.hdr + off;
}
