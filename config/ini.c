/* INI reader: turns the file's [section] headers and `key = value` lines into a neutral document
 * (doc.h) for the validator, in inih's syntax: `;`/`#` comment lines, `;` after a blank starts an
 * inline comment, `key: value` too, blanks around keys and values dropped, indentation is no
 * continuation. Our own tokeniser, because inih's line buffer is fixed at 200 bytes when it is
 * built (issue 11). */
#include "config/ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Reader state for sections: before any header, and after one we refused (its keys are skipped). */
#define NO_SECTION (-2)
#define BAD_SECTION (-1)

typedef struct ini_state {
    srv__doc_t *doc;
    int lineno;
    int sect;         /* document section, NO_SECTION before the first header, BAD_SECTION */
    srv__sect_t kind; /* its kind */
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

/* The listener section named name declared so far, or -1. */
static int listen_section(const srv__doc_t *doc, const char *name)
{
    for (int k = doc->nkeys - 1; k >= 0; k--) {
        const srv__doc_key_t *key = &doc->keys[k];
        if (doc->sects[key->sect].kind == SRV__SECT_LISTEN && strcmp(key->name, "name") == 0 &&
            key->value.len == strlen(name) && memcmp(key->value.s, name, key->value.len) == 0)
            return key->sect;
    }
    return -1;
}

/* "[listen.NAME.sni.HOST]": an SNI certificate of listener NAME, declared above it. */
static void open_sni(ini_state_t *st, const char *listener, const char *host)
{
    int parent = listen_section(st->doc, listener);
    if (parent < 0) {
        srv__doc_error(st->doc, st->lineno, "sni",
                       "[listen.%s.sni.%s] must follow the section of listener \"%s\"", listener,
                       host, listener);
        return;
    }
    int sect = srv__doc_add_sect(st->doc, SRV__SECT_SNI, parent, st->lineno);
    if (sect < 0)
        return;
    srv__val_t v = {.kind = SRV__VAL_TEXT, .s = host, .len = strlen(host)};
    if (srv__doc_add_key(st->doc, sect, "host", NULL, &v, st->lineno) < 0)
        return;
    st->sect = sect;
    st->kind = SRV__SECT_SNI;
}

/* A header line "[kind]" or "[kind.NAME]": open the section it names. */
static void open_section(ini_state_t *st, char *line)
{
    char *close = strchr(line, ']');
    st->sect = BAD_SECTION;
    if (close == NULL) {
        srv__doc_error(st->doc, st->lineno, "", "section header without ']'");
        return;
    }
    char *name = line + 1;
    size_t len = (size_t)(close - name);
    trim(&name, &len);
    char buf[256];
    if (len >= sizeof(buf)) {
        srv__doc_error(st->doc, st->lineno, "", "section name too long");
        return;
    }
    memcpy(buf, name, len);
    buf[len] = '\0';
    char *dot = strchr(buf, '.');
    if (dot != NULL)
        *dot = '\0';
    int kind = srv__doc_sect_lookup(buf);
    if (kind < 0) {
        if (dot != NULL)
            *dot = '.';
        srv__doc_error(st->doc, st->lineno, buf, "unknown section");
        return;
    }
    if (kind == SRV__SECT_SERVER && dot != NULL) {
        *dot = '.';
        srv__doc_error(st->doc, st->lineno, buf, "unknown section ([server] takes no name)");
        return;
    }
    if (kind != SRV__SECT_SERVER && dot == NULL) {
        srv__doc_error(st->doc, st->lineno, buf, "needs a name: [%s.NAME]", buf);
        return;
    }
    char *sni = kind == SRV__SECT_LISTEN ? strstr(dot + 1, ".sni.") : NULL;
    if (sni != NULL) {
        *sni = '\0';
        open_sni(st, dot + 1, sni + 5);
        return;
    }
    int sect = srv__doc_add_sect(st->doc, (srv__sect_t)kind, -1, st->lineno);
    if (sect < 0)
        return;
    /* The header's NAME is the section's name key, at the header's line. */
    if (dot != NULL) {
        srv__val_t v = {.kind = SRV__VAL_TEXT, .s = dot + 1, .len = strlen(dot + 1)};
        if (srv__doc_add_key(st->doc, sect, "name", NULL, &v, st->lineno) < 0)
            return;
    }
    st->sect = sect;
    st->kind = (srv__sect_t)kind;
}

/* "column.NAME = int | float | string:SIZE" in a [table.X] section: a column section of its
 * own, whose keys problems name as the line spells them (label). */
static void column(ini_state_t *st, const char *name, const srv__val_t *value, const char *label)
{
    int c = srv__doc_add_sect(st->doc, SRV__SECT_COLUMN, st->sect, st->lineno);
    if (c < 0)
        return;
    srv__val_t v = {.kind = SRV__VAL_TEXT, .s = name, .len = strlen(name)};
    srv__doc_add_key(st->doc, c, "name", label, &v, st->lineno);
    const char *colon = memchr(value->s, ':', value->len);
    v.s = value->s;
    v.len = colon != NULL ? (size_t)(colon - value->s) : value->len;
    srv__doc_add_key(st->doc, c, "type", label, &v, st->lineno);
    if (colon != NULL) {
        v.s = colon + 1;
        v.len = value->len - v.len - 1;
        srv__doc_add_key(st->doc, c, "size", label, &v, st->lineno);
    }
}

/* One "name = value" line, name and value already trimmed. */
static void key_value(ini_state_t *st, const char *name, const char *value)
{
    if (st->sect == NO_SECTION) {
        srv__doc_error(st->doc, st->lineno, name, "must be inside a section such as [server]");
        return;
    }
    if (st->sect == BAD_SECTION)
        return;
    if (st->kind == SRV__SECT_SNI && strcmp(name, "host") == 0) {
        srv__doc_error(st->doc, st->lineno, name, "comes from the section header "
                                                  "[listen.NAME.sni.HOST]");
        return;
    }
    if (st->kind != SRV__SECT_SERVER && st->kind != SRV__SECT_SNI && strcmp(name, "name") == 0) {
        srv__doc_error(st->doc, st->lineno, name, "comes from the section header [%s.NAME]",
                       srv__doc_sect_name(st->kind));
        return;
    }
    /* Quotes are optional: they let a value keep blanks at its ends and let demo.ini read like
     * demo.toml. */
    srv__val_t v = {.kind = SRV__VAL_TEXT, .s = value, .len = strlen(value)};
    if (v.len >= 2 && (value[0] == '"' || value[0] == '\'') && value[v.len - 1] == value[0]) {
        v.s++;
        v.len -= 2;
    }
    if (st->kind == SRV__SECT_TABLE && strncmp(name, "column.", 7) == 0) {
        column(st, name + 7, &v, name);
        return;
    }
    if (st->kind == SRV__SECT_TABLE && strcmp(name, "columns") == 0) {
        srv__doc_error(st->doc, st->lineno, name,
                       "unknown key in [table] (INI declares columns as column.NAME = TYPE)");
        return;
    }
    srv__doc_add_key(st->doc, st->sect, name, NULL, &v, st->lineno);
}

/* Where an inline comment or one of chars starts in s, or its end: inih's rule, a ';' counts
 * only after a blank, so values such as "a;b" keep their ';'. */
static char *find_chars_or_comment(char *s, const char *chars)
{
    bool was_space = false;
    while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
           !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s) != 0;
        s++;
    }
    return s;
}

