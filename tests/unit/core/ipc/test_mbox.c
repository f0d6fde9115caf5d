/* Shared-memory mailboxes (core/ipc/mbox.c): order and contents, the byte and count bounds (a
 * full mailbox refuses and loses nothing), the largest payload, the eventfd's pending/ack/kick
 * signalling, owners and orphans, and producers in other processes. */
#include "core/ipc/mbox.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/shm/shm.h"

/* Mailboxes of the current test: srv__mbox_create() carves new ones from the region each time. */
static void make(int n, size_t cap, uint32_t max_msgs)
{
    size_t caps[8];
    uint32_t maxm[8];
    CHECK(n <= 8);
    for (int i = 0; i < n; i++) {
        caps[i] = cap;
        maxm[i] = max_msgs;
    }
    CHECK_INT(srv__mbox_create(n, caps, maxm), ==, 0);
    CHECK_INT(srv__mbox_count(), ==, n);
}

/* A message whose payload is len bytes derived from seq (so a mix-up shows). */
static int put_seq(int box, uint64_t seq, uint32_t len, int32_t from)
{
    unsigned char data[4096] = {0};
    CHECK(len <= sizeof(data));
    for (uint32_t k = 0; k < len; k++)
        data[k] = (unsigned char)(seq * 31u + k);
    srv__msg_t m = {
        .type = SRV_MSG_PIPE, .from = from, .id = seq, .flags = (uint32_t)seq ^ len, .len = len};
    return srv__mbox_put(box, &m, data);
}

/* Take one message and check it is seq of length len from from. */
static void get_seq(int box, uint64_t seq, uint32_t len, int32_t from)
{
    unsigned char buf[4096];
    srv__msg_t m;
    CHECK_INT(srv__mbox_get(box, &m, buf, sizeof(buf)), ==, 1);
    CHECK_INT(m.type, ==, SRV_MSG_PIPE);
    CHECK_INT(m.from, ==, from);
    CHECK_INT(m.id, ==, seq);
    CHECK_INT(m.len, ==, len);
    CHECK_INT(m.flags, ==, (uint32_t)seq ^ len);
    for (uint32_t k = 0; k < len; k++)
        CHECK_INT(buf[k], ==, (unsigned char)(seq * 31u + k));
}

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    CHECK_INT(n, >=, 0);
    return n == 1 && (p.revents & POLLIN);
}

static void test_bad_ids(void)
{
    make(2, 1024, 0);
    srv__msg_t m = {.type = SRV_MSG_PIPE};
    char buf[8];
    for (int i = -1; i <= 2; i += 3) {
        CHECK_INT(srv__mbox_put(i, &m, NULL), ==, -EINVAL);
        CHECK_INT(srv__mbox_get(i, &m, buf, sizeof(buf)), ==, -EINVAL);
        CHECK_INT(srv__mbox_fd(i), ==, -1);
        CHECK_INT(srv__mbox_pending(i), ==, 0);
        CHECK_INT(srv__mbox_max_payload(i), ==, 0);
        CHECK(!srv__mbox_orphaned(i));
        srv__mbox_set_owner(i, getpid()); /* ignored */
    }
    CHECK(srv__mbox_fd(0) >= 0 && srv__mbox_fd(1) >= 0 && srv__mbox_fd(0) != srv__mbox_fd(1));
}

static void test_order(void)
{
    make(2, 4096, 0);
    srv__msg_t m;
    char buf[64];
    CHECK_INT(srv__mbox_get(0, &m, buf, sizeof(buf)), ==, 0);
    for (uint64_t s = 0; s < 20; s++)
        CHECK_INT(put_seq(0, s, (uint32_t)(s * 5 % 41), 7), ==, 0);
    CHECK_INT(srv__mbox_pending(0), ==, 20);
    CHECK_INT(srv__mbox_pending(1), ==, 0); /* mailboxes are separate */
    CHECK_INT(srv__mbox_get(1, &m, buf, sizeof(buf)), ==, 0);
    for (uint64_t s = 0; s < 20; s++) {
        get_seq(0, s, (uint32_t)(s * 5 % 41), 7);
        CHECK_INT(srv__mbox_pending(0), ==, 19 - s);
    }
    CHECK_INT(srv__mbox_get(0, &m, buf, sizeof(buf)), ==, 0);

    /* Many rounds through the ring with odd sizes: records never wrap, padding is invisible. */
    uint64_t put = 0, got = 0;
    while (got < 5000) {
        while (put < 5000 && put - got < 9 && put_seq(0, put, (uint32_t)(put * 37 % 333), 1) == 0)
            put++;
        get_seq(0, got, (uint32_t)(got * 37 % 333), 1);
        got++;
    }
    CHECK_INT(srv__mbox_pending(0), ==, 0);
}

