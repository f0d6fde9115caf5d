/* Shared session-ticket keys: their part of the region, their creation and rotation by the
 * master; see tls_keys.h. */
#include "core/net/tls_keys.h"

#include <errno.h>

#include "core/base/log.h"
#include "core/base/util.h"
#include "core/shm/shm.h"

static srv__tls_keyring_t *g_ring;
static int64_t g_next_ms = INT64_MAX;

static bool any_ssl(const srv__config_t *cfg)
{
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].ssl)
            return true;
    return false;
}

size_t srv__tls_keys_region_size(const srv__config_t *cfg)
{
    return any_ssl(cfg) ? sizeof(srv__tls_keyring_t) + 64 : 0;
}

/* The region is gone in this process: so are the keys. */
static void forget(void)
{
    g_ring = NULL;
    g_next_ms = INT64_MAX;
}

int srv__tls_keys_create(const srv__config_t *cfg)
{
    if (!any_ssl(cfg))
        return 0;
    srv__tls_keyring_t *ring = srv__shm_alloc(sizeof(*ring), 64);
    if (ring == NULL)
        return -ENOMEM;
    int rc = srv__tls_keyring_init(ring);
    if (rc < 0)
        return rc;
    rc = srv__shm_on_forget(forget);
    if (rc < 0)
        return rc;
    g_ring = ring;
    g_next_ms = srv__mono_ms() + SRV__TLS_KEY_PERIOD_MS;
    return 0;
}

const srv__tls_keyring_t *srv__tls_keys(void)
{
    return g_ring;
}

void srv__tls_keys_tick(int64_t now_ms)
{
    if (now_ms < g_next_ms || g_ring == NULL)
        return;
    int rc = srv__tls_keyring_rotate(g_ring);
    if (rc < 0) /* the old keys go on serving; try again next period */
        srv__log(SRV_LOG_ERROR, "master", rc, "cannot make a new session ticket key");
    else
        srv__log_debug("master", "new session ticket key");
    /* After a long stall, one rotation is enough: the next period starts now. */
    g_next_ms = now_ms + SRV__TLS_KEY_PERIOD_MS;
}

int64_t srv__tls_keys_next_ms(void)
{
    return g_next_ms;
}
