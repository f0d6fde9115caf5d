/* core/base/buf.c: growth policy (doubling from initial, capped at the limit, never below
 * what is needed), refusal past the limit, append and reserve. */
#include "core/base/buf.h"

#include <errno.h>
#include <stdlib.h>

#include "check.h"

static void test_grow_policy(void)
{
    char *p = NULL;
    size_t cap = 0;
    CHECK_INT(srv__grow(&p, &cap, 10, 64, 1000), ==, 0);
    CHECK_INT(cap, ==, 64);
    CHECK_INT(srv__grow(&p, &cap, 64, 64, 1000), ==, 0); /* fits: unchanged */
    CHECK_INT(cap, ==, 64);
    CHECK_INT(srv__grow(&p, &cap, 65, 64, 1000), ==, 0);
    CHECK_INT(cap, ==, 128);
    CHECK_INT(srv__grow(&p, &cap, 300, 64, 1000), ==, 0);
    CHECK_INT(cap, ==, 512);
    CHECK_INT(srv__grow(&p, &cap, 600, 64, 1000), ==, 0); /* doubling would pass the limit */
    CHECK_INT(cap, ==, 1000);
    CHECK_INT(srv__grow(&p, &cap, 1001, 64, 1000), ==, -ENOBUFS);
    CHECK_INT(cap, ==, 1000);
    free(p);

    p = NULL;
    cap = 0;
    CHECK_INT(srv__grow(&p, &cap, 5, 4096, 100), ==, 0); /* initial above the limit */
    CHECK_INT(cap, ==, 100);
    free(p);
}

static void test_buf_append(void)
{
    srv__buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        CHECK_INT(srv__buf_append(&b, "abc", 3, 16, 3000), ==, 0);
    CHECK_INT(b.len, ==, 3000);
    CHECK(b.cap >= 3000 && b.cap <= 3000);
    CHECK(memcmp(b.data + 2997, "abc", 3) == 0);
    CHECK_INT(srv__buf_append(&b, "x", 1, 16, 3000), ==, -ENOBUFS);
    CHECK_INT(b.len, ==, 3000);
    CHECK(srv__buf_reserve(&b, 1, 16, 3000) == NULL);
    srv__buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    char *r = srv__buf_reserve(&b, 100, 16, 3000);
    CHECK(r != NULL && b.cap >= 100 && b.len == 0);
    CHECK(srv__buf_reserve(&b, (size_t)-1, 16, 3000) == NULL); /* no overflow */
    srv__buf_free(&b);
}

int main(void)
{
    test_grow_policy();
    test_buf_append();
    printf("test_buf: ok\n");
    return 0;
}
