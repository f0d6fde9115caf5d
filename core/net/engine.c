/* An engine's set-up and teardown: session slots, each listener's protocol and limits
 * (HTTP parser limits, TCP framing, heartbeat, static files), the shared table's entries. */
#include "core/net/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/log.h"
#include "core/net/conn_internal.h"

/* What a cached connection kept (an HTTP parser), then the connection. */
static void conn_free(srv__conn_t *c)
{
    srv__http_parser_destroy(c->http);
    free(c);
}

/* A cached connection for reuse: all cleared but its HTTP parser (and the limits it has). */
static void conn_reset(srv__conn_t *c)
{
    srv__http_parser_t *http = c->http;
    uint16_t http_listener = c->http_listener;
    uint32_t http_epoch = c->http_epoch;
    memset(c, 0, sizeof(*c));
    c->http = http;
    c->http_listener = http_listener;
    c->http_epoch = http_epoch;
}

static int64_t heartbeat_ms(const srv__config_t *cfg, const srv__listen_config_t *l)
{
    int idle = l->heartbeat_idle_time >= 0 ? l->heartbeat_idle_time : cfg->heartbeat_idle_time;
    int interval = l->heartbeat_check_interval >= 0 ? l->heartbeat_check_interval
                                                    : cfg->heartbeat_check_interval;
    if (idle <= 0 && interval > 0)
        idle = 2 * interval; /* Swoole's default: twice the check interval */
    return (int64_t)idle * 1000;
}

/* A listener's HTTP/2 settings: its own, else [server]'s. */
static int64_t h2_value(int64_t own, int64_t server)
{
    return own >= 0 ? own : server;
}

static void h2_init(srv__engine_t *e, const srv__config_t *cfg, int i)
{
    const srv__listen_config_t *l = &cfg->listen[i];
    srv__h2_opts_t *o = &e->h2opts[i];
    o->max_concurrent_streams =
        (uint32_t)h2_value(l->http2_max_concurrent_streams, cfg->http2_max_concurrent_streams);
    o->initial_window_size =
        (uint32_t)h2_value(l->http2_initial_window_size, cfg->http2_initial_window_size);
    o->max_frame_size = (uint32_t)h2_value(l->http2_max_frame_size, cfg->http2_max_frame_size);
    o->max_header_list_size =
        (uint32_t)h2_value(l->http2_max_header_list_size, cfg->http2_max_header_list_size);
    o->header_max = e->limits[i].header_max;
    o->body_max = e->limits[i].body_max;
    e->h2_idle_ms[i] = 1000 * h2_value(l->http2_idle_timeout, cfg->http2_idle_timeout);
}

/* The request table of HTTP/2 streams with the app: as many as connections. */
static int req_table(srv__engine_t *e)
{
    e->req_max = e->max_slots;
    e->reqs = calloc(e->req_max, sizeof(*e->reqs));
    e->req_gens = calloc(e->req_max, sizeof(*e->req_gens));
    e->req_free = calloc(e->req_max, sizeof(*e->req_free));
    return e->reqs && e->req_gens && e->req_free ? 0 : -ENOMEM;
}

/* What a reload may change of listener i: limits, framing, heartbeat, HTTP/2 settings. */
static void listener_settings(srv__engine_t *e, const srv__config_t *cfg, int i)
{
    const srv__listen_config_t *l = &cfg->listen[i];
    e->limits[i].header_max = (size_t)cfg->http_header_max;
    e->limits[i].body_max =
        (size_t)(l->package_max_length >= 0 ? l->package_max_length : cfg->package_max_length);
    e->limits[i].max_headers = 100;
    /* Unconsumed input (pipelined requests) past this pauses reading. */
    e->in_max[i] = e->limits[i].header_max + (64u << 10);
    srv__config_frame_opts(cfg, i, &e->frame[i]);
    e->idle_ms[i] = heartbeat_ms(cfg, l);
    memset(&e->h2opts[i], 0, sizeof(e->h2opts[i]));
    if (l->type == SRV_LISTEN_HTTP && l->open_http2_protocol)
        h2_init(e, cfg, i);
}

/* Settings of the engine as a whole that follow the configuration. */
static void engine_settings(srv__engine_t *e, const srv__config_t *cfg)
{
    e->ack_step = (uint64_t)cfg->buffer_output_size / 4;
    e->slow_us = (int64_t)cfg->request_slowlog_timeout * 1000;
    for (int i = 0; i < e->nlisten; i++)
        e->alog[i] = cfg->access_log[0] != '\0' && cfg->listen[i].access_log &&
                     cfg->listen[i].type == SRV_LISTEN_HTTP;
}

