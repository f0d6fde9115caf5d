/* Shared connection table; see conninfo.h. */
#include "core/net/conninfo.h"

#include <errno.h>
#include <string.h>

#include "core/net/session.h"
#include "core/shm/shm.h"

static srv__conninfo_t *g_table;
static srv_tls_t *g_tls; /* parallel to g_table when some listener has TLS */
static int g_engines;
static uint32_t g_slots;

size_t srv__conninfo_region_size(int nengines, uint32_t slots, bool tls)
{
    size_t n = (size_t)nengines * slots;
    return sizeof(srv__conninfo_t) * n + 64 + (tls ? sizeof(srv_tls_t) * n + 64 : 0);
}

int srv__conninfo_create(int nengines, uint32_t slots, bool tls)
{
    size_t n = (size_t)nengines * slots;
    g_table = srv__shm_alloc(sizeof(srv__conninfo_t) * n, 64);
    if (g_table == NULL)
        return -ENOMEM;
    if (tls && (g_tls = srv__shm_alloc(sizeof(srv_tls_t) * n, 64)) == NULL)
        return -ENOMEM;
    g_engines = nengines;
    g_slots = slots;
    return 0;
}

void srv__conninfo_set_tls(srv__conninfo_t *ci, const srv_tls_t *tls)
{
    if (g_tls == NULL || ci == NULL)
        return;
    g_tls[ci - g_table] = *tls;
    atomic_store_explicit(&ci->tls, 1, memory_order_release);
}

srv__conninfo_t *srv__conninfo_engine(int id)
{
    if (g_table == NULL || id < 0 || id >= g_engines)
        return NULL;
    return g_table + (size_t)id * g_slots;
}

static srv__conninfo_t *entry(uint64_t session)
{
    int e = SRV_SESSION_ENGINE(session);
    uint32_t slot = SRV_SESSION_SLOT(session);
    if (g_table == NULL || e >= g_engines || slot >= g_slots)
        return NULL;
    return g_table + (size_t)e * g_slots + slot;
}

int srv__conninfo_get(uint64_t session, srv_conn_info_t *out)
{
    srv__conninfo_t *ci = entry(session);
    if (ci == NULL || session == 0 || atomic_load(&ci->session) != session)
        return -ENOENT;
    out->session = session;
    out->listener = ci->listener;
    out->peer_port = ci->peer_port;
    memcpy(out->peer, ci->peer, sizeof(out->peer));
    out->peer[sizeof(out->peer) - 1] = '\0';
    out->connect_time = ci->connect_ms;
    out->last_time = atomic_load(&ci->last_ms);
    out->websocket = atomic_load(&ci->websocket) != 0;
    out->uid = atomic_load(&ci->uid);
    memset(&out->tls, 0, sizeof(out->tls));
    if (g_tls && atomic_load_explicit(&ci->tls, memory_order_acquire))
        out->tls = g_tls[ci - g_table];
    /* The slot may have been reused while we copied: then the connection is gone. */
    return atomic_load(&ci->session) == session ? 0 : -ENOENT;
}

int srv__conninfo_foreach_ws(int listener, int (*cb)(uint64_t session, void *arg), void *arg)
{
    int n = 0;
    size_t total = (size_t)g_engines * g_slots;
    for (size_t i = 0; g_table && i < total; i++) {
        srv__conninfo_t *ci = &g_table[i];
        uint64_t s = atomic_load_explicit(&ci->session, memory_order_acquire);
        if (s == 0 || !atomic_load(&ci->websocket))
            continue;
        if (listener >= 0 && ci->listener != listener)
            continue;
        n++;
        if (cb(s, arg) != 0)
            break;
    }
    return n;
}
