/* Converting one document value into its srv__config_t field as its key descriptor says. TEXT
 * (INI) is read as the type the key takes: "2" as an integer, "yes" as a boolean; TOML values
 * must already have that type. Every refusal is "must be ..., got ..." against the key. */
#include "config/value.h"
#include "config/cron.h"
#include "protocols/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* s (len bytes) quoted for a message: escapes control bytes, cuts long values. */
const char *srv__value_quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
        if (i + 1 < len && o + 8 >= size) {
            memcpy(buf + o, "...", 3);
            o += 3;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* A string in either syntax: a TOML string or INI text. */
static bool is_text(const srv__val_t *v)
{
    return v->kind == SRV__VAL_STRING || v->kind == SRV__VAL_TEXT;
}

static const char *kind_name(srv__val_kind_t kind)
{
    switch (kind) {
    case SRV__VAL_STRING:
    case SRV__VAL_TEXT:
        return "string";
    case SRV__VAL_INT:
        return "integer";
    case SRV__VAL_FLOAT:
        return "float";
    case SRV__VAL_BOOL:
        return "boolean";
    case SRV__VAL_LIST:
        return "array";
    case SRV__VAL_TABLE:
        return "table";
    default:
        return "date/time";
    }
}

/* Name of what v holds, for "must be X, got Y". */
static const char *got(char *buf, size_t size, const srv__val_t *v)
{
    if (is_text(v))
        return srv__value_quote(buf, size, v->s, v->len);
    return kind_name(v->kind);
}

static int fail(const srv__value_ctx_t *ctx, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(const srv__value_ctx_t *ctx, int line, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv__doc_diag_note(ctx->diag, line, ctx->pos, key, "%s", msg);
    return -EINVAL;
}

static int get_int(const srv__value_ctx_t *ctx, const char *key, const srv__val_t *v, int line,
                   int64_t *out)
{
    char buf[96];
    if (v->kind == SRV__VAL_INT) {
        *out = v->i;
        return 0;
    }
    if (v->kind == SRV__VAL_TEXT && v->len > 0 && v->len < 32) {
        char num[32];
        memcpy(num, v->s, v->len);
        num[v->len] = '\0';
        char *end;
        errno = 0;
        long long n = strtoll(num, &end, 10);
        if (errno == 0 && *end == '\0' && !isspace((unsigned char)num[0])) {
            *out = n;
            return 0;
        }
    }
    return fail(ctx, line, key, "must be an integer, got %s", got(buf, sizeof(buf), v));
}

static int get_bool(const srv__value_ctx_t *ctx, const char *key, const srv__val_t *v, int line,
                    bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    char buf[96];
    if (v->kind == SRV__VAL_BOOL) {
        *out = v->b;
        return 0;
    }
    if (v->kind == SRV__VAL_TEXT) {
        for (int i = 0; yes[i] != NULL; i++) {
            if (strlen(yes[i]) == v->len && strncasecmp(v->s, yes[i], v->len) == 0) {
                *out = true;
                return 0;
            }
            if (strlen(no[i]) == v->len && strncasecmp(v->s, no[i], v->len) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    return fail(ctx, line, key, "must be a boolean (true or false), got %s",
                got(buf, sizeof(buf), v));
}

/* A string value copied NUL-terminated into out (size bytes). */
static int get_str(const srv__value_ctx_t *ctx, const char *key, const srv__val_t *v, int line,
                   char *out, size_t size)
{
    char buf[96];
    if (!is_text(v))
        return fail(ctx, line, key, "must be a string, got %s", kind_name(v->kind));
    if (memchr(v->s, '\0', v->len) != NULL)
        return fail(ctx, line, key, "must not contain a NUL byte");
    if (v->len >= size)
        return fail(ctx, line, key, "too long (max %zu bytes), got %s", size - 1,
                    srv__value_quote(buf, sizeof(buf), v->s, v->len));
    memcpy(out, v->s, v->len);
    out[v->len] = '\0';
    return 0;
}

static bool is_name(const char *s, bool ident)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63)
        return false;
    if (ident && !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || (!ident && c == '-')))
            return false;
    }
    return true;
}

/* value made absolute against the config's folder into out. "./" prefixes are dropped so
 * logs show clean paths; ".." is left to the kernel, which knows about symlinks. */
static int resolve_path(const srv__value_ctx_t *ctx, const char *key, const char *value, int line,
                        char *out, size_t size)
{
    int n;
    if (value[0] == '/') {
        n = snprintf(out, size, "%s", value);
    } else {
        while (value[0] == '.' && value[1] == '/') {
            value += 2;
            while (value[0] == '/')
                value++;
        }
        if (strcmp(value, ".") == 0 || value[0] == '\0')
            n = snprintf(out, size, "%s", ctx->dir);
        else
            n = snprintf(out, size, "%s%s%s", ctx->dir,
                         ctx->dir[0] != '\0' && ctx->dir[strlen(ctx->dir) - 1] == '/' ? "" : "/",
                         value);
    }
    if (n < 0 || (size_t)n >= size)
        return fail(ctx, line, key, "path too long once made absolute (max %zu bytes)", size - 1);
    return 0;
}

/* package_eof: \r \n \t \0 \\ \xHH, 1..8 bytes once decoded. */
static int decode_eof(const srv__value_ctx_t *ctx, const char *key, const srv__val_t *v, int line,
                      srv__listen_config_t *l)
{
    char buf[96];
    char tmp[sizeof(l->package_eof)];
    size_t n = 0;
    if (!is_text(v))
        return fail(ctx, line, key, "must be a string, got %s", kind_name(v->kind));
    for (size_t i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c == '\\') {
            if (++i >= v->len)
                return fail(ctx, line, key, "ends with a lone backslash");
            switch (v->s[i]) {
            case 'r':
                c = '\r';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '0':
                c = '\0';
                break;
            case '\\':
                c = '\\';
                break;
            case 'x': {
                if (i + 2 >= v->len || !isxdigit((unsigned char)v->s[i + 1]) ||
                    !isxdigit((unsigned char)v->s[i + 2]))
                    return fail(ctx, line, key, "\\x needs two hex digits");
                char hex[3] = {v->s[i + 1], v->s[i + 2], '\0'};
                c = (char)strtol(hex, NULL, 16);
                i += 2;
                break;
            }
            default:
                return fail(ctx, line, key, "unknown escape \\%c (use \\r \\n \\t \\0 \\\\ \\xHH)",
                            isprint((unsigned char)v->s[i]) ? v->s[i] : '?');
            }
        }
        if (n >= sizeof(tmp) - 1)
            return fail(ctx, line, key, "must be 1 to 8 bytes, got %s",
                        srv__value_quote(buf, sizeof(buf), v->s, v->len));
        tmp[n++] = c;
    }
    if (n == 0)
        return fail(ctx, line, key, "must be 1 to 8 bytes, got \"\"");
    memset(l->package_eof, 0, sizeof(l->package_eof));
    memcpy(l->package_eof, tmp, n);
    l->package_eof_len = (int)n;
    return 0;
}

