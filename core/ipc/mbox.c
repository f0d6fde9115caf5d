/* Shared-memory mailboxes; see mbox.h. A ring of bytes per mailbox with monotonically growing
 * head/tail counters; records never wrap (a record that would is preceded by a pad record), so
 * a reader copies each one in one piece. */
#include "core/ipc/mbox.h"

#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/shm/shm.h"

#define PAD_TYPE 0xffffffffu

typedef struct box {
    int32_t lock;
    int32_t owner; /* pid of the process reading it */
    uint32_t msgs;
    uint32_t max_msgs;
    uint64_t head; /* bytes consumed */
    uint64_t tail; /* bytes produced */
    uint64_t cap;
    uint64_t data_off; /* offset of the ring in the region */
} box_t;

static box_t *g_boxes;
static int *g_fds;
static int g_n;

static size_t rec_size(size_t len)
{
    return (sizeof(srv__msg_t) + len + 7u) & ~(size_t)7u;
}

size_t srv__mbox_region_size(int n, const size_t *cap)
{
    size_t bytes = sizeof(box_t) * (size_t)n + 64 + sizeof(int) * (size_t)n + 8;
    for (int i = 0; i < n; i++)
        bytes += ((cap[i] + 7u) & ~(size_t)7u) + 64;
    return bytes;
}

int srv__mbox_create(int n, const size_t *cap, const uint32_t *max_msgs)
{
    g_boxes = srv__shm_alloc(sizeof(box_t) * (size_t)n, 64);
    g_fds = srv__shm_alloc(sizeof(int) * (size_t)n, 8);
    if (g_boxes == NULL || g_fds == NULL)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        size_t c = (cap[i] + 7u) & ~(size_t)7u;
        char *ring = srv__shm_alloc(c, 64);
        if (ring == NULL)
            return -ENOMEM;
        g_boxes[i].cap = c;
        g_boxes[i].data_off = srv__shm_off(ring);
        g_boxes[i].max_msgs = max_msgs ? max_msgs[i] : 0;
        /* Inherited by every process forked afterwards; never exec'd, so close-on-exec. */
        g_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (g_fds[i] < 0)
            return -errno;
    }
    g_n = n;
    return 0;
}

int srv__mbox_count(void)
{
    return g_n;
}

int srv__mbox_fd(int i)
{
    return i >= 0 && i < g_n ? g_fds[i] : -1;
}

size_t srv__mbox_max_payload(int i)
{
    if (i < 0 || i >= g_n)
        return 0;
    return g_boxes[i].cap / 2 - sizeof(srv__msg_t);
}

/* After taking the lock over from a process that died holding it: the byte counters are
 * always advanced after the bytes are written, but the message count may be one off (a
 * producer killed after moving tail, a consumer after moving head). Count the records again;
 * a ring that does not parse (it cannot today) is emptied rather than trusted. */
static void repair(box_t *b, const char *ring)
{
    uint32_t n = 0;
    uint64_t at = b->head;
    while (at < b->tail) {
        uint64_t pos = at % b->cap;
        size_t room_to_end = b->cap - pos;
        srv__msg_t m;
        if (room_to_end < sizeof(m)) {
            at += room_to_end;
            continue;
        }
        memcpy(&m, ring + pos, sizeof(m));
        if (m.type == PAD_TYPE) {
            at += room_to_end;
            continue;
        }
        if (rec_size(m.len) > room_to_end)
            break;
        at += rec_size(m.len);
        n++;
    }
    if (at != b->tail) {
        srv__log(SRV_LOG_ERROR, "mbox", 0, "mailbox left unreadable by a dead process: emptied");
        b->head = b->tail;
        n = 0;
    }
    b->msgs = n;
}

static void lock_box(box_t *b, const char *ring)
{
    if (srv__shm_lock(&b->lock) == 1)
        repair(b, ring);
}

