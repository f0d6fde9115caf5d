/* The TLS contexts of this process's listeners; see tls_listen.h. Reactor threads take a
 * listener's contexts (with a reference) for each new connection while a reload may swap them:
 * one lock makes "read the pointer and take a reference" atomic against the swap. */
#include "core/net/tls_listen.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/base/log.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static srv__tls_ctx_t *g_ctx[SRV_CONFIG_MAX_LISTEN];

bool srv__tls_listen_any(const srv__config_t *cfg)
{
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].ssl)
            return true;
    return false;
}

static srv__tls_ctx_t *build(const srv__config_t *cfg, int li, const srv__tls_keyring_t *ring,
                             char *err, size_t errlen)
{
    srv__tls_cert_conf_t sni[SRV_CONFIG_MAX_SNI];
    int map[SRV_CONFIG_MAX_SNI];
    srv__tls_conf_t conf;
    srv__config_tls_conf(cfg, li, &conf, sni, map);
    conf.keyring = ring;
    srv__tls_problem_t why;
    memset(&why, 0, sizeof(why));
    srv__tls_ctx_t *ctx = srv__tls_ctx_new(&conf, &why);
    if (ctx == NULL) {
        int line = why.sni >= 0 && why.sni < conf.nsni ? cfg->sni[map[why.sni]].line
                                                         : cfg->listen[li].line;
        snprintf(err, errlen, "%s:%d: %s: %s", cfg->file, line, why.key[0] ? why.key : "ssl",
                 why.msg);
    }
    return ctx;
}

static void unref_all(srv__tls_ctx_t **set)
{
    for (int i = 0; i < SRV_CONFIG_MAX_LISTEN; i++) {
        if (set[i])
            srv__tls_ctx_unref(set[i]);
        set[i] = NULL;
    }
}

/* Every ssl listener's contexts into set; on a problem none (err filled). */
static int build_all(const srv__config_t *cfg, const srv__tls_keyring_t *ring,
                     srv__tls_ctx_t **set, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->nlisten; i++) {
        if (!cfg->listen[i].ssl)
            continue;
        if ((set[i] = build(cfg, i, ring, err, errlen)) == NULL) {
            unref_all(set);
            return -EINVAL;
        }
    }
    return 0;
}

int srv__tls_listen_check(const srv__config_t *cfg, char *err, size_t errlen)
{
    srv__tls_ctx_t *set[SRV_CONFIG_MAX_LISTEN] = {0};
    int rc = build_all(cfg, NULL, set, err, errlen);
    unref_all(set);
    return rc;
}

int srv__tls_listen_load(const srv__config_t *cfg, const srv__tls_keyring_t *ring, char *err,
                         size_t errlen)
{
    srv__tls_ctx_t *set[SRV_CONFIG_MAX_LISTEN] = {0};
    int rc = build_all(cfg, ring, set, err, errlen);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < SRV_CONFIG_MAX_LISTEN; i++) {
        srv__tls_ctx_t *old = g_ctx[i];
        g_ctx[i] = set[i];
        set[i] = old;
    }
    pthread_mutex_unlock(&g_lock);
    unref_all(set); /* the old ones: live connections keep their own references */
    return 0;
}

srv__tls_ctx_t *srv__tls_listen_get(int li)
{
    if (li < 0 || li >= SRV_CONFIG_MAX_LISTEN)
        return NULL;
    pthread_mutex_lock(&g_lock);
    srv__tls_ctx_t *ctx = g_ctx[li];
    if (ctx)
        srv__tls_ctx_ref(ctx);
    pthread_mutex_unlock(&g_lock);
    return ctx;
}

void srv__tls_listen_unload(void)
{
    srv__tls_ctx_t *set[SRV_CONFIG_MAX_LISTEN];
    pthread_mutex_lock(&g_lock);
    memcpy(set, g_ctx, sizeof(set));
    memset(g_ctx, 0, sizeof(g_ctx));
    pthread_mutex_unlock(&g_lock);
    unref_all(set);
}

typedef struct warn_arg {
    const srv__config_t *cfg;
    int li;
    const int *map;
    void (*emit)(void *arg, const char *msg);
    void *arg;
} warn_arg_t;

static void warn_one(void *arg, int sni, const char *file, long days_left)
{
    const warn_arg_t *w = arg;
    int line = sni >= 0 ? w->cfg->sni[w->map[sni]].line : w->cfg->listen[w->li].line;
    char msg[1024];
    if (days_left < 0)
        snprintf(msg, sizeof(msg), "%s:%d: ssl_cert_file: warning: certificate %s has expired",
                 w->cfg->file, line, file);
    else
        snprintf(msg, sizeof(msg),
                 "%s:%d: ssl_cert_file: warning: certificate %s expires in %ld day%s",
                 w->cfg->file, line, file, days_left, days_left == 1 ? "" : "s");
    w->emit(w->arg, msg);
}

int srv__tls_listen_expiring(const srv__config_t *cfg, int days,
                             void (*emit)(void *arg, const char *msg), void *arg)
{
    int n = 0;
    for (int i = 0; i < cfg->nlisten; i++) {
        if (!cfg->listen[i].ssl)
            continue;
        srv__tls_cert_conf_t sni[SRV_CONFIG_MAX_SNI];
        int map[SRV_CONFIG_MAX_SNI];
        srv__tls_conf_t conf;
        srv__config_tls_conf(cfg, i, &conf, sni, map);
        srv__tls_problem_t why;
        srv__tls_ctx_t *ctx = srv__tls_ctx_new(&conf, &why);
        if (ctx == NULL)
            continue; /* (refused elsewhere, with its reason) */
        warn_arg_t w = {cfg, i, map, emit, arg};
        n += srv__tls_ctx_expiring(ctx, days, warn_one, &w);
        srv__tls_ctx_unref(ctx);
    }
    return n;
}

static void log_warning(void *arg, const char *msg)
{
    (void)arg;
    srv__log(SRV_LOG_WARN, "tls", 0, "%s", msg);
}

void srv__tls_listen_warn_expiry(const srv__config_t *cfg, int days)
{
    srv__tls_listen_expiring(cfg, days, log_warning, NULL);
}
