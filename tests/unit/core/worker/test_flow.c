/* core/flow.c: per-response windows. A fake transport records what is handed on; acks and
 * departures are played by the test as the connection's owner would. */
#include "core/worker/flow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/ipc/ipc.h"

#define WINDOW (1u << 20)

static struct {
    uint64_t bytes[16]; /* per session (small ids) */
    unsigned last_flags[16];
    int frames, finals, flows;
    size_t biggest;
    int fail; /* next put returns this */
    bool busy;                          /* the transport is full */
    void (*on_final)(uint64_t session); /* run inside a FINAL put (base mode's next request) */
} T;

static int put(void *arg, uint64_t session, const struct iovec *iov, int iovcnt, unsigned flags)
{
    (void)arg;
    if (T.fail) {
        int rc = T.fail;
        T.fail = 0;
        return rc;
    }
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    T.bytes[session % 16] += n;
    T.last_flags[session % 16] = flags;
    T.frames++;
    T.finals += (flags & SRV_IPC_F_FINAL) != 0;
    T.flows += (flags & SRV_IPC_F_FLOW) != 0;
    if (n > T.biggest)
        T.biggest = n;
    if ((flags & SRV_IPC_F_FINAL) && T.on_final) {
        void (*fn)(uint64_t) = T.on_final;
        T.on_final = NULL;
        fn(session);
    }
    return 0;
}

static int put_file(void *arg, uint64_t session, int fd, const char *path, uint64_t off,
                    uint64_t len, unsigned flags)
{
    (void)arg, (void)path, (void)off;
    close(fd);
    T.bytes[session % 16] += len;
    T.last_flags[session % 16] = flags;
    return 0;
}

static bool busy(void *arg, uint64_t session)
{
    (void)arg, (void)session;
    return T.busy;
}

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    srv__flow_deinit();
    srv__flow_init(&(srv__flow_transport_t){.put = put, .put_file = put_file, .busy = busy},
                   WINDOW);
}

static int calls;
static void on_writable(void *arg)
{
    (void)arg;
    calls++;
}

static char block[3 * WINDOW];

static int write_n(uint64_t s, size_t n, unsigned flags)
{
    struct iovec v = {block, n};
    return srv__flow_emit(s, &v, 1, flags);
}

static void test_small_final_is_not_tracked(void)
{
    setup();
    CHECK_INT(write_n(1, 100, SRV_IPC_F_FINAL), ==, 0);
    CHECK_INT(srv__flow_count(), ==, 0);
    CHECK_INT(T.frames, ==, 1);
    CHECK_INT(T.last_flags[1], ==, SRV_IPC_F_FINAL);
}

static void test_stream_backpressure(void)
{
    setup();
    calls = 0;
    uint64_t s = 2;
    size_t taken = 0;
    int rc;
    while ((rc = write_n(s, 65536, 0)) == 0)
        taken += 65536;
    CHECK_INT(rc, ==, -EAGAIN);
    CHECK_INT(taken, ==, WINDOW);
    CHECK_INT(T.bytes[s], ==, WINDOW);
    CHECK(T.flows > 0); /* the owner is asked for progress once it matters */
    /* refused again, nothing taken */
    CHECK_INT(write_n(s, 10, 0), ==, -EAGAIN);
    CHECK_INT(T.bytes[s], ==, WINDOW);
    CHECK_INT(srv__flow_on_writable(s, on_writable, NULL), ==, 0);
    srv__flow_run();
    CHECK_INT(calls, ==, 0); /* still full */
    srv__flow_ack(s, WINDOW / 4); /* three quarters still in flight: not yet */
    srv__flow_run();
    CHECK_INT(calls, ==, 0);
    srv__flow_ack(s, WINDOW / 2);
    CHECK(srv__flow_due());
    srv__flow_run();
    CHECK_INT(calls, ==, 1);
    srv__flow_run();
    CHECK_INT(calls, ==, 1); /* once */
    CHECK_INT(write_n(s, 65536, 0), ==, 0);
    CHECK_INT(write_n(s, 0, SRV_IPC_F_FINAL), ==, 0);
    CHECK_INT(T.last_flags[s] & SRV_IPC_F_FINAL, ==, SRV_IPC_F_FINAL);
    CHECK_INT(srv__flow_count(), ==, 0);
}

