/* Config checks against the world rather than the file: protocols/frame.c's own rules for a
 * listener's framing, this machine's memory for the tables, the name service for hosts. Not for
 * use outside config/ (srv__config_frame_opts, declared in config.h, lives here too). */
#ifndef SRV_CONFIG_CHECK_H
#define SRV_CONFIG_CHECK_H

#include "config/loader.h"

/* Each notes the first problem it finds in ld against the key's line and returns nothing. */
/* Listener i's framing options against protocols/frame.c's own check. */
void srv__config_check_frame(srv__loader_t *ld, const srv__config_t *cfg, int i);
/* The tables' shared memory against what this machine can map. */
void srv__config_check_tables(srv__loader_t *ld, const srv__config_t *cfg);
/* Host names resolved as start resolves them; listeners binding the same address afterwards. */
void srv__config_check_addresses(srv__loader_t *ld, const srv__config_t *cfg);
/* TLS listeners' contexts built as start builds them: files readable, PEM, keys matching. */
void srv__config_check_tls(srv__loader_t *ld, const srv__config_t *cfg);

#endif
