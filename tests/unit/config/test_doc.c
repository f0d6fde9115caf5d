/* The neutral config document (config/doc.c) and the two readers that make it (ini.c, toml.cc):
 * equivalent INI and TOML files give the same sections and keys, every line is the file's, INI
 * values stay untyped text while TOML keeps its types, and the first-problem rule (earliest
 * line, then document order) holds for the readers' own syntax errors. */
#include "config/doc.h"
#include "config/ini.h"
#include "config/toml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void read_ini(srv__doc_t *doc, const char *text, int want_rc)
{
    srv__doc_init(doc);
    CHECK_INT(srv__ini_read(doc, text, strlen(text)), ==, want_rc);
}

static void read_toml(srv__doc_t *doc, const char *text, int want_rc)
{
    srv__doc_init(doc);
    CHECK_INT(srv__toml_read(doc, text, strlen(text), "test.toml"), ==, want_rc);
}

/* Key name of section sect, NULL when absent. */
static const srv__doc_key_t *find(const srv__doc_t *doc, int sect, const char *name)
{
    for (int i = 0; i < doc->nkeys; i++) {
        if (doc->keys[i].sect == sect && strcmp(doc->keys[i].name, name) == 0)
            return &doc->keys[i];
    }
    return NULL;
}

/* The n-th section of kind (0-based), or -1. */
static int nth(const srv__doc_t *doc, srv__sect_t kind, int n)
{
    for (int i = 0; i < doc->nsects; i++) {
        if (doc->sects[i].kind == kind && n-- == 0)
            return i;
    }
    return -1;
}

/* A value as text, the way INI writes it, to compare a typed TOML value with INI text. */
static const char *text_of(const srv__val_t *v, char *buf, size_t size)
{
    switch (v->kind) {
    case SRV__VAL_STRING:
    case SRV__VAL_TEXT:
        snprintf(buf, size, "%.*s", (int)v->len, v->s);
        break;
    case SRV__VAL_INT:
        snprintf(buf, size, "%" PRId64, v->i);
        break;
    case SRV__VAL_BOOL:
        snprintf(buf, size, "%s", v->b ? "true" : "false");
        break;
    default:
        snprintf(buf, size, "(kind %d)", (int)v->kind);
    }
    return buf;
}

/* Every key of section a in x has the same value in section b of y, and the key counts agree. */
static void same_keys(const srv__doc_t *x, int a, const srv__doc_t *y, int b)
{
    int nx = 0, ny = 0;
    char bx[256], by[256];
    for (int i = 0; i < x->nkeys; i++) {
        if (x->keys[i].sect != a)
            continue;
        nx++;
        const srv__doc_key_t *k = find(y, b, x->keys[i].name);
        if (k == NULL)
            fprintf(stderr, "key %s missing\n", x->keys[i].name);
        CHECK(k != NULL);
        CHECK_STR(text_of(&x->keys[i].value, bx, sizeof(bx)), text_of(&k->value, by, sizeof(by)));
    }
    for (int i = 0; i < y->nkeys; i++)
        ny += y->keys[i].sect == b;
    CHECK_INT(nx, ==, ny);
}

static const char ini_text[] = "; demo\n"                    /* 1 */
                               "[server]\n"                  /* 2 */
                               "app = app.so\n"              /* 3 */
                               "worker_num = 2\n"            /* 4 */
                               "daemonize = false\n"         /* 5 */
                               "\n"                          /* 6 */
                               "[listen.http]\n"             /* 7 */
                               "port = 9501\n"               /* 8 */
                               "websocket = true\n"          /* 9 */
                               "[listen.lines]\n"            /* 10 */
                               "type = tcp\n"                /* 11 */
                               "port = 9502\n"               /* 12 */
                               "[table.kv]\n"                /* 13 */
                               "size = 1024\n"               /* 14 */
                               "column.value = string:256\n" /* 15 */
                               "column.hits = int\n"         /* 16 */
                               "[cron.tick]\n"               /* 17 */
                               "handler = tick\n"            /* 18 */
                               "interval_ms = 1000\n";       /* 19 */

