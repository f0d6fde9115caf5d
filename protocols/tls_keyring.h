/* Reading the shared session-ticket key ring (protocols/tls.h) from any process or thread while
 * the master rotates it: a copy checked against the ring's counter, so a reader never uses a key
 * half overwritten. tls_keyring.c also makes the keys (srv__tls_keyring_init/rotate). */
#ifndef SRV_TLS_KEYRING_H
#define SRV_TLS_KEYRING_H

#include "protocols/tls.h"

/* What srv__tls_keyring_find() found; the values are those OpenSSL's ticket-key callback
 * returns when decrypting (2: accept, and issue a fresh ticket). */
#define SRV__TLS_KEY_UNKNOWN 0
#define SRV__TLS_KEY_CURRENT 1
#define SRV__TLS_KEY_OLD 2

/* Copy the key new tickets are made with into out. Any process or thread; lock-free (it retries
 * only when a rotation ran during the copy). Returns the ring's counter it read. */
uint32_t srv__tls_keyring_current(const srv__tls_keyring_t *ring, srv__tls_ticket_key_t *out);

/* Find the key a ticket names, among those still accepted (the current one and the one before
 * it), copied into out. Returns SRV__TLS_KEY_CURRENT, SRV__TLS_KEY_OLD or SRV__TLS_KEY_UNKNOWN. */
int srv__tls_keyring_find(const srv__tls_keyring_t *ring, const uint8_t name[16],
                          srv__tls_ticket_key_t *out);

#endif
