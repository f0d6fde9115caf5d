/* srv__config_reload_merge: a reloaded configuration keeps the running value of every setting
 * that needs a restart (each named once), keeps the bound listeners in their order, drops
 * added ones, keeps removed ones, and applies everything else. */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char g_dir[] = "/tmp/srv-test-reload-XXXXXX";

static srv__config_t *load(const char *name, const char *text)
{
    char path[256], buf[600];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    srv__config_error_t err;
    int rc = srv__config_load(path, cfg, &err);
    if (rc != 0)
        fprintf(stderr, "%s\n", srv__config_error_format(&err, buf, sizeof(buf)));
    CHECK_INT(rc, ==, 0);
    unlink(path);
    return cfg;
}

static const char *RUN = "[server]\napp = \"/x/app.so\"\nworker_num = 2\nreactor_num = 1\n"
                         "http_header_max = 8192\n"
                         "[[listen]]\nname = \"api\"\nport = 8080\n"
                         "[[listen]]\nname = \"raw\"\ntype = \"tcp\"\nport = 9000\n"
                         "[[table]]\nname = \"kv\"\nsize = 64\n"
                         "columns = [{name = \"v\", type = \"int\"}]\n";

static void test_nothing_to_note(void)
{
    srv__config_t *run = load("a.toml", RUN), *next = load("b.toml", RUN);
    char notes[512];
    CHECK_INT(srv__config_reload_merge(run, next, notes, sizeof(notes)), ==, 0);
    CHECK_STR(notes, "");
    CHECK(srv__config_equal(run, next));
    free(run);
    free(next);
}

static void test_restart_keys_kept_rest_applied(void)
{
    srv__config_t *run = load("a.toml", RUN);
    srv__config_t *next = load(
        "b.toml", "[server]\napp = \"/y/v2.so\"\nworker_num = 5\nreactor_num = 2\n"
                  "http_header_max = 2048\n"
                  "[[listen]]\nname = \"new\"\nport = 7000\n"
                  "[[listen]]\nname = \"api\"\nport = 8081\nwebsocket = true\n"
                  "[[table]]\nname = \"kv\"\nsize = 128\n"
                  "columns = [{name = \"v\", type = \"int\"}]\n");
    char notes[1024];
    int n = srv__config_reload_merge(run, next, notes, sizeof(notes));
    CHECK_INT(n, ==, 5);
    CHECK(strstr(notes, "needs restart: server.reactor_num\n") != NULL);
    CHECK(strstr(notes, "needs restart: listen.api.port\n") != NULL);
    CHECK(strstr(notes, "needs restart: listen.new (added)\n") != NULL);
    CHECK(strstr(notes, "needs restart: listen.raw (removed)\n") != NULL);
    CHECK(strstr(notes, "needs restart: table.kv\n") != NULL);
    /* Kept: */
    CHECK_INT(next->reactor_num, ==, 1);
    CHECK_INT(next->nlisten, ==, 2);
    CHECK_STR(next->listen[0].name, "api");
    CHECK_INT(next->listen[0].port, ==, 8080);
    CHECK_STR(next->listen[1].name, "raw");
    CHECK_INT(next->listen[1].port, ==, 9000);
    CHECK_INT(next->table[0].size, ==, 64);
    /* Applied: */
    CHECK_STR(next->app, "/y/v2.so");
    CHECK_INT(next->worker_num, ==, 5);
    CHECK_INT(next->http_header_max, ==, 2048);
    CHECK(next->listen[0].websocket);
    /* A buffer too small is cut, and the count stays right. */
    srv__config_t *again = load("c.toml", "[server]\napp = \"/x/app.so\"\nreactor_num = 3\n"
                                          "[[listen]]\nname = \"api\"\nport = 1\n"
                                          "[[listen]]\nname = \"raw\"\ntype = \"tcp\"\n"
                                          "port = 2\n");
    char small[20];
    CHECK_INT(srv__config_reload_merge(run, again, small, sizeof(small)), ==, 4);
    CHECK(strlen(small) < sizeof(small));
    free(run);
    free(next);
    free(again);
}

/* Issue 16: who the processes run as and their chroot are set up once, at start. */
static void test_priv_keys_need_restart(void)
{
    srv__config_t *run = load("a.toml", RUN);
    srv__config_t *next = load("b.toml", "[server]\napp = \"/x/app.so\"\nworker_num = 2\n"
                                         "reactor_num = 1\nhttp_header_max = 8192\n"
                                         "user = \"nobody\"\ngroup = \"nogroup\"\n"
                                         "chroot = \"/\"\n"
                                         "[[listen]]\nname = \"api\"\nport = 8080\n"
                                         "[[listen]]\nname = \"raw\"\ntype = \"tcp\"\n"
                                         "port = 9000\n[[table]]\nname = \"kv\"\nsize = 64\n"
                                         "columns = [{name = \"v\", type = \"int\"}]\n");
    char notes[512];
    CHECK_INT(srv__config_reload_merge(run, next, notes, sizeof(notes)), ==, 3);
    CHECK_STR(notes, "needs restart: server.user\nneeds restart: server.group\n"
                     "needs restart: server.chroot\n");
    CHECK_STR(next->user, "");
    CHECK_STR(next->group, "");
    CHECK_STR(next->chroot, "");
    free(run);
    free(next);
}

int main(void)
{
    CHECK(mkdtemp(g_dir) != NULL);
    test_nothing_to_note();
    test_restart_keys_kept_rest_applied();
    test_priv_keys_need_restart();
    rmdir(g_dir);
    puts("test_reload_merge: ok");
    return 0;
}