static const char toml_text[] = "# demo\n"                                               /* 1 */
                                "[server]\n"                                             /* 2 */
                                "app = \"app.so\"\n"                                     /* 3 */
                                "worker_num = 2\n"                                       /* 4 */
                                "daemonize = false\n"                                    /* 5 */
                                "\n"                                                     /* 6 */
                                "[[listen]]\n"                                           /* 7 */
                                "name = \"http\"\n"                                      /* 8 */
                                "port = 9501\n"                                          /* 9 */
                                "websocket = true\n"                                     /* 10 */
                                "[[listen]]\n"                                           /* 11 */
                                "name = \"lines\"\n"                                     /* 12 */
                                "type = \"tcp\"\n"                                       /* 13 */
                                "port = 9502\n"                                          /* 14 */
                                "[[table]]\n"                                            /* 15 */
                                "name = \"kv\"\n"                                        /* 16 */
                                "size = 1024\n"                                          /* 17 */
                                "columns = [\n"                                          /* 18 */
                                "  {name = \"value\", type = \"string\", size = 256},\n" /* 19 */
                                "  {name = \"hits\", type = \"int\"},\n"                 /* 20 */
                                "]\n"                                                    /* 21 */
                                "[[cron]]\n"                                             /* 22 */
                                "name = \"tick\"\n"                                      /* 23 */
                                "handler = \"tick\"\n"                                   /* 24 */
                                "interval_ms = 1000\n";                                  /* 25 */

/* Both readers give the same sections and keys for the equivalent files above. */
static void test_same_document(void)
{
    srv__doc_t ini, toml;
    read_ini(&ini, ini_text, 0);
    read_toml(&toml, toml_text, 0);
    CHECK(!ini.diag.set && !toml.diag.set);
    CHECK_INT(ini.nsects, ==, toml.nsects);
    CHECK_INT(ini.nsects, ==, 7); /* server, 2 listen, table, 2 columns, cron */
    for (srv__sect_t kind = 0; kind < SRV__SECT_COUNT; kind++) {
        for (int n = 0;; n++) {
            int a = nth(&ini, kind, n), b = nth(&toml, kind, n);
            CHECK_INT(a < 0, ==, b < 0);
            if (a < 0)
                break;
            same_keys(&ini, a, &toml, b);
            if (kind == SRV__SECT_COLUMN) {
                CHECK_INT(ini.sects[ini.sects[a].parent].kind, ==, SRV__SECT_TABLE);
                CHECK_INT(toml.sects[toml.sects[b].parent].kind, ==, SRV__SECT_TABLE);
            } else {
                CHECK_INT(ini.sects[a].parent, ==, -1);
                CHECK_INT(toml.sects[b].parent, ==, -1);
            }
        }
    }
    srv__doc_deinit(&ini);
    srv__doc_deinit(&toml);
}

