/* In-process timers: a binary min-heap of slot numbers ordered by (deadline, id), slot records
 * reused through a free list, and an open-addressing id -> slot map so srv__timers_clear() finds a
 * timer in O(1) and removes it from the heap in O(log n). Ids come from a 64-bit counter and are
 * never reused, so a stale id can never cancel somebody else's timer. */
#include "timer/timers.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NO_SLOT UINT32_MAX
#define NS_PER_MS 1000000LL

struct srv__timer {
    int64_t when;   /* deadline, ns */
    int64_t period; /* ns between beats for a tick, 0 for a one-shot */
    uint64_t id;    /* 0 while the slot is free */
    srv__timer_cb cb;
    void *arg;
    uint32_t heap_idx; /* position in the heap, NO_SLOT while being run */
    uint32_t next_free;
};

int64_t srv__timers_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int srv__timers_init(srv__timers_t *t)
{
    memset(t, 0, sizeof(*t));
    t->free_head = NO_SLOT;
    return 0;
}

void srv__timers_deinit(srv__timers_t *t)
{
    free(t->slots);
    free(t->heap);
    free(t->map);
    free(t->due);
    srv__timers_init(t);
}

/* ---- id -> slot map: linear probing over slot numbers only (the id is read from the slot, so a
 * bucket costs 4 bytes), backward-shift deletion (no tombstones, so a long-lived process that
 * adds and clears forever never degrades). */

static inline uint32_t map_hash(uint64_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & (cap - 1);
}

static uint32_t map_find(const srv__timers_t *t, uint64_t id)
{
    if (t->map_cap == 0 || id == 0)
        return NO_SLOT;
    uint32_t mask = t->map_cap - 1;
    for (uint32_t i = map_hash(id, t->map_cap);; i = (i + 1) & mask) {
        uint32_t slot = t->map[i];
        if (slot == NO_SLOT)
            return NO_SLOT;
        if (t->slots[slot].id == id)
            return slot;
    }
}

static void map_insert_nogrow(srv__timers_t *t, uint32_t slot)
{
    uint32_t mask = t->map_cap - 1;
    uint32_t i = map_hash(t->slots[slot].id, t->map_cap);
    while (t->map[i] != NO_SLOT)
        i = (i + 1) & mask;
    t->map[i] = slot;
    t->map_len++;
}

static int map_reserve(srv__timers_t *t)
{
    /* Keep the load at or below 1/2 so probe chains stay short. */
    if ((uint64_t)(t->map_len + 1) * 2 <= t->map_cap)
        return 0;
    uint32_t ncap = t->map_cap ? t->map_cap * 2 : 64;
    if (ncap == 0 || ncap > (1u << 31))
        return -ENOMEM;
    uint32_t *map = malloc((size_t)ncap * sizeof(*map));
    if (map == NULL)
        return -ENOMEM;
    memset(map, 0xff, (size_t)ncap * sizeof(*map)); /* all NO_SLOT */
    uint32_t *old = t->map;
    uint32_t ocap = t->map_cap;
    t->map = map;
    t->map_cap = ncap;
    t->map_len = 0;
    for (uint32_t i = 0; i < ocap; i++)
        if (old[i] != NO_SLOT)
            map_insert_nogrow(t, old[i]);
    free(old);
    return 0;
}

static void map_remove(srv__timers_t *t, uint64_t id)
{
    uint32_t mask = t->map_cap - 1;
    uint32_t i = map_hash(id, t->map_cap);
    for (;; i = (i + 1) & mask) {
        if (t->map[i] == NO_SLOT)
            return;
        if (t->slots[t->map[i]].id == id)
            break;
    }
    /* Shift later members of the cluster back into the hole when their home allows it. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; t->map[j] != NO_SLOT; j = (j + 1) & mask) {
        uint32_t home = map_hash(t->slots[t->map[j]].id, t->map_cap);
        /* j may move to hole only if home is not cyclically inside (hole, j]. */
        bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            t->map[hole] = t->map[j];
            hole = j;
        }
    }
    t->map[hole] = NO_SLOT;
    t->map_len--;
}

/* ---- heap ---- */

static inline bool earlier(const srv__timers_t *t, uint32_t a, uint32_t b)
{
    const struct srv__timer *x = &t->slots[a], *y = &t->slots[b];
    return x->when < y->when || (x->when == y->when && x->id < y->id);
}

static inline void heap_set(srv__timers_t *t, uint32_t pos, uint32_t slot)
{
    t->heap[pos] = slot;
    t->slots[slot].heap_idx = pos;
}

static void sift_up(srv__timers_t *t, uint32_t pos)
{
    uint32_t slot = t->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!earlier(t, slot, t->heap[parent]))
            break;
        heap_set(t, pos, t->heap[parent]);
        pos = parent;
    }
    heap_set(t, pos, slot);
}

static void sift_down(srv__timers_t *t, uint32_t pos)
{
    uint32_t slot = t->heap[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= t->nheap)
            break;
        if (child + 1 < t->nheap && earlier(t, t->heap[child + 1], t->heap[child]))
            child++;
        if (!earlier(t, t->heap[child], slot))
            break;
        heap_set(t, pos, t->heap[child]);
        pos = child;
    }
    heap_set(t, pos, slot);
}

static void heap_push(srv__timers_t *t, uint32_t slot)
{
    /* Capacity is reserved by srv__timers_add(): the heap never holds more than nslots. */
    t->heap[t->nheap] = slot;
    sift_up(t, t->nheap++);
}

