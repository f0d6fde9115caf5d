/* In-process timers: after(ms), tick(ms), clear(id) for one thread's event loop. A binary
 * min-heap ordered by (deadline, id) plus an id -> slot hash map, so add and clear are O(log n)
 * and a live timer costs about 60 bytes (up to twice that just after the arrays double). No clock
 * and no I/O: the owning loop passes "now", asks for the next deadline and runs what is due. */
#ifndef SRV_TIMER_TIMERS_H
#define SRV_TIMER_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv__timers srv__timers_t;

/* Called from srv__timers_run() on the owning thread. id is the timer's id; the callback may add
 * or clear any timer, including id itself (clearing a tick inside its callback stops it). */
typedef void (*srv__timer_cb)(srv__timers_t *t, uint64_t id, void *arg);

struct srv__timer;

/* Caller storage; the fields are private. Not thread-safe: one owner thread. */
struct srv__timers {
    struct srv__timer *slots; /* timer records, indexed by slot */
    uint32_t nslots, capslots;
    uint32_t free_head; /* free-list of slots, UINT32_MAX when empty */
    uint32_t *heap;     /* slot numbers, min-heap on (when, id) */
    uint32_t nheap, capheap;
    uint32_t *map; /* open-addressing id -> slot (id read from the slot), UINT32_MAX = empty */
    uint32_t map_cap, map_len;
    uint64_t *due; /* scratch list of ids for srv__timers_run() */
    uint32_t capdue;
    uint64_t last_id;
    size_t count;
    bool running;
};

/* The monotonic clock (CLOCK_MONOTONIC) in nanoseconds: the clock every "now_ns" below uses. */
int64_t srv__timers_now_ns(void);

/* Initialise t (no allocation until the first add). Returns 0. */
int srv__timers_init(srv__timers_t *t);
/* Free every timer without calling any callback; t may be initialised again afterwards. */
void srv__timers_deinit(srv__timers_t *t);

/* Fire cb(arg) ms milliseconds after now_ns; with repeat, every ms milliseconds until cleared
 * (a tick re-arms from its scheduled time, not from when it ran, so it does not drift; beats
 * missed because the loop was late are skipped, never run in a burst). ms may be 0 for a one-shot
 * (runs at the next srv__timers_run()). Returns the id (> 0, never reused by this t), or 0 when out
 * of memory or repeat with ms == 0. Callable inside a callback; a timer added there does not run
 * in the same srv__timers_run() call even if already due. */
uint64_t srv__timers_add(srv__timers_t *t, int64_t now_ns, uint64_t ms, bool repeat,
                         srv__timer_cb cb, void *arg);

/* Cancel a timer: it will not fire again. Returns 0, or -ENOENT if id is unknown, already fired
 * (one-shot) or already cleared. Callable inside a callback, also for the running timer. */
int srv__timers_clear(srv__timers_t *t, uint64_t id);

/* The earliest deadline in now_ns units, or -1 when no timer is live. */
int64_t srv__timers_next_deadline(const srv__timers_t *t);

/* Milliseconds from now_ns until the next deadline, rounded up (for epoll_wait-style waits):
 * 0 when something is due, -1 when no timer is live. */
int srv__timers_timeout_ms(const srv__timers_t *t, int64_t now_ns);

/* Run every timer due at now_ns, earliest first (ties in add order). Returns how many callbacks
 * ran. Not reentrant: a callback must not call srv__timers_run() on the same t (-EBUSY). */
int srv__timers_run(srv__timers_t *t, int64_t now_ns);

/* Live timers (one-shots not yet fired plus ticks not cleared). */
size_t srv__timers_count(const srv__timers_t *t);

#endif
