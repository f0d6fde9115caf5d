/* The demo app: every callback in use. The black-box tests and benchmarks rely on these
 * endpoints, so keep them stable:
 *   GET /                 200 "Hello, World!" (text/plain)
 *   POST /echo            the body back, with the request's Content-Type
 *   GET /worker           {"id":N,"pid":P}
 *   GET /sleep?ms=N       blocks this worker N ms, then 200
 *   GET /crash            the worker aborts while handling
 *   GET /grow?mb=N        allocates, touches and keeps N MiB more (max_worker_rss tests);
 *                         answers "grown T MiB" (what this worker holds now)
 *   GET /big?bytes=N      N bytes, streamed with back-pressure (srv_response_on_writable)
 *   GET /big/stats        "active A aborted B": /big streams running, and stopped because the
 *                         client left
 *   GET /stream?chunks=N  a chunked response of N chunks
 *   GET /headers          the request headers, one per line (X-Forwarded-For, X-Real-IP, ...)
 *   GET /peer             the peer address as the worker sees it
 *   GET /proto            the protocol the request came with: "HTTP/1.1", "HTTP/1.0" or
 *                         "HTTP/2"
 *   GET /file?name=N      /tmp/srv-demo-files/N through srv_response_file (sendfile)
 *   GET /tls              {"tls":B,"version":"","cipher":"","sni":"","client_subject":""}
 *                         from req->tls (false and empty strings on a plain listener)
 *   GET /table/set?key=&value=, /table/get?key=, /table/incr?key=   the shared "kv" table
 * WebSocket (listener with websocket = true):
 *   /ws    echoes every message back
 *   /chat  broadcasts every text message to every /chat client as "#<session>: <text>"
 *          (the sessions live in the shared table "chat" so every worker finds them all; with
 *          cluster = true the message also goes to the other instances as a worker message,
 *          and worker 0 there pushes it to that instance's /chat clients)
 * TCP: handler set "lines" echoes each line (package_eof), "quit" closes, "tls" answers the
 * /tls JSON line for the session; "frames" echoes each length-prefixed frame whole. UDP: every
 * datagram is echoed to its sender.
 * Tasks, timers, messages, custom processes:
 *   GET /task?ms=N        delivers a task that sleeps N ms, waits for it, answers its result
 *   GET /task/async       delivers a task and answers at once with its id; on_finish counts it
 *   GET /task/finished    how many async tasks finished (all workers)
 *   GET /cron             how many times the cron job demo_cron_tick ran
 *   GET /clock            asks the custom process "clock" (demo_clock) for the time
 *   GET /broadcast?msg=   sends msg to every other worker (and, with cluster = true, to every
 *                         worker of the other instances); GET /messages counts what arrived
 *   GET /ws/broadcast?msg= sends msg to every WebSocket session (of every instance in a cluster)
 *   GET /ws/push?session=HEX&msg=, /ws/kick?session=HEX   srv_ws_push / srv_ws_close (4000) to a
 *                         session, of this instance or of another one in a cluster
 *   GET /after?ms=N       answers from a timer N ms later (a detached response)
 *   GET /tick?n=N         a 10 ms srv_timer_tick cleared after N beats, then answers
 *   GET /task/chain       a task that delivers a task and waits for it
 *   GET /task/many?n=N    N tasks waited for together (srv_task_wait_many)
 *   GET /message?to=W&msg= srv_send_message to worker W (its on_pipe_message counts it) */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srv/srv.h"

/* The table called name, or NULL. */
static srv_table_t *table_named(const char *name)
{
    srv_table_t *t = NULL;
    return srv_table_find(name, &t) == 0 ? t : NULL;
}

static int64_t counter(const char *name, int64_t add)
{
    srv_atomic_t *a;
    if (srv_atomic_find(name, &a) < 0)
        return -1;
    return add ? srv_atomic_add(a, add) : srv_atomic_get(a);
}

/* GET /big streams with back-pressure: write until srv_response_write says -EAGAIN, then wait
 * for the writable callback; stop at -EPIPE (the client left). The worker never blocks. */