/* A full transport (the reactor channel) refuses streamed writes and holds a final send's rest
 * until it has room again: nothing waits on the loop thread, nothing is lost. */
static void test_busy_transport(void)
{
    setup();
    calls = 0;
    uint64_t s = 4;
    CHECK_INT(write_n(s, 1000, 0), ==, 0);
    T.busy = true;
    CHECK_INT(write_n(s, 1000, 0), ==, -EAGAIN);
    CHECK_INT(T.bytes[s], ==, 1000);
    CHECK_INT(srv__flow_on_writable(s, on_writable, NULL), ==, 0);
    srv__flow_run();
    CHECK_INT(calls, ==, 0); /* still busy */
    srv__flow_kick();
    T.busy = false;
    srv__flow_kick();
    CHECK(srv__flow_due());
    srv__flow_run();
    CHECK_INT(calls, ==, 1);
    /* A final send while busy is taken whole and sent once there is room. */
    T.busy = true;
    CHECK_INT(write_n(s, 5000, SRV_IPC_F_FINAL), ==, 0);
    CHECK_INT(T.bytes[s], ==, 1000);
    srv__flow_run();
    CHECK_INT(T.bytes[s], ==, 1000);
    T.busy = false;
    srv__flow_kick();
    srv__flow_run();
    CHECK_INT(T.bytes[s], ==, 6000);
    CHECK_INT(T.last_flags[s] & SRV_IPC_F_FINAL, ==, SRV_IPC_F_FINAL);
    CHECK_INT(srv__flow_count(), ==, 0);
}

static void test_large_final_is_kept_and_pumped(void)
{
    setup();
    uint64_t s = 3;
    size_t n = sizeof(block);
    for (size_t i = 0; i < n; i++)
        block[i] = (char)i;
    CHECK_INT(write_n(s, n, SRV_IPC_F_FINAL | SRV_IPC_F_CLOSE), ==, 0);
    CHECK_INT(T.bytes[s], ==, WINDOW);
    CHECK_INT(T.finals, ==, 0);
    CHECK(T.biggest <= SRV_IPC_PIECE);
    CHECK_INT(srv__flow_count(), ==, 1);
    uint64_t written = 0;
    for (int round = 0; round < 100 && srv__flow_count() > 0; round++) {
        written = T.bytes[s]; /* the client reads everything sent so far */
        srv__flow_ack(s, written);
        srv__flow_run();
    }
    CHECK_INT(srv__flow_count(), ==, 0);
    CHECK_INT(T.bytes[s], ==, n);
    CHECK_INT(T.finals, ==, 1);
    CHECK_INT(T.last_flags[s] & (SRV_IPC_F_FINAL | SRV_IPC_F_CLOSE), ==,
              SRV_IPC_F_FINAL | SRV_IPC_F_CLOSE);
    CHECK(T.biggest <= SRV_IPC_PIECE);
}

static void test_gone(void)
{
    setup();
    calls = 0;
    uint64_t s = 4;
    while (write_n(s, 65536, 0) == 0)
        ;
    CHECK_INT(srv__flow_on_writable(s, on_writable, NULL), ==, 0);
    srv__flow_gone(s);
    srv__flow_run();
    CHECK_INT(calls, ==, 1); /* told, so it can stop */
    CHECK_INT(write_n(s, 10, 0), ==, -EPIPE);
    CHECK_INT(write_n(s, 0, SRV_IPC_F_FINAL), ==, -EPIPE);
    CHECK_INT(srv__flow_count(), ==, 0);
    /* a stale session seen by the transport is gone too */
    T.fail = -ENOENT;
    CHECK_INT(write_n(5, 10, 0), ==, -EPIPE);
    CHECK_INT(write_n(5, 10, 0), ==, -EPIPE);
    CHECK_INT(write_n(5, 0, SRV_IPC_F_FINAL), ==, -EPIPE);
    CHECK_INT(srv__flow_count(), ==, 0);
    /* acks and departures of unknown sessions are ignored */
    srv__flow_ack(99, 5);
    srv__flow_gone(99);
    CHECK(!srv__flow_due());
}

