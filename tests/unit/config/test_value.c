/* The harakiri and memory keys: request_timeout ([server] and per http listener, -1 inherits),
 * task_timeout and max_worker_rss (a size: bytes, or "64K" / "512M" / "2G"); their values and
 * their "file:line: key: problem" errors, in both syntaxes. */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define TB "[[listen]]\nport = 9501\n[server]\napp = \"app.so\"\n"
#define IB "[listen.listen0]\nport = 9501\n[server]\napp = app.so\n"

static char tmpdir[256];

static int load(const char *name, const char *text, srv__config_t *cfg, char *msg, size_t len)
{
    char path[512];
    srv__config_error_t err;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    int rc = srv__config_load(path, cfg, &err);
    unlink(path);
    if (rc != 0) {
        char full[1024];
        srv__config_error_format(&err, full, sizeof(full));
        /* what follows the file name */
        snprintf(msg, len, "%s", full + strlen(path));
    }
    return rc;
}

static void expect_err(const char *name, const char *text, const char *want)
{
    char got[1024] = "";
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    int rc = load(name, text, cfg, got, sizeof(got));
    free(cfg);
    if (rc != -EINVAL || strcmp(got, want) != 0)
        fprintf(stderr, "--- text\n%s--- want\n%s\n--- got (rc %d)\n%s\n", text, want, rc, got);
    CHECK_INT(rc, ==, -EINVAL);
    CHECK_STR(got, want);
}

static void test_errors(void)
{
    expect_err("a.toml", TB "request_timeout = -1\n",
               ":5: request_timeout: must be between 0 and 86400, got -1");
    expect_err("a.ini", IB "request_timeout = 86401\n",
               ":5: request_timeout: must be between 0 and 86400, got 86401");
    expect_err("a.toml", TB "task_timeout = \"x\"\n",
               ":5: task_timeout: must be an integer, got \"x\"");
    expect_err("a.toml", TB "max_worker_rss = \"12T\"\n",
               ":5: max_worker_rss: must be a size (bytes, or \"64K\", \"512M\", \"2G\"), "
               "got \"12T\"");
    expect_err("a.ini", IB "max_worker_rss = M\n",
               ":5: max_worker_rss: must be a size (bytes, or \"64K\", \"512M\", \"2G\"), "
               "got \"M\"");
    expect_err("a.toml", TB "max_worker_rss = -5\n",
               ":5: max_worker_rss: must be between 0 and 4611686018427387903 bytes, got -5");
    expect_err("a.toml", TB "max_worker_rss = \"99999999999G\"\n",
               ":5: max_worker_rss: must be between 0 and 4611686018427387903 bytes, "
               "got \"99999999999G\"");
    /* per listener: -1 inherits; tcp listeners refuse it */
    expect_err("a.toml", TB "[[listen]]\nport = 2\nrequest_timeout = -2\n",
               ":7: request_timeout: must be -1 (inherit) or between 0 and 86400, got -2");
    char got[1024] = "";
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    CHECK_INT(load("a.toml", TB "[[listen]]\ntype = \"tcp\"\nport = 2\nrequest_timeout = 3\n", cfg,
                   got, sizeof(got)),
              ==, -EINVAL);
    CHECK(strncmp(got, ":8: request_timeout: ", 21) == 0);
    free(cfg);
}

static void test_values(void)
{
    char got[1024] = "";
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    CHECK_INT(
        load("b.toml", TB "[[listen]]\nport = 2\nrequest_timeout = 0\n", cfg, got, sizeof(got)), ==,
        0);
    CHECK_INT(cfg->request_timeout, ==, 0);
    CHECK_INT(cfg->task_timeout, ==, 0);
    CHECK(cfg->max_worker_rss == 0);
    CHECK_INT(cfg->listen[0].request_timeout, ==, -1);
    CHECK_INT(cfg->listen[1].request_timeout, ==, 0);
    static const struct {
        const char *v;
        long long want;
    } sizes[] = {{"123", 123},
                 {"\"4096\"", 4096},
                 {"\"64K\"", 64LL << 10},
                 {"\"512M\"", 512LL << 20},
                 {"\"2g\"", 2LL << 30},
                 {"0", 0}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 TB "request_timeout = 30\ntask_timeout = 5\nmax_worker_rss = %s\n", sizes[i].v);
        CHECK_INT(load("c.toml", text, cfg, got, sizeof(got)), ==, 0);
        CHECK(cfg->max_worker_rss == sizes[i].want);
        CHECK_INT(cfg->request_timeout, ==, 30);
        CHECK_INT(cfg->task_timeout, ==, 5);
    }
    CHECK_INT(load("d.ini", IB "max_worker_rss = 512M\n", cfg, got, sizeof(got)), ==, 0);
    CHECK(cfg->max_worker_rss == 512LL << 20);
    free(cfg);
}

static void cleanup(void)
{
    rmdir(tmpdir);
}

int main(void)
{
    (void)check_failures_;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/srv-config-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    atexit(cleanup);
    test_errors();
    test_values();
    return 0;
}