static int listener_init(srv__engine_t *e, const srv__engine_opts_t *o, int i)
{
    const srv__config_t *cfg = o->cfg;
    const srv__listen_config_t *l = &cfg->listen[i];
    listener_settings(e, cfg, i);
    /* Stream listeners (HTTP, TCP) here; UDP sockets are read by the workers themselves. */
    e->listen_fd[i] = l->type != SRV_LISTEN_UDP && o->listen_fds ? o->listen_fds[i] : -1;
    e->listen_proto[i] = l->type == SRV_LISTEN_TCP ? &srv__proto_tcp : &srv__proto_http;
    e->listen_transport[i] = l->ssl ? &srv__transport_tls : &srv__transport_plain;
    if (l->type == SRV_LISTEN_HTTP && l->document_root[0]) {
        int rc = srv__static_create(&e->statics[i], l->document_root);
        if (rc < 0) {
            srv__log(SRV_LOG_ERROR, "http", rc, "document_root %s", l->document_root);
            return rc;
        }
    }
    return 0;
}

int srv__engine_create(srv__engine_t **out, const srv__engine_opts_t *o)
{
    srv__engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->id = o->id;
    e->loop = o->loop;
    e->cfg = o->cfg;
    e->ops = o->ops;
    e->data = o->data;
    e->stat_conns = o->stat_conns;
    e->stat_accepted = o->stat_accepted;
    e->stat_requests = o->stat_requests;
    e->stat_503 = o->stat_503;
    e->stat_h2_conns = o->stat_h2_conns;
    e->stat_h2_streams = o->stat_h2_streams;
    e->conns_total = o->conns_total;
    e->conn_free = conn_free;
    e->conn_reset = conn_reset;
    e->max_slots = (uint32_t)o->cfg->max_conn;
    if (e->max_slots > (1u << SRV_SESSION_SLOT_BITS))
        e->max_slots = 1u << SRV_SESSION_SLOT_BITS;
    e->slots = calloc(e->max_slots, sizeof(*e->slots));
    e->gens = calloc(e->max_slots, sizeof(*e->gens));
    e->free_stack = calloc(e->max_slots, sizeof(*e->free_stack));
    if (e->slots == NULL || e->gens == NULL || e->free_stack == NULL) {
        srv__engine_destroy(e);
        return -ENOMEM;
    }
    e->nlisten = o->cfg->nlisten;
    e->net = o->netstat;
    if (e->net == NULL) {
        e->net = e->net_own = calloc((size_t)(e->nlisten ? e->nlisten : 1), sizeof(*e->net));
        if (e->net == NULL) {
            srv__engine_destroy(e);
            return -ENOMEM;
        }
    }
    engine_settings(e, o->cfg);
    for (int i = 0; i < e->nlisten; i++) {
        int rc = listener_init(e, o, i);
        if (rc < 0) {
            srv__engine_destroy(e);
            return rc;
        }
    }
    for (int i = 0; i < e->nlisten; i++)
        if (e->h2opts[i].max_concurrent_streams && e->reqs == NULL && req_table(e) < 0) {
            srv__engine_destroy(e);
            return -ENOMEM;
        }
    e->conninfo = srv__conninfo_engine(e->id);
    srv__engine_start(e, o->accept);
    *out = e;
    return 0;
}

/* A new document root: the old one's object goes once the new one is ready (responses in
 * flight hold their own file descriptors). A root that cannot be opened keeps the old one. */
static void switch_static(srv__engine_t *e, const srv__config_t *old, const srv__config_t *cfg,
                          int i)
{
    const srv__listen_config_t *l = &cfg->listen[i];
    if (strcmp(old->listen[i].document_root, l->document_root) == 0)
        return;
    srv__static_t *st = NULL;
    if (l->type == SRV_LISTEN_HTTP && l->document_root[0]) {
        int rc = srv__static_create(&st, l->document_root);
        if (rc < 0) {
            srv__log(SRV_LOG_ERROR, "http", rc, "document_root %s; keeping %s", l->document_root,
                     old->listen[i].document_root);
            return;
        }
    }
    if (e->statics[i])
        srv__static_destroy(e->statics[i]);
    e->statics[i] = st;
}

int srv__engine_set_cfg(srv__engine_t *e, const srv__config_t *cfg)
{
    const srv__config_t *old = e->cfg;
    if (cfg->nlisten != e->nlisten)
        return -EINVAL; /* the loader keeps the listeners at reload */
    for (int i = 0; i < e->nlisten; i++) {
        switch_static(e, old, cfg, i);
        listener_settings(e, cfg, i);
    }
    engine_settings(e, cfg);
    for (int i = 0; i < e->nlisten; i++)
        if (e->h2opts[i].max_concurrent_streams && e->reqs == NULL && req_table(e) < 0)
            return -ENOMEM;
    e->limits_epoch++;
    e->cfg = cfg;
    return 0;
}

void srv__engine_destroy(srv__engine_t *e)
{
    if (e == NULL)
        return;
    e->destroying = true;
    srv__engine_free_conns(e);
    for (int i = 0; i < e->nlisten; i++)
        if (e->statics[i])
            srv__static_destroy(e->statics[i]);
    free(e->slots);
    free(e->gens);
    free(e->free_stack);
    free(e->reqs);
    free(e->req_gens);
    free(e->req_free);
    free(e->net_own);
    free(e->hv);
    free(e->alog_line);
    free(e);
}
