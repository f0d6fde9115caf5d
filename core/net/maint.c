/* Maintenance mode's state in the shared region and the answer it gives (see maint.h). One
 * writer (the master's main thread), many readers (reactor threads, base-mode workers): the
 * message is guarded by a sequence counter, so a reader never sees half of an old message and
 * half of a new one; the on/off flag is a word of its own for the request path's one load. */
#include "core/net/maint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/base/util.h"
#include "core/shm/shm.h"
#include "protocols/http.h"

typedef struct maint_shm {
    _Atomic uint32_t on;
    _Atomic uint32_t seq; /* odd while the master writes the fields below */
    _Atomic uint64_t answered;
    int32_t retry_after;
    uint32_t msg_len;
    int64_t since_ms;
    char msg[SRV_MAINT_MSG_MAX];
} maint_shm_t;

_Atomic uint32_t *srv__maint_flag;
static maint_shm_t *g_maint;

size_t srv__maint_region_size(const srv__config_t *cfg)
{
    (void)cfg;
    return sizeof(maint_shm_t) + 64;
}

static void forget(void)
{
    g_maint = NULL;
    srv__maint_flag = NULL;
}

int srv__maint_create(const srv__config_t *cfg)
{
    (void)cfg;
    maint_shm_t *m = srv__shm_alloc(sizeof(*m), 64);
    if (m == NULL)
        return -ENOMEM;
    memset(m, 0, sizeof(*m));
    m->retry_after = -1;
    int rc = srv__shm_on_forget(forget);
    if (rc < 0)
        return rc;
    g_maint = m;
    srv__maint_flag = &m->on;
    return 0;
}

int srv__maint_set(bool on, int retry_after, const char *msg)
{
    maint_shm_t *m = g_maint;
    if (m == NULL)
        return -ENODEV;
    if (msg == NULL || msg[0] == '\0')
        msg = SRV_MAINT_DEFAULT_MSG;
    size_t len = strlen(msg);
    if (len > SRV_MAINT_MSG_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)msg[i] < 0x20 && msg[i] != '\t')
            return -EINVAL;
    uint32_t s = atomic_load_explicit(&m->seq, memory_order_relaxed);
    atomic_store_explicit(&m->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (on) {
        m->retry_after = retry_after < 0 ? -1 : retry_after;
        m->msg_len = (uint32_t)len;
        memcpy(m->msg, msg, len);
        if (!atomic_load_explicit(&m->on, memory_order_relaxed))
            m->since_ms = srv__now_ms();
    } else {
        m->since_ms = 0;
    }
    atomic_store_explicit(&m->seq, s + 2, memory_order_release);
    atomic_store_explicit(&m->on, on ? 1 : 0, memory_order_release);
    return 0;
}

void srv__maint_get(srv__maint_state_t *out)
{
    memset(out, 0, sizeof(*out));
    out->retry_after = -1;
    const maint_shm_t *m = g_maint;
    if (m == NULL)
        return;
    /* The master writes between two stores (a few instructions); a master that died there
     * leaves the counter odd for good: the same odd value for a second, the default message
     * (a master writing again and again, or preempted mid-write, only delays the reader). */
    bool whole = false;
    uint32_t stuck_at = 0;
    int64_t stuck_since = 0;
    while (!whole) {
        uint32_t s = atomic_load_explicit(&m->seq, memory_order_acquire);
        if (s & 1) {
            int64_t now = srv__mono_ms();
            if (s != stuck_at || stuck_since == 0) {
                stuck_at = s;
                stuck_since = now;
            } else if (now - stuck_since >= 1000) {
                break;
            }
            continue;
        }
        out->retry_after = m->retry_after;
        out->since_ms = m->since_ms;
        out->msg_len = m->msg_len <= SRV_MAINT_MSG_MAX ? m->msg_len : SRV_MAINT_MSG_MAX;
        memcpy(out->msg, m->msg, out->msg_len);
        atomic_thread_fence(memory_order_acquire);
        whole = atomic_load_explicit(&m->seq, memory_order_relaxed) == s;
    }
    if (!whole) {
        out->msg_len = sizeof(SRV_MAINT_DEFAULT_MSG) - 1;
        memcpy(out->msg, SRV_MAINT_DEFAULT_MSG, out->msg_len);
    }
    out->msg[out->msg_len] = '\0';
    out->on = atomic_load_explicit(&m->on, memory_order_acquire) != 0;
    out->answered = atomic_load_explicit(&m->answered, memory_order_relaxed);
}

bool srv__maint_allows(const srv__config_t *cfg, srv_str_t path)
{
    const char *p = cfg->maintenance_allow;
    while (*p) {
        size_t n = strcspn(p, " ");
        if (path.len >= n && memcmp(path.ptr, p, n) == 0)
            return true;
        p += n;
        p += strspn(p, " ");
    }
    return false;
}

int srv__maint_response(char *buf, size_t cap, bool keep_alive, srv_str_t extra_headers)
{
    srv__maint_state_t st;
    srv__maint_get(&st);
    if (g_maint != NULL)
        atomic_fetch_add_explicit(&g_maint->answered, 1, memory_order_relaxed);
    char hdr[SRV_MAINT_RESPONSE_MAX - SRV_MAINT_MSG_MAX];
    int hn = snprintf(hdr, sizeof(hdr), "%.*s", (int)extra_headers.len,
                      extra_headers.ptr ? extra_headers.ptr : "");
    if (st.retry_after >= 0 && hn >= 0 && (size_t)hn < sizeof(hdr))
        hn += snprintf(hdr + hn, sizeof(hdr) - (size_t)hn, "Retry-After: %d\r\n", st.retry_after);
    if (hn < 0 || (size_t)hn >= sizeof(hdr))
        return -ENOSPC;
    return srv__http_error_response(buf, cap, 503, st.on ? st.msg : SRV_MAINT_DEFAULT_MSG,
                                    keep_alive, (srv_str_t){hdr, (size_t)hn});
}
