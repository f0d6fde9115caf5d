/* libFuzzer target for config/cron.c: crontab expressions from [[cron]] schedule keys. The
 * first byte picks the error buffer's size and the time zone (UTC or Europe/Berlin, which has
 * DST), the next four a start time, the rest is the expression. Beyond "no crash" it checks: a
 * parse either succeeds with every set in range (minutes 0-59, hours 0-23, days 1-31, months
 * 1-12, weekdays 0-6), no field empty and no unknown flag, or fails with -EINVAL and a
 * NUL-terminated message inside the buffer; parsing again gives the same schedule; and
 * srv__cron_next() returns -ERANGE or a whole minute strictly after the start that, in UTC,
 * srv__cron_match() accepts (in Berlin a minute DST skips runs shifted, so only its order is
 * checked there).
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "config/cron.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void set_zone(bool berlin)
{
    static int current = -1;
    if (current == berlin)
        return;
    setenv("TZ", berlin ? "Europe/Berlin" : "UTC", 1);
    tzset();
    current = berlin;
}

static void check_schedule(const srv__cron_t *c)
{
    if ((c->minute >> 60) != 0 || (c->hour >> 24) != 0 || (c->dom & 1u) != 0 ||
        (c->month & ~0x1ffeu) != 0 || (c->dow & ~0x7fu) != 0 ||
        (c->flags & ~(SRV_CRON_DOM_STAR | SRV_CRON_DOW_STAR)) != 0)
        abort();
    if (c->minute == 0 || c->hour == 0 || c->month == 0 || (c->dom == 0 && c->dow == 0))
        abort();
}

static void check_next(const srv__cron_t *c, time_t after, bool berlin)
{
    time_t next = 0;
    int rc = srv__cron_next(c, after, &next);
    if (rc == -ERANGE)
        return;
    if (rc != 0 || next <= after)
        abort();
    struct tm tm;
    if (localtime_r(&next, &tm) == NULL || tm.tm_sec != 0)
        abort();
    if (!berlin && !srv__cron_match(c, &tm))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    size_t errlen = data[0] & 0x7f;
    bool berlin = data[0] >> 7;
    uint32_t t32;
    memcpy(&t32, data + 1, 4);
    time_t after = (time_t)946684800 + (time_t)(t32 % (100u * 366 * 86400)); /* 2000..2100 */
    char *expr = malloc(size - 5 + 1);
    char *err = malloc(errlen + 1);
    if (expr == NULL || err == NULL)
        abort();
    memcpy(expr, data + 5, size - 5);
    expr[size - 5] = '\0';
    memset(err, 'x', errlen + 1);
    set_zone(berlin);

    srv__cron_t c, again;
    memset(&c, 0xa5, sizeof(c));
    int rc = srv__cron_parse(&c, expr, errlen ? err : NULL, errlen);
    if (rc == 0) {
        check_schedule(&c);
        if (srv__cron_parse(&again, expr, NULL, 0) != 0 || again.minute != c.minute ||
            again.hour != c.hour || again.dom != c.dom || again.month != c.month ||
            again.dow != c.dow || again.flags != c.flags)
            abort();
        check_next(&c, after, berlin);
    } else if (rc != -EINVAL || (errlen > 0 && memchr(err, '\0', errlen) == NULL)) {
        abort();
    }
    free(err);
    free(expr);
    return 0;
}