/* Fill box 0 with len-byte messages; returns how many it took. */
static uint64_t fill(uint64_t first, uint32_t len)
{
    uint64_t s = first;
    int rc;
    while ((rc = put_seq(0, s, len, 3)) == 0)
        s++;
    CHECK_INT(rc, ==, -ENOBUFS);
    return s - first;
}

static void test_full(void)
{
    make(1, 1024, 0);
    uint64_t n = fill(0, 100); /* 128-byte records */
    CHECK_INT(n, ==, 1024 / 128);
    CHECK_INT(srv__mbox_pending(0), ==, n);
    CHECK_INT(put_seq(0, 99, 0, 3), ==, -ENOBUFS); /* not even an empty one */
    CHECK_INT(srv__mbox_pending(0), ==, n);
    get_seq(0, 0, 100, 3);
    CHECK_INT(put_seq(0, n, 100, 3), ==, 0); /* room again, at the ring's start */
    CHECK_INT(put_seq(0, n + 1, 100, 3), ==, -ENOBUFS);
    for (uint64_t s = 1; s <= n; s++)
        get_seq(0, s, 100, 3);
    srv__msg_t m;
    CHECK_INT(srv__mbox_get(0, &m, NULL, 0), ==, 0);

    /* The count bound: 3 messages at most, with bytes to spare. */
    make(1, 4096, 3);
    CHECK_INT(fill(10, 1), ==, 3);
    get_seq(0, 10, 1, 3);
    CHECK_INT(put_seq(0, 13, 1, 3), ==, 0);
    CHECK_INT(put_seq(0, 14, 1, 3), ==, -ENOBUFS);
    for (uint64_t s = 11; s <= 13; s++)
        get_seq(0, s, 1, 3);
    CHECK_INT(srv__mbox_pending(0), ==, 0);
}

static void test_max_payload(void)
{
    /* 1000 bytes: a ring whose half is not a multiple of 8. */
    const size_t caps[] = {1000, 4096};
    for (int c = 0; c < 2; c++) {
        make(1, caps[c], 0);
        size_t max = srv__mbox_max_payload(0);
        CHECK_INT(max, ==, caps[c] / 2 - sizeof(srv__msg_t));
        srv__msg_t m = {.type = SRV_MSG_PIPE, .len = (uint32_t)max + 1};
        CHECK_INT(srv__mbox_put(0, &m, NULL), ==, -EMSGSIZE);
        CHECK_INT(srv__mbox_pending(0), ==, 0);
        /* The largest payload fits an empty mailbox wherever the ring's position is. */
        for (uint64_t s = 0; s < 2 * caps[c] / 8; s++) {
            CHECK_INT(put_seq(0, s, (uint32_t)max, 0), ==, 0);
            get_seq(0, s, (uint32_t)max, 0);
            CHECK_INT(put_seq(0, s, 0, 0), ==, 0); /* move on by one 8-byte step */
            get_seq(0, s, 0, 0);
            CHECK_INT(put_seq(0, s, 8, 0), ==, 0);
            get_seq(0, s, 8, 0);
        }
    }
}

/* A payload larger than the reader's buffer: -EMSGSIZE and that message is dropped, not the
 * next one. */
static void test_small_buffer(void)
{
    make(1, 4096, 0);
    CHECK_INT(put_seq(0, 1, 64, 0), ==, 0);
    CHECK_INT(put_seq(0, 2, 8, 0), ==, 0);
    srv__msg_t m;
    char buf[16];
    CHECK_INT(srv__mbox_get(0, &m, buf, sizeof(buf)), ==, -EMSGSIZE);
    CHECK_INT(m.id, ==, 1);
    CHECK_INT(srv__mbox_pending(0), ==, 1);
    get_seq(0, 2, 8, 0);
}

static void test_signalling(void)
{
    make(2, 4096, 0);
    int fd = srv__mbox_fd(0);
    CHECK(!readable(fd));
    srv__mbox_ack(0); /* nothing to clear: does not block */
    CHECK_INT(put_seq(0, 1, 4, 0), ==, 0);
    CHECK_INT(put_seq(0, 2, 4, 0), ==, 0);
    CHECK(readable(fd));
    CHECK(!readable(srv__mbox_fd(1)));
    srv__mbox_ack(0);
    CHECK(!readable(fd));
    CHECK_INT(srv__mbox_pending(0), ==, 2); /* ack clears the signal, not the messages */
    get_seq(0, 1, 4, 0);
    srv__mbox_kick(0); /* another receiver should look */
    CHECK(readable(fd));
    srv__mbox_ack(0);
    get_seq(0, 2, 4, 0);
    CHECK(!readable(fd));
}

