/* The session-ticket keys every process shares: one key ring (protocols/tls.h) in the shared
 * region, made by the master before it forks and rotated by the master's loop, so a ticket
 * issued by one reactor thread or worker resumes on any other. */
#ifndef SRV_TLS_KEYS_H
#define SRV_TLS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "protocols/tls.h"

/* How often the master makes a new ticket key. The key before the current one still decrypts,
 * so a ticket resumes for one to two periods; the lifetime hint given to clients should not
 * exceed one period. */
#define SRV__TLS_KEY_PERIOD_MS (3600 * 1000)

/* Bytes of the shared region srv__tls_keys_create(cfg) takes, alignment included: 0 when no
 * listener has ssl. */
size_t srv__tls_keys_region_size(const srv__config_t *cfg);

/* Master, before any fork: take the key ring from the shared region and fill it with fresh
 * keys; the first rotation falls SRV__TLS_KEY_PERIOD_MS later. Does nothing (returns 0) when no
 * listener has ssl. Returns 0, -ENOMEM (no room in the region) or -EIO (no random bytes). */
int srv__tls_keys_create(const srv__config_t *cfg);

/* The shared key ring, in any process forked after create; NULL when there is none (no ssl
 * listener, or the region is gone). Read it with srv__tls_keyring_current/find
 * (protocols/tls_keyring.h), never by plain loads. */
const srv__tls_keyring_t *srv__tls_keys(void);

/* Master only: rotate when now_ms (monotonic) has reached the next rotation, then schedule the
 * one after. Cheap when nothing is due (one comparison); a no-op without a key ring. */
void srv__tls_keys_tick(int64_t now_ms);

/* Monotonic ms of the next rotation, for the master's poll timeout; INT64_MAX when none. */
int64_t srv__tls_keys_next_ms(void);

#endif
