/* srv__config: the one validated configuration both syntaxes (TOML, INI) load into.
 * Owned by whoever called srv__config_load(); plain data, no pointers, so it can be copied,
 * compared with srv__config_equal() and placed in the shared region. The types, every key with
 * its default, are in config_types.h; this header adds what other folders call. */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_types.h"

/* Fill *cfg with defaults (as if an empty file was read from the working directory: pid_file is
 * <cwd>/srv.pid; srv__config_load() puts it beside the config file instead). No listeners. */
void srv__config_defaults(srv__config_t *cfg);

/* Load path (".toml" → TOML, ".ini"/".conf" → INI, else sniffed) into *cfg, validate it and
 * resolve relative paths against the file's folder. Validation includes what start would refuse
 * or could not serve: framing options protocols/frame.c refuses, tables larger than this
 * machine's RAM plus swap; host names are checked for syntax only (see srv__config_check()).
 * Returns 0, or -EINVAL (bad content) / -ENOENT, -EACCES (unreadable) with *err filled. Callable
 * from any process before fork. */
int srv__config_load(const char *path, srv__config_t *cfg, srv__config_error_t *err);

/* srv__config_load(), then what can only be checked by asking this machine's name service:
 * every listener host that is a name must resolve, and no listener may bind an address (after
 * resolution) another one binds. srv__config_load() never does this, so that stop, reload and info
 * work while DNS is down. `srv check` uses it. Same returns as srv__config_load(). */
int srv__config_check(const char *path, srv__config_t *cfg, srv__config_error_t *err);

/* Fill *o with the framing options of listener i as protocols/frame.c takes them (mode,
 * delimiter, length field, package_max_length inherited from [server] when the listener leaves it
 * at -1). The loader refuses a config whose options srv__frame_opts_check() would refuse, so
 * engines that build their framers with this never meet -EINVAL. */
struct srv__frame_opts;
void srv__config_frame_opts(const srv__config_t *cfg, int i, struct srv__frame_opts *o);

/* Listener li's TLS options as protocols/tls.c takes them: sni (room for SRV_CONFIG_MAX_SNI)
 * gets its SNI certificates and map[k] the index in cfg->sni of sni[k]. conf->keyring is NULL. */
struct srv__tls_conf;
struct srv__tls_cert_conf;
void srv__config_tls_conf(const srv__config_t *cfg, int li, struct srv__tls_conf *conf,
                          struct srv__tls_cert_conf *sni, int *map);

/* Format err as "file:line: key: msg" (or "file: msg") into buf; returns buf. */
const char *srv__config_error_format(const srv__config_error_t *err, char *buf, size_t len);

/* For a reload: next (a freshly loaded config) keeps run's value of every setting that cannot
 * change without re-binding or re-sizing the shared region (keys flagged restart in the
 * schema: mode, reactors, max_conn, pid file, admin_server, each listener's socket; listeners
 * added or removed; table schemas). Each is noted in notes as "needs restart: KEY\n"
 * (truncated to len). Returns how many were noted. */
int srv__config_reload_merge(const srv__config_t *run, srv__config_t *next, char *notes,
                             size_t len);

/* True when a and b describe the same server (ignores file and line fields). */
bool srv__config_equal(const srv__config_t *a, const srv__config_t *b);

#endif
