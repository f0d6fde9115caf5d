/* The shared region: one MAP_SHARED|MAP_ANONYMOUS mapping the master creates before any fork, so
 * every process (manager, workers, task workers, timer, custom processes) sees it at the same
 * address. A bump allocator hands out aligned chunks that are never freed one by one; the whole
 * region goes away with srv__shm_destroy(). Data inside stores offsets, not pointers. Each
 * subsystem declares the bytes it needs (srv__tables_region_size, ...) and registers a hook to
 * forget its chunks; the region includes none of them. */
#ifndef SRV_SHM_H
#define SRV_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Map a region of at least bytes (rounded up to pages) in this process. Call once, in the
 * master, before any fork and before any thread starts. Returns 0, -EEXIST when a region exists
 * already, -EINVAL for 0 bytes, or -ENOMEM. */
int srv__shm_create(size_t bytes);

/* Carve bytes (zeroed) aligned to align (a power of two, at most 4096) from the region. Safe from
 * any process or thread after create (lock-free). Returns NULL when the region is missing or
 * full, or align is not a power of two. Chunks are never freed individually. */
void *srv__shm_alloc(size_t bytes, size_t align);

/* Unmap the region in this process (the memory lives on in other processes that map it), after
 * calling every hook registered with srv__shm_on_forget(). Harmless when there is none. */
void srv__shm_destroy(void);

/* Most forget hooks one process can hold. */
#define SRV_SHM_MAX_HOOKS 16

/* A subsystem that keeps pointers into the region (the tables, the atomics registry) registers
 * fn to drop them: the region knows no subsystem, they register with it. srv__shm_destroy()
 * calls each hook once, the latest registered first, then drops them all (a subsystem created
 * in the next region registers again). Registering a hook already registered does nothing.
 * Per process, like the mapping. Returns 0, or -ENOSPC when SRV_SHM_MAX_HOOKS are taken. */
int srv__shm_on_forget(void (*fn)(void));

/* Bytes handed out so far (including the region's own header and alignment padding). */
size_t srv__shm_used(void);
/* Total bytes of the region, 0 when there is none. */
size_t srv__shm_size(void);
/* Start of the region in this process, NULL when there is none. */
void *srv__shm_base(void);

/* Offset of p from the region's start (p must point into the region), and back. */
uint64_t srv__shm_off(const void *p);
void *srv__shm_ptr(uint64_t off);

/* This process's pid, cached (refreshed in fork children by a pthread_atfork handler) because
 * glibc's getpid() is a system call and lock owners are stamped with it on every write. */
pid_t srv__shm_pid(void);

/* A lock word in the region that survives its holder's death: 0 when free, else the holder's
 * pid. A waiter that waits long checks the holder with kill(pid, 0) and takes the lock over
 * when the holder is gone (ESRCH); a zombie counts as alive until it is reaped, which the
 * manager does at once. (A pid reused by a new process before anyone noticed the death would
 * keep the lock held: pids cycle through pid_max, 4 million by default, first.) Not reentrant.
 * srv__shm_lock() returns 1 when it took the lock over from a dead holder (the caller must repair
 * what the holder may have left half done), else 0. */
int srv__shm_lock_slow(int32_t *word);

static inline int srv__shm_lock(int32_t *word)
{
    int32_t expect = 0;
    if (__atomic_compare_exchange_n(word, &expect, (int32_t)srv__shm_pid(), false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
        return 0;
    return srv__shm_lock_slow(word);
}

static inline void srv__shm_unlock(int32_t *word)
{
    __atomic_store_n(word, 0, __ATOMIC_RELEASE);
}

/* One step of a wait loop: a pause instruction for the first spins, then sched_yield() so a
 * descheduled holder can run (there are often more processes than cores). */
void srv__shm_backoff(unsigned spins);

/* True when pid names no process any more. */
int srv__shm_pid_dead(int32_t pid);

#endif
