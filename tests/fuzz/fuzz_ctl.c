/* libFuzzer target for the control socket's request parsing (core/process/ctl.c,
 * srv__ctl_parse(), which the master's ctl_serve.c calls on every read): the bytes a client
 * sends, arriving in pieces cut where the input says, into a buffer of SRV_CTL_CMD_MAX bytes
 * read the way ctl_serve.c reads (at most cap - 1 bytes held). Beyond "no crash" it checks the
 * outcome against a plain reading of the stream, whatever the cuts: the command is the bytes
 * before the first newline (one CR before it dropped), NUL-terminated, and the count returned
 * takes the newline; "more needed" only while no newline came and there is room; "too long"
 * exactly when cap - 1 bytes hold no newline. The first byte is the cut mask's length.
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "core/process/ctl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP SRV_CTL_CMD_MAX

/* What the stream should give: > 0 the line's length with its newline (cmd, cmdlen set),
 * -EMSGSIZE, or 0 when it ends before a newline with room left. */
static int expect(const uint8_t *s, size_t n, const uint8_t **cmd, size_t *cmdlen)
{
    size_t seen = n < CAP - 1 ? n : CAP - 1;
    const uint8_t *nl = memchr(s, '\n', seen);
    if (nl == NULL)
        return seen == CAP - 1 ? -EMSGSIZE : 0;
    *cmd = s;
    *cmdlen = (size_t)(nl - s);
    if (*cmdlen > 0 && s[*cmdlen - 1] == '\r')
        (*cmdlen)--;
    return (int)(nl - s) + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] & 0x3f;
    data++;
    size--;
    if (ncuts > size)
        ncuts = size;
    const uint8_t *cuts = data + size - ncuts;

    char *in = malloc(CAP); /* its own allocation, so ASan sees a read past it */
    if (in == NULL)
        abort();
    size_t len = 0, start = 0;
    int used = 0;
    for (size_t i = 1; i <= size && used == 0; i++) {
        if (i != size && (ncuts == 0 || !(cuts[i % ncuts] & 1)))
            continue;
        size_t n = i - start; /* a recv of up to CAP - 1 - len bytes: the rest comes later */
        if (n > CAP - 1 - len)
            n = CAP - 1 - len;
        memcpy(in + len, data + start, n);
        len += n;
        start += n;
        used = srv__ctl_parse(in, len, CAP);
        if (used == 0 && len == CAP - 1)
            abort(); /* a full buffer without a newline is too long, not "more" */
        i = start;   /* what the buffer did not take comes in the next read */
    }
    const uint8_t *cmd = NULL;
    size_t cmdlen = 0;
    int want = expect(data, size, &cmd, &cmdlen);
    if (used != want)
        abort();
    if (used > 0 && (used > (int)len || in[used - 1] != '\0' || in[cmdlen] != '\0' ||
                     memcmp(in, cmd, cmdlen) != 0))
        abort();
    free(in);
    return 0;
}
