/* TCP stream framing (see frame.h). Frames that lie entirely in one read are handed up in place
 * (zero copy); only the incomplete tail of a read is copied, into a buffer that is freed as soon
 * as its frame is complete, so idle connections hold no memory. */
#include "protocols/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"

/* First allocation for a partial frame: small frames split across reads are the common case,
 * and doubling from here keeps a big frame arriving in many reads at O(n) copies. */
#define FRAME_BUF_MIN 256

int srv__frame_length_size(char type)
{
    switch (type) {
    case 'c':
    case 'C':
        return 1;
    case 'n':
    case 'v':
        return 2;
    case 'N':
    case 'V':
        return 4;
    default:
        return -EINVAL;
    }
}

int srv__frame_length_encode(char type, uint64_t len, char *out)
{
    unsigned char *p = (unsigned char *)out;
    int size = srv__frame_length_size(type);
    if (size < 0)
        return size;
    uint64_t max = type == 'c' ? INT8_MAX
                   : size == 1 ? UINT8_MAX
                   : size == 2 ? UINT16_MAX
                               : UINT32_MAX;
    if (len > max)
        return -ERANGE;
    for (int i = 0; i < size; i++) {
        /* big endian (n, N) writes the most significant byte first */
        int shift = (type == 'n' || type == 'N') ? 8 * (size - 1 - i) : 8 * i;
        p[i] = (unsigned char)(len >> shift);
    }
    return size;
}

/* The length field at p as a signed value (only type c can be negative). */
static int64_t length_decode(char type, const char *data)
{
    const unsigned char *p = (const unsigned char *)data;
    switch (type) {
    case 'c':
        return (int8_t)p[0];
    case 'C':
        return p[0];
    case 'n':
        return (uint16_t)(p[0] << 8 | p[1]);
    case 'v':
        return (uint16_t)(p[1] << 8 | p[0]);
    case 'N':
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    default: /* 'V'; the type was checked by srv__frame_opts_check() */
        return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
    }
}

int srv__frame_opts_check(const srv__frame_opts_t *o, const char **why)
{
    const char *msg = NULL;
    switch (o->mode) {
    case SRV_FRAME_NONE:
        break;
    case SRV_FRAME_EOF:
        if (o->eof_len < 1 || o->eof_len > SRV_FRAME_EOF_MAX)
            msg = "package_eof must be 1 to 8 bytes long";
        else if (o->max_length < (size_t)o->eof_len)
            msg = "package_max_length is shorter than package_eof";
        break;
    case SRV_FRAME_LENGTH: {
        int size = srv__frame_length_size(o->length_type);
        if (size < 0)
            msg = "package_length_type must be one of c, C, n, N, v, V";
        else if (o->length_offset < 0)
            msg = "package_length_offset must not be negative";
        else if (o->body_offset < 0)
            msg = "package_body_offset must not be negative";
        else if (o->max_length < (size_t)o->length_offset + (size_t)size ||
                 o->max_length < (size_t)o->body_offset)
            msg = "package_max_length is shorter than the header";
        break;
    }
    default:
        msg = "unknown framing mode";
        break;
    }
    if (why != NULL)
        *why = msg;
    return msg != NULL ? -EINVAL : 0;
}

void srv__framer_init(srv__framer_t *f, const srv__frame_opts_t *o)
{
    memset(f, 0, sizeof(*f));
    f->o = o;
    /* checked once here rather than per read; feed then reports it */
    if (o == NULL || srv__frame_opts_check(o, NULL) < 0)
        f->err = -EINVAL;
}

/* A framing error: the stream cannot be resynchronised, so every later feed repeats it. */
static int fail(srv__framer_t *f, int err)
{
    f->err = err;
    return err;
}

/* Back to idle: drop the partial frame and its memory. */
static void framer_reset(srv__framer_t *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = f->scan = 0;
}

void srv__framer_deinit(srv__framer_t *f)
{
    framer_reset(f);
    f->o = NULL;
    f->err = 0;
}

size_t srv__framer_buffered(const srv__framer_t *f)
{
    return f->len;
}