/* Sections and keys carry the lines of the file; INI names come from headers, at their line. */
static void test_lines(void)
{
    srv__doc_t ini, toml;
    read_ini(&ini, ini_text, 0);
    read_toml(&toml, toml_text, 0);
    static const struct {
        srv__sect_t kind;
        int n, ini_line, toml_line;
    } sects[] = {{SRV__SECT_SERVER, 0, 2, 2},   {SRV__SECT_LISTEN, 0, 7, 7},
                 {SRV__SECT_LISTEN, 1, 10, 11}, {SRV__SECT_TABLE, 0, 13, 15},
                 {SRV__SECT_COLUMN, 0, 15, 19}, {SRV__SECT_COLUMN, 1, 16, 20},
                 {SRV__SECT_CRON, 0, 17, 22}};
    for (size_t i = 0; i < sizeof(sects) / sizeof(sects[0]); i++) {
        CHECK_INT(ini.sects[nth(&ini, sects[i].kind, sects[i].n)].line, ==, sects[i].ini_line);
        CHECK_INT(toml.sects[nth(&toml, sects[i].kind, sects[i].n)].line, ==, sects[i].toml_line);
    }
    static const struct {
        srv__sect_t kind;
        int n;
        const char *key;
        int ini_line, toml_line;
    } keys[] = {
        {SRV__SECT_SERVER, 0, "app", 3, 3},         {SRV__SECT_SERVER, 0, "daemonize", 5, 5},
        {SRV__SECT_LISTEN, 0, "name", 7, 8},        {SRV__SECT_LISTEN, 0, "websocket", 9, 10},
        {SRV__SECT_LISTEN, 1, "port", 12, 14},      {SRV__SECT_TABLE, 0, "size", 14, 17},
        {SRV__SECT_COLUMN, 0, "size", 15, 19},      {SRV__SECT_COLUMN, 1, "type", 16, 20},
        {SRV__SECT_CRON, 0, "interval_ms", 19, 25},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const srv__doc_key_t *a = find(&ini, nth(&ini, keys[i].kind, keys[i].n), keys[i].key);
        const srv__doc_key_t *b = find(&toml, nth(&toml, keys[i].kind, keys[i].n), keys[i].key);
        CHECK(a != NULL && b != NULL);
        CHECK_INT(a->line, ==, keys[i].ini_line);
        CHECK_INT(b->line, ==, keys[i].toml_line);
    }
    srv__doc_deinit(&ini);
    srv__doc_deinit(&toml);
}

/* INI values are untyped text and column keys are named by their line; TOML keeps its types. */
static void test_values(void)
{
    srv__doc_t ini, toml;
    read_ini(&ini, ini_text, 0);
    read_toml(&toml, toml_text, 0);
    const srv__doc_key_t *k = find(&ini, nth(&ini, SRV__SECT_SERVER, 0), "worker_num");
    CHECK(k != NULL && k->value.kind == SRV__VAL_TEXT && k->label == NULL);
    k = find(&toml, nth(&toml, SRV__SECT_SERVER, 0), "worker_num");
    CHECK(k != NULL && k->value.kind == SRV__VAL_INT && k->value.i == 2);
    k = find(&toml, nth(&toml, SRV__SECT_SERVER, 0), "daemonize");
    CHECK(k != NULL && k->value.kind == SRV__VAL_BOOL && !k->value.b);
    k = find(&ini, nth(&ini, SRV__SECT_COLUMN, 0), "type");
    CHECK(k != NULL);
    CHECK_STR(k->label, "column.value");
    CHECK_MEM(k->value.s, k->value.len, "string", 6);
    k = find(&toml, nth(&toml, SRV__SECT_COLUMN, 0), "type");
    CHECK(k != NULL && k->label == NULL && k->value.kind == SRV__VAL_STRING);
    srv__doc_deinit(&ini);
    srv__doc_deinit(&toml);

    /* INI: quotes kept off, inline comments dropped, ';' inside a value kept. */
    read_ini(&ini, "[server]\na = \" x \"\nb = c;d ; note\n", 0);
    k = find(&ini, 0, "a");
    CHECK(k != NULL);
    CHECK_MEM(k->value.s, k->value.len, " x ", 3);
    k = find(&ini, 0, "b");
    CHECK(k != NULL);
    CHECK_MEM(k->value.s, k->value.len, "c;d", 3);
    srv__doc_deinit(&ini);

    /* TOML: lists (string items kept), tables, floats, NUL bytes inside strings. */
    read_toml(
        &toml,
        "[server]\nl = [\"a\", \"bc\"]\nm = [1, 2]\nt = {x = 1}\nf = 2.5\ns = \"a\\u0000b\"\n", 0);
    k = find(&toml, 0, "l");
    CHECK(k != NULL && k->value.kind == SRV__VAL_LIST && k->value.nitems == 2);
    CHECK_MEM(k->value.items[1].s, k->value.items[1].len, "bc", 2);
    k = find(&toml, 0, "m");
    CHECK(k != NULL && k->value.kind == SRV__VAL_LIST && k->value.nitems == 0);
    k = find(&toml, 0, "t");
    CHECK(k != NULL && k->value.kind == SRV__VAL_TABLE);
    k = find(&toml, 0, "f");
    CHECK(k != NULL && k->value.kind == SRV__VAL_FLOAT && k->value.f == 2.5);
    k = find(&toml, 0, "s");
    CHECK(k != NULL);
    CHECK_MEM(k->value.s, k->value.len, "a\0b", 3);
    srv__doc_deinit(&toml);
}