static void test_transport_failure_aborts(void)
{
    setup();
    uint64_t s = 6;
    CHECK_INT(write_n(s, 10, 0), ==, 0);
    T.fail = -ENOBUFS;
    CHECK_INT(write_n(s, 10, 0), ==, -ENOBUFS);
    /* the owner was asked to abort the connection */
    CHECK_INT(T.last_flags[s] & SRV_IPC_F_ERROR, ==, SRV_IPC_F_ERROR);
    CHECK_INT(write_n(s, 10, 0), ==, -EPIPE);
    CHECK_INT(write_n(s, 0, SRV_IPC_F_FINAL), ==, -EPIPE);
    CHECK_INT(srv__flow_count(), ==, 0);
}

/* Base mode: the final piece of a kept response completes the request and the connection's next
 * (pipelined) request starts streaming at once, under the same session id. */
static int next_rc;
static void next_request(uint64_t session)
{
    struct iovec v = {block, 65536};
    while ((next_rc = srv__flow_emit(session, &v, 1, 0)) == 0)
        ;
    srv__flow_on_writable(session, on_writable, NULL);
}

static void test_pipelined_next_response(void)
{
    setup();
    calls = 0;
    uint64_t s = 7;
    CHECK_INT(write_n(s, WINDOW + 1000, SRV_IPC_F_FINAL), ==, 0); /* 1000 bytes kept */
    T.on_final = next_request;
    srv__flow_ack(s, WINDOW);
    srv__flow_run(); /* the rest goes, then the next response fills its own window */
    CHECK_INT(next_rc, ==, -EAGAIN);
    CHECK_INT(srv__flow_count(), ==, 1); /* the next response's record, not the old one */
    CHECK_INT(T.bytes[s], ==, 2 * WINDOW + 1000);
    srv__flow_ack(s, WINDOW / 2 + 1000); /* counted from the next response's first byte */
    srv__flow_run();
    CHECK_INT(calls, ==, 1);
    CHECK_INT(write_n(s, 0, SRV_IPC_F_FINAL), ==, 0);
    CHECK_INT(srv__flow_count(), ==, 0);
}

/* Many records inserted and dropped in mixed order: every lookup still finds its own. */
static void test_table(void)
{
    setup();
    enum { N = 5000 };
    static uint64_t ids[N];
    static bool live[N];
    srand(7);
    for (int i = 0; i < N; i++) {
        ids[i] = ((uint64_t)rand() << 32 | (uint64_t)rand()) | 1;
        CHECK_INT(write_n(ids[i], 1, 0), ==, 0);
        live[i] = true;
    }
    CHECK_INT(srv__flow_count(), ==, N);
    for (int k = 0; k < 3 * N; k++) {
        int i = rand() % N;
        if (live[i]) {
            CHECK_INT(write_n(ids[i], 0, SRV_IPC_F_FINAL), ==, 0);
            live[i] = false;
        } else {
            CHECK_INT(write_n(ids[i], 1, 0), ==, 0);
            live[i] = true;
        }
    }
    int n = 0;
    for (int i = 0; i < N; i++) {
        n += live[i];
        /* a live record refuses nothing; a dropped one would make a final write untracked */
        if (live[i])
            CHECK_INT(srv__flow_on_writable(ids[i], NULL, NULL), ==, 0);
    }
    CHECK_INT(srv__flow_count(), ==, n);
    for (int i = 0; i < N; i++)
        if (live[i])
            CHECK_INT(write_n(ids[i], 0, SRV_IPC_F_FINAL), ==, 0);
    CHECK_INT(srv__flow_count(), ==, 0);
}

int main(void)
{
    test_small_final_is_not_tracked();
    test_stream_backpressure();
    test_busy_transport();
    test_large_final_is_kept_and_pumped();
    test_gone();
    test_transport_failure_aborts();
    test_pipelined_next_response();
    test_table();
    srv__flow_deinit();
    printf("test_flow: ok\n");
    return 0;
}