/* Append data[0..n) to the partial frame; limit (>= len + n) caps the allocation at what this
 * frame can ever need. */
static int buf_append(srv__framer_t *f, const char *data, size_t n, size_t limit)
{
    size_t need = f->len + n;
    if (srv__grow(&f->buf, &f->cap, need, FRAME_BUF_MIN, limit) < 0)
        return -ENOMEM;
    if (n > 0)
        memcpy(f->buf + f->len, data, n);
    f->len = need;
    return 0;
}

/* ---- SRV_FRAME_EOF, split: one frame per delimiter ---- */

/* Where the delimiter ends in data[0..n) when it straddles the partial frame and data, else 0.
 * Only the last eof_len - 1 buffered bytes can start one (f->scan says so), tried in order so
 * the first hit is the earliest frame end. */
static size_t eof_straddle(const srv__framer_t *f, const char *data, size_t n)
{
    const srv__frame_opts_t *o = f->o;
    for (size_t s = f->scan; s < f->len; s++) {
        size_t m = f->len - s; /* delimiter bytes that would be in buf, < eof_len */
        if (memcmp(f->buf + s, o->eof, m) != 0)
            continue;
        size_t rest = (size_t)o->eof_len - m;
        if (n < rest) {
            /* a match still open past this read means any later start ends later still */
            if (memcmp(data, o->eof + m, n) == 0)
                return 0;
            continue;
        }
        if (memcmp(data, o->eof + m, rest) == 0)
            return rest;
    }
    return 0;
}

static int feed_eof_split(srv__framer_t *f, const char *data, size_t n, srv__frame_cb cb, void *arg)
{
    const srv__frame_opts_t *o = f->o;
    size_t el = (size_t)o->eof_len, max = o->max_length;
    size_t pos = 0;
    int rc;

    if (f->len > 0) {
        /* f->len < max always holds here, so the window below is never empty */
        size_t end = eof_straddle(f, data, n);
        if (end == 0) {
            size_t win = max - f->len < n ? max - f->len : n;
            const char *hit = memmem(data, win, o->eof, el);
            if (hit != NULL)
                end = (size_t)(hit - data) + el;
        }
        if (end == 0) {
            if (f->len + n >= max)
                return fail(f, -EMSGSIZE);
            if ((rc = buf_append(f, data, n, max)) < 0)
                return fail(f, rc);
            /* Every start before the last eof_len - 1 bytes has been ruled out: the next read
             * resumes there, so a long frame is scanned once, not once per read. */
            f->scan = f->len >= el ? f->len - el + 1 : 0;
            return 0;
        }
        if (f->len + end > max)
            return fail(f, -EMSGSIZE);
        if ((rc = buf_append(f, data, end, max)) < 0)
            return fail(f, rc);
        size_t flen = f->len;
        f->len = f->scan = 0; /* the buffer is kept for the tail of this read, freed after */
        if ((rc = cb(arg, f->buf, flen)) != 0)
            return rc;
        pos = end;
    }

    while (pos < n) {
        size_t left = n - pos;
        size_t win = left < max ? left : max;
        const char *hit = memmem(data + pos, win, o->eof, el);
        if (hit == NULL) {
            if (left >= max)
                return fail(f, -EMSGSIZE);
            if ((rc = buf_append(f, data + pos, left, max)) < 0)
                return fail(f, rc);
            f->scan = left >= el ? left - el + 1 : 0;
            return 0;
        }
        size_t flen = (size_t)(hit - (data + pos)) + el;
        if ((rc = cb(arg, data + pos, flen)) != 0)
            return rc;
        pos += flen;
    }
    return 0;
}

/* ---- SRV_FRAME_EOF without split: Swoole hands up everything pending once a read leaves it
 * ending with the delimiter, several frames at a time if they came together. ---- */