static void expect_problem(const srv__doc_t *doc, int line, const char *key, const char *msg)
{
    CHECK(doc->diag.set);
    CHECK_INT(doc->diag.line, ==, line);
    CHECK_STR(doc->diag.key, key);
    if (msg != NULL)
        CHECK_STR(doc->diag.msg, msg);
}

/* The readers' own problems, with the earliest line kept. */
static void test_reader_problems(void)
{
    srv__doc_t d;
    read_ini(&d, "[server]\nx = 1\ngarbage\n[bogus]\n", -EINVAL);
    expect_problem(&d, 3, "", "expected 'key = value' or '[section]'");
    CHECK_INT(d.nkeys, ==, 1); /* reading goes on past a problem */
    srv__doc_deinit(&d);

    read_ini(&d, "x = 1\n[server\n", -EINVAL);
    expect_problem(&d, 1, "x", "must be inside a section such as [server]");
    srv__doc_deinit(&d);

    read_ini(&d, "[listen]\nport = 1\n[server.x]\n", -EINVAL);
    expect_problem(&d, 1, "listen", "needs a name: [listen.NAME]");
    srv__doc_deinit(&d);

    read_ini(&d, "[table.t]\ncolumns = a\n", -EINVAL);
    expect_problem(&d, 2, "columns",
                   "unknown key in [table] (INI declares columns as column.NAME = TYPE)");
    srv__doc_deinit(&d);

    read_ini(&d, "[cron.c]\nname = d\n", -EINVAL);
    expect_problem(&d, 2, "name", "comes from the section header [cron.NAME]");
    srv__doc_deinit(&d);

    read_toml(&d, "[server]\na = 1\n\nb = = 2\n", -EINVAL);
    expect_problem(&d, 4, "", NULL);
    CHECK_INT(d.nsects, ==, 0); /* a syntax error leaves no document */
    srv__doc_deinit(&d);

    /* Root keys come in name order; the earliest line still wins. */
    read_toml(&d, "zzz = 1\n[aaa]\n", -EINVAL);
    expect_problem(&d, 1, "zzz", "unknown section (server keys go under [server])");
    srv__doc_deinit(&d);

    read_toml(&d, "[[table]]\ncolumns = 5\n[[table]]\ncolumns = [\"a\"]\n", -EINVAL);
    expect_problem(&d, 2, "columns", NULL);
    srv__doc_deinit(&d);
}

/* The first-problem rule the readers and the validator share. */
static void test_diag(void)
{
    srv__doc_diag_t d = {0};
    srv__doc_diag_note(&d, 0, 0, "", "not tied to a line");
    srv__doc_diag_note(&d, 0, 0, "", "second, ignored");
    CHECK_STR(d.msg, "not tied to a line");
    srv__doc_diag_note(&d, 9, 5, "b", "line 9");
    CHECK_INT(d.line, ==, 9);
    srv__doc_diag_note(&d, 9, 7, "c", "line 9, later in the document");
    CHECK_STR(d.key, "b");
    srv__doc_diag_note(&d, 9, 3, "a", "line 9, earlier in the document");
    CHECK_STR(d.key, "a");
    srv__doc_diag_note(&d, 4, 8, "k\ney", "line\t4");
    CHECK_STR(d.key, "k?ey");
    CHECK_STR(d.msg, "line?4");
    srv__doc_diag_note(&d, 0, 0, "", "line 0 after a line, ignored");
    CHECK_INT(d.line, ==, 4);
}

int main(void)
{
    test_same_document();
    test_lines();
    test_values();
    test_reader_problems();
    test_diag();
    return 0;
}
