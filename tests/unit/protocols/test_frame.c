/* Unit tests for protocols/frame.c: every mode and length type, fed the same stream cut every
 * possible way (all at once, 1 byte at a time, each split point, each pair of split points,
 * random cuts from a fixed seed), malformed and oversize frames, callback stops, memory use. */
#include "protocols/frame.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- recording frames ---- */

typedef struct {
    char *bytes; /* every frame's bytes, back to back */
    size_t nbytes, capb;
    size_t *lens;
    size_t nframes, capf;
    size_t stop_at; /* return stop_rc when delivering frame number stop_at (1-based); 0 = never */
    int stop_rc;
    const char *data; /* the read being fed, to count zero-copy frames */
    size_t dlen;
    size_t in_place;
} rec_t;

static void rec_add(rec_t *r, const char *p, size_t len)
{
    if (r->nbytes + len > r->capb) {
        r->capb = (r->nbytes + len) * 2 + 64;
        r->bytes = realloc(r->bytes, r->capb);
        CHECK(r->bytes != NULL);
    }
    if (r->nframes == r->capf) {
        r->capf = r->capf * 2 + 16;
        r->lens = realloc(r->lens, r->capf * sizeof(*r->lens));
        CHECK(r->lens != NULL);
    }
    memcpy(r->bytes + r->nbytes, p, len);
    r->nbytes += len;
    r->lens[r->nframes++] = len;
}

static void rec_clear(rec_t *r)
{
    r->nbytes = r->nframes = 0;
    r->in_place = 0;
}

static void rec_free(rec_t *r)
{
    free(r->bytes);
    free(r->lens);
    memset(r, 0, sizeof(*r));
}

static int on_frame(void *arg, const char *frame, size_t len)
{
    rec_t *r = arg;
    CHECK_INT(len, >, 0);
    if (r->data != NULL && frame >= r->data && frame + len <= r->data + r->dlen)
        r->in_place++;
    rec_add(r, frame, len);
    if (r->stop_at != 0 && r->nframes == r->stop_at)
        return r->stop_rc;
    return 0;
}

static void rec_check_equal(const rec_t *got, const rec_t *want, const char *what)
{
    if (got->nframes != want->nframes || got->nbytes != want->nbytes ||
        (got->nframes > 0 && (memcmp(got->bytes, want->bytes, got->nbytes) != 0 ||
                              memcmp(got->lens, want->lens, got->nframes * sizeof(size_t)) != 0))) {
        fprintf(stderr, "%s: got %zu frames (%zu bytes), want %zu (%zu bytes)\n", what,
                got->nframes, got->nbytes, want->nframes, want->nbytes);
        size_t off = 0;
        for (size_t i = 0; i < got->nframes && i < 20; i++) {
            fprintf(stderr, "  got[%zu] = \"%.*s\" (%zu)\n", i, (int)got->lens[i], got->bytes + off,
                    got->lens[i]);
            off += got->lens[i];
        }
        off = 0;
        for (size_t i = 0; i < want->nframes && i < 20; i++) {
            fprintf(stderr, "  want[%zu] = \"%.*s\" (%zu)\n", i, (int)want->lens[i],
                    want->bytes + off, want->lens[i]);
            off += want->lens[i];
        }
        exit(1);
    }
}

/* ---- feeding a stream cut at given points ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    /* xorshift64: deterministic across libcs, unlike rand() */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct {
    int rc;
    size_t buffered;
} outcome_t;

/* Feed input cut at cuts[0..ncuts) (increasing, inside (0, n)); stop at the first non-zero
 * return as a server would. Each read is copied to its own heap block so ASan catches a frame
 * pointer kept past its read. */
static outcome_t feed_cuts(const srv__frame_opts_t *o, const char *in, size_t n, const size_t *cuts,
                           size_t ncuts, rec_t *r)
{
    srv__framer_t f;
    outcome_t out = {0, 0};
    size_t start = 0;
    srv__framer_init(&f, o);
    rec_clear(r);
    for (size_t i = 0; i <= ncuts && out.rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        size_t len = end - start;
        char *piece = malloc(len ? len : 1);
        CHECK(piece != NULL);
        memcpy(piece, in + start, len);
        r->data = piece;
        r->dlen = len;
        out.rc = srv__framer_feed(&f, piece, len, on_frame, r);
        r->data = NULL;
        free(piece);
        CHECK(srv__framer_buffered(&f) <= (o->mode == SRV_FRAME_NONE ? 0 : o->max_length));
        /* idle memory is zero: a buffer exists only under a partial frame */
        CHECK((f.buf == NULL) == (srv__framer_buffered(&f) == 0));
        start = end;
    }
    out.buffered = srv__framer_buffered(&f);
    if (out.rc != 0)
        CHECK_INT(out.buffered, ==, 0);
    srv__framer_deinit(&f);
    return out;
}