static char big_block[65536];

typedef struct big {
    long left;
} big_t;

static void big_more(srv_response_t *res, void *arg)
{
    big_t *b = arg;
    while (b->left > 0) {
        size_t k = b->left > (long)sizeof(big_block) ? sizeof(big_block) : (size_t)b->left;
        int rc = srv_response_write(res, big_block, k);
        if (rc == -EAGAIN && srv_response_on_writable(res, big_more, b) == 0)
            return;
        if (rc < 0) {
            counter("demo_big_aborted", 1);
            break;
        }
        b->left -= (long)k;
    }
    free(b);
    counter("demo_big_active", -1);
    srv_response_end(res);
}

static bool path_is(const srv_request_t *req, const char *p)
{
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.ptr, p, n) == 0;
}

static bool method_is(const srv_request_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method.len == n && memcmp(req->method.ptr, m, n) == 0;
}

static void text(srv_response_t *res, int status, const char *body)
{
    srv_response_status(res, status);
    srv_response_header(res, "Content-Type", "text/plain");
    srv_response_send(res, body, strlen(body));
}

/* Append s to out as a JSON string body (quotes, backslashes and controls escaped). */
static size_t json_str(char *out, size_t n, size_t at, const char *s)
{
    for (; *s && at + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            at += (size_t)snprintf(out + at, n - at, "\\%c", c);
        else if (c < 0x20)
            at += (size_t)snprintf(out + at, n - at, "\\u%04x", c);
        else
            out[at++] = (char)c;
    }
    out[at] = '\0';
    return at;
}

/* The /tls JSON of t (NULL: a plain connection) into out; returns its length. */
static size_t tls_json(const srv_tls_t *t, char *out, size_t n)
{
    static const srv_tls_t plain;
    const char *names[] = {"version", "cipher", "sni", "client_subject"};
    if (t == NULL)
        t = &plain;
    const char *values[] = {t->version, t->cipher, t->sni, t->client_subject};
    size_t at = (size_t)snprintf(out, n, "{\"tls\":%s", t->on ? "true" : "false");
    for (int i = 0; i < 4 && at + 16 + strlen(names[i]) < n; i++) {
        at += (size_t)snprintf(out + at, n - at, ",\"%s\":\"", names[i]);
        at = json_str(out, n - 3, at, values[i]);
        at += (size_t)snprintf(out + at, n - at, "\"");
    }
    at += (size_t)snprintf(out + at, n - at, "}");
    return at < n ? at : n - 1;
}

static long query_long(const srv_request_t *req, const char *name, long dflt)
{
    char buf[32];
    if (srv_request_query(req, name, buf, sizeof(buf)) < 0)
        return dflt;
    char *end;
    long v = strtol(buf, &end, 10);
    return *end == '\0' ? v : dflt;
}

static void table_endpoint(const srv_request_t *req, srv_response_t *res)
{
    srv_table_t *t = table_named("kv");
    if (t == NULL) {
        text(res, 404, "no table kv in the configuration\n");
        return;
    }
    char key[64], value[257], out[512];
    if (srv_request_query(req, "key", key, sizeof(key)) <= 0) {
        text(res, 400, "key required (1..63 bytes)\n");
        return;
    }
    int vcol = srv_table_column(t, "value"), hcol = srv_table_column(t, "hits");
    if (path_is(req, "/table/set")) {
        int n = srv_request_query(req, "value", value, sizeof(value));
        if (n < 0) {
            text(res, 400, "value required (up to 256 bytes)\n");
            return;
        }
        int rc = srv_table_set_string(t, key, vcol, value, (size_t)n);
        if (rc < 0) {
            snprintf(out, sizeof(out), "set failed: %s\n", srv_strerror(rc));
            text(res, rc == -ENOSPC ? 507 : 400, out);
            return;
        }
        text(res, 200, "ok\n");
    } else if (path_is(req, "/table/get")) {
        int rc = srv_table_get_string(t, key, vcol, value, sizeof(value));
        if (rc < 0) {
            text(res, 404, "no such key\n");
            return;
        }
        int64_t hits = 0;
        srv_table_get_int(t, key, hcol, &hits);
        snprintf(out, sizeof(out), "{\"key\":\"%s\",\"value\":\"%s\",\"hits\":%lld,\"worker\":%d}",
                 key, value, (long long)hits, srv_worker_self()->id);
        srv_response_header(res, "Content-Type", "application/json");
        srv_response_send(res, out, strlen(out));
    } else if (path_is(req, "/table/incr")) {
        int64_t v = 0;
        int rc = srv_table_incr(t, key, hcol, 1, &v);
        if (rc < 0) {
            snprintf(out, sizeof(out), "incr failed: %s\n", srv_strerror(rc));
            text(res, rc == -ENOSPC ? 507 : 400, out);
            return;
        }
        snprintf(out, sizeof(out), "%lld\n", (long long)v);
        text(res, 200, out);
    } else
        text(res, 404, "not found\n");
}