/* A listener host: an IPv4 or IPv6 literal, or a name that start resolves (core/listen.c tries
 * the string as a numeric address, then as a name). A string whose last label is all digits is
 * not a DNS name (RFC 3696 2), so it must be a dotted-quad address: "300.1.1.1" or "127.1" would
 * otherwise go to the resolver and fail only at start, or bind something the duplicate check
 * cannot compare. Names are only checked for syntax here; srv__config_check() resolves them. */
static int check_host(const srv__value_ctx_t *ctx, const char *key, const char *s, int line,
                      char *out, size_t size)
{
    char buf[96], host[256];
    size_t n = strlen(s);
    /* "[::1]" as in URLs is accepted and stored bare. */
    bool bracketed = n >= 2 && s[0] == '[' && s[n - 1] == ']';
    if (bracketed) {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host) || n >= size)
        return fail(ctx, line, key, "must be an IP address or a host name, got %s",
                    srv__value_quote(buf, sizeof(buf), s, n));
    memcpy(host, s, n);
    host[n] = '\0';
    unsigned char addr[16];
    if (strchr(host, ':') != NULL || bracketed) {
        if (inet_pton(AF_INET6, host, addr) != 1)
            return fail(ctx, line, key, "not a valid IPv6 address: %s",
                        srv__value_quote(buf, sizeof(buf), host, n));
    } else {
        const char *last = strrchr(host, '.');
        last = last != NULL ? last + 1 : host;
        bool numeric = last[0] != '\0' && strspn(last, "0123456789") == strlen(last);
        if (numeric && inet_pton(AF_INET, host, addr) != 1)
            return fail(ctx, line, key, "not a valid IPv4 address (a.b.c.d, each 0 to 255): %s",
                        srv__value_quote(buf, sizeof(buf), host, n));
        if (!numeric) {
            /* RFC 1123 labels: 1 to 63 letters, digits or '-', not at either end; a final '.'
             * (fully qualified) is allowed. */
            size_t label = 0;
            bool ok = n <= 253 || (n == 254 && host[253] == '.');
            for (size_t i = 0; i <= n && ok; i++) {
                unsigned char c = (unsigned char)host[i];
                if (c == '.' || c == '\0') {
                    ok = (label > 0 && label <= 63 && host[i - 1] != '-') ||
                         (c == '\0' && label == 0 && i > 0);
                    label = 0;
                } else if (isalnum(c) || c == '-') {
                    ok = label > 0 || c != '-';
                    label++;
                } else {
                    ok = false;
                }
            }
            if (!ok)
                return fail(ctx, line, key, "must be an IP address or a host name, got %s",
                            srv__value_quote(buf, sizeof(buf), host, n));
        }
    }
    memcpy(out, host, n + 1);
    return 0;
}