/* The ways a stream of n bytes is cut; calls fn for each. */
typedef void (*cut_fn)(void *ctx, const size_t *cuts, size_t ncuts, const char *what);

static void for_each_cut(size_t n, cut_fn fn, void *ctx, int random_iters)
{
    size_t *cuts = calloc(n + 1, sizeof(*cuts));
    CHECK(cuts != NULL);
    fn(ctx, cuts, 0, "all at once");
    for (size_t i = 1; i < n; i++)
        cuts[i - 1] = i;
    fn(ctx, cuts, n > 0 ? n - 1 : 0, "1 byte at a time");
    for (size_t i = 1; i < n; i++) {
        cuts[0] = i;
        fn(ctx, cuts, 1, "one split");
    }
    if (n <= 120) {
        for (size_t i = 1; i < n; i++) {
            for (size_t j = i + 1; j < n; j++) {
                cuts[0] = i;
                cuts[1] = j;
                fn(ctx, cuts, 2, "two splits");
            }
        }
    }
    for (int it = 0; it < random_iters && n > 1; it++) {
        /* each boundary is a cut with probability 1/k, k from 1 to 16 */
        size_t k = 1 + rng() % 16, nc = 0;
        for (size_t i = 1; i < n; i++) {
            if (rng() % k == 0)
                cuts[nc++] = i;
        }
        fn(ctx, cuts, nc, "random cuts");
    }
    free(cuts);
}

/* A stream with one right answer whatever the cuts (EOF split, LENGTH). */
typedef struct {
    const char *name;
    srv__frame_opts_t o;
    const char *in;
    size_t n;
    rec_t want;
    int want_rc;
    size_t want_buffered;
    rec_t got;
    size_t runs;
} split_case_t;

static void split_case_one(void *ctx, const size_t *cuts, size_t ncuts, const char *what)
{
    split_case_t *c = ctx;
    outcome_t out = feed_cuts(&c->o, c->in, c->n, cuts, ncuts, &c->got);
    if (out.rc != c->want_rc || out.buffered != c->want_buffered) {
        fprintf(stderr, "%s (%s, %zu cuts, first %zu): rc %d buffered %zu, want %d and %zu\n",
                c->name, what, ncuts, ncuts ? cuts[0] : 0, out.rc, out.buffered, c->want_rc,
                c->want_buffered);
        exit(1);
    }
    rec_check_equal(&c->got, &c->want, c->name);
    c->runs++;
}

static void split_case_run(split_case_t *c)
{
    for_each_cut(c->n, split_case_one, c, 300);
    rec_free(&c->want);
    rec_free(&c->got);
}

static void want_frame(split_case_t *c, const char *s)
{
    rec_add(&c->want, s, strlen(s));
}

static srv__frame_opts_t eof_opts(const char *eof, size_t eof_len, bool split, size_t max)
{
    srv__frame_opts_t o = {
        .mode = SRV_FRAME_EOF, .eof_len = (int)eof_len, .eof_split = split, .max_length = max};
    memcpy(o.eof, eof, eof_len);
    return o;
}

/* ---- SRV_FRAME_EOF with split ---- */

static void eof_split_case(const char *name, const char *eof, size_t max, const char *in,
                           const char *const *frames, int rc, size_t buffered)
{
    split_case_t c = {.name = name,
                      .o = eof_opts(eof, strlen(eof), true, max),
                      .in = in,
                      .n = strlen(in),
                      .want_rc = rc,
                      .want_buffered = buffered};
    for (size_t i = 0; frames[i] != NULL; i++)
        want_frame(&c, frames[i]);
    split_case_run(&c);
}