/* /grow?mb=N: N MiB more, every page written so it is resident, kept until the worker exits. */
static void grow(const srv_request_t *req, srv_response_t *res)
{
    static long held_mb;
    static void *held; /* the blocks, chained through their first word */
    char buf[64];
    long mb = query_long(req, "mb", 0);
    if (mb < 0 || mb > 4096) {
        text(res, 400, "mb must be 0..4096\n");
        return;
    }
    for (long i = 0; i < mb; i++) {
        char *p = malloc(1 << 20);
        if (p == NULL) {
            text(res, 500, "out of memory\n");
            return;
        }
        memset(p, (int)(i & 0x7f) | 1, 1 << 20);
        *(void **)p = held;
        held = p;
        held_mb++;
    }
    snprintf(buf, sizeof(buf), "grown %ld MiB\n", held_mb);
    text(res, 200, buf);
}

static bool misc_endpoint(const srv_request_t *req, srv_response_t *res);

static void grow(const srv_request_t *req, srv_response_t *res);

static void on_request(const srv_request_t *req, srv_response_t *res)
{
    char buf[256];
    if (path_is(req, "/")) {
        srv_response_header(res, "Content-Type", "text/plain");
        srv_response_send(res, "Hello, World!", 13);
    } else if (path_is(req, "/echo")) {
        if (!method_is(req, "POST")) {
            text(res, 405, "POST only\n");
            return;
        }
        srv_str_t ct = srv_request_header(req, "Content-Type");
        if (ct.ptr) {
            char type[256];
            snprintf(type, sizeof(type), "%.*s", (int)ct.len, ct.ptr);
            srv_response_header(res, "Content-Type", type);
        }
        srv_response_send(res, req->body.ptr, req->body.len);
    } else if (path_is(req, "/worker")) {
        int n = snprintf(buf, sizeof(buf), "{\"id\":%d,\"pid\":%d}", srv_worker_self()->id,
                         (int)getpid());
        srv_response_header(res, "Content-Type", "application/json");
        srv_response_send(res, buf, (size_t)n);
    } else if (path_is(req, "/sleep")) {
        long ms = query_long(req, "ms", 0);
        if (ms < 0 || ms > 600000) {
            text(res, 400, "ms must be 0..600000\n");
            return;
        }
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0)
            ;
        snprintf(buf, sizeof(buf), "slept %ld ms\n", ms);
        text(res, 200, buf);
    } else if (path_is(req, "/crash")) {
        abort();
    } else if (path_is(req, "/grow")) {
        grow(req, res);
    } else if (path_is(req, "/big")) {
        long n = query_long(req, "bytes", -1);
        if (n < 0 || n > (1L << 30)) {
            text(res, 400, "bytes must be 0..1073741824\n");
            return;
        }
        srv_response_header(res, "Content-Type", "application/octet-stream");
        if (big_block[0] == 0)
            memset(big_block, 'x', sizeof(big_block));
        if (n <= (long)sizeof(big_block)) {
            srv_response_send(res, big_block, (size_t)n);
            return;
        }
        big_t *b = malloc(sizeof(*b));
        if (b == NULL) {
            text(res, 503, "no memory\n");
            return;
        }
        b->left = n;
        counter("demo_big_active", 1);
        srv_response_detach(res);
        big_more(res, b);
    } else if (path_is(req, "/big/stats")) {
        snprintf(buf, sizeof(buf), "active %lld aborted %lld\n",
                 (long long)counter("demo_big_active", 0),
                 (long long)counter("demo_big_aborted", 0));
        text(res, 200, buf);
    } else if (path_is(req, "/stream")) {
        long n = query_long(req, "chunks", 3);
        if (n < 0 || n > 100000) {
            text(res, 400, "chunks must be 0..100000\n");
            return;
        }
        srv_response_header(res, "Content-Type", "text/plain");
        for (long i = 0; i < n; i++) {
            int k = snprintf(buf, sizeof(buf), "chunk %ld\n", i);
            srv_response_write(res, buf, (size_t)k);
        }
        srv_response_end(res);
    } else if (path_is(req, "/headers")) {
        srv_response_header(res, "Content-Type", "text/plain");
        for (size_t i = 0; i < req->nheaders; i++) {
            int k = snprintf(buf, sizeof(buf), "%.*s: %.*s\n", (int)req->headers[i].name.len,
                             req->headers[i].name.ptr, (int)req->headers[i].value.len,
                             req->headers[i].value.ptr);
            srv_response_write(res, buf, (size_t)(k < (int)sizeof(buf) ? k : (int)sizeof(buf) - 1));
        }
        srv_response_end(res);
    } else if (path_is(req, "/file")) {
        /* srv_response_file: name (no '/') under /tmp/srv-demo-files/. */
        char name[128], path[256];
        if (srv_request_query(req, "name", name, sizeof(name)) <= 0 || strchr(name, '/') ||
            name[0] == '.') {
            text(res, 400, "name required (a file name, no '/')\n");
            return;
        }
        snprintf(path, sizeof(path), "/tmp/srv-demo-files/%s", name);
        int rc = srv_response_file(res, path);
        if (rc < 0) {
            snprintf(buf, sizeof(buf), "%s: %s\n", name, srv_strerror(rc));
            text(res, rc == -ENOENT ? 404 : 403, buf);
        }
    } else if (path_is(req, "/tls")) {
        char json[2048];
        size_t n = tls_json(req->tls, json, sizeof(json));
        srv_response_header(res, "Content-Type", "application/json");
        srv_response_send(res, json, n);
    } else if (path_is(req, "/proto")) {
        if (req->http_major == 2)
            snprintf(buf, sizeof(buf), "HTTP/2\n");
        else
            snprintf(buf, sizeof(buf), "HTTP/1.%d\n", req->http_minor);
        text(res, 200, buf);
    } else if (path_is(req, "/peer")) {
        int n = snprintf(buf, sizeof(buf), "%.*s %d\n", (int)req->peer.len, req->peer.ptr,
                         req->peer_port);
        srv_response_header(res, "Content-Type", "text/plain");
        srv_response_send(res, buf, (size_t)n);
    } else if (req->path.len > 7 && memcmp(req->path.ptr, "/table/", 7) == 0) {
        table_endpoint(req, res);
    } else if (misc_endpoint(req, res)) {
        return;
    } else {
        text(res, 404, "not found\n");
    }
}