static int check_schedule(const srv__value_ctx_t *ctx, const char *key, const char *s, int line)
{
    int fields = 0;
    for (const char *p = s; *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        fields++;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    if (fields != 5 && s[0] != '@')
        return fail(ctx, line, key,
                    "must have 5 fields (minute hour day-of-month month day-of-week), got %d",
                    fields);
    /* The same parser the timer process uses, so `srv check` catches what start would. */
    srv__cron_t tab;
    char why[160];
    if (srv__cron_parse(&tab, s, why, sizeof(why)) < 0)
        return fail(ctx, line, key, "%s", why);
    return 0;
}

static int check_redis(const srv__value_ctx_t *ctx, const char *key, const char *s, int line)
{
    char buf[96];
    if (s[0] == '\0' || s[0] == '/')
        return 0;
    const char *colon = strrchr(s, ':');
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || colon == s || colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return fail(ctx, line, key, "must be \"host:port\" or a unix socket path, got %s",
                    srv__value_quote(buf, sizeof(buf), s, strlen(s)));
    return 0;
}

/* "host:port" with a numeric host: "127.0.0.1:9100", "[::1]:9100", "0.0.0.0:9100". */
static int check_addr(const srv__value_ctx_t *ctx, const char *key, const char *s, int line)
{
    char buf[96], host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    size_t hl = colon != NULL ? (size_t)(colon - s) : 0;
    bool v6 = hl >= 2 && s[0] == '[' && s[hl - 1] == ']';
    if (v6) {
        s++;
        hl -= 2;
    }
    unsigned char a[16];
    bool ok = colon != NULL && colon[1] != '\0' && *end == '\0' && port >= 1 && port <= 65535 &&
              hl > 0 && hl < sizeof(host);
    if (ok) {
        memcpy(host, s, hl);
        host[hl] = '\0';
        ok = inet_pton(v6 ? AF_INET6 : AF_INET, host, a) == 1;
    }
    if (!ok)
        return fail(ctx, line, key,
                    "must be \"address:port\" with a numeric address (\"127.0.0.1:9100\", "
                    "\"[::1]:9100\"), got %s",
                    srv__value_quote(buf, sizeof(buf), v6 ? s - 1 : s, strlen(v6 ? s - 1 : s)));
    return 0;
}

/* A file mode as an octal string, "0660" or "660": a string in both syntaxes, because a TOML
 * integer 660 would be read as decimal and TOML forbids the leading zero that says octal. */
static int parse_mode(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, const srv__val_t *v,
                      int line, int *out)
{
    char buf[96];
    if (!is_text(v))
        return fail(ctx, line, kd->name, "must be an octal string such as \"0660\", got %s",
                    kind_name(v->kind));
    const char *s = v->s;
    size_t n = v->len;
    if (n == 4 && s[0] == '0') {
        s++;
        n--;
    }
    int mode = 0;
    for (size_t i = 0; i < n && n == 3; i++) {
        if (s[i] < '0' || s[i] > '7') {
            mode = -1;
            break;
        }
        mode = mode * 8 + (s[i] - '0');
    }
    if (n != 3 || mode < kd->min || mode > kd->max)
        return fail(ctx, line, kd->name,
                    "must be an octal string of permission bits such as \"0660\", got %s",
                    srv__value_quote(buf, sizeof(buf), v->s, v->len));
    *out = mode;
    return 0;
}

/* The integer kinds: range-checked, -1 too where the key inherits. */
static int store_int(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, char *field,
                     const srv__val_t *v, int line)
{
    int64_t n = 0;
    if (get_int(ctx, kd->name, v, line, &n) < 0)
        return -EINVAL;
    if ((n < kd->min || n > kd->max) && !((kd->flags & SRV__KF_NEG1) && n == -1)) {
        if (kd->flags & SRV__KF_NEG1)
            return fail(ctx, line, kd->name,
                        "must be -1 (inherit) or between %" PRId64 " and %" PRId64 ", got %" PRId64,
                        kd->min, kd->max, n);
        return fail(ctx, line, kd->name,
                    "must be between %" PRId64 " and %" PRId64 ", got %" PRId64, kd->min, kd->max,
                    n);
    }
    if (kd->type == SRV__KT_INT)
        *(int *)field = (int)n;
    else
        *(int64_t *)field = n;
    return 0;
}

static int store_enum(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, char *field,
                      const srv__val_t *v, int line)
{
    char buf[96], list[128] = "";
    if (!is_text(v))
        return fail(ctx, line, kd->name, "must be a string, got %s", kind_name(v->kind));
    for (int i = 0; kd->enums[i] != NULL; i++) {
        if (strlen(kd->enums[i]) == v->len && memcmp(kd->enums[i], v->s, v->len) == 0) {
            *(int *)field = i;
            return 0;
        }
        size_t o = strlen(list);
        snprintf(list + o, sizeof(list) - o, "%s%s", i > 0 ? ", " : "", kd->enums[i]);
    }
    return fail(ctx, line, kd->name, "must be one of %s; got %s", list,
                srv__value_quote(buf, sizeof(buf), v->s, v->len));
}

static int store_lentype(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, char *field,
                         const srv__val_t *v, int line)
{
    char buf[96];
    if (!is_text(v))
        return fail(ctx, line, kd->name, "must be a string, got %s", kind_name(v->kind));
    if (v->len != 1 || strchr("cCnNvV", v->s[0]) == NULL)
        return fail(ctx, line, kd->name, "must be one of c, C, n, N, v, V; got %s",
                    srv__value_quote(buf, sizeof(buf), v->s, v->len));
    *field = v->s[0];
    return 0;
}

/* The string kinds: copied, then checked (and for paths and hosts, rewritten) as kd says. */
static int store_string(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, char *field,
                        const srv__val_t *v, int line)
{
    const char *key = kd->name;
    char buf[96], s[SRV_CONFIG_PATH_MAX];
    if (get_str(ctx, key, v, line, s, kd->type == SRV__KT_PATH ? sizeof(s) : kd->size) < 0)
        return -EINVAL;
    if (s[0] == '\0' && !(kd->flags & SRV__KF_EMPTY_OK))
        return fail(ctx, line, key, "must not be empty");
    switch (kd->type) {
    case SRV__KT_NAME:
    case SRV__KT_IDENT:
        if (!is_name(s, kd->type == SRV__KT_IDENT))
            return fail(ctx, line, key, "must match %s, got %s",
                        kd->type == SRV__KT_IDENT ? "[A-Za-z_][A-Za-z0-9_]{0,62}"
                                                  : "[A-Za-z0-9_-]{1,63}",
                        srv__value_quote(buf, sizeof(buf), s, strlen(s)));
        break;
    case SRV__KT_PATH:
        if (s[0] == '\0' || ((kd->flags & SRV__KF_DASH) && strcmp(s, "-") == 0)) {
            memcpy(field, s, strlen(s) + 1);
            return 0;
        }
        return resolve_path(ctx, key, s, line, field, kd->size);
    case SRV__KT_HOST:
        return check_host(ctx, key, s, line, field, kd->size);
    case SRV__KT_SCHED:
        if (check_schedule(ctx, key, s, line) < 0)
            return -EINVAL;
        break;
    case SRV__KT_REDIS:
        if (check_redis(ctx, key, s, line) < 0)
            return -EINVAL;
        break;
    case SRV__KT_ADDR:
        if (check_addr(ctx, key, s, line) < 0)
            return -EINVAL;
        break;
    case SRV__KT_STR:
        for (const char *p = s; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20)
                return fail(ctx, line, key, "must not contain control characters");
        }
        break;
    default:
        break;
    }
    memcpy(field, s, strlen(s) + 1);
    return 0;
}