static void test_eof_split(void)
{
    eof_split_case("crlf", "\r\n", 64, "hello\r\nworld\r\n\r\nx",
                   (const char *[]){"hello\r\n", "world\r\n", "\r\n", NULL}, 0, 1);
    /* a delimiter prefix inside the data */
    eof_split_case("cr-cr-lf", "\r\n", 64, "a\r\r\nb\r\n\r\r\r\r\nc\r",
                   (const char *[]){"a\r\r\n", "b\r\n", "\r\r\r\r\n", NULL}, 0, 2);
    eof_split_case("lf", "\n", 64, "\n\nab\ncd\n",
                   (const char *[]){"\n", "\n", "ab\n", "cd\n", NULL}, 0, 0);
    /* self-overlapping delimiters: the earliest end wins */
    eof_split_case("abab", "abab", 64, "xabababyababab", (const char *[]){"xabab", "abyabab", NULL},
                   0, 2);
    eof_split_case("aab", "aab", 64, "aaabaaaabaab", (const char *[]){"aaab", "aaaab", "aab", NULL},
                   0, 0);
    eof_split_case("8 bytes", "12345678", 64, "x1234567123456781234567812345678y12",
                   (const char *[]){"x123456712345678", "12345678", "12345678", NULL}, 0, 3);
    eof_split_case("frame of max_length", "\r\n", 8, "123456\r\n\r\nab",
                   (const char *[]){"123456\r\n", "\r\n", NULL}, 0, 2);
    eof_split_case("pending just under max", "\r\n", 8, "ab\r\n1234567",
                   (const char *[]){"ab\r\n", NULL}, 0, 7);
    eof_split_case("oversize by one", "\r\n", 8, "ab\r\n123456\r\n1234567\r\nzz\r\n",
                   (const char *[]){"ab\r\n", "123456\r\n", NULL}, -EMSGSIZE, 0);
    eof_split_case("oversize, no delimiter", "\r\n", 8, "ab\r\nabcdefgh",
                   (const char *[]){"ab\r\n", NULL}, -EMSGSIZE, 0);
    eof_split_case("oversize, delimiter half in", "\r\n", 8, "1234567\r\n", (const char *[]){NULL},
                   -EMSGSIZE, 0);
    /* a 3-byte delimiter can start inside max_length and end past it */
    eof_split_case("long delimiter at max", "abc", 8, "12345abcab",
                   (const char *[]){"12345abc", NULL}, 0, 2);
    eof_split_case("long delimiter past max", "abc", 8, "12345abc123456abc",
                   (const char *[]){"12345abc", NULL}, -EMSGSIZE, 0);
    eof_split_case("max equals eof", "\r\n", 2, "\r\n\r\n\r\nx",
                   (const char *[]){"\r\n", "\r\n", "\r\n", NULL}, 0, 1);

    /* binary delimiter with NUL bytes and partial prefixes in the data */
    static const char bin_eof[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    static const char bin_in[] = {9, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 1, 2, 3, 4, 5, 6, 7, 0};
    split_case_t c = {.name = "binary eof",
                      .o = eof_opts(bin_eof, 8, true, 64),
                      .in = bin_in,
                      .n = sizeof(bin_in),
                      .want_rc = 0,
                      .want_buffered = 1};
    rec_add(&c.want, bin_in, 12);
    rec_add(&c.want, bin_in + 12, 9);
    split_case_run(&c);
}

/* ---- SRV_FRAME_EOF without split: a model of Swoole's rule, checked for every cut ---- */

typedef struct {
    srv__frame_opts_t o;
    const char *in;
    size_t n;
    rec_t want, got;
} whole_case_t;

static void whole_case_one(void *ctx, const size_t *cuts, size_t ncuts, const char *what)
{
    whole_case_t *c = ctx;
    size_t el = (size_t)c->o.eof_len, max = c->o.max_length, last = 0;
    int want_rc = 0;
    rec_clear(&c->want);
    /* pending bytes go up when a read leaves them ending with the delimiter */
    for (size_t i = 0; i <= ncuts && want_rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : c->n;
        size_t pend = end - last;
        bool ends = pend >= el && memcmp(c->in + end - el, c->o.eof, el) == 0;
        if (pend > max || (!ends && pend == max)) {
            want_rc = -EMSGSIZE;
        } else if (ends) {
            rec_add(&c->want, c->in + last, pend);
            last = end;
        }
    }
    outcome_t out = feed_cuts(&c->o, c->in, c->n, cuts, ncuts, &c->got);
    if (out.rc != want_rc || out.buffered != (want_rc ? 0 : c->n - last)) {
        fprintf(stderr, "eof whole (%s): rc %d buffered %zu, want %d and %zu\n", what, out.rc,
                out.buffered, want_rc, want_rc ? 0 : c->n - last);
        exit(1);
    }
    rec_check_equal(&c->got, &c->want, "eof whole");
}

static void whole_case(const char *eof, size_t max, const char *in)
{
    whole_case_t c = {.o = eof_opts(eof, strlen(eof), false, max), .in = in, .n = strlen(in)};
    for_each_cut(c.n, whole_case_one, &c, 300);
    rec_free(&c.want);
    rec_free(&c.got);
}

static void test_eof_whole(void)
{
    srv__frame_opts_t o = eof_opts("\r\n", 2, false, 64);
    rec_t r = {0};
    size_t cut;

    /* several frames in one read go up together, delimiters and all */
    outcome_t out = feed_cuts(&o, "a\r\nb\r\n", 6, NULL, 0, &r);
    CHECK_INT(out.rc, ==, 0);
    CHECK_INT(r.nframes, ==, 1);
    CHECK_MEM(r.bytes, r.nbytes, "a\r\nb\r\n", 6);
    /* a read ending mid-frame holds everything back until a read ends on the delimiter */
    cut = 4;
    out = feed_cuts(&o, "a\r\nb\r\n", 6, &cut, 1, &r);
    CHECK_INT(r.nframes, ==, 1);
    CHECK_MEM(r.bytes, r.nbytes, "a\r\nb\r\n", 6);
    /* the delimiter split between reads */
    cut = 2;
    out = feed_cuts(&o, "a\r\n", 3, &cut, 1, &r);
    CHECK_INT(r.nframes, ==, 1);
    CHECK_MEM(r.bytes, r.nbytes, "a\r\n", 3);
    rec_free(&r);

    whole_case("\r\n", 64, "a\r\nbb\r\n\r\nccc\r\r\nd\r\n\rx");
    whole_case("\n", 64, "\n\nab\ncd\nx");
    whole_case("abab", 64, "xabababyabababz");
    whole_case("\r\n", 8, "ab\r\n123456\r\n1234567\r\nzz\r\n");
    whole_case("\r\n", 8, "abc\r\nabcdefgh\r\n");
    whole_case("\r\n", 8, "1234\r\n\r\n");
    whole_case("\r\n", 8, "ab\r\n12345678");
    whole_case("abc", 8, "12345abc123456abc");
}

/* ---- SRV_FRAME_NONE: every read as it came ---- */

typedef struct {
    srv__frame_opts_t o;
    const char *in;
    size_t n;
    rec_t got;
} none_case_t;

static void none_case_one(void *ctx, const size_t *cuts, size_t ncuts, const char *what)
{
    none_case_t *c = ctx;
    outcome_t out = feed_cuts(&c->o, c->in, c->n, cuts, ncuts, &c->got);
    CHECK_INT(out.rc, ==, 0);
    CHECK_INT(out.buffered, ==, 0);
    CHECK_INT(c->got.nframes, ==, ncuts + 1);
    CHECK_INT(c->got.in_place, ==, ncuts + 1);
    CHECK_MEM(c->got.bytes, c->got.nbytes, c->in, c->n);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t start = i ? cuts[i - 1] : 0, end = i < ncuts ? cuts[i] : c->n;
        CHECK_INT(c->got.lens[i], ==, end - start);
    }
}