int srv__mbox_put(int i, const srv__msg_t *m, const void *data)
{
    if (i < 0 || i >= g_n)
        return -EINVAL;
    box_t *b = &g_boxes[i];
    if (m->len > srv__mbox_max_payload(i))
        return -EMSGSIZE;
    size_t need = rec_size(m->len);
    char *ring = srv__shm_ptr(b->data_off);
    lock_box(b, ring);
    uint64_t pos = b->tail % b->cap;
    size_t room_to_end = b->cap - pos;
    size_t total = need + (room_to_end < need ? room_to_end : 0);
    if (b->tail - b->head + total > b->cap || (b->max_msgs && b->msgs >= b->max_msgs)) {
        srv__shm_unlock(&b->lock);
        return -ENOBUFS;
    }
    if (room_to_end < need) {
        srv__msg_t pad = {.type = PAD_TYPE, .len = (uint32_t)(room_to_end - sizeof(srv__msg_t))};
        if (room_to_end >= sizeof(srv__msg_t))
            memcpy(ring + pos, &pad, sizeof(pad));
        b->tail += room_to_end;
        pos = 0;
    }
    memcpy(ring + pos, m, sizeof(*m));
    if (m->len)
        memcpy(ring + pos + sizeof(*m), data, m->len);
    b->tail += need;
    b->msgs++;
    srv__shm_unlock(&b->lock);
    uint64_t one = 1;
    ssize_t w = write(g_fds[i], &one, sizeof(one));
    (void)w; /* EAGAIN: the counter is saturated, the receiver is already due to wake */
    return 0;
}

int srv__mbox_get(int i, srv__msg_t *m, void *buf, size_t cap)
{
    if (i < 0 || i >= g_n)
        return -EINVAL;
    box_t *b = &g_boxes[i];
    char *ring = srv__shm_ptr(b->data_off);
    lock_box(b, ring);
    for (;;) {
        if (b->head == b->tail) {
            srv__shm_unlock(&b->lock);
            return 0;
        }
        uint64_t pos = b->head % b->cap;
        size_t room_to_end = b->cap - pos;
        if (room_to_end < sizeof(srv__msg_t)) {
            b->head += room_to_end;
            continue;
        }
        memcpy(m, ring + pos, sizeof(*m));
        if (m->type == PAD_TYPE) {
            b->head += room_to_end;
            continue;
        }
        int rc = 1;
        if (m->len > cap)
            rc = -EMSGSIZE;
        else if (m->len)
            memcpy(buf, ring + pos + sizeof(*m), m->len);
        b->head += rec_size(m->len);
        b->msgs--;
        srv__shm_unlock(&b->lock);
        return rc;
    }
}

void srv__mbox_ack(int i)
{
    if (i < 0 || i >= g_n)
        return;
    uint64_t v;
    ssize_t r = read(g_fds[i], &v, sizeof(v));
    (void)r;
}

uint32_t srv__mbox_pending(int i)
{
    if (i < 0 || i >= g_n)
        return 0;
    return __atomic_load_n(&g_boxes[i].msgs, __ATOMIC_RELAXED);
}

void srv__mbox_kick(int i)
{
    if (i < 0 || i >= g_n)
        return;
    uint64_t one = 1;
    ssize_t w = write(g_fds[i], &one, sizeof(one));
    (void)w;
}

void srv__mbox_set_owner(int i, int pid)
{
    if (i >= 0 && i < g_n)
        __atomic_store_n(&g_boxes[i].owner, pid, __ATOMIC_RELEASE);
}

bool srv__mbox_orphaned(int i)
{
    if (i < 0 || i >= g_n)
        return false;
    int32_t pid = __atomic_load_n(&g_boxes[i].owner, __ATOMIC_ACQUIRE);
    return pid <= 0 || srv__shm_pid_dead(pid);
}

void srv__mbox_test_die_holding(int i)
{
    box_t *b = &g_boxes[i];
    srv__shm_lock(&b->lock);
    b->msgs--; /* as if the last put moved tail and died before counting it */
    _exit(0);
}