static int feed_eof_whole(srv__framer_t *f, const char *data, size_t n, srv__frame_cb cb, void *arg)
{
    const srv__frame_opts_t *o = f->o;
    size_t el = (size_t)o->eof_len, max = o->max_length;
    int rc;

    if (f->len == 0 && n >= el && memcmp(data + n - el, o->eof, el) == 0) {
        if (n > max)
            return fail(f, -EMSGSIZE);
        return cb(arg, data, n);
    }
    if (f->len + n > max)
        return fail(f, -EMSGSIZE);
    if ((rc = buf_append(f, data, n, max)) < 0)
        return fail(f, rc);
    if (f->len >= el && memcmp(f->buf + f->len - el, o->eof, el) == 0) {
        size_t flen = f->len;
        f->len = 0;
        return cb(arg, f->buf, flen);
    }
    /* a full buffer that does not end with the delimiter can only grow past max_length */
    return f->len >= max ? fail(f, -EMSGSIZE) : 0;
}

/* ---- SRV_FRAME_LENGTH ---- */

/* The size of the frame whose header is at p (at least header bytes long), or -errno. */
static int64_t length_frame_size(const srv__frame_opts_t *o, const char *p, size_t header)
{
    int64_t value = length_decode(o->length_type, p + o->length_offset);
    if (value < 0)
        return -EPROTO;
    uint64_t total = (uint64_t)o->body_offset + (uint64_t)value;
    /* A frame that ends before its own length field would make no progress (body_offset 0,
     * value 0) or cut the field in two: malformed, not merely short. */
    if (total < header)
        return -EPROTO;
    if (total > o->max_length)
        return -EMSGSIZE;
    return (int64_t)total;
}

static int feed_length(srv__framer_t *f, const char *data, size_t n, srv__frame_cb cb, void *arg)
{
    const srv__frame_opts_t *o = f->o;
    size_t header = (size_t)o->length_offset + (size_t)srv__frame_length_size(o->length_type);
    size_t pos = 0;
    int rc;

    if (f->len > 0) {
        if (f->scan == 0) {
            /* still short of the length field: complete the header first */
            size_t take = header - f->len < n ? header - f->len : n;
            if ((rc = buf_append(f, data, take, header)) < 0)
                return fail(f, rc);
            pos = take;
            if (f->len < header)
                return 0;
            int64_t total = length_frame_size(o, f->buf, header);
            if (total < 0)
                return fail(f, (int)total);
            f->scan = (size_t)total;
        }
        size_t take = f->scan - f->len < n - pos ? f->scan - f->len : n - pos;
        if ((rc = buf_append(f, data + pos, take, f->scan)) < 0)
            return fail(f, rc);
        pos += take;
        if (f->len < f->scan)
            return 0;
        size_t flen = f->len;
        f->len = f->scan = 0;
        if ((rc = cb(arg, f->buf, flen)) != 0)
            return rc;
    }

    while (pos < n) {
        size_t left = n - pos;
        size_t total = 0;
        if (left >= header) {
            int64_t t = length_frame_size(o, data + pos, header);
            if (t < 0)
                return fail(f, (int)t);
            total = (size_t)t;
        }
        if (total == 0 || left < total) {
            /* Allocate for what has arrived, not for what the header promises: a peer that
             * announces max_length and goes quiet must not pin max_length per connection. */
            if ((rc = buf_append(f, data + pos, left, total ? total : header)) < 0)
                return fail(f, rc);
            f->scan = total;
            return 0;
        }
        if ((rc = cb(arg, data + pos, total)) != 0)
            return rc;
        pos += total;
    }
    return 0;
}

int srv__framer_feed(srv__framer_t *f, const char *data, size_t len, srv__frame_cb cb, void *arg)
{
    int rc;
    if (f->err != 0)
        return f->err;
    if (len == 0)
        return 0; /* data may be NULL then, and no mode has anything to do */
    switch (f->o->mode) {
    case SRV_FRAME_EOF:
        rc = f->o->eof_split ? feed_eof_split(f, data, len, cb, arg)
                             : feed_eof_whole(f, data, len, cb, arg);
        break;
    case SRV_FRAME_LENGTH:
        rc = feed_length(f, data, len, cb, arg);
        break;
    default:
        rc = cb(arg, data, len);
        break;
    }
    /* After an error or a stop the rest of the stream is dropped; once a frame is complete the
     * buffer goes too, so an idle connection owns no memory. */
    if (rc != 0 || f->len == 0)
        framer_reset(f);
    return rc;
}
