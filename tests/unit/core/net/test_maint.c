/* Maintenance mode's shared state: off until set, the answer's status line, Retry-After,
 * message and extra headers, the allow prefixes, refused messages, and a reader thread that
 * never sees a torn message while the master keeps changing it. */
#include "core/net/maint.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/shm/shm.h"

static srv__config_t *config(const char *allow)
{
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    srv__config_defaults(cfg);
    snprintf(cfg->maintenance_allow, sizeof(cfg->maintenance_allow), "%s", allow);
    return cfg;
}

static void test_off_without_region(void)
{
    srv__config_t *cfg = config("");
    CHECK(!srv__maint_on());
    CHECK(!srv__maint_blocks(cfg, (srv_str_t){"/", 1}));
    CHECK_INT(srv__maint_set(true, 5, "x"), ==, -ENODEV);
    srv__maint_state_t st;
    srv__maint_get(&st);
    CHECK(!st.on && st.retry_after == -1 && st.answered == 0);
    free(cfg);
}

static void test_on_off(void)
{
    srv__config_t *cfg = config("/health /static/ok");
    CHECK_INT(srv__shm_create(1 << 16), ==, 0);
    CHECK_INT(srv__maint_create(cfg), ==, 0);
    CHECK(!srv__maint_on());
    CHECK_INT(srv__maint_set(true, 30, "back soon"), ==, 0);
    CHECK(srv__maint_on());
    CHECK(srv__maint_blocks(cfg, (srv_str_t){"/", 1}));
    CHECK(srv__maint_blocks(cfg, (srv_str_t){"/static/other", 13}));
    CHECK(srv__maint_blocks(cfg, (srv_str_t){"/heal", 5}));
    CHECK(!srv__maint_blocks(cfg, (srv_str_t){"/health", 7}));
    CHECK(!srv__maint_blocks(cfg, (srv_str_t){"/healthz", 8})); /* a prefix, as nginx's */
    CHECK(!srv__maint_blocks(cfg, (srv_str_t){"/static/ok/x", 12}));

    char buf[SRV_MAINT_RESPONSE_MAX];
    int n = srv__maint_response(buf, sizeof(buf), true, (srv_str_t){"X-Request-Id: r1\r\n", 18});
    CHECK_INT(n, >, 0);
    buf[n] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    CHECK(strstr(buf, "\r\nRetry-After: 30\r\n") != NULL);
    CHECK(strstr(buf, "\r\nX-Request-Id: r1\r\n") != NULL);
    CHECK(strstr(buf, "\r\nContent-Type: text/plain") != NULL);
    CHECK(strstr(buf, "\r\nContent-Length: 10\r\n") != NULL);
    CHECK(strstr(buf, "Connection: keep-alive\r\n\r\nback soon\n") != NULL);

    srv__maint_state_t st;
    srv__maint_get(&st);
    CHECK(st.on && st.retry_after == 30 && st.since_ms > 0 && st.answered == 1);
    CHECK_STR(st.msg, "back soon");

    /* No Retry-After, the default message, Connection: close. */
    CHECK_INT(srv__maint_set(true, -1, ""), ==, 0);
    n = srv__maint_response(buf, sizeof(buf), false, (srv_str_t){NULL, 0});
    CHECK_INT(n, >, 0);
    buf[n] = '\0';
    CHECK(strstr(buf, "Retry-After") == NULL);
    CHECK(strstr(buf, "Connection: close\r\n\r\n" SRV_MAINT_DEFAULT_MSG "\n") != NULL);
    srv__maint_get(&st);
    CHECK(st.answered == 2);

    /* Refused messages leave the state as it was. */
    char big[SRV_MAINT_MSG_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(srv__maint_set(true, 1, big), ==, -EINVAL);
    CHECK_INT(srv__maint_set(true, 1, "two\nlines"), ==, -EINVAL);
    big[SRV_MAINT_MSG_MAX] = '\0';
    CHECK_INT(srv__maint_set(true, 1, big), ==, 0); /* exactly the longest */
    srv__maint_get(&st);
    CHECK_INT(st.msg_len, ==, SRV_MAINT_MSG_MAX);
    n = srv__maint_response(buf, sizeof(buf), true, (srv_str_t){NULL, 0});
    CHECK_INT(n, >, SRV_MAINT_MSG_MAX);

    CHECK_INT(srv__maint_set(false, -1, NULL), ==, 0);
    CHECK(!srv__maint_on());
    CHECK(!srv__maint_blocks(cfg, (srv_str_t){"/", 1}));
    srv__maint_get(&st);
    CHECK(!st.on && st.since_ms == 0 && st.answered == 3);
    srv__shm_destroy();
    CHECK(!srv__maint_on()); /* the region is gone: so is the state */
    free(cfg);
}

static _Atomic bool g_stop;
static _Atomic long g_torn, g_reads;

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        srv__maint_state_t st;
        srv__maint_get(&st);
        for (size_t i = 1; i < st.msg_len; i++)
            if (st.msg[i] != st.msg[0]) {
                atomic_fetch_add(&g_torn, 1);
                break;
            }
        if (st.msg_len != 0 && st.msg_len != 1000 && st.msg_len != 10)
            atomic_fetch_add(&g_torn, 1);
        atomic_fetch_add(&g_reads, 1);
    }
    return NULL;
}

static void test_never_torn(void)
{
    srv__config_t *cfg = config("");
    CHECK_INT(srv__shm_create(1 << 16), ==, 0);
    CHECK_INT(srv__maint_create(cfg), ==, 0);
    char a[1001], b[11];
    memset(a, 'a', 1000);
    a[1000] = '\0';
    memset(b, 'b', 10);
    b[10] = '\0';
    CHECK_INT(srv__maint_set(true, 1, a), ==, 0);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, reader, NULL), ==, 0);
    for (int i = 0; i < 200000 || atomic_load(&g_reads) < 1000; i++)
        CHECK_INT(srv__maint_set(true, i, i % 2 ? a : b), ==, 0);
    atomic_store(&g_stop, true);
    pthread_join(t, NULL);
    CHECK_INT(atomic_load(&g_torn), ==, 0);
    srv__shm_destroy();
    free(cfg);
}

int main(void)
{
    test_off_without_region();
    test_on_off();
    test_never_torn();
    return 0;
}