static void test_none(void)
{
    /* max_length means nothing here: reads are never held back */
    none_case_t c = {
        .o = {.mode = SRV_FRAME_NONE, .max_length = 4}, .in = "raw\r\nbytes\0x", .n = 12};
    for_each_cut(c.n, none_case_one, &c, 100);
    rec_free(&c.got);

    srv__framer_t f;
    rec_t r = {0};
    srv__framer_init(&f, &c.o);
    CHECK_INT(srv__framer_feed(&f, "", 0, on_frame, &r), ==, 0);
    CHECK_INT(r.nframes, ==, 0);
    srv__framer_deinit(&f);
    rec_free(&r);
}

/* ---- SRV_FRAME_LENGTH ---- */

static size_t header_end(const srv__frame_opts_t *o)
{
    return (size_t)o->length_offset + (size_t)srv__frame_length_size(o->length_type);
}

/* Append a frame of total bytes (filled with a pattern) whose length field says value. */
static void put_frame(char *out, size_t *n, const srv__frame_opts_t *o, size_t total,
                      uint64_t value)
{
    for (size_t i = 0; i < total; i++)
        out[*n + i] = (char)('A' + (*n + i) % 23);
    char field[4];
    int size = srv__frame_length_encode(o->length_type, value, field);
    CHECK_INT(size, >, 0);
    if (total >= header_end(o))
        memcpy(out + *n + o->length_offset, field, (size_t)size);
    *n += total;
}

/* Append a raw length field (any bit pattern, e.g. a negative int8) after length_offset bytes. */
static void put_raw_header(char *out, size_t *n, const srv__frame_opts_t *o, const char *field)
{
    for (int i = 0; i < o->length_offset; i++)
        out[(*n)++] = 'M';
    size_t size = (size_t)srv__frame_length_size(o->length_type);
    memcpy(out + *n, field, size);
    *n += size;
}

