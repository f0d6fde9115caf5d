/* Shared session-ticket keys: made only for ssl listeners, rotated on the period, the previous
 * key kept for one rotation, and read whole by a thread while the master rotates. */
#include "core/net/tls_keys.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "core/shm/shm.h"
#include "protocols/tls_keyring.h"

#define ROTATIONS 10000

static srv__config_t *config(bool ssl)
{
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    srv__config_defaults(cfg);
    cfg->nlisten = 2;
    cfg->listen[1].ssl = ssl;
    return cfg;
}

static void test_no_ssl(void)
{
    srv__config_t *cfg = config(false);
    CHECK_INT(srv__tls_keys_region_size(cfg), ==, 0);
    CHECK_INT(srv__shm_create(1 << 16), ==, 0);
    size_t used = srv__shm_used();
    CHECK_INT(srv__tls_keys_create(cfg), ==, 0);
    CHECK_INT(srv__shm_used(), ==, used);
    CHECK(srv__tls_keys() == NULL);
    CHECK_INT(srv__tls_keys_next_ms(), ==, INT64_MAX);
    srv__tls_keys_tick(INT64_MAX); /* nothing to rotate */
    srv__shm_destroy();
    free(cfg);
}

/* Create, then rotate through tick: the old current stays in its slot and is still found as
 * the old key; a second rotation moves it out. */
static void test_create_rotate(void)
{
    srv__config_t *cfg = config(true);
    CHECK_INT(srv__tls_keys_region_size(cfg), >=, sizeof(srv__tls_keyring_t));
    CHECK_INT(srv__shm_create(1 << 16), ==, 0);
    size_t used = srv__shm_used();
    CHECK_INT(srv__tls_keys_create(cfg), ==, 0);
    CHECK_INT(srv__shm_used() - used, <=, srv__tls_keys_region_size(cfg));
    const srv__tls_keyring_t *ring = srv__tls_keys();
    CHECK(ring != NULL);
    CHECK_INT(atomic_load(&ring->current), ==, 0);
    CHECK(memcmp(&ring->key[0], &ring->key[1], sizeof(ring->key[0])) != 0);
    CHECK(memcmp(&ring->key[1], &ring->key[2], sizeof(ring->key[0])) != 0);

    srv__tls_ticket_key_t first, k;
    CHECK_INT(srv__tls_keyring_current(ring, &first), ==, 0);
    CHECK_MEM(&first, sizeof(first), &ring->key[0], sizeof(first));
    CHECK_INT(srv__tls_keyring_find(ring, first.name, &k), ==, SRV__TLS_KEY_CURRENT);
    CHECK_MEM(&k, sizeof(k), &first, sizeof(first));
    /* Before the first rotation nothing older is accepted. */
    CHECK_INT(srv__tls_keyring_find(ring, ring->key[2].name, &k), ==, SRV__TLS_KEY_UNKNOWN);

    int64_t next = srv__tls_keys_next_ms();
    CHECK(next != INT64_MAX);
    srv__tls_keys_tick(next - 1);
    CHECK_INT(atomic_load(&ring->current), ==, 0);
    srv__tls_keys_tick(next);
    CHECK_INT(atomic_load(&ring->current), ==, 1);
    CHECK_INT(srv__tls_keys_next_ms(), ==, next + SRV__TLS_KEY_PERIOD_MS);
    CHECK_MEM(&ring->key[0], sizeof(first), &first, sizeof(first));
    srv__tls_ticket_key_t second;
    CHECK_INT(srv__tls_keyring_current(ring, &second), ==, 1);
    CHECK(memcmp(second.name, first.name, sizeof(first.name)) != 0);
    CHECK_INT(srv__tls_keyring_find(ring, first.name, &k), ==, SRV__TLS_KEY_OLD);
    CHECK_MEM(&k, sizeof(k), &first, sizeof(first));
    CHECK_INT(srv__tls_keyring_find(ring, second.name, &k), ==, SRV__TLS_KEY_CURRENT);

    srv__tls_keys_tick(next + SRV__TLS_KEY_PERIOD_MS);
    CHECK_INT(atomic_load(&ring->current), ==, 2);
    CHECK_INT(srv__tls_keyring_find(ring, first.name, &k), ==, SRV__TLS_KEY_UNKNOWN);
    CHECK_INT(srv__tls_keyring_find(ring, second.name, &k), ==, SRV__TLS_KEY_OLD);
    /* The third rotation writes slot 0: the first key is gone from the ring. */
    srv__tls_keys_tick(next + 2 * SRV__TLS_KEY_PERIOD_MS);
    CHECK_INT(atomic_load(&ring->current), ==, 3);
    CHECK(memcmp(ring->key[0].name, first.name, sizeof(first.name)) != 0);

    srv__shm_destroy();
    CHECK(srv__tls_keys() == NULL);
    CHECK_INT(srv__tls_keys_next_ms(), ==, INT64_MAX);
    free(cfg);
}

/* What the reader saw: each key it read, when it differs from the one before. */
typedef struct reader {
    srv__tls_keyring_t *ring;
    atomic_bool started;
    atomic_bool stop;
    size_t nseen;
    srv__tls_ticket_key_t seen[2 * ROTATIONS + 2];
} reader_t;

static void *read_keys(void *arg)
{
    reader_t *r = arg;
    atomic_store(&r->started, true);
    while (!atomic_load(&r->stop)) {
        srv__tls_ticket_key_t k;
        srv__tls_keyring_current(r->ring, &k);
        if (r->nseen > 0 && memcmp(&k, &r->seen[r->nseen - 1], sizeof(k)) == 0)
            continue;
        if (r->nseen == sizeof(r->seen) / sizeof(r->seen[0]))
            break; /* more distinct keys than were written: the check below fails */
        r->seen[r->nseen++] = k;
    }
    return NULL;
}

/* A thread reads the current key while the main thread rotates ROTATIONS times: every key it
 * read is one written, whole, and they come in the order they were written. */
static void test_concurrent_readers(void)
{
    srv__tls_keyring_t ring;
    static srv__tls_ticket_key_t written[ROTATIONS + 1];
    reader_t *r = calloc(1, sizeof(*r));
    CHECK(r != NULL);
    CHECK_INT(srv__tls_keyring_init(&ring), ==, 0);
    written[0] = ring.key[0];
    r->ring = &ring;
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, read_keys, r), ==, 0);
    while (!atomic_load(&r->started))
        sched_yield();
    for (int i = 1; i <= ROTATIONS; i++) {
        CHECK_INT(srv__tls_keyring_rotate(&ring), ==, 0);
        written[i] = ring.key[i % 3]; /* only this thread writes: a plain read is safe */
    }
    atomic_store(&r->stop, true);
    CHECK_INT(pthread_join(th, NULL), ==, 0);

    CHECK_INT(r->nseen, >=, 1);
    size_t j = 0;
    for (size_t i = 0; i < r->nseen; i++) {
        while (j <= ROTATIONS && memcmp(&r->seen[i], &written[j], sizeof(written[j])) != 0)
            j++;
        if (j > ROTATIONS)
            fprintf(stderr, "read %zu of %zu is no key written after the one before it\n", i,
                    r->nseen);
        CHECK_INT(j, <=, ROTATIONS);
    }
    fprintf(stderr, "reader saw %zu of %d keys\n", r->nseen, ROTATIONS + 1);
    free(r);
}

int main(void)
{
    test_no_ssl();
    test_create_rotate();
    test_concurrent_readers();
    return 0;
}