/* A list of words: a string of blank-separated words, or (TOML) a list of strings, each a word.
 * Calls each(word, len, arg) per word; a non-zero return stops with that value. */
static int words(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, const srv__val_t *v,
                 int line, int (*each)(const char *w, size_t len, void *arg), void *arg)
{
    if (v->kind == SRV__VAL_LIST) {
        if (v->nitems == 0)
            return fail(ctx, line, kd->name, "must be a non-empty list of strings");
        for (size_t i = 0; i < v->nitems; i++) {
            const char *w = v->items[i].s;
            size_t n = v->items[i].len;
            if (n == 0 || strcspn(w, " \t") < n || memchr(w, '\0', n))
                return fail(ctx, line, kd->name, "list items must be single words");
            int rc = each(w, n, arg);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!is_text(v))
        return fail(ctx, line, kd->name, "must be a string or a list of strings, got %s",
                    kind_name(v->kind));
    int count = 0;
    for (size_t i = 0; i < v->len;) {
        while (i < v->len && (v->s[i] == ' ' || v->s[i] == '\t'))
            i++;
        size_t n = 0;
        while (i + n < v->len && v->s[i + n] != ' ' && v->s[i + n] != '\t')
            n++;
        if (n == 0)
            break;
        int rc = each(v->s + i, n, arg);
        if (rc != 0)
            return rc;
        count++;
        i += n;
    }
    return count > 0 ? 0 : fail(ctx, line, kd->name, "must not be empty");
}

typedef struct word_acc {
    const srv__value_ctx_t *ctx;
    const srv__key_desc_t *kd;
    int line;
    unsigned bits;
    char *out;
    size_t len, size;
} word_acc_t;

static int tls_version_word(const char *w, size_t len, void *arg)
{
    word_acc_t *a = arg;
    char buf[96];
    unsigned bit = srv__tls_protocol_bit(w, len);
    if (bit == 0)
        return fail(a->ctx, a->line, a->kd->name,
                    "unknown protocol %s (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)",
                    srv__value_quote(buf, sizeof(buf), w, len));
    a->bits |= bit;
    return 0;
}

static int plain_word(const char *w, size_t len, void *arg)
{
    word_acc_t *a = arg;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)w[i] <= 0x20 || (unsigned char)w[i] >= 0x7f)
            return fail(a->ctx, a->line, a->kd->name, "must be printable ASCII words");
    if (len > 255 || a->len + (a->len > 0) + len >= a->size)
        return fail(a->ctx, a->line, a->kd->name, "too long (max %zu bytes)", a->size - 1);
    if (a->len > 0)
        a->out[a->len++] = ' ';
    memcpy(a->out + a->len, w, len);
    a->len += len;
    a->out[a->len] = '\0';
    return 0;
}