static void heap_remove(srv__timers_t *t, uint32_t pos)
{
    uint32_t removed = t->heap[pos];
    t->slots[removed].heap_idx = NO_SLOT;
    if (--t->nheap == pos)
        return;
    heap_set(t, pos, t->heap[t->nheap]);
    if (pos > 0 && earlier(t, t->heap[pos], t->heap[(pos - 1) / 2]))
        sift_up(t, pos);
    else
        sift_down(t, pos);
}

/* ---- slots ---- */

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint64_t ncap = *cap ? (uint64_t)*cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap >= NO_SLOT)
        return -ENOMEM;
    void *np = realloc(*p, ncap * elem);
    if (np == NULL)
        return -ENOMEM;
    *p = np;
    *cap = (uint32_t)ncap;
    return 0;
}

static void slot_free(srv__timers_t *t, uint32_t slot)
{
    struct srv__timer *tm = &t->slots[slot];
    map_remove(t, tm->id);
    tm->id = 0;
    tm->cb = NULL;
    tm->arg = NULL;
    tm->next_free = t->free_head;
    t->free_head = slot;
    t->count--;
}

uint64_t srv__timers_add(srv__timers_t *t, int64_t now_ns, uint64_t ms, bool repeat,
                         srv__timer_cb cb, void *arg)
{
    if (cb == NULL || (repeat && ms == 0) || ms > (uint64_t)(INT64_MAX / NS_PER_MS) / 2)
        return 0;
    uint32_t slot = t->free_head;
    if (slot == NO_SLOT) {
        if (grow((void **)&t->slots, &t->capslots, t->nslots + 1, sizeof(*t->slots)) < 0)
            return 0;
    }
    /* Reserve everything first so nothing below can fail half-way. */
    uint32_t total = slot == NO_SLOT ? t->nslots + 1 : t->nslots;
    if (grow((void **)&t->heap, &t->capheap, total, sizeof(*t->heap)) < 0 || map_reserve(t) < 0)
        return 0;
    if (slot == NO_SLOT)
        slot = t->nslots++;
    else
        t->free_head = t->slots[slot].next_free;

    struct srv__timer *tm = &t->slots[slot];
    int64_t delta = (int64_t)ms * NS_PER_MS;
    tm->when = now_ns > INT64_MAX - delta ? INT64_MAX : now_ns + delta;
    tm->period = repeat ? delta : 0;
    tm->id = ++t->last_id;
    tm->cb = cb;
    tm->arg = arg;
    tm->next_free = NO_SLOT;
    map_insert_nogrow(t, slot);
    heap_push(t, slot);
    t->count++;
    return tm->id;
}

int srv__timers_clear(srv__timers_t *t, uint64_t id)
{
    uint32_t slot = map_find(t, id);
    if (slot == NO_SLOT)
        return -ENOENT;
    /* heap_idx is NO_SLOT while the timer waits in (or runs from) srv__timers_run()'s due list;
     * freeing the slot there is what tells the run loop to skip it or not re-arm it. */
    if (t->slots[slot].heap_idx != NO_SLOT)
        heap_remove(t, t->slots[slot].heap_idx);
    slot_free(t, slot);
    return 0;
}

int64_t srv__timers_next_deadline(const srv__timers_t *t)
{
    if (t->nheap == 0)
        return -1;
    return t->slots[t->heap[0]].when;
}

int srv__timers_timeout_ms(const srv__timers_t *t, int64_t now_ns)
{
    int64_t when = srv__timers_next_deadline(t);
    if (when < 0)
        return -1;
    if (when <= now_ns)
        return 0;
    int64_t ms = (when - now_ns + NS_PER_MS - 1) / NS_PER_MS;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int srv__timers_run(srv__timers_t *t, int64_t now_ns)
{
    if (t->running)
        return -EBUSY;
    /* Take the due timers out of the heap first: a callback that adds an already-due timer (or
     * re-adds itself with 0 ms) then waits for the next call instead of looping forever here. */
    uint32_t ndue = 0;
    while (t->nheap > 0 && t->slots[t->heap[0]].when <= now_ns) {
        uint32_t slot = t->heap[0];
        if (ndue == t->capdue &&
            grow((void **)&t->due, &t->capdue, ndue + 1, sizeof(*t->due)) < 0) {
            if (ndue == 0)
                return -ENOMEM;
            break; /* run what we have; the rest stay due for the next call */
        }
        t->due[ndue++] = t->slots[slot].id;
        heap_remove(t, 0);
    }

    t->running = true;
    int ran = 0;
    for (uint32_t i = 0; i < ndue; i++) {
        uint64_t id = t->due[i];
        uint32_t slot = map_find(t, id);
        if (slot == NO_SLOT)
            continue; /* cleared by an earlier callback of this run */
        struct srv__timer *tm = &t->slots[slot];
        srv__timer_cb cb = tm->cb;
        void *arg = tm->arg;
        bool oneshot = tm->period == 0;
        if (oneshot) {
            /* A one-shot is gone before its callback runs, so clear(id) inside it is -ENOENT
             * and the slot can be reused by an add inside the callback. */
            slot_free(t, slot);
        }
        cb(t, id, arg);
        ran++;
        if (oneshot)
            continue;
        /* The callback may have grown t->slots (moved) or cleared this tick. */
        slot = map_find(t, id);
        if (slot == NO_SLOT)
            continue;
        tm = &t->slots[slot];
        int64_t next = tm->when + tm->period;
        if (next <= now_ns) /* late by whole beats: skip them, do not burst */
            next += ((now_ns - next) / tm->period + 1) * tm->period;
        tm->when = next;
        heap_push(t, slot);
    }
    t->running = false;
    return ran;
}

size_t srv__timers_count(const srv__timers_t *t)
{
    return t->count;
}
