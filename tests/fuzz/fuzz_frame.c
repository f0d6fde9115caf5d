/* libFuzzer target for protocols/frame.c. The first bytes pick the options, the rest is the
 * stream; it is fed once whole and once cut where the input says, and for the modes whose
 * output does not depend on the cuts (EOF split, LENGTH) both runs must agree exactly.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *            tests/fuzz/fuzz_frame.c protocols/frame.c -o fuzz_frame */
#include "protocols/frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t *bytes;
    size_t nbytes;
    size_t nframes;
    uint64_t lens_hash; /* frame boundaries, so a different cut of the same bytes shows */
    const srv__frame_opts_t *o;
} out_t;

static int on_frame(void *arg, const char *frame, size_t len)
{
    out_t *out = arg;
    if (len == 0)
        abort();
    if (out->o->mode != SRV_FRAME_NONE && len > out->o->max_length)
        abort();
    if (out->o->mode == SRV_FRAME_EOF &&
        (len < (size_t)out->o->eof_len ||
         memcmp(frame + len - out->o->eof_len, out->o->eof, (size_t)out->o->eof_len) != 0))
        abort();
    uint8_t *p = realloc(out->bytes, out->nbytes + len);
    if (p == NULL)
        abort();
    out->bytes = p;
    memcpy(p + out->nbytes, frame, len);
    out->nbytes += len;
    out->nframes++;
    out->lens_hash = out->lens_hash * 1000003u + len;
    return 0;
}

/* Feed stream[0..n), cut before every byte whose index is in the cut mask; returns rc. */
static int run(const srv__frame_opts_t *o, const uint8_t *stream, size_t n, const uint8_t *cuts,
               size_t ncuts, out_t *out, size_t *buffered)
{
    srv__framer_t f;
    int rc = 0;
    size_t start = 0;
    srv__framer_init(&f, o);
    for (size_t i = 1; i <= n && rc == 0; i++) {
        bool cut = i == n || (ncuts > 0 && (cuts[i % ncuts] & 1));
        if (!cut)
            continue;
        /* a private copy per read, so ASan sees frames used past their read */
        char *piece = malloc(i - start);
        if (piece == NULL)
            abort();
        memcpy(piece, stream + start, i - start);
        rc = srv__framer_feed(&f, piece, i - start, on_frame, out);
        free(piece);
        if (o->mode != SRV_FRAME_NONE && srv__framer_buffered(&f) > o->max_length)
            abort();
        start = i;
    }
    *buffered = srv__framer_buffered(&f);
    srv__framer_deinit(&f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char types[] = "cCnNvV";
    if (size < 16)
        return 0;
    srv__frame_opts_t o = {0};
    o.mode = (srv__frame_mode_t)(data[0] % 3);
    o.eof_len = 1 + data[1] % 8;
    memcpy(o.eof, data + 2, 8);
    o.eof_split = data[10] & 1;
    o.length_type = types[data[11] % 6];
    o.length_offset = data[12] % 8;
    o.body_offset = data[13] % 12;
    o.max_length = 1 + data[14] % 64 + (size_t)(data[15] & 0x3) * 300;
    if (srv__frame_opts_check(&o, NULL) != 0)
        return 0;
    size_t ncuts = data[10] >> 1 & 0x1f; /* bytes of cut mask taken from the stream's tail */
    data += 16;
    size -= 16;
    if (ncuts > size)
        ncuts = size;
    const uint8_t *cuts = data + size - ncuts;

    out_t whole = {.o = &o}, cut = {.o = &o};
    size_t bw = 0, bc = 0;
    int rw = run(&o, data, size, NULL, 0, &whole, &bw);
    int rcut = run(&o, data, size, cuts, ncuts, &cut, &bc);
    if (rw != 0 && rw != -EMSGSIZE && rw != -EPROTO)
        abort();
    if (o.mode == SRV_FRAME_LENGTH || (o.mode == SRV_FRAME_EOF && o.eof_split)) {
        if (rw != rcut || bw != bc || whole.nframes != cut.nframes || whole.nbytes != cut.nbytes ||
            whole.lens_hash != cut.lens_hash ||
            (whole.nbytes > 0 && memcmp(whole.bytes, cut.bytes, whole.nbytes) != 0))
            abort();
        if (rw == 0 && whole.nbytes + bw != size)
            abort();
    } else if (rcut == 0) {
        /* NONE and EOF without split: what went up plus what is held is the stream */
        if (cut.nbytes + bc != size || (cut.nbytes > 0 && memcmp(cut.bytes, data, cut.nbytes) != 0))
            abort();
    }
    free(whole.bytes);
    free(cut.bytes);
    return 0;
}