static void length_cases(char type, int length_offset, int body_offset)
{
    static char in[4096];
    char name[64];
    srv__frame_opts_t o = {.mode = SRV_FRAME_LENGTH,
                          .length_type = type,
                          .length_offset = length_offset,
                          .body_offset = body_offset};
    size_t hend = header_end(&o), bo = (size_t)body_offset;
    size_t hmin = hend > bo ? hend : bo; /* the shortest valid frame */
    o.max_length = bo + 100;             /* 100 fits every type, int8 included */
    CHECK_INT(srv__frame_opts_check(&o, NULL), ==, 0);
    snprintf(name, sizeof(name), "length %c lo=%d bo=%d", type, length_offset, body_offset);

    /* valid frames: the shortest, a few sizes, exactly max_length; then a partial one */
    split_case_t c = {.name = name, .o = o, .in = in};
    size_t sizes[] = {hmin, hmin + 1, bo + 7 > hmin ? bo + 7 : hmin + 2, o.max_length, hmin};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t at = c.n;
        put_frame(in, &c.n, &o, sizes[i], sizes[i] - bo);
        rec_add(&c.want, in + at, sizes[i]);
    }
    /* the stream ends inside a further frame: in its length field, right after it, in its body */
    size_t partial_total = hmin + 3;
    size_t ks[] = {hend - 1, hend, partial_total - 1};
    for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
        if (ks[i] == 0)
            continue;
        split_case_t p = {.name = name, .o = o, .in = in, .n = c.n, .want_buffered = ks[i]};
        for (size_t j = 0, off = 0; j < c.want.nframes; off += c.want.lens[j++])
            rec_add(&p.want, c.want.bytes + off, c.want.lens[j]);
        put_frame(in, &p.n, &o, partial_total, partial_total - bo);
        p.n = c.n + ks[i];
        split_case_run(&p);
    }
    split_case_run(&c);

    /* oversize: known from the header alone, frames before it delivered */
    split_case_t e = {.name = name, .o = o, .in = in, .want_rc = -EMSGSIZE};
    put_frame(in, &e.n, &o, hmin, hmin - bo);
    rec_add(&e.want, in, hmin);
    size_t at = e.n;
    put_frame(in, &e.n, &o, o.max_length + 1, o.max_length + 1 - bo);
    e.n = at + hend; /* only its header arrives */
    split_case_run(&e);

    /* the largest value the type holds */
    char field[4];
    uint64_t maxval = type == 'c'                    ? 127
                      : type == 'C'                  ? 255
                      : (type == 'n' || type == 'v') ? 65535
                                                     : 0xffffffffu;
    CHECK_INT(srv__frame_length_encode(type, maxval, field), >, 0);
    e = (split_case_t){.name = name, .o = o, .in = in, .want_rc = -EMSGSIZE};
    put_frame(in, &e.n, &o, hmin, hmin - bo);
    rec_add(&e.want, in, hmin);
    put_raw_header(in, &e.n, &o, field);
    split_case_run(&e);

    /* negative int8 lengths are malformed */
    if (type == 'c') {
        const char negs[] = {(char)0xff, (char)0x80};
        for (size_t i = 0; i < sizeof(negs); i++) {
            e = (split_case_t){.name = name, .o = o, .in = in, .want_rc = -EPROTO};
            put_frame(in, &e.n, &o, hmin, hmin - bo);
            rec_add(&e.want, in, hmin);
            put_raw_header(in, &e.n, &o, &negs[i]);
            in[e.n++] = 'z';
            split_case_run(&e);
        }
    }
    /* a frame that would end inside its own length field */
    if (bo < hend) {
        e = (split_case_t){.name = name, .o = o, .in = in, .want_rc = -EPROTO};
        put_frame(in, &e.n, &o, hmin, hmin - bo);
        rec_add(&e.want, in, hmin);
        CHECK_INT(srv__frame_length_encode(type, hend - 1 - bo, field), >, 0);
        put_raw_header(in, &e.n, &o, field);
        split_case_run(&e);
    }
}

static void test_length(void)
{
    const char *types = "cCnNvV";
    for (const char *t = types; *t; t++) {
        int size = srv__frame_length_size(*t);
        length_cases(*t, 0, size);         /* length, then body */
        length_cases(*t, 2, 2 + size + 3); /* 2-byte magic, length, 3-byte header, body */
        length_cases(*t, 0, 0);            /* the value counts the whole frame */
        length_cases(*t, 3, 1);            /* body_offset inside the header */
        length_cases(*t, 1, size + 1);
    }
}