static void test_owner(void)
{
    make(2, 1024, 0);
    CHECK(srv__mbox_orphaned(0)); /* nobody ever read it */
    srv__mbox_set_owner(0, getpid());
    CHECK(!srv__mbox_orphaned(0));
    CHECK(srv__mbox_orphaned(1));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        srv__mbox_set_owner(1, getpid()); /* the region is shared: the parent sees it */
        _exit(0);
    }
    siginfo_t si;
    CHECK_INT(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), ==, 0);
    CHECK(!srv__mbox_orphaned(1)); /* a zombie is alive until reaped */
    CHECK_INT(waitpid(pid, NULL, 0), ==, pid);
    CHECK(srv__mbox_orphaned(1));
    CHECK(!srv__mbox_orphaned(0));
}

#define PRODUCERS 2
#define PER_PRODUCER 4000u

/* A child: post PER_PRODUCER messages to box 0, waiting whenever it is full. */
static void producer(int32_t me)
{
    for (uint64_t s = 0; s < PER_PRODUCER;) {
        int rc = put_seq(0, s, (uint32_t)(s * 13 % 200), me);
        if (rc == 0)
            s++;
        else if (rc == -ENOBUFS)
            sched_yield();
        else
            _exit(2);
    }
    _exit(0);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Children put, the parent gets: each producer's messages arrive whole and in order, none lost,
 * although the small mailbox keeps filling up. */
static void test_across_fork(void)
{
    make(1, 2048, 0);
    pid_t kids[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        kids[p] = fork();
        CHECK(kids[p] >= 0);
        if (kids[p] == 0)
            producer(p);
    }
    uint64_t next[PRODUCERS] = {0};
    uint64_t total = 0;
    double deadline = now_s() + 60;
    unsigned char buf[4096];
    while (total < PRODUCERS * (uint64_t)PER_PRODUCER) {
        CHECK(now_s() < deadline);
        struct pollfd pfd = {.fd = srv__mbox_fd(0), .events = POLLIN};
        CHECK_INT(poll(&pfd, 1, 100), >=, 0);
        srv__mbox_ack(0);
        srv__msg_t m;
        int rc;
        while ((rc = srv__mbox_get(0, &m, buf, sizeof(buf))) == 1) {
            CHECK(m.from >= 0 && m.from < PRODUCERS);
            uint64_t s = next[m.from]++;
            CHECK_INT(m.id, ==, s);
            CHECK_INT(m.len, ==, s * 13 % 200);
            for (uint32_t k = 0; k < m.len; k++)
                CHECK_INT(buf[k], ==, (unsigned char)(s * 31u + k));
            total++;
        }
        CHECK_INT(rc, ==, 0);
    }
    for (int p = 0; p < PRODUCERS; p++) {
        int st;
        CHECK_INT(waitpid(kids[p], &st, 0), ==, kids[p]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_INT(next[p], ==, PER_PRODUCER);
    }
    CHECK_INT(srv__mbox_pending(0), ==, 0);
}

/* A process dies holding the lock with the count one off: the next one to lock repairs it. */
static void test_dead_holder(void)
{
    make(1, 4096, 0);
    for (uint64_t k = 0; k < 3; k++)
        CHECK_INT(put_seq(0, k, 10, 1), ==, 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        srv__mbox_test_die_holding(0);
    int status;
    CHECK_INT(waitpid(pid, &status, 0), ==, pid);
    CHECK_INT(srv__mbox_pending(0), ==, 2); /* wrong until someone takes the lock */
    CHECK_INT(put_seq(0, 3, 10, 1), ==, 0); /* takes the lock over and recounts */
    CHECK_INT(srv__mbox_pending(0), ==, 4);
    for (uint64_t k = 0; k < 4; k++)
        get_seq(0, k, 10, 1);
    srv__msg_t m;
    char buf[64];
    CHECK_INT(srv__mbox_get(0, &m, buf, sizeof(buf)), ==, 0);
    CHECK_INT(srv__mbox_pending(0), ==, 0);
}

int main(void)
{
    CHECK_INT(srv__shm_create(8 << 20), ==, 0);
    test_bad_ids();
    test_order();
    test_full();
    test_max_payload();
    test_small_buffer();
    test_signalling();
    test_owner();
    test_dead_holder();
    test_across_fork();
    srv__shm_destroy();
    return 0;
}
