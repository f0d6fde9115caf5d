/* The config schema (config/schema.c): the key tables are sound (unique names, fields inside
 * their entry, "name" first in every repeated section, within the loader's line tables), entries
 * get their defaults, and srv__config_equal() sees a change in any key the tables list. */
#include "config/schema.h"
#include "config/config.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static size_t entry_size(srv__sect_t kind)
{
    return kind == SRV__SECT_SERVER ? sizeof(srv__config_t) : srv__schema[kind].stride;
}

static void test_tables(void)
{
    for (int s = 0; s < SRV__SECT_COUNT; s++) {
        const srv__sect_desc_t *sd = &srv__schema[s];
        CHECK_STR(sd->name, srv__doc_sect_name((srv__sect_t)s));
        CHECK_INT(sd->nkeys, <=, SRV__KEYS_MAX);
        CHECK_INT(sd->max, <=, SRV__ENTRIES_MAX);
        if (s != SRV__SECT_SERVER) /* an SNI entry is named by its host */
            CHECK_STR(sd->keys[0].name, s == SRV__SECT_SNI ? "host" : "name");
        for (int k = 0; k < sd->nkeys; k++) {
            CHECK_INT(sd->keys[k].off + sd->keys[k].size, <=, entry_size((srv__sect_t)s));
            CHECK_INT(srv__schema_find_key(sd, sd->keys[k].name), ==, k);
        }
        CHECK_INT(srv__schema_find_key(sd, "no_such_key"), ==, -1);
    }
    CHECK(srv__schema_refused(SRV__SECT_SERVER, "user") == NULL); /* a real key since issue 16 */
    CHECK(srv__schema_find_key(&srv__schema[SRV__SECT_SERVER], "user") >= 0);
    CHECK(srv__schema_refused(SRV__SECT_SERVER, "app") == NULL);
    CHECK(srv__schema_refused(SRV__SECT_LISTEN, "user") == NULL);
    CHECK_STR(srv__schema_listen_type_name(SRV_LISTEN_UDP), "udp");
}

static void test_entries(void)
{
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    srv__config_defaults(cfg);
    *srv__schema_count(cfg, SRV__SECT_LISTEN) = 1;
    srv__schema_entry_defaults(cfg, SRV__SECT_LISTEN, 0);
    CHECK(srv__schema_entry(cfg, SRV__SECT_LISTEN, 0) == &cfg->listen[0]);
    CHECK(srv__schema_entry_line(cfg, SRV__SECT_LISTEN, 0) == &cfg->listen[0].line);
    CHECK(srv__schema_entry(cfg, SRV__SECT_SERVER, 0) == cfg);
    CHECK_STR(cfg->listen[0].host, "127.0.0.1");
    CHECK_INT(cfg->listen[0].backlog, ==, 511);
    CHECK_INT(cfg->listen[0].package_max_length, ==, -1);
    srv__schema_entry_defaults(cfg, SRV__SECT_PROCESS, 3);
    CHECK(cfg->process[3].pipe);
    CHECK_INT(cfg->process[3].num, ==, 1);
    CHECK(srv__schema_count(cfg, SRV__SECT_CRON) == &cfg->ncron);
    CHECK(srv__schema_count(cfg, SRV__SECT_SNI) == &cfg->nsni);
    CHECK(srv__schema_entry(cfg, SRV__SECT_SNI, 2) == &cfg->sni[2]);
    CHECK(srv__schema_entry_line(cfg, SRV__SECT_SNI, 2) == &cfg->sni[2].line);
    CHECK(cfg->listen[0].ssl_session_tickets);
    CHECK_INT(cfg->listen[0].ssl_handshake_timeout, ==, 10);
    CHECK_INT(cfg->listen[0].ssl_protocols, ==, (1u << 2) | (1u << 3));
    free(cfg);
}

/* Flipping any byte of any listed field (of [server] and of a listener) is seen by equal(). */
static void test_equal_sees_every_key(void)
{
    srv__config_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    CHECK(a != NULL && b != NULL);
    srv__config_defaults(a);
    a->nlisten = 1;
    srv__schema_entry_defaults(a, SRV__SECT_LISTEN, 0);
    a->listen[0].package_eof_len = 2;
    memcpy(a->listen[0].package_eof, "\r\n", 2);
    static const srv__sect_t kinds[] = {SRV__SECT_SERVER, SRV__SECT_LISTEN};
    for (size_t s = 0; s < sizeof(kinds) / sizeof(kinds[0]); s++) {
        const srv__sect_desc_t *sd = &srv__schema[kinds[s]];
        for (int k = 0; k < sd->nkeys; k++) {
            memcpy(b, a, sizeof(*a));
            CHECK(srv__config_equal(a, b));
            char *field = (char *)srv__schema_entry(b, kinds[s], 0) + sd->keys[k].off;
            field[0] ^= 1; /* the first byte of a string, the low byte of a number */
            if (srv__config_equal(a, b))
                fprintf(stderr, "equal() misses %s.%s\n", sd->name, sd->keys[k].name);
            CHECK(!srv__config_equal(a, b));
        }
    }
    free(a);
    free(b);
}

int main(void)
{
    test_tables();
    test_entries();
    test_equal_sees_every_key();
    return 0;
}
