/* Unit tests for timer/cron.c: crontab expressions with known next fire times (TZ=UTC, plus DST
 * transitions in America/New_York when tzdata is there), and every malformed case. */
#include "config/cron.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* "YYYY-MM-DD HH:MM[:SS]" in UTC. */
static time_t utc(const char *s)
{
    struct tm tm = {0};
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    CHECK(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static void fmt_utc(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static void expect_next(const char *expr, const char *after, const char *want)
{
    srv__cron_t c;
    char err[160];
    int rc = srv__cron_parse(&c, expr, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "parse \"%s\": %s\n", expr, err);
    CHECK_INT(rc, ==, 0);
    time_t next = 0;
    rc = srv__cron_next(&c, utc(after), &next);
    if (rc != 0)
        fprintf(stderr, "next \"%s\" after %s: %d\n", expr, after, rc);
    CHECK_INT(rc, ==, 0);
    char got[32], exp[32];
    fmt_utc(next, got, sizeof(got));
    fmt_utc(utc(want), exp, sizeof(exp));
    if (strcmp(got, exp) != 0)
        fprintf(stderr, "\"%s\" after %s\n", expr, after);
    CHECK_STR(got, exp);
}

static void test_next_utc(void)
{
    expect_next("* * * * *", "2024-01-01 00:00:00", "2024-01-01 00:01");
    expect_next("* * * * *", "2024-01-01 00:00:30", "2024-01-01 00:01");
    expect_next("* * * * *", "2024-12-31 23:59:59", "2025-01-01 00:00");
    expect_next("*/15 * * * *", "2024-01-01 00:14", "2024-01-01 00:15");
    expect_next("*/15 * * * *", "2024-01-01 00:15", "2024-01-01 00:30");
    expect_next("*/15 * * * *", "2024-01-01 00:45", "2024-01-01 01:00");
    expect_next("0 * * * *", "2024-01-01 23:30", "2024-01-02 00:00");
    expect_next("30 2 * * *", "2024-01-31 03:00", "2024-02-01 02:30");
    expect_next("30 2 * * *", "2024-01-31 02:29:59", "2024-01-31 02:30");
    expect_next("0 0 1 * *", "2024-12-15 10:00", "2025-01-01 00:00");
    expect_next("59 23 31 12 *", "2024-12-31 23:59", "2025-12-31 23:59");
    /* Month lengths and leap years. */
    expect_next("0 0 31 * *", "2024-04-01 00:00", "2024-05-31 00:00");
    expect_next("0 0 31 * *", "2024-01-31 00:00", "2024-03-31 00:00");
    expect_next("0 0 29 2 *", "2023-01-01 00:00", "2024-02-29 00:00");
    expect_next("0 0 29 2 *", "2024-03-01 00:00", "2028-02-29 00:00");
    expect_next("0 0 29 2 *", "2096-03-01 00:00", "2104-02-29 00:00"); /* 2100 is no leap year */
    expect_next("0 0 28 2 *", "2100-02-28 00:00", "2101-02-28 00:00");
    /* Lists, ranges, steps. */
    expect_next("5,10-12,*/30 * * * *", "2024-01-01 00:00", "2024-01-01 00:05");
    expect_next("5,10-12,*/30 * * * *", "2024-01-01 00:10", "2024-01-01 00:11");
    expect_next("5,10-12,*/30 * * * *", "2024-01-01 00:12", "2024-01-01 00:30");
    expect_next("5,10-12,*/30 * * * *", "2024-01-01 00:30", "2024-01-01 01:00");
    expect_next("0 9-17/2 * * *", "2024-01-01 09:00", "2024-01-01 11:00");
    expect_next("0 9-17/2 * * *", "2024-01-01 17:00", "2024-01-02 09:00");
    expect_next("1/20 * * * *", "2024-01-01 00:21", "2024-01-01 00:41");
    expect_next("1/20 * * * *", "2024-01-01 00:41", "2024-01-01 01:01");
    expect_next("0 0 1-31/10 * *", "2024-01-21 00:00", "2024-01-31 00:00");
    /* Names, case-insensitive; 0 and 7 are Sunday. */
    expect_next("0 0 * jan,JUL *", "2024-02-01 00:00", "2024-07-01 00:00");
    expect_next("0 0 1 jan/3 *", "2024-02-01 00:00", "2024-04-01 00:00");
    expect_next("0 12 * * mon-fri", "2024-06-07 12:00", "2024-06-10 12:00"); /* Fri -> Mon */
    expect_next("0 12 * * Mon-Fri", "2024-06-07 11:00", "2024-06-07 12:00");
    expect_next("0 0 * * 7", "2024-01-01 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * 0", "2024-01-01 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * sun", "2024-01-01 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * 5-7", "2024-01-01 00:00", "2024-01-05 00:00");
    expect_next("0 0 * * 5-7", "2024-01-06 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * 5-7", "2024-01-07 00:00", "2024-01-12 00:00");
    /* Both day fields restricted: either matches (13th or a Friday). */
    expect_next("0 0 13 * 5", "2024-09-01 00:00", "2024-09-06 00:00");
    expect_next("0 0 13 * fri", "2024-09-06 00:00", "2024-09-13 00:00");
    expect_next("0 0 13 * 5", "2024-09-13 00:00", "2024-09-20 00:00");
    expect_next("0 0 1,15 * 3", "2025-01-01 00:00", "2025-01-08 00:00");
    /* A day field starting with '*' makes it an intersection (crontab(5)). */
    expect_next("0 0 1-7 * */2", "2024-09-01 00:00", "2024-09-03 00:00");
    expect_next("0 0 1-7 * */2", "2024-09-07 00:00", "2024-10-01 00:00");
    expect_next("0 0 */10 * *", "2024-01-21 00:00", "2024-01-31 00:00");
    /* Shortcuts. */
    expect_next("@hourly", "2024-01-01 10:20", "2024-01-01 11:00");
    expect_next("@daily", "2024-01-01 10:20", "2024-01-02 00:00");
    expect_next("@midnight", "2024-01-01 10:20", "2024-01-02 00:00");
    expect_next("@weekly", "2024-01-01 10:20", "2024-01-07 00:00");
    expect_next("@monthly", "2024-01-31 10:20", "2024-02-01 00:00");
    expect_next("@yearly", "2024-01-01 00:00", "2025-01-01 00:00");
    expect_next("  @Annually  ", "2024-06-01 00:00", "2025-01-01 00:00");
    expect_next("\t0  0\t* *   *  ", "2024-06-01 00:00", "2024-06-02 00:00");
}

static void test_parse_bits(void)
{
    srv__cron_t c;
    CHECK_INT(srv__cron_parse(&c, "* * * * *", NULL, 0), ==, 0);
    CHECK(c.minute == (1ULL << 60) - 1);
    CHECK_INT(c.hour, ==, (1u << 24) - 1);
    CHECK_INT(c.dom, ==, ((1u << 31) - 1) << 1);
    CHECK_INT(c.month, ==, ((1u << 12) - 1) << 1);
    CHECK_INT(c.dow, ==, 0x7f);
    CHECK_INT(c.flags, ==, SRV_CRON_DOM_STAR | SRV_CRON_DOW_STAR);
    CHECK_INT(srv__cron_parse(&c, "0 0 1 1 7", NULL, 0), ==, 0);
    CHECK_INT(c.dow, ==, 1);
    CHECK_INT(c.flags, ==, 0);
    CHECK_INT(srv__cron_parse(&c, "0 0 * * 1-7/2", NULL, 0), ==, 0);
    CHECK_INT(c.dow, ==, (1 << 1) | (1 << 3) | (1 << 5) | (1 << 0)); /* 1,3,5,7=0 */

    struct tm tm = {.tm_min = 0, .tm_hour = 0, .tm_mday = 7, .tm_mon = 0, .tm_wday = 0};
    CHECK_INT(srv__cron_parse(&c, "0 0 * * sun", NULL, 0), ==, 0);
    CHECK(srv__cron_match(&c, &tm));
    tm.tm_wday = 1;
    CHECK(!srv__cron_match(&c, &tm));
}

static void test_never(void)
{
    const char *never[] = {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2,4 *", "0 0 30-31 feb *"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        srv__cron_t c;
        CHECK_INT(srv__cron_parse(&c, never[i], NULL, 0), ==, 0);
        time_t next = 0;
        CHECK_INT(srv__cron_next(&c, utc("2024-01-01 00:00"), &next), ==, -ERANGE);
    }
    srv__cron_t zero;
    memset(&zero, 0, sizeof(zero));
    time_t next;
    CHECK_INT(srv__cron_next(&zero, 0, &next), ==, -ERANGE);
}

static void expect_error(const char *expr, const char *msg)
{
    srv__cron_t c;
    char err[160];
    int rc = srv__cron_parse(&c, expr, err, sizeof(err));
    if (rc != -EINVAL)
        fprintf(stderr, "expected \"%s\" to fail\n", expr ? expr : "(null)");
    CHECK_INT(rc, ==, -EINVAL);
    CHECK_STR(err, msg);
}

static void test_errors(void)
{
    expect_error(NULL, "empty schedule");
    expect_error("", "empty schedule");
    expect_error("   ", "empty schedule");
    expect_error("* * * *",
                 "expected 5 fields (minute hour day-of-month month day-of-week), got 4");
    expect_error("* * * * * *",
                 "expected 5 fields (minute hour day-of-month month day-of-week), got 6");
    expect_error("60 * * * *", "field 1 (minute): 60 is out of range 0-59");
    expect_error("* 24 * * *", "field 2 (hour): 24 is out of range 0-23");
    expect_error("* * 0 * *", "field 3 (day-of-month): 0 is out of range 1-31");
    expect_error("* * 32 * *", "field 3 (day-of-month): 32 is out of range 1-31");
    expect_error("* * * 0 *", "field 4 (month): 0 is out of range 1-12");
    expect_error("* * * 13 *", "field 4 (month): 13 is out of range 1-12");
    expect_error("* * * * 8", "field 5 (day-of-week): 8 is out of range 0-7");
    expect_error("0-60 * * * *", "field 1 (minute): 60 is out of range 0-59");
    expect_error("99999999999999999999 * * * *", "field 1 (minute): 999999 is out of range 0-59");
    expect_error("*/0 * * * *", "field 1 (minute): step 0 is out of range 1-60");
    expect_error("*/61 * * * *", "field 1 (minute): step 61 is out of range 1-60");
    expect_error("* * * * */8", "field 5 (day-of-week): step 8 is out of range 1-7");
    expect_error("*/ * * * *", "field 1 (minute): step must be a number");
    expect_error("*/x * * * *", "field 1 (minute): step must be a number");
    expect_error("5-1 * * * *", "field 1 (minute): range 5-1 runs backwards");
    expect_error("* * * * fri-mon", "field 5 (day-of-week): range 5-1 runs backwards");
    expect_error("1,,2 * * * *", "field 1 (minute): empty list item");
    expect_error("1, * * * *", "field 1 (minute): empty list item");
    expect_error(",1 * * * *", "field 1 (minute): missing value");
    expect_error("* 1- * * *", "field 2 (hour): missing value");
    expect_error("a * * * *", "field 1 (minute): 'a' is not a number");
    expect_error("* mon * * *", "field 2 (hour): 'mon' is not a number");
    expect_error("* * * foo *", "field 4 (month): unknown name 'foo'");
    expect_error("* * * * sunday", "field 5 (day-of-week): unknown name 'sunday'");
    expect_error("* * * jan *x", "field 5 (day-of-week): unexpected 'x'");
}

static void test_errors2(void)
{
    expect_error("*-5 * * * *", "field 1 (minute): unexpected '-'");
    expect_error("1-2-3 * * * *", "field 1 (minute): unexpected '-'");
    expect_error("1x * * * *", "field 1 (minute): unexpected 'x'");
    expect_error("* * * * 1/2/3", "field 5 (day-of-week): unexpected '/'");
    expect_error("* * * * mon#2", "field 5 (day-of-week): unexpected '#'");
    expect_error("* * L * *", "field 3 (day-of-month): 'L' is not a number");
    expect_error("? * * * *", "field 1 (minute): unexpected '?'");
    expect_error("@reboot", "unknown shortcut '@reboot' (use @yearly, @monthly, @weekly, @daily or "
                            "@hourly)");
    expect_error("@", "unknown shortcut '@' (use @yearly, @monthly, @weekly, @daily or @hourly)");
    expect_error("@daily 5", "unexpected text after @daily");
    /* err may be NULL or tiny: still -EINVAL, still terminated. */
    srv__cron_t c;
    CHECK_INT(srv__cron_parse(&c, "61 * * * *", NULL, 0), ==, -EINVAL);
    char tiny[8];
    CHECK_INT(srv__cron_parse(&c, "61 * * * *", tiny, sizeof(tiny)), ==, -EINVAL);
    CHECK_STR(tiny, "field 1");
}

/* DST in America/New_York, 2024: 02:00 EST -> 03:00 EDT on Mar 10, 02:00 EDT -> 01:00 EST on
 * Nov 3. */
static void test_dst(void)
{
    if (access("/usr/share/zoneinfo/America/New_York", R_OK) != 0) {
        fprintf(stderr, "no tzdata: DST cases not run\n");
        return;
    }
    setenv("TZ", "America/New_York", 1);
    tzset();
    srv__cron_t c;
    time_t next;
    /* Fall back: 01:30 exists twice; it fires once, at the first (EDT, 05:30Z). */
    CHECK_INT(srv__cron_parse(&c, "30 1 * * *", NULL, 0), ==, 0);
    CHECK_INT(srv__cron_next(&c, utc("2024-11-03 04:00"), &next), ==, 0);
    CHECK_INT(next, ==, utc("2024-11-03 05:30"));
    CHECK_INT(srv__cron_next(&c, next, &next), ==, 0);
    CHECK_INT(next, ==, utc("2024-11-04 06:30")); /* next day, EST; not 06:30Z on Nov 3 */
    CHECK_INT(srv__cron_parse(&c, "*/30 * * * *", NULL, 0), ==, 0);
    CHECK_INT(srv__cron_next(&c, utc("2024-11-03 05:30"), &next), ==, 0);
    CHECK_INT(next, ==, utc("2024-11-03 07:00")); /* 02:00 EST; the repeated hour is skipped */
    /* Spring forward: 02:30 does not exist on Mar 10; it fires once that day, after 01:59 EST
     * (06:59Z) and before the next day, then normally. */
    CHECK_INT(srv__cron_parse(&c, "30 2 * * *", NULL, 0), ==, 0);
    CHECK_INT(srv__cron_next(&c, utc("2024-03-10 05:00"), &next), ==, 0);
    CHECK(next > utc("2024-03-10 06:59") && next < utc("2024-03-11 00:00"));
    CHECK_INT(srv__cron_next(&c, next, &next), ==, 0);
    CHECK_INT(next, ==, utc("2024-03-11 06:30"));
    setenv("TZ", "UTC", 1);
    tzset();
}

int main(void)
{
    (void)check_failures_; /* check.h's counter: unused here */
    setenv("TZ", "UTC", 1);
    tzset();
    test_next_utc();
    test_parse_bits();
    test_never();
    test_errors();
    test_errors2();
    test_dst();
    printf("ok\n");
    return 0;
}
