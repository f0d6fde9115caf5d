/* INI reader: runs inih over the file and hands sections and keys to the loader (config.c).
 * Our own line reader feeds inih so that we count lines, strip indentation (inih would take an
 * indented line as the continuation of the previous value), see every section header (even an
 * empty one) and refuse lines longer than inih's fixed buffer, which it would silently split. */
#include "config/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define INI_HANDLER_LINENO 1
#include <ini.h>

/* Reader state for sections: before any header, and after one we refused (its keys are skipped). */
#define NO_SECTION (-2)
#define BAD_SECTION (-1)

typedef struct ini_state {
    srv__loader_t *ld;
    const char *p, *end;
    int lineno;
    int sect;  /* srv__sect_t, NO_SECTION before the first header, BAD_SECTION after a bad one */
    int entry; /* entry index within sect */
} ini_state_t;

static void trim(char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* A header line "[kind]" or "[kind.NAME]": open the section it names. */
static void open_section(ini_state_t *st, char *line)
{
    char *close = strchr(line, ']');
    st->sect = BAD_SECTION;
    if (close == NULL) {
        srv__config_error(st->ld, st->lineno, "", "section header without ']'");
        return;
    }
    char *name = line + 1;
    size_t len = (size_t)(close - name);
    trim(&name, &len);
    char buf[256];
    if (len >= sizeof(buf)) {
        srv__config_error(st->ld, st->lineno, "", "section name too long");
        return;
    }
    memcpy(buf, name, len);
    buf[len] = '\0';
    char *dot = strchr(buf, '.');
    if (dot != NULL)
        *dot = '\0';
    int sect = srv__config_sect_lookup(buf);
    if (sect < 0) {
        if (dot != NULL)
            *dot = '.';
        srv__config_error(st->ld, st->lineno, buf, "unknown section");
        return;
    }
    if (sect == SRV__SECT_SERVER && dot != NULL) {
        *dot = '.';
        srv__config_error(st->ld, st->lineno, buf, "unknown section ([server] takes no name)");
        return;
    }
    if (sect != SRV__SECT_SERVER && dot == NULL) {
        srv__config_error(st->ld, st->lineno, buf, "needs a name: [%s.NAME]", buf);
        return;
    }
    int entry = srv__config_open(st->ld, sect, dot != NULL ? dot + 1 : NULL, st->lineno);
    if (entry < 0)
        return;
    st->sect = sect;
    st->entry = entry;
}

static char *reader(char *str, int num, void *stream)
{
    ini_state_t *st = stream;
    if (st->p >= st->end)
        return NULL;
    const char *line = st->p;
    const char *nl = memchr(line, '\n', (size_t)(st->end - line));
    size_t len = nl != NULL ? (size_t)(nl - line) + 1 : (size_t)(st->end - line);
    st->p += len;
    st->lineno++;
    if (st->lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        len -= 3;
    }
    while (len > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    /* A line we cannot pass whole becomes an empty one, so inih's count stays ours. */
    if (len + 1 > (size_t)num || memchr(line, '\0', len) != NULL) {
        if (len + 1 > (size_t)num)
            srv__config_error(st->ld, st->lineno, "", "line too long (max %d characters)", num - 3);
        else
            srv__config_error(st->ld, st->lineno, "", "NUL byte in line");
        snprintf(str, (size_t)num, "\n");
        st->sect = BAD_SECTION;
        return str;
    }
    memcpy(str, line, len);
    str[len] = '\0';
    if (str[0] == '[')
        open_section(st, str);
    return str;
}

/* "column.NAME = int | float | string:SIZE" in a [table.X] section. */
static void column(ini_state_t *st, const char *name, const srv__val_t *value, const char *label)
{
    int c = srv__config_column_open(st->ld, st->entry, st->lineno);
    if (c < 0)
        return;
    srv__val_t v = {.kind = SRV__VAL_STRING, .s = name, .len = strlen(name)};
    srv__config_column_set(st->ld, st->entry, c, "name", label, &v, st->lineno);
    const char *colon = memchr(value->s, ':', value->len);
    v.s = value->s;
    v.len = colon != NULL ? (size_t)(colon - value->s) : value->len;
    srv__config_column_set(st->ld, st->entry, c, "type", label, &v, st->lineno);
    if (colon != NULL) {
        v.s = colon + 1;
        v.len = value->len - v.len - 1;
        srv__config_column_set(st->ld, st->entry, c, "size", label, &v, st->lineno);
    }
}

static int handler(void *user, const char *section, const char *name, const char *value, int lineno)
{
    ini_state_t *st = user;
    (void)section; /* ours, parsed in the reader, is the same and already opened */
    (void)lineno;  /* equals st->lineno; ours does not depend on how inih was built */
    if (st->sect == NO_SECTION) {
        srv__config_error(st->ld, st->lineno, name, "must be inside a section such as [server]");
        return 1;
    }
    if (st->sect == BAD_SECTION)
        return 1;
    if (st->sect != SRV__SECT_SERVER && strcmp(name, "name") == 0) {
        srv__config_error(st->ld, st->lineno, name, "comes from the section header [%s.NAME]",
                          st->sect == SRV__SECT_LISTEN  ? "listen"
                          : st->sect == SRV__SECT_TABLE ? "table"
                          : st->sect == SRV__SECT_CRON  ? "cron"
                                                        : "process");
        return 1;
    }
    /* Quotes are optional: they let a value keep blanks at its ends and let demo.ini read like
     * demo.toml. */
    srv__val_t v = {.kind = SRV__VAL_STRING, .s = value, .len = strlen(value)};
    if (v.len >= 2 && (value[0] == '"' || value[0] == '\'') && value[v.len - 1] == value[0]) {
        v.s++;
        v.len -= 2;
    }
    if (st->sect == SRV__SECT_TABLE && strncmp(name, "column.", 7) == 0) {
        column(st, name + 7, &v, name);
        return 1;
    }
    srv__config_set(st->ld, st->sect, st->entry, name, &v, st->lineno);
    return 1;
}

int srv__ini_parse(srv__loader_t *ld, const char *text, size_t len)
{
    ini_state_t st = {.ld = ld, .p = text, .end = text + len, .sect = NO_SECTION};
    int rc = ini_parse_stream(reader, &st, handler, &st);
    if (rc == -2)
        return -ENOMEM;
    if (rc != 0) {
        /* Our handler never fails, so this is inih refusing the line's syntax. */
        srv__config_error(ld, rc > 0 ? rc : 0, "", "expected 'key = value' or '[section]'");
        return -EINVAL;
    }
    return 0;
}