/* A host name an SNI certificate serves: letters, digits, '-' and '.', or "*." before one. */
static int store_sni_host(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, char *field,
                          const srv__val_t *v, int line)
{
    char s[256], buf[96];
    if (get_str(ctx, kd->name, v, line, s, sizeof(s)) < 0)
        return -EINVAL;
    const char *p = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    bool ok = *p != '\0' && *p != '.' && s[strlen(s) - 1] != '.' && strstr(p, "..") == NULL;
    for (const char *q = p; ok && *q; q++)
        ok = isalnum((unsigned char)*q) || *q == '-' || *q == '.';
    if (!ok)
        return fail(ctx, line, kd->name, "must be a host name or *.domain, got %s",
                    srv__value_quote(buf, sizeof(buf), s, strlen(s)));
    for (char *q = s; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    memcpy(field, s, strlen(s) + 1);
    return 0;
}

/* A size in bytes: an integer, or a string of digits with an optional K, M or G (powers of
 * 1024, either case). */
static int store_size(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, char *field,
                      const srv__val_t *v, int line)
{
    char buf[96], num[32];
    int64_t n = -1;
    if (v->kind == SRV__VAL_INT) {
        n = v->i;
    } else if (is_text(v) && v->len > 0 && v->len < sizeof(num) &&
               isdigit((unsigned char)v->s[0])) {
        memcpy(num, v->s, v->len);
        num[v->len] = '\0';
        char *end;
        errno = 0;
        long long x = strtoll(num, &end, 10);
        int shift = 0;
        if (*end != '\0' && end[1] == '\0')
            shift = (*end == 'K' || *end == 'k')   ? 10
                    : (*end == 'M' || *end == 'm') ? 20
                    : (*end == 'G' || *end == 'g') ? 30
                                                   : -1;
        if (errno == 0 && shift >= 0 && (*end == '\0' || shift > 0) && x <= (kd->max >> shift))
            n = (int64_t)x << shift;
        else if (errno == 0 && shift >= 0 && (*end == '\0' || shift > 0))
            n = kd->max + 1;
    }
    if (n < 0 && v->kind != SRV__VAL_INT)
        return fail(ctx, line, kd->name,
                    "must be a size (bytes, or \"64K\", \"512M\", \"2G\"), got %s",
                    got(buf, sizeof(buf), v));
    if (v->kind != SRV__VAL_INT)
        got(buf, sizeof(buf), v);
    else
        snprintf(buf, sizeof(buf), "%" PRId64, v->i);
    if (n < kd->min || n > kd->max)
        return fail(ctx, line, kd->name,
                    "must be between %" PRId64 " and %" PRId64 " bytes, got %s", kd->min, kd->max,
                    buf);
    *(int64_t *)field = n;
    return 0;
}

int srv__value_store(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, void *base,
                     const srv__val_t *v, int line)
{
    char *field = (char *)base + kd->off;
    bool b = false;
    switch (kd->type) {
    case SRV__KT_INT:
    case SRV__KT_I64:
        return store_int(ctx, kd, field, v, line);
    case SRV__KT_SIZE:
        return store_size(ctx, kd, field, v, line);
    case SRV__KT_BOOL:
        if (get_bool(ctx, kd->name, v, line, &b) < 0)
            return -EINVAL;
        *(bool *)field = b;
        return 0;
    case SRV__KT_ENUM:
        return store_enum(ctx, kd, field, v, line);
    case SRV__KT_EOF:
        return decode_eof(ctx, kd->name, v, line, base);
    case SRV__KT_MODE:
        return parse_mode(ctx, kd, v, line, (int *)field);
    case SRV__KT_LENTYPE:
        return store_lentype(ctx, kd, field, v, line);
    case SRV__KT_TLSVER: {
        word_acc_t a = {.ctx = ctx, .kd = kd, .line = line};
        if (words(ctx, kd, v, line, tls_version_word, &a) != 0)
            return -EINVAL;
        *(unsigned *)field = a.bits;
        return 0;
    }
    case SRV__KT_WORDS: {
        char out[4096];
        word_acc_t a = {.ctx = ctx, .kd = kd, .line = line, .out = out, .size = kd->size};
        out[0] = '\0';
        if (kd->size > sizeof(out) || words(ctx, kd, v, line, plain_word, &a) != 0)
            return -EINVAL;
        memcpy(field, out, a.len + 1);
        return 0;
    }
    case SRV__KT_SNIHOST:
        return store_sni_host(ctx, kd, field, v, line);
    default:
        return store_string(ctx, kd, field, v, line);
    }
}
