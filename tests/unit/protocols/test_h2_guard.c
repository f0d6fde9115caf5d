/* protocols/h2_guard.c: each limit holds at its edge and lets normal traffic through; the
 * one-second windows start again; WINDOW_UPDATEs are earned by DATA sent and streams opened;
 * the reset bucket refills with time. */
#include "protocols/h2_guard.h"

#include <string.h>

#include "check.h"

static uint32_t frame(srv__h2_guard_t *g, uint8_t type, uint8_t flags, size_t len, int64_t now,
                      const char **why)
{
    *why = NULL;
    return srv__h2_guard_frame(g, type, flags, len, now, why);
}

static void test_per_second(uint8_t type, uint8_t flags, size_t len, int max, const char *name)
{
    srv__h2_guard_t g;
    const char *why;
    srv__h2_guard_init(&g, 128, 32768, 1000);
    for (int i = 0; i < max; i++)
        CHECK_INT(frame(&g, type, flags, len, 1000 + i, &why), ==, 0);
    CHECK_INT(frame(&g, type, flags, len, 1500, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
    CHECK(strcmp(why, name) == 0);
    /* A second later, the count starts again. */
    srv__h2_guard_init(&g, 128, 32768, 1000);
    for (int i = 0; i < max; i++)
        CHECK_INT(frame(&g, type, flags, len, 1000, &why), ==, 0);
    CHECK_INT(frame(&g, type, flags, len, 2000, &why), ==, 0);
}

static void test_acks_and_data_are_free(void)
{
    srv__h2_guard_t g;
    const char *why;
    srv__h2_guard_init(&g, 128, 32768, 0);
    for (int i = 0; i < 10000; i++) {
        CHECK_INT(frame(&g, SRV__H2_SETTINGS, SRV__H2_FLAG_ACK, 0, 0, &why), ==, 0);
        CHECK_INT(frame(&g, SRV__H2_PING, SRV__H2_FLAG_ACK, 8, 0, &why), ==, 0);
        CHECK_INT(frame(&g, SRV__H2_DATA, 0, 16384, 0, &why), ==, 0);
        CHECK_INT(frame(&g, SRV__H2_DATA, SRV__H2_FLAG_END_STREAM, 0, 0, &why), ==, 0);
    }
}

static void test_window_updates_earned(void)
{
    srv__h2_guard_t g;
    const char *why;
    srv__h2_guard_init(&g, 128, 32768, 0);
    for (int i = 0; i < 1000; i++)
        srv__h2_guard_data_sent(&g, 10);
    /* 100 + 4 x 1000 allowed in this second. */
    for (int i = 0; i < 4100; i++)
        CHECK_INT(frame(&g, SRV__H2_WINDOW_UPDATE, 0, 4, 10, &why), ==, 0);
    CHECK_INT(frame(&g, SRV__H2_WINDOW_UPDATE, 0, 4, 10, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
    CHECK(strcmp(why, "WINDOW_UPDATE flood") == 0);
}

static void test_continuation(void)
{
    srv__h2_guard_t g;
    const char *why;
    srv__h2_guard_init(&g, 128, 4096, 0);
    /* A block of a normal size in many small frames passes; each HEADERS starts afresh. */
    for (int round = 0; round < 3; round++) {
        CHECK_INT(frame(&g, SRV__H2_HEADERS, 0, 100, 0, &why), ==, 0);
        for (int i = 0; i < SRV__H2_MAX_CONTINUATION; i++)
            CHECK_INT(frame(&g, SRV__H2_CONTINUATION, 0, 10, 0, &why), ==, 0);
    }
    CHECK_INT(frame(&g, SRV__H2_CONTINUATION, 0, 0, 0, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
    CHECK(strcmp(why, "CONTINUATION flood") == 0);
    /* By bytes: the list limit and the slack. */
    CHECK_INT(frame(&g, SRV__H2_HEADERS, 0, 16384, 0, &why), ==, 0);
    CHECK_INT(frame(&g, SRV__H2_CONTINUATION, 0, 4096, 0, &why), ==, 0);
    CHECK_INT(frame(&g, SRV__H2_CONTINUATION, 0, 1, 0, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
}

static void test_rapid_reset(void)
{
    srv__h2_guard_t g;
    const char *why;
    srv__h2_guard_init(&g, 100, 32768, 0);
    for (int i = 0; i < 200; i++) /* the burst: twice the streams */
        CHECK_INT(srv__h2_guard_reset(&g, 0, &why), ==, 0);
    CHECK_INT(srv__h2_guard_reset(&g, 0, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
    CHECK(strcmp(why, "rapid reset") == 0);
    /* Refilled at max_streams a second: 50 in half a second, not 51 (most streams completed,
     * so only the bucket counts). */
    srv__h2_guard_init(&g, 100, 32768, 0);
    for (int i = 0; i < 1000; i++)
        srv__h2_guard_completed(&g);
    for (int i = 0; i < 200; i++)
        CHECK_INT(srv__h2_guard_reset(&g, 0, &why), ==, 0);
    for (int i = 0; i < 50; i++)
        CHECK_INT(srv__h2_guard_reset(&g, 500, &why), ==, 0);
    CHECK_INT(srv__h2_guard_reset(&g, 500, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
    /* A client resetting now and then, and completing most streams, never runs dry. */
    srv__h2_guard_init(&g, 100, 32768, 0);
    for (int i = 0; i < 10000; i++) {
        CHECK_INT(srv__h2_guard_reset(&g, (int64_t)i * 20, &why), ==, 0);
        srv__h2_guard_completed(&g);
        srv__h2_guard_completed(&g);
    }
    /* Slowly, but resetting most streams: cut after 2 x max_streams resets. */
    srv__h2_guard_init(&g, 100, 32768, 0);
    for (int i = 0; i < 200; i++)
        CHECK_INT(srv__h2_guard_reset(&g, (int64_t)i * 50, &why), ==, 0);
    CHECK_INT(srv__h2_guard_reset(&g, 10000, &why), ==, SRV__H2_ENHANCE_YOUR_CALM);
}

int main(void)
{
    test_per_second(SRV__H2_SETTINGS, 0, 6, SRV__H2_MAX_SETTINGS, "SETTINGS flood");
    test_per_second(SRV__H2_PING, 0, 8, SRV__H2_MAX_PING, "PING flood");
    test_per_second(SRV__H2_DATA, 0, 0, SRV__H2_MAX_EMPTY_DATA, "empty DATA flood");
    test_per_second(SRV__H2_PRIORITY, 0, 5, SRV__H2_MAX_PRIORITY, "PRIORITY flood");
    test_per_second(SRV__H2_WINDOW_UPDATE, 0, 4, SRV__H2_WINDOW_UPDATE_BASE, "WINDOW_UPDATE flood");
    test_acks_and_data_are_free();
    test_window_updates_earned();
    test_continuation();
    test_rapid_reset();
    printf("test_h2_guard: ok\n");
    return 0;
}
