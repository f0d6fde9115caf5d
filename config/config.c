/* srv__config_load() and srv__config_check(): read the file, pick the reader for its syntax
 * (ini.c or toml.cc, each making a neutral document), apply the document through the schema
 * (loader.c), run the cross-key rules (validate.c) and, for check, the name service
 * (config_check.c); the first problem comes back as "file:line: key: what is wrong". */
#include "config/config.h"
#include "config/config_check.h"
#include "config/doc.h"
#include "config/ini.h"
#include "config/loader.h"
#include "config/toml.h"
#include "config/validate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A config is a page of text; refusing big files keeps a wrong -c argument from eating memory. */
#define CONFIG_FILE_MAX (4 * SRV__MiB)

/* path made absolute (against the working directory) without touching symlinks. */
static int absolute_file(const char *path, char *out, size_t size)
{
    int n;
    if (path[0] == '/') {
        n = snprintf(out, size, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -errno;
        while (path[0] == '.' && path[1] == '/') {
            path += 2;
            while (path[0] == '/')
                path++;
        }
        n = snprintf(out, size, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
    }
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int read_file(const char *path, char **text, size_t *len)
{
    int rc;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto fail;
    }
    if (st.st_size > CONFIG_FILE_MAX) {
        rc = -EFBIG;
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    /* Read up to EOF rather than trusting st_size, which is 0 for /dev/stdin or a pipe. */
    for (;;) {
        if (n == cap) {
            if (cap > CONFIG_FILE_MAX) {
                rc = -EFBIG;
                goto fail;
            }
            char *more = realloc(buf, cap * 2 + 1);
            if (more == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    *text = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    close(fd);
    return rc;
}

/* ld's first problem into err (whose file is set). */
static void report(const srv__loader_t *ld, srv__config_error_t *err)
{
    err->line = ld->diag.line;
    snprintf(err->key, sizeof(err->key), "%s", ld->diag.key);
    snprintf(err->msg, sizeof(err->msg), "%s", ld->diag.msg);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* For a name without a known extension: INI's [kind.NAME] headers and TOML's [[kind]] give the
 * syntax away; otherwise, a file that is valid TOML is read as TOML. */
static bool looks_like_toml(const char *text)
{
    const char *p = text;
    while (p != NULL) {
        p += strspn(p, " \t");
        if (strncmp(p, "[[", 2) == 0)
            return true;
        if (*p == '[' && strcspn(p, ".]\n") < strcspn(p, "]\n"))
            return false;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return true;
}

/* text (from file) read by the reader its name or content calls for, then applied to ld. */
static int read_and_apply(srv__loader_t *ld, const char *file, const char *text, size_t len)
{
    bool ini = false;
    if (ends_with(file, ".ini") || ends_with(file, ".conf"))
        ini = true;
    else if (!ends_with(file, ".toml"))
        ini = !looks_like_toml(text);
    srv__doc_t doc;
    srv__doc_init(&doc);
    int rc = ini ? srv__ini_read(&doc, text, len) : srv__toml_read(&doc, text, len, file);
    if (rc != -ENOMEM)
        rc = srv__loader_apply(ld, &doc);
    srv__doc_deinit(&doc);
    return rc;
}

/* ld's folder and cfg's file and default pid file, from path. */
static int place(srv__loader_t *ld, const char *path, srv__config_t *cfg)
{
    int rc = absolute_file(path, cfg->file, sizeof(cfg->file));
    if (rc < 0)
        return rc;
    snprintf(ld->dir, sizeof(ld->dir), "%s", cfg->file);
    *strrchr(ld->dir, '/') = '\0';
    if (ld->dir[0] == '\0')
        snprintf(ld->dir, sizeof(ld->dir), "/");
    /* Default pid file beside the config, as the key would be resolved. */
    rc = snprintf(cfg->pid_file, sizeof(cfg->pid_file), "%s%ssrv.pid", ld->dir,
                  strcmp(ld->dir, "/") == 0 ? "" : "/");
    if ((size_t)rc >= sizeof(cfg->pid_file))
        srv__loader_error(ld, 0, "pid_file", "default path too long; set pid_file");
    return 0;
}

static int load(const char *path, srv__config_t *cfg, srv__config_error_t *err, bool resolve)
{
    srv__config_error_t scratch;
    char *text = NULL;
    size_t len = 0;
    srv__config_t *tmp = NULL;
    srv__loader_t *ld = NULL;
    int rc;
    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof(*err));
    if (path == NULL || cfg == NULL)
        return -EINVAL;
    snprintf(err->file, sizeof(err->file), "%s", path);
    tmp = malloc(sizeof(*tmp));
    ld = calloc(1, sizeof(*ld));
    rc = tmp == NULL || ld == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        srv__config_defaults(tmp);
        ld->cfg = tmp;
        rc = place(ld, path, tmp);
    }
    if (rc == 0) {
        snprintf(err->file, sizeof(err->file), "%s", tmp->file);
        rc = read_file(tmp->file, &text, &len);
    }
    if (rc < 0) {
        snprintf(err->msg, sizeof(err->msg), "%s",
                 rc == -EFBIG ? "file too large for a config" : strerror(-rc));
        goto out;
    }
    rc = read_and_apply(ld, tmp->file, text, len);
    if (rc == -ENOMEM) {
        snprintf(err->msg, sizeof(err->msg), "%s", strerror(ENOMEM));
        goto out;
    }
    if (!srv__loader_failed(ld))
        srv__validate(ld);
    if (!srv__loader_failed(ld) && resolve)
        srv__config_check_addresses(ld, tmp);
    /* Certificates are read as start reads them; stop, reload and info do not need them. */
    if (!srv__loader_failed(ld) && resolve)
        srv__config_check_tls(ld, tmp);
    rc = srv__loader_failed(ld) ? -EINVAL : 0;
    if (rc == 0)
        memcpy(cfg, tmp, sizeof(*cfg));
    else
        report(ld, err);
out:
    free(text);
    free(ld);
    free(tmp);
    return rc;
}

int srv__config_load(const char *path, srv__config_t *cfg, srv__config_error_t *err)
{
    return load(path, cfg, err, false);
}

int srv__config_check(const char *path, srv__config_t *cfg, srv__config_error_t *err)
{
    return load(path, cfg, err, true);
}

const char *srv__config_error_format(const srv__config_error_t *err, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    const char *file = err->file[0] != '\0' ? err->file : "(config)";
    char where[SRV_CONFIG_PATH_MAX + 16];
    if (err->line > 0)
        snprintf(where, sizeof(where), "%s:%d", file, err->line);
    else
        snprintf(where, sizeof(where), "%s", file);
    if (err->key[0] != '\0')
        snprintf(buf, len, "%s: %s: %s", where, err->key, err->msg);
    else
        snprintf(buf, len, "%s: %s", where, err->msg);
    return buf;
}
