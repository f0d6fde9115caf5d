/* The one growable buffer: every "append bytes, grow geometrically, never past a limit" in srv
 * (parser heads and bodies, frames, WebSocket messages, channel and output buffers) grows
 * through srv__grow(), so the policy (doubling from an initial size, capped at what the caller
 * can ever need, never more than asked for past the cap) is written and tested once. */
#ifndef SRV_BUF_H
#define SRV_BUF_H

#include <stddef.h>

/* Make *data (of *cap bytes, possibly NULL/0) hold at least need bytes. The new capacity is
 * the first of initial, 2*initial, 4*initial, ... that holds need, lowered to limit (but never
 * below need). Contents up to the old capacity are kept. Returns 0, -ENOBUFS when need > limit
 * (nothing changes), -ENOMEM. */
int srv__grow(char **data, size_t *cap, size_t need, size_t initial, size_t limit);

/* A byte buffer with a length: append and consume from the front. */
typedef struct srv__buf {
    char *data;
    size_t len, cap;
} srv__buf_t;

/* Room for n more bytes at data + len (len unchanged); NULL as srv__grow fails. */
char *srv__buf_reserve(srv__buf_t *b, size_t n, size_t initial, size_t limit);
int srv__buf_append(srv__buf_t *b, const void *p, size_t n, size_t initial, size_t limit);
void srv__buf_free(srv__buf_t *b);

#endif
