/* SHA-1 and base64 for the WebSocket handshake (RFC 6455 4.2.2). Ours rather than OpenSSL's:
 * linking libcrypto for 20 bytes of hashing made every srv process map and relocate it,
 * about 1.4 MiB of resident memory each. Not for anything that needs SHA-1 to be secure. */
#ifndef SRV_PROTOCOLS_SHA1_H
#define SRV_PROTOCOLS_SHA1_H

#include <stddef.h>
#include <stdint.h>

void srv__sha1(const void *data, size_t len, uint8_t out[20]);
/* Standard base64 with padding; out needs 4 * ((len + 2) / 3) + 1 bytes. Returns the length. */
size_t srv__base64(const uint8_t *in, size_t len, char *out);

#endif