/* ---- tasks, timers, messages, processes ---- */

static int on_task(srv_task_t *task)
{
    /* Payload: "sleep <ms>" or "fail". */
    char cmd[64];
    size_t n = task->len < sizeof(cmd) - 1 ? task->len : sizeof(cmd) - 1;
    memcpy(cmd, task->data, n);
    cmd[n] = '\0';
    if (strcmp(cmd, "fail") == 0)
        return -1;
    if (strcmp(cmd, "chain") == 0) {
        /* A task delivering a task and waiting for it. */
        int64_t sub = srv_task_deliver("sleep 1", 7, NULL);
        char r[128];
        int k = sub < 0 ? (int)sub : srv_task_wait((uint64_t)sub, r, sizeof(r) - 1, 5000);
        if (k < 0)
            return -1;
        char out[200];
        int m = snprintf(out, sizeof(out), "chain -> %.*s", k, r);
        srv_task_result(task, out, (size_t)m);
        return 0;
    }
    long ms = 0;
    if (sscanf(cmd, "sleep %ld", &ms) == 1 && ms > 0 && ms <= 600000) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    char out[128];
    int k = snprintf(out, sizeof(out), "task %llu done by task worker %d (attempt %d)",
                     (unsigned long long)task->id, srv_worker_self()->id, task->attempt);
    srv_task_result(task, out, (size_t)k);
    return 0;
}

