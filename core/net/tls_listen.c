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

/* Listener li's options as protocols/tls.c takes them; sni (room for SRV_CONFIG_MAX_SNI) gets
 * its SNI certificates and map[k] the index in cfg->sni of sni[k]. */
static void conf_of(const srv__config_t *cfg, int li, srv__tls_conf_t *conf,
                    srv__tls_cert_conf_t *sni, int *map)
{
    const srv__listen_config_t *l = &cfg->listen[li];
    int n = 0;
    for (int i = 0; i < cfg->nsni; i++) {
        if (cfg->sni[i].listener != li)
            continue;
        sni[n] = (srv__tls_cert_conf_t){cfg->sni[i].host, cfg->sni[i].ssl_cert_file,
                                        cfg->sni[i].ssl_key_file};
        map[n++] = i;
    }
    *conf = (srv__tls_conf_t){
        .cert = {NULL, l->ssl_cert_file, l->ssl_key_file},
        .sni = sni,
        .nsni = n,
        .protocols = l->ssl_protocols,
        .ciphers = l->ssl_ciphers,
        .ciphersuites = l->ssl_ciphersuites,
        .verify_peer = l->ssl_verify_peer,
        .verify_optional = l->ssl_verify_optional,
        .client_cert_file = l->ssl_client_cert_file,
        .session_tickets = l->ssl_session_tickets,
        /* HTTP/1.1 is what an HTTP listener speaks (h2 joins with HTTP/2). */
        .alpn = l->type == SRV_LISTEN_HTTP ? "http/1.1" : l->ssl_alpn,
    };
}

static srv__tls_ctx_t *build(const srv__config_t *cfg, int li, const srv__tls_keyring_t *ring,
                             char *err, size_t errlen)
{
    srv__tls_cert_conf_t sni[SRV_CONFIG_MAX_SNI];
    int map[SRV_CONFIG_MAX_SNI];
    srv__tls_conf_t conf;
    conf_of(cfg, li, &conf, sni, map);
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
} warn_arg_t;

static void warn_one(void *arg, int sni, const char *file, long days_left)
{
    const warn_arg_t *w = arg;
    int line = sni >= 0 ? w->cfg->sni[w->map[sni]].line : w->cfg->listen[w->li].line;
    if (days_left < 0)
        srv__log(SRV_LOG_WARN, "tls", 0, "%s:%d: ssl_cert_file: certificate %s has expired",
                 w->cfg->file, line, file);
    else
        srv__log(SRV_LOG_WARN, "tls", 0,
                 "%s:%d: ssl_cert_file: certificate %s expires in %ld days", w->cfg->file, line,
                 file, days_left);
}

void srv__tls_listen_warn_expiry(const srv__config_t *cfg, int days)
{
    for (int i = 0; i < cfg->nlisten; i++) {
        srv__tls_ctx_t *ctx = srv__tls_listen_get(i);
        if (ctx == NULL)
            continue;
        srv__tls_cert_conf_t sni[SRV_CONFIG_MAX_SNI];
        int map[SRV_CONFIG_MAX_SNI];
        srv__tls_conf_t conf;
        conf_of(cfg, i, &conf, sni, map);
        warn_arg_t w = {cfg, i, map};
        srv__tls_ctx_expiring(ctx, days, warn_one, &w);
        srv__tls_ctx_unref(ctx);
    }
}
