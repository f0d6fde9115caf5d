/* permessage-deflate (RFC 7692) for ws.c: offer negotiation and one-shot per-message
 * compression. Every call builds and frees its own zlib stream: we always negotiate
 * no_context_takeover both ways, so nothing survives between messages. */
#ifndef SRV_PROTOCOLS_WS_DEFLATE_H
#define SRV_PROTOCOLS_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "srv/srv.h"

/* Pick the first acceptable permessage-deflate offer among req's Sec-WebSocket-Extensions
 * headers. On acceptance writes the response's extension value (NUL-terminated) into ext,
 * sets *wbits (see srv__ws_options_t.deflate_window_bits) and returns 1; returns 0 if nothing
 * acceptable was offered, -ENOSPC if ext is too small. */
int srv__ws_deflate_negotiate(const srv_request_t *req, char *ext, size_t cap, uint8_t *wbits);

/* Room that srv__ws_deflate() may need for len input bytes. */
size_t srv__ws_deflate_bound(size_t len);

/* Compress in as one message (raw deflate, sync flush, trailing 00 00 ff ff removed) with a
 * window of at most wbits. Returns the compressed size, -ENOSPC if cap was too small, or
 * -ENOMEM. */
ssize_t srv__ws_deflate(const void *in, size_t len, int wbits, uint8_t *out, size_t cap);

/* Decompress one message (the 00 00 ff ff tail is added here). *out is malloc'd (caller
 * frees), at most max bytes. Returns 0, -EMSGSIZE past max, -EBADMSG for corrupt data,
 * -ENOMEM. */
int srv__ws_inflate(const void *in, size_t len, size_t max, char **out, size_t *out_len);

#endif