/* Exact bytes for each type, so the framer is not only checked against its own encoder. */
static void test_length_wire(void)
{
    struct {
        char type;
        const char *hdr;
        size_t hlen;
    } cases[] = {
        {'c', "\x05", 1},
        {'C', "\x05", 1},
        {'n', "\x00\x05", 2},
        {'v', "\x05\x00", 2},
        {'N', "\x00\x00\x00\x05", 4},
        {'V', "\x05\x00\x00\x00", 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        srv__frame_opts_t o = {.mode = SRV_FRAME_LENGTH,
                              .length_type = cases[i].type,
                              .body_offset = (int)cases[i].hlen,
                              .max_length = 1024};
        char in[32], enc[4];
        memcpy(in, cases[i].hdr, cases[i].hlen);
        memcpy(in + cases[i].hlen, "hello", 5);
        CHECK_INT(srv__frame_length_encode(cases[i].type, 5, enc), ==, cases[i].hlen);
        CHECK_MEM(enc, cases[i].hlen, cases[i].hdr, cases[i].hlen);
        rec_t r = {0};
        outcome_t out = feed_cuts(&o, in, cases[i].hlen + 5, NULL, 0, &r);
        CHECK_INT(out.rc, ==, 0);
        CHECK_INT(r.nframes, ==, 1);
        CHECK_MEM(r.bytes, r.nbytes, in, cases[i].hlen + 5);
        rec_free(&r);
    }
    /* 0x01020304 in both byte orders */
    char enc[4];
    CHECK_INT(srv__frame_length_encode('N', 0x01020304, enc), ==, 4);
    CHECK_MEM(enc, 4, "\x01\x02\x03\x04", 4);
    CHECK_INT(srv__frame_length_encode('V', 0x01020304, enc), ==, 4);
    CHECK_MEM(enc, 4, "\x04\x03\x02\x01", 4);
    CHECK_INT(srv__frame_length_encode('n', 0x0102, enc), ==, 2);
    CHECK_MEM(enc, 2, "\x01\x02", 2);
    CHECK_INT(srv__frame_length_encode('v', 0x0102, enc), ==, 2);
    CHECK_MEM(enc, 2, "\x02\x01", 2);
    CHECK_INT(srv__frame_length_encode('c', 127, enc), ==, 1);
    CHECK_INT(srv__frame_length_encode('c', 128, enc), ==, -ERANGE);
    CHECK_INT(srv__frame_length_encode('C', 255, enc), ==, 1);
    CHECK_INT(srv__frame_length_encode('C', 256, enc), ==, -ERANGE);
    CHECK_INT(srv__frame_length_encode('n', 65536, enc), ==, -ERANGE);
    CHECK_INT(srv__frame_length_encode('v', 65535, enc), ==, 2);
    CHECK_INT(srv__frame_length_encode('N', 0x100000000ull, enc), ==, -ERANGE);
    CHECK_INT(srv__frame_length_encode('V', 0xffffffffull, enc), ==, 4);
    CHECK_INT(srv__frame_length_encode('s', 1, enc), ==, -EINVAL);
    CHECK_INT(srv__frame_length_size('q'), ==, -EINVAL);
}

/* ---- options, stops, errors, memory ---- */

static void test_opts_check(void)
{
    const char *why = NULL;
    srv__frame_opts_t ok[] = {
        {.mode = SRV_FRAME_NONE},
        eof_opts("\r\n", 2, true, 2),
        eof_opts("12345678", 8, false, 100),
        {.mode = SRV_FRAME_LENGTH, .length_type = 'N', .body_offset = 4, .max_length = 4},
        {.mode = SRV_FRAME_LENGTH, .length_type = 'c', .length_offset = 9, .max_length = 10},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK_INT(srv__frame_opts_check(&ok[i], &why), ==, 0);
        CHECK(why == NULL);
    }
    srv__frame_opts_t bad[] = {
        {.mode = (srv__frame_mode_t)7},
        {.mode = SRV_FRAME_EOF, .eof_len = 0, .max_length = 10},
        {.mode = SRV_FRAME_EOF, .eof_len = 9, .max_length = 10},
        eof_opts("\r\n", 2, true, 1),
        {.mode = SRV_FRAME_LENGTH, .length_type = 's', .max_length = 10},
        {.mode = SRV_FRAME_LENGTH, .length_type = 0, .max_length = 10},
        {.mode = SRV_FRAME_LENGTH, .length_type = 'n', .length_offset = -1, .max_length = 10},
        {.mode = SRV_FRAME_LENGTH, .length_type = 'n', .body_offset = -1, .max_length = 10},
        {.mode = SRV_FRAME_LENGTH, .length_type = 'N', .length_offset = 7, .max_length = 10},
        {.mode = SRV_FRAME_LENGTH, .length_type = 'n', .body_offset = 11, .max_length = 10},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        CHECK_INT(srv__frame_opts_check(&bad[i], &why), ==, -EINVAL);
        CHECK(why != NULL && why[0] != '\0');
        CHECK_INT(srv__frame_opts_check(&bad[i], NULL), ==, -EINVAL);
        /* a framer given them refuses every read rather than misbehaving */
        srv__framer_t f;
        rec_t r = {0};
        srv__framer_init(&f, &bad[i]);
        CHECK_INT(srv__framer_feed(&f, "abc\r\n", 5, on_frame, &r), ==, -EINVAL);
        CHECK_INT(r.nframes, ==, 0);
        srv__framer_deinit(&f);
    }
    srv__framer_t f;
    srv__framer_init(&f, NULL);
    CHECK_INT(srv__framer_feed(&f, "x", 1, on_frame, NULL), ==, -EINVAL);
    srv__framer_deinit(&f);
}

static void test_zero_copy(void)
{
    srv__frame_opts_t eo = eof_opts("\r\n", 2, true, 64);
    rec_t r = {0};
    /* both frames lie in the read: handed up in place; the one across reads is not */
    size_t cut = 9;
    outcome_t out = feed_cuts(&eo, "ab\r\ncd\r\nef\r\n", 12, &cut, 1, &r);
    CHECK_INT(out.rc, ==, 0);
    CHECK_INT(r.nframes, ==, 3);
    CHECK_INT(r.in_place, ==, 2);

    srv__frame_opts_t lo = {
        .mode = SRV_FRAME_LENGTH, .length_type = 'C', .body_offset = 1, .max_length = 64};
    out = feed_cuts(&lo, "\x02xy\x01z\x03", 6, NULL, 0, &r);
    CHECK_INT(out.rc, ==, 0);
    CHECK_INT(r.nframes, ==, 2);
    CHECK_INT(r.in_place, ==, 2);
    CHECK_INT(out.buffered, ==, 1);
    rec_free(&r);
}

static void test_stop(void)
{
    srv__frame_opts_t opts[] = {
        eof_opts("\n", 1, true, 64),
        {.mode = SRV_FRAME_LENGTH, .length_type = 'n', .body_offset = 2, .max_length = 64},
    };
    const char *in[] = {"a\nb\nc\nd", "\x00\x01"
                                      "a\x00\x01"
                                      "b\x00\x01"
                                      "c\x00"};
    size_t n[] = {7, 10};
    for (size_t m = 0; m < 2; m++) {
        srv__framer_t f;
        rec_t r = {.stop_at = 2, .stop_rc = 5};
        srv__framer_init(&f, &opts[m]);
        /* stop on an in-place frame: the rest of the read is forgotten */
        CHECK_INT(srv__framer_feed(&f, in[m], n[m], on_frame, &r), ==, 5);
        CHECK_INT(r.nframes, ==, 2);
        CHECK_INT(srv__framer_buffered(&f), ==, 0);
        CHECK(f.buf == NULL);
        /* not sticky: the framer starts clean */
        r.stop_at = 0;
        CHECK_INT(srv__framer_feed(&f, in[m], n[m], on_frame, &r), ==, 0);
        CHECK_INT(r.nframes, ==, 5);
        CHECK_INT(srv__framer_buffered(&f), ==, 1);
        srv__framer_deinit(&f);

        /* stop on a frame completed from the buffer, with a partial frame after it */
        srv__framer_init(&f, &opts[m]);
        rec_clear(&r);
        r.stop_at = 1;
        CHECK_INT(srv__framer_feed(&f, in[m], 1, on_frame, &r), ==, 0);
        CHECK_INT(srv__framer_feed(&f, in[m] + 1, n[m] - 1, on_frame, &r), ==, 5);
        CHECK_INT(r.nframes, ==, 1);
        CHECK_INT(srv__framer_buffered(&f), ==, 0);
        CHECK(f.buf == NULL);
        srv__framer_deinit(&f);
        rec_free(&r);
    }
}

static void test_sticky_error(void)
{
    srv__frame_opts_t o = eof_opts("\n", 1, true, 4);
    srv__framer_t f;
    rec_t r = {0};
    srv__framer_init(&f, &o);
    CHECK_INT(srv__framer_feed(&f, "ab\nabcd", 7, on_frame, &r), ==, -EMSGSIZE);
    CHECK_INT(r.nframes, ==, 1);
    CHECK(f.buf == NULL);
    CHECK_INT(srv__framer_feed(&f, "ok\n", 3, on_frame, &r), ==, -EMSGSIZE);
    CHECK_INT(r.nframes, ==, 1);
    /* deinit + init starts over */
    srv__framer_deinit(&f);
    srv__framer_init(&f, &o);
    CHECK_INT(srv__framer_feed(&f, "ok\n", 3, on_frame, &r), ==, 0);
    CHECK_INT(r.nframes, ==, 2);
    srv__framer_deinit(&f);
    rec_free(&r);
}

/* A partial frame's memory follows what arrived, not what the header promised, and deinit
 * frees it (LeakSanitizer checks). */
static void test_memory(void)
{
    srv__frame_opts_t o = {
        .mode = SRV_FRAME_LENGTH, .length_type = 'N', .body_offset = 4, .max_length = 1 << 20};
    char hdr[4];
    CHECK_INT(srv__frame_length_encode('N', (1 << 20) - 4, hdr), ==, 4);
    srv__framer_t f;
    rec_t r = {0};
    srv__framer_init(&f, &o);
    CHECK_INT(srv__framer_feed(&f, hdr, 4, on_frame, &r), ==, 0);
    CHECK_INT(srv__framer_feed(&f, "0123456789", 10, on_frame, &r), ==, 0);
    CHECK_INT(srv__framer_buffered(&f), ==, 14);
    CHECK_INT(f.cap, <=, 256);
    srv__framer_deinit(&f);
    CHECK(f.buf == NULL);
    CHECK_INT(srv__framer_buffered(&f), ==, 0);

    srv__frame_opts_t eo = eof_opts("\r\n", 2, true, 1 << 20);
    srv__framer_init(&f, &eo);
    CHECK_INT(srv__framer_feed(&f, "partial", 7, on_frame, &r), ==, 0);
    srv__framer_deinit(&f);
    rec_free(&r);
}

/* One big frame in 1 KiB reads: the delimiter search resumes where it stopped and the buffer
 * doubles, so this is linear (a rescan per read would be ~64 GB of memchr). */
static void test_long_frames(void)
{
    enum { TOTAL = 16 << 20, CHUNK = 1024 };
    char *big = malloc(TOTAL + 2);
    CHECK(big != NULL);
    for (size_t i = 0; i < TOTAL; i++)
        big[i] = (char)(i % 13 == 0 ? '\r' : 'a' + i % 26); /* many delimiter prefixes */
    memcpy(big + TOTAL, "\r\n", 2);

    srv__frame_opts_t eo = eof_opts("\r\n", 2, true, 32 << 20);
    srv__framer_t f;
    rec_t r = {0};
    srv__framer_init(&f, &eo);
    for (size_t off = 0; off < TOTAL + 2; off += CHUNK) {
        size_t len = TOTAL + 2 - off < CHUNK ? TOTAL + 2 - off : CHUNK;
        CHECK_INT(srv__framer_feed(&f, big + off, len, on_frame, &r), ==, 0);
    }
    CHECK_INT(r.nframes, ==, 1);
    CHECK_MEM(r.bytes, r.nbytes, big, TOTAL + 2);
    CHECK_INT(srv__framer_buffered(&f), ==, 0);
    srv__framer_deinit(&f);

    /* the same bytes as one length-prefixed frame */
    srv__frame_opts_t lo = {
        .mode = SRV_FRAME_LENGTH, .length_type = 'V', .body_offset = 4, .max_length = 32 << 20};
    char hdr[4];
    CHECK_INT(srv__frame_length_encode('V', TOTAL + 2, hdr), ==, 4);
    rec_clear(&r);
    srv__framer_init(&f, &lo);
    CHECK_INT(srv__framer_feed(&f, hdr, 3, on_frame, &r), ==, 0);
    CHECK_INT(srv__framer_feed(&f, hdr + 3, 1, on_frame, &r), ==, 0);
    for (size_t off = 0; off < TOTAL + 2; off += CHUNK) {
        size_t len = TOTAL + 2 - off < CHUNK ? TOTAL + 2 - off : CHUNK;
        CHECK_INT(srv__framer_feed(&f, big + off, len, on_frame, &r), ==, 0);
    }
    CHECK_INT(r.nframes, ==, 1);
    CHECK_INT(r.nbytes, ==, TOTAL + 6);
    CHECK_MEM(r.bytes + 4, r.nbytes - 4, big, TOTAL + 2);
    srv__framer_deinit(&f);

    /* a long run without the delimiter hits max_length, not memory exhaustion */
    srv__frame_opts_t so = eof_opts("\r\n", 2, true, 1 << 20);
    srv__framer_init(&f, &so);
    int rc = 0;
    size_t off = 0;
    for (; off < TOTAL && rc == 0; off += CHUNK) {
        rc = srv__framer_feed(&f, big + 1, CHUNK, on_frame, &r);
        CHECK_INT(srv__framer_buffered(&f), <, 1 << 20);
    }
    CHECK_INT(rc, ==, -EMSGSIZE);
    CHECK_INT(off, ==, 1 << 20);
    srv__framer_deinit(&f);

    rec_free(&r);
    free(big);
}

int main(void)
{
    test_opts_check();
    test_none();
    test_eof_split();
    test_eof_whole();
    test_length_wire();
    test_length();
    test_zero_copy();
    test_stop();
    test_sticky_error();
    test_memory();
    test_long_frames();
    (void)check_failures_;
    return 0;
}