static void on_finish(uint64_t id, int status, const void *data, size_t len)
{
    counter(status == 0 ? "demo_tasks_finished" : "demo_tasks_failed", 1);
}

static void chat_deliver(const char *text, size_t len);

static void on_pipe_message(int from, const void *data, size_t len)
{
    if (len >= 5 && memcmp(data, "chat", 5) == 0) {
        /* A /chat message from another instance: its worker 0 hands it to the clients here. */
        if (from == -1 && srv_worker_self()->id == 0)
            chat_deliver((const char *)data + 5, len - 5);
        return;
    }
    srv_app_log(2, "worker %d got a message from worker %d: %.*s", srv_worker_self()->id, from,
                (int)len, (const char *)data);
    counter("demo_messages", 1);
}

/* Exported: the [[cron]] handler and the [[process]] entry named in demo.toml. */
__attribute__((visibility("default"))) void demo_cron_tick(srv_cron_job_t *job);
__attribute__((visibility("default"))) void demo_clock(srv_process_t *p);

void demo_cron_tick(srv_cron_job_t *job)
{
    counter("demo_cron_runs", 1);
}

/* A job slower than its interval (for tests): it counts how many of its runs overlap, which
 * must stay 0 because the scheduler skips a beat instead of starting a second run. */
__attribute__((visibility("default"))) void demo_cron_slow(srv_cron_job_t *job);

