/* The one growable buffer; see buf.h. */
#include "core/base/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int srv__grow(char **data, size_t *cap, size_t need, size_t initial, size_t limit)
{
    if (need <= *cap)
        return 0;
    if (need > limit)
        return -ENOBUFS;
    size_t ncap = *cap >= initial && *cap ? *cap : (initial ? initial : 64);
    while (ncap < need) {
        if (ncap > limit / 2) {
            ncap = limit;
            break;
        }
        ncap *= 2;
    }
    if (ncap > limit)
        ncap = limit; /* initial above limit; limit >= need */
    char *p = realloc(*data, ncap);
    if (p == NULL)
        return -ENOMEM;
    *data = p;
    *cap = ncap;
    return 0;
}

char *srv__buf_reserve(srv__buf_t *b, size_t n, size_t initial, size_t limit)
{
    if (n > limit || b->len > limit - n)
        return NULL;
    if (srv__grow(&b->data, &b->cap, b->len + n, initial, limit) < 0)
        return NULL;
    return b->data + b->len;
}

int srv__buf_append(srv__buf_t *b, const void *p, size_t n, size_t initial, size_t limit)
{
    if (n > limit || b->len > limit - n)
        return -ENOBUFS;
    int rc = srv__grow(&b->data, &b->cap, b->len + n, initial, limit);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void srv__buf_free(srv__buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
