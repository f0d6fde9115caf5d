/* Crontab schedules: parse a five-field expression (minute hour day-of-month month day-of-week,
 * as in crontab(5): lists, ranges, steps, month and weekday names, 0 and 7 = Sunday, @hourly and
 * friends) into bit sets, and find the next matching minute in local time. */
#ifndef SRV_TIMER_CRON_H
#define SRV_TIMER_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Plain data: copy it freely. Bit n set = value n allowed. */
typedef struct srv__cron {
    uint64_t minute; /* bits 0-59 */
    uint32_t hour;   /* bits 0-23 */
    uint32_t dom;    /* bits 1-31 */
    uint16_t month;  /* bits 1-12 */
    uint8_t dow;     /* bits 0-6, 0 = Sunday (7 is folded into 0) */
    uint8_t flags;   /* SRV_CRON_DOM_STAR, SRV_CRON_DOW_STAR */
} srv__cron_t;

/* The field began with '*': crontab(5)'s rule is that a day matches when both day fields match
 * if either of them starts with '*', and when either matches if both are restricted. */
#define SRV_CRON_DOM_STAR 0x01u
#define SRV_CRON_DOW_STAR 0x02u

/* Parse expr into *c. Returns 0, or -EINVAL with a message in err (if err != NULL, always
 * NUL-terminated, truncated to errlen) naming the bad field, e.g.
 * "field 2 (hour): 24 is out of range 0-23". Shortcuts: @yearly (@annually), @monthly, @weekly,
 * @daily (@midnight), @hourly. */
int srv__cron_parse(srv__cron_t *c, const char *expr, char *err, size_t errlen);

/* True when the local-time minute described by tm (tm_min, tm_hour, tm_mday, tm_mon, tm_wday)
 * matches c. */
bool srv__cron_match(const srv__cron_t *c, const struct tm *tm);

/* The first matching minute (seconds = 0) strictly after `after`, in local time (TZ). Searches
 * about eight years ahead (enough for Feb 29 across a skipped leap year) and returns -ERANGE when
 * nothing matches ("0 0 30 2 *"); 0 on success. In a repeated hour (DST ends) a minute fires
 * once (at its first occurrence); a minute skipped when DST starts fires shifted by the jump
 * (02:30 runs at 03:30), and never twice. */
int srv__cron_next(const srv__cron_t *c, time_t after, time_t *next);

#endif