void demo_cron_slow(srv_cron_job_t *job)
{
    if (counter("demo_slow_running", 1) > 1)
        counter("demo_slow_overlaps", 1);
    counter("demo_slow_runs", 1);
    struct timespec ts = {0, 250 * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
    counter("demo_slow_running", -1);
}

static void clock_reload(srv_process_t *p)
{
    srv_app_log(2, "clock %d: reloading, handing over to the new instance",
                srv_process_instance(p));
}

static void clock_stop(srv_process_t *p)
{
    srv_app_log(2, "clock %d: stopping", srv_process_instance(p));
}

void demo_clock(srv_process_t *p)
{
    char buf[256];
    uint64_t call;
    srv_process_hooks(p, clock_reload, clock_stop);
    while (!srv_process_stopping(p)) {
        int n = srv_process_recv(p, buf, sizeof(buf), &call, 1000);
        if (n < 0)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char out[96];
        int k = snprintf(out, sizeof(out), "clock %d: %lld.%03ld", srv_process_instance(p),
                         (long long)ts.tv_sec, ts.tv_nsec / 1000000);
        if (call)
            srv_process_reply(p, call, out, (size_t)k);
    }
}

struct ticker {
    srv_response_t *res;
    uint64_t id;
    int left, beats;
};

static void tick_fire(uint64_t id, void *arg)
{
    struct ticker *t = arg;
    t->beats++;
    if (--t->left > 0)
        return;
    int rc = srv_timer_clear(t->id);
    char out[64];
    snprintf(out, sizeof(out), "%d beats, clear %d\n", t->beats, rc);
    text(t->res, 200, out);
    free(t);
}

static void after_fire(uint64_t id, void *arg)
{
    srv_response_t *res = arg;
    text(res, 200, "later\n");
}

static bool misc_endpoint(const srv_request_t *req, srv_response_t *res)
{
    char buf[512];
    if (path_is(req, "/task")) {
        long ms = query_long(req, "ms", 0);
        int n = snprintf(buf, sizeof(buf), "sleep %ld", ms);
        srv_task_opts_t o = {.tries = (int)query_long(req, "tries", 1)};
        int64_t id = srv_task_deliver(buf, (size_t)n, &o);
        if (id < 0) {
            snprintf(buf, sizeof(buf), "deliver failed: %s\n", srv_strerror((int)id));
            text(res, id == -EAGAIN ? 503 : 500, buf);
            return true;
        }
        char result[256];
        int rc = srv_task_wait((uint64_t)id, result, sizeof(result) - 1,
                               (int)query_long(req, "timeout", 10000));
        if (rc < 0) {
            snprintf(buf, sizeof(buf), "task %lld: %s\n", (long long)id, srv_strerror(rc));
            text(res, rc == -ETIMEDOUT ? 504 : 500, buf);
            return true;
        }
        result[rc < (int)sizeof(result) - 1 ? rc : (int)sizeof(result) - 1] = '\0';
        text(res, 200, result);
    } else if (path_is(req, "/task/async")) {
        int64_t id = srv_task_deliver("sleep 10", 8, NULL);
        snprintf(buf, sizeof(buf), "%lld\n", (long long)id);
        text(res, id < 0 ? 503 : 200, buf);
    } else if (path_is(req, "/task/chain")) {
        int64_t id = srv_task_deliver("chain", 5, NULL);
        char r[256];
        int rc = id < 0 ? (int)id : srv_task_wait((uint64_t)id, r, sizeof(r) - 1, 10000);
        if (rc < 0) {
            snprintf(buf, sizeof(buf), "chain: %s\n", srv_strerror(rc));
            text(res, 500, buf);
            return true;
        }
        r[rc] = '\0';
        text(res, 200, r);
    } else if (path_is(req, "/task/many")) {
        /* Several tasks at once, waited for together. */
        long n = query_long(req, "n", 3);
        if (n < 1 || n > 16) {
            text(res, 400, "n must be 1..16\n");
            return true;
        }
        uint64_t ids[16];
        char store[16][128];
        void *bufs[16];
        size_t caps[16], lens[16];
        int results[16];
        for (long i = 0; i < n; i++) {
            int64_t id = srv_task_deliver("sleep 50", 8, NULL);
            if (id < 0) {
                text(res, 503, "deliver failed\n");
                return true;
            }
            ids[i] = (uint64_t)id;
            bufs[i] = store[i];
            caps[i] = sizeof(store[i]);
        }
        int done = srv_task_wait_many(ids, (int)n, bufs, caps, results, lens, 5000);
        int k = snprintf(buf, sizeof(buf), "%d of %ld done", done, n);
        for (long i = 0; i < n && k < (int)sizeof(buf) - 8; i++)
            k += snprintf(buf + k, sizeof(buf) - (size_t)k, " %d", results[i]);
        snprintf(buf + k, sizeof(buf) - (size_t)k, "\n");
        text(res, 200, buf);
    } else if (path_is(req, "/message")) {
        char msg[128];
        int n = srv_request_query(req, "msg", msg, sizeof(msg));
        int rc = srv_send_message((int)query_long(req, "to", -1), msg, n < 0 ? 0 : (size_t)n);
        snprintf(buf, sizeof(buf), "%d\n", rc);
        text(res, rc < 0 ? 400 : 200, buf);
    } else if (path_is(req, "/tick")) {
        /* srv_timer_tick until n beats, then srv_timer_clear, then answer (detached). */
        long n = query_long(req, "n", 3);
        struct ticker *t = malloc(sizeof(*t));
        if (t == NULL || n < 1 || n > 1000) {
            free(t);
            text(res, 400, "n must be 1..1000\n");
            return true;
        }
        t->res = res;
        t->left = (int)n;
        t->beats = 0;
        int64_t id = srv_timer_tick(10, tick_fire, t);
        if (id < 0) {
            free(t);
            text(res, 500, "no timer\n");
            return true;
        }
        t->id = (uint64_t)id;
        srv_response_detach(res);
    } else if (path_is(req, "/task/fail")) {
        srv_task_opts_t o = {.tries = (int)query_long(req, "tries", 2)};
        int64_t id = srv_task_deliver("fail", 4, &o);
        int rc = id < 0 ? (int)id : srv_task_wait((uint64_t)id, buf, sizeof(buf), 10000);
        snprintf(buf, sizeof(buf), "%d\n", rc);
        text(res, 200, buf);
    } else if (path_is(req, "/task/finished")) {
        snprintf(buf, sizeof(buf), "%lld\n", (long long)counter("demo_tasks_finished", 0));
        text(res, 200, buf);
    } else if (path_is(req, "/cron")) {
        snprintf(buf, sizeof(buf), "%lld\n", (long long)counter("demo_cron_runs", 0));
        text(res, 200, buf);
    } else if (path_is(req, "/clock")) {
        char reply[128];
        int n = srv_process_call("clock", "time", 4, reply, sizeof(reply) - 1, 3000);
        if (n < 0) {
            snprintf(buf, sizeof(buf), "clock: %s\n", srv_strerror(n));
            text(res, 503, buf);
            return true;
        }
        reply[n] = '\0';
        text(res, 200, reply);
    } else if (path_is(req, "/broadcast")) {
        char msg[256];
        int n = srv_request_query(req, "msg", msg, sizeof(msg));
        if (n < 0)
            n = 0;
        int reached = srv_broadcast_message(msg, (size_t)n);
        snprintf(buf, sizeof(buf), "%d\n", reached);
        text(res, 200, buf);
    } else if (path_is(req, "/ws/broadcast")) {
        char msg[256];
        int n = srv_request_query(req, "msg", msg, sizeof(msg));
        int rc = srv_ws_broadcast(-1, SRV_WS_TEXT, msg, n < 0 ? 0 : (size_t)n);
        snprintf(buf, sizeof(buf), "%s\n", rc < 0 ? srv_strerror(rc) : "ok");
        text(res, rc < 0 ? 503 : 200, buf);
    } else if (path_is(req, "/ws/push") || path_is(req, "/ws/kick")) {
        /* A session of any instance of the cluster: the hex id a /chat message starts with. */
        char sid[32], msg[256];
        int n = srv_request_query(req, "msg", msg, sizeof(msg));
        uint64_t session = srv_request_query(req, "session", sid, sizeof(sid)) > 0
                               ? strtoull(sid, NULL, 16)
                               : 0;
        int rc = path_is(req, "/ws/push")
                     ? srv_ws_push(session, SRV_WS_TEXT, msg, n < 0 ? 0 : (size_t)n)
                     : srv_ws_close(session, 4000, "kicked");
        snprintf(buf, sizeof(buf), "%s\n", rc < 0 ? srv_strerror(rc) : "ok");
        text(res, rc == -ENOENT ? 404 : rc < 0 ? 503 : 200, buf);
    } else if (path_is(req, "/messages")) {
        snprintf(buf, sizeof(buf), "%lld\n", (long long)counter("demo_messages", 0));
        text(res, 200, buf);
    } else if (path_is(req, "/after")) {
        long ms = query_long(req, "ms", 100);
        if (srv_timer_after((uint64_t)(ms < 0 ? 0 : ms), after_fire, res) < 0) {
            text(res, 500, "no timer\n");
            return true;
        }
        srv_response_detach(res);
    } else
        return false;
    return true;
}

/* ---- WebSocket ---- */

static void session_key(uint64_t session, char *key)
{
    snprintf(key, 32, "%llx", (unsigned long long)session);
}

static int on_ws_open(const srv_request_t *req)
{
    if (path_is(req, "/ws")) {
        /* Subprotocols are the app's choice: /ws speaks "echo" when the client offers it. */
        srv_str_t offered = srv_request_header(req, "Sec-WebSocket-Protocol");
        if (offered.ptr && memmem(offered.ptr, offered.len, "echo", 4))
            srv_ws_select_protocol("echo");
        return 0;
    }
    if (path_is(req, "/chat")) {
        srv_table_t *t = table_named("chat");
        char key[32];
        session_key(req->session, key);
        if (t && srv_table_set_int(t, key, 0, 1) < 0)
            return 4001; /* chat is full */
        return 0;
    }
    return 4004; /* no such WebSocket endpoint: refused */
}

struct chat_msg {
    srv_table_t *t;
    const char *text;
    size_t len;
};

static int chat_push(uint64_t session, void *arg)
{
    struct chat_msg *m = arg;
    char key[32];
    session_key(session, key);
    if (srv_table_exists(m->t, key) == 1)
        srv_ws_push(session, SRV_WS_TEXT, m->text, m->len);
    return 0;
}

static void on_ws_message(uint64_t session, int opcode, const void *data, size_t len)
{
    srv_table_t *t = table_named("chat");
    char key[32];
    session_key(session, key);
    if (t == NULL || srv_table_exists(t, key) != 1) {
        srv_ws_push(session, opcode, data, len); /* /ws: echo */
        return;
    }
    if (opcode != SRV_WS_TEXT)
        return;
    char *text = malloc(len + 40);
    if (text == NULL)
        return;
    int n = snprintf(text, 40, "chat%c#%llx: ", '\0', (unsigned long long)session);
    memcpy(text + n, data, len);
    chat_deliver(text + 5, (size_t)n - 5 + len);
    srv_broadcast_message(text, (size_t)n + len); /* other instances (cluster = true) */
    free(text);
}

static void chat_deliver(const char *text, size_t len)
{
    struct chat_msg m = {table_named("chat"), text, len};
    if (m.t)
        srv_ws_foreach(-1, chat_push, &m);
}

static void on_ws_close(uint64_t session, int code, const char *reason, size_t len)
{
    srv_table_t *t = table_named("chat");
    char key[32];
    session_key(session, key);
    if (t)
        srv_table_del(t, key);
}

/* ---- TCP and UDP ---- */

static void lines_receive(uint64_t session, const void *data, size_t len)
{
    if (len >= 4 && memcmp(data, "quit", 4) == 0 &&
        (len == 4 || ((const char *)data)[4] == '\r' || ((const char *)data)[4] == '\n')) {
        srv_send(session, "bye\r\n", 5);
        srv_close(session);
        return;
    }
    if (len >= 3 && memcmp(data, "tls", 3) == 0 &&
        (len == 3 || ((const char *)data)[3] == '\r' || ((const char *)data)[3] == '\n')) {
        char json[2048];
        srv_conn_info_t info = {0};
        int rc = srv_conn_info(session, &info);
        size_t n = tls_json(rc == 0 && info.tls.on ? &info.tls : NULL, json, sizeof(json) - 2);
        memcpy(json + n, "\r\n", 2);
        srv_send(session, json, n + 2);
        return;
    }
    srv_send(session, data, len);
}

static void frames_receive(uint64_t session, const void *data, size_t len)
{
    srv_send(session, data, len);
}

static void on_packet(const srv_packet_t *pkt)
{
    srv_sendto(pkt->listener, pkt->peer, pkt->peer_port, pkt->data, pkt->len);
}

static const srv_handlers_t lines = {.name = "lines", .on_receive = lines_receive};
static const srv_handlers_t frames = {.name = "frames", .on_receive = frames_receive};
static const srv_handlers_t *const named[] = {&lines, &frames, NULL};

SRV_APP(.name = "demo",
        .handlers = {.on_request = on_request,
                     .on_ws_open = on_ws_open,
                     .on_ws_message = on_ws_message,
                     .on_ws_close = on_ws_close,
                     .on_packet = on_packet},
        .named = named, .on_task = on_task, .on_finish = on_finish,
        .on_pipe_message = on_pipe_message);
