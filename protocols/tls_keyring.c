/* The session-ticket key ring: fresh random keys, rotation by the master, and checked copies for
 * readers in every process; see protocols/tls.h and tls_keyring.h.
 *
 * Three slots. Only the master writes, and only the slot after current, which no reader is
 * using unless it has been stalled over two whole rotations: a reader copies its slot, then
 * checks that current has not moved far enough for that slot to have been rewritten (the
 * seqlock pattern, with current as the sequence). Key bytes are stored with release and loaded
 * with acquire, byte by byte: a reader that sees any byte of a rewrite also sees the move of
 * current that came before it, without fences (which ThreadSanitizer cannot follow), and the
 * race the check resolves is a defined one. */
#include "protocols/tls_keyring.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static void key_store(srv__tls_ticket_key_t *dst, const srv__tls_ticket_key_t *src)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    for (size_t i = 0; i < sizeof(*dst); i++)
        __atomic_store_n(&d[i], s[i], __ATOMIC_RELEASE);
}

static void key_load(srv__tls_ticket_key_t *dst, const srv__tls_ticket_key_t *src)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    for (size_t i = 0; i < sizeof(*dst); i++)
        d[i] = __atomic_load_n(&s[i], __ATOMIC_ACQUIRE);
}

static int key_fresh(srv__tls_ticket_key_t *k)
{
    return RAND_bytes((unsigned char *)k, (int)sizeof(*k)) == 1 ? 0 : -EIO;
}

int srv__tls_keyring_init(srv__tls_keyring_t *ring)
{
    srv__tls_ticket_key_t k;
    for (int i = 0; i < 3; i++) {
        if (key_fresh(&k) < 0)
            return -EIO;
        key_store(&ring->key[i], &k);
    }
    OPENSSL_cleanse(&k, sizeof(k));
    atomic_store_explicit(&ring->current, 0, memory_order_release);
    return 0;
}

int srv__tls_keyring_rotate(srv__tls_keyring_t *ring)
{
    srv__tls_ticket_key_t k;
    uint32_t c = atomic_load_explicit(&ring->current, memory_order_relaxed);
    if (key_fresh(&k) < 0)
        return -EIO;
    key_store(&ring->key[(c + 1) % 3], &k);
    OPENSSL_cleanse(&k, sizeof(k));
    atomic_store_explicit(&ring->current, c + 1, memory_order_release);
    return 0;
}

uint32_t srv__tls_keyring_current(const srv__tls_keyring_t *ring, srv__tls_ticket_key_t *out)
{
    for (;;) {
        uint32_t c = atomic_load_explicit(&ring->current, memory_order_acquire);
        key_load(out, &ring->key[c % 3]);
        /* Slot c % 3 is rewritten only once current has reached c + 2. */
        if (atomic_load_explicit(&ring->current, memory_order_relaxed) - c < 2)
            return c;
    }
}

int srv__tls_keyring_find(const srv__tls_keyring_t *ring, const uint8_t name[16],
                          srv__tls_ticket_key_t *out)
{
    for (;;) {
        srv__tls_ticket_key_t cur, old;
        uint32_t c = atomic_load_explicit(&ring->current, memory_order_acquire);
        key_load(&cur, &ring->key[c % 3]);
        key_load(&old, &ring->key[(c + 2) % 3]); /* the one before c, without unsigned wrap */
        /* The old slot is rewritten as soon as current moves once: then look again. */
        if (atomic_load_explicit(&ring->current, memory_order_relaxed) != c)
            continue;
        int found = SRV__TLS_KEY_UNKNOWN;
        if (memcmp(cur.name, name, sizeof(cur.name)) == 0) {
            *out = cur;
            found = SRV__TLS_KEY_CURRENT;
        } else if (c > 0 && memcmp(old.name, name, sizeof(old.name)) == 0) {
            *out = old;
            found = SRV__TLS_KEY_OLD;
        }
        OPENSSL_cleanse(&cur, sizeof(cur));
        OPENSSL_cleanse(&old, sizeof(old));
        return found;
    }
}