static char *rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static char *lskip(char *s)
{
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    return s;
}

/* One line (without its line break) of len bytes; returns false on a syntax error. */
static bool parse_line(ini_state_t *st, const char *text, size_t len)
{
    char buf[SRV__INI_LINE_MAX + 1];
    if (len > SRV__INI_LINE_MAX) {
        srv__doc_error(st->doc, st->lineno, "", "line too long (%zu bytes, max %d)", len,
                       SRV__INI_LINE_MAX);
        st->sect = BAD_SECTION; /* the rest of its section would be misread */
        return true;
    }
    if (memchr(text, '\0', len) != NULL) {
        srv__doc_error(st->doc, st->lineno, "", "NUL byte in line");
        st->sect = BAD_SECTION;
        return true;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *line = lskip(rstrip(buf));
    if (*line == '\0' || *line == ';' || *line == '#')
        return true;
    if (*line == '[') {
        open_section(st, line);
        return true;
    }
    char *end = find_chars_or_comment(line, "=:");
    if (*end != '=' && *end != ':')
        return false;
    *end = '\0';
    char *name = rstrip(line);
    char *value = end + 1;
    *find_chars_or_comment(value, NULL) = '\0';
    value = rstrip(lskip(value));
    if (*name == '\0')
        return false;
    key_value(st, name, value);
    return true;
}

int srv__ini_read(srv__doc_t *doc, const char *text, size_t len)
{
    ini_state_t st = {.doc = doc, .sect = NO_SECTION};
    const char *p = text, *end = text + len;
    /* A UTF-8 byte order mark, as editors on some systems write it. */
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        const char *next = nl != NULL ? nl + 1 : end;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        st.lineno++;
        if (!parse_line(&st, p, n))
            srv__doc_error(doc, st.lineno, "", "expected 'key = value' or '[section]'");
        p = next;
    }
    return doc->nomem ? -ENOMEM : doc->diag.set ? -EINVAL : 0;
}
