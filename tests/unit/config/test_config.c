/* srv__config: the demo files in both syntaxes, defaults of a minimal file, relative path
 * resolution, package_eof escapes, srv__config_equal and the error-free paths of the loader. */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "protocols/frame.h"
#include "protocols/tls.h"

static char tmpdir[256];
static char names[32][64];
static int nnames;

/* Write text to tmpdir/name; path gets the full name. Removed by cleanup(). */
static void write_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
    for (int i = 0; i < nnames; i++) {
        if (strcmp(names[i], name) == 0)
            return;
    }
    CHECK(nnames < 32);
    snprintf(names[nnames++], sizeof(names[0]), "%s", name);
}

static void cleanup(void)
{
    char path[1024];
    for (int i = 0; i < nnames; i++) {
        int n = snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        if (n > 0 && (size_t)n < sizeof(path))
            unlink(path);
    }
    rmdir(tmpdir);
}

/* Load text as tmpdir/name, which must succeed. */
static srv__config_t *load_ok(const char *name, const char *text)
{
    char path[512], buf[1024];
    srv__config_error_t err;
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    write_file(name, text, path, sizeof(path));
    int rc = srv__config_load(path, cfg, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", srv__config_error_format(&err, buf, sizeof(buf)));
    CHECK_INT(rc, ==, 0);
    return cfg;
}

static void test_demo(void)
{
    srv__config_t *t = malloc(sizeof(*t)), *i = malloc(sizeof(*i));
    srv__config_error_t err;
    char buf[1024];
    CHECK(t != NULL && i != NULL);
    int rc = srv__config_load(SRV_SOURCE_DIR "/examples/demo.toml", t, &err);
    if (rc != 0)
        fprintf(stderr, "%s\n", srv__config_error_format(&err, buf, sizeof(buf)));
    CHECK_INT(rc, ==, 0);
    rc = srv__config_load(SRV_SOURCE_DIR "/examples/demo.ini", i, &err);
    if (rc != 0)
        fprintf(stderr, "%s\n", srv__config_error_format(&err, buf, sizeof(buf)));
    CHECK_INT(rc, ==, 0);
    CHECK(srv__config_equal(t, i));

    CHECK_STR(t->file, SRV_SOURCE_DIR "/examples/demo.toml");
    CHECK_STR(i->file, SRV_SOURCE_DIR "/examples/demo.ini");
    CHECK_STR(t->app, SRV_SOURCE_DIR "/examples/../build/examples/demo.so");
    CHECK_INT(t->worker_num, ==, 2);
    CHECK_INT(t->reactor_num, ==, 1);
    CHECK_INT(t->task_worker_num, ==, 2);
    CHECK_STR(t->pid_file, "/tmp/srv-demo.pid");
    CHECK_INT(t->log_level, ==, SRV_LOG_NOTICE);
    CHECK_INT(t->nlisten, ==, 4);
    CHECK_STR(t->listen[0].name, "http");
    CHECK_INT(t->listen[0].type, ==, SRV_LISTEN_HTTP);
    CHECK_STR(t->listen[0].host, "127.0.0.1");
    CHECK_INT(t->listen[0].port, ==, 9501);
    CHECK(t->listen[0].websocket);
    CHECK_STR(t->listen[1].name, "lines");
    CHECK_INT(t->listen[1].type, ==, SRV_LISTEN_TCP);
    CHECK_INT(t->listen[1].port, ==, 9502);
    CHECK(t->listen[1].open_eof_check);
    CHECK_MEM(t->listen[1].package_eof, t->listen[1].package_eof_len, "\r\n", 2);
    CHECK_MEM(i->listen[1].package_eof, i->listen[1].package_eof_len, "\r\n", 2);
    CHECK_STR(t->listen[2].name, "frames");
    CHECK(t->listen[2].open_length_check);
    CHECK_INT(t->listen[2].package_length_type, ==, 'N');
    CHECK_INT(t->listen[2].package_length_offset, ==, 0);
    CHECK_INT(t->listen[2].package_body_offset, ==, 4);
    CHECK_STR(t->listen[3].name, "udp");
    CHECK_INT(t->listen[3].type, ==, SRV_LISTEN_UDP);
    CHECK_INT(t->listen[3].port, ==, 9504);
    CHECK_INT(t->ntable, ==, 2);
    CHECK_STR(t->table[1].name, "chat");
    CHECK_INT(t->table[1].ncolumns, ==, 1);
    CHECK_STR(t->table[0].name, "kv");
    CHECK_INT(t->table[0].size, ==, 1024);
    CHECK_INT(t->table[0].ncolumns, ==, 2);
    CHECK_STR(t->table[0].columns[0].name, "value");
    CHECK_INT(t->table[0].columns[0].type, ==, SRV_COL_STRING);
    CHECK_INT(t->table[0].columns[0].size, ==, 256);
    CHECK_STR(t->table[0].columns[1].name, "hits");
    CHECK_INT(t->table[0].columns[1].type, ==, SRV_COL_INT);
    CHECK_INT(t->table[0].columns[1].size, ==, 8);
    CHECK_INT(t->ncron, ==, 1);
    CHECK_STR(t->cron[0].name, "tick");
    CHECK_STR(t->cron[0].handler, "demo_cron_tick");
    CHECK_INT(t->cron[0].interval_ms, ==, 1000);
    CHECK_INT(t->nprocess, ==, 1);
    CHECK_STR(t->process[0].name, "clock");
    CHECK_STR(t->process[0].handler, "demo_clock");
    CHECK_INT(t->process[0].num, ==, 1);
    CHECK(t->process[0].pipe);
    /* Lines point at the section headers. */
    CHECK_INT(t->listen[0].line, >, 0);
    CHECK_INT(t->listen[1].line, >, t->listen[0].line);
    CHECK_INT(i->listen[1].line, >, i->listen[0].line);

    /* Equality ignores file and lines, and sees everything else. */
    i->listen[2].line = 999;
    i->table[0].line = 1;
    CHECK(srv__config_equal(t, i));
    i->listen[1].package_eof_len = 1;
    CHECK(!srv__config_equal(t, i));
    i->listen[1].package_eof_len = 2;
    i->table[0].columns[1].type = SRV_COL_FLOAT;
    CHECK(!srv__config_equal(t, i));
    i->table[0].columns[1].type = SRV_COL_INT;
    i->cron[0].immediate = true;
    CHECK(!srv__config_equal(t, i));
    i->cron[0].immediate = false;
    snprintf(i->redis, sizeof(i->redis), "127.0.0.1:6379");
    CHECK(!srv__config_equal(t, i));
    i->redis[0] = '\0';
    CHECK(srv__config_equal(t, i));
    free(t);
    free(i);
}

static void test_defaults(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    srv__config_t *d = malloc(sizeof(*d));
    CHECK(d != NULL);
    srv__config_defaults(d);
    CHECK_INT(d->worker_num, ==, cpus > 1024 ? 1024 : cpus);
    CHECK_INT(d->reactor_num, ==, cpus > 64 ? 64 : cpus);
    CHECK_INT(d->mode, ==, SRV_MODE_PROCESS);
    CHECK_INT(d->reactor_backend, ==, SRV_BACKEND_AUTO);
    CHECK_INT(d->task_worker_num, ==, 0);
    CHECK_INT(d->max_conn, ==, 100000);
    CHECK_INT(d->dispatch_mode, ==, 2);
    CHECK_INT(d->log_level, ==, SRV_LOG_NOTICE);
    CHECK_INT(d->max_wait_time, ==, 3);
    CHECK_INT(d->package_max_length, ==, 2 * 1024 * 1024);
    CHECK_INT(d->buffer_output_size, ==, 2 * 1024 * 1024);
    CHECK_INT(d->http_header_max, ==, 8192);
    CHECK_INT(d->http_header_timeout, ==, 10000);
    CHECK_INT(d->http_keepalive_timeout, ==, 60000);
    CHECK_INT(d->http_body_timeout, ==, 30000);
    CHECK_INT(d->send_timeout, ==, 60000);
    CHECK_INT(d->task_max_queue, ==, 65536);
    CHECK_INT(d->ipc_buffer_size, ==, 4 * 1024 * 1024);
    CHECK_INT(d->nlisten, ==, 0);

    /* A minimal file: everything but app and the listener is the default. */
    const char *toml = "[server]\napp = \"app.so\"\n[[listen]]\nport = 8080\n";
    const char *ini = "[server]\napp = app.so\n[listen.listen0]\nport = 8080\n";
    srv__config_t *t = load_ok("min.toml", toml);
    srv__config_t *i = load_ok("min.ini", ini);
    CHECK(srv__config_equal(t, i));
    char want[512];
    snprintf(want, sizeof(want), "%s/app.so", tmpdir);
    CHECK_STR(t->app, want);
    snprintf(want, sizeof(want), "%s/srv.pid", tmpdir);
    CHECK_STR(t->pid_file, want);
    snprintf(d->app, sizeof(d->app), "%s", t->app);
    snprintf(d->pid_file, sizeof(d->pid_file), "%s", t->pid_file);
    d->nlisten = 1;
    d->listen[0] = t->listen[0];
    CHECK(srv__config_equal(d, t));
    const srv__listen_config_t *l = &t->listen[0];
    CHECK_STR(l->name, "listen0");
    CHECK_INT(l->type, ==, SRV_LISTEN_HTTP);
    CHECK_STR(l->host, "127.0.0.1");
    CHECK_INT(l->port, ==, 8080);
    CHECK_STR(l->path, "");
    CHECK_INT(l->backlog, ==, 511);
    CHECK_INT(l->socket_mode, ==, 0666);
    CHECK_STR(l->handler, "");
    CHECK_STR(l->document_root, "");
    CHECK(!l->websocket && !l->websocket_compression);
    CHECK_INT(l->websocket_max_message_size, ==, 16 * 1024 * 1024);
    CHECK_INT(l->websocket_ping_interval, ==, 0);
    CHECK(!l->open_eof_check && !l->open_eof_split && !l->open_length_check);
    CHECK_INT(l->package_eof_len, ==, 0);
    CHECK_INT(l->package_length_type, ==, 'N');
    CHECK_INT(l->package_max_length, ==, -1);
    CHECK_INT(l->heartbeat_idle_time, ==, -1);
    CHECK_INT(l->heartbeat_check_interval, ==, -1);
    CHECK_INT(l->line, ==, 3);
    CHECK_INT(i->listen[0].line, ==, 3);
    free(t);
    free(i);
    free(d);
}

/* Every key set to a non-default value, in both syntaxes: they must load the same. */
static void test_all_keys(void)
{
    const char *toml =
        "[server]\n"
        "mode = \"base\"\n"
        "reactor_backend = \"epoll\"\n"
        "reactor_num = 3\n"
        "worker_num = 5\n"
        "task_worker_num = 7\n"
        "max_request = 1000\n"
        "max_conn = 512\n"
        "dispatch_mode = 3\n"
        "daemonize = true\n"
        "pid_file = \"run/srv.pid\"\n"
        "log_file = \"./log/srv.log\"\n"
        "log_level = \"debug\"\n"
        "app = \"/abs/app.so\"\n"
        "max_wait_time = 10\n"
        "package_max_length = 65536\n"
        "buffer_output_size = 8192\n"
        "heartbeat_idle_time = 60\n"
        "heartbeat_check_interval = 10\n"
        "http_header_max = 4096\n"
        "http_header_timeout = 5000\n"
        "http_keepalive_timeout = 0\n"
        "http_body_timeout = 2000\n"
        "task_max_queue = 100\n"
        "ipc_buffer_size = 1048576\n"
        "redis = \"127.0.0.1:6379\"\n"
        "send_timeout = 1500\n"
        "[[listen]]\n"
        "name = \"web\"\n"
        "host = \"::1\"\n"
        "port = 8080\n"
        "backlog = 128\n"
        "handler = \"api\"\n"
        "document_root = \"public\"\n"
        "websocket = true\n"
        "websocket_compression = true\n"
        "websocket_max_message_size = 1024\n"
        "websocket_ping_interval = 30000\n"
        "package_max_length = 4096\n"
        "heartbeat_idle_time = 5\n"
        "heartbeat_check_interval = 1\n"
        "[[listen]]\n"
        "name = \"sock\"\n"
        "type = \"tcp\"\n"
        "path = \"run/srv.sock\"\n"
        "socket_mode = \"0600\"\n"
        "open_eof_split = true\n"
        "package_eof = '\\0\\t\\\\\\x41\\xfF'\n"
        "[[listen]]\n"
        "name = \"len\"\n"
        "type = \"tcp\"\n"
        "host = \"0.0.0.0\"\n"
        "port = 8081\n"
        "open_length_check = true\n"
        "package_length_type = \"v\"\n"
        "package_length_offset = 2\n"
        "package_body_offset = 6\n"
        "[[table]]\n"
        "name = \"t\"\n"
        "size = 16\n"
        "columns = [{name = \"f\", type = \"float\"}, {name = \"a\", type = \"int\"},\n"
        "           {type = \"string\", size = 3, name = \"s\"}]\n"
        "[[cron]]\n"
        "name = \"c1\"\n"
        "handler = \"job_1\"\n"
        "schedule = \"*/5 * * * 1-5\"\n"
        "immediate = true\n"
        "max_wait_time = 0\n"
        "global_lock = true\n"
        "[[process]]\n"
        "name = \"p\"\n"
        "handler = \"_entry\"\n"
        "num = 4\n"
        "restart_interval = 0\n"
        "pipe = false\n";
    const char *ini = "[server]\n"
                      "mode = base\n"
                      "reactor_backend = epoll\n"
                      "reactor_num = 3\n"
                      "worker_num = 5\n"
                      "task_worker_num = 7\n"
                      "max_request = 1000\n"
                      "max_conn = 512\n"
                      "dispatch_mode = 3\n"
                      "daemonize = yes\n"
                      "pid_file = run/srv.pid\n"
                      "log_file = ./log/srv.log\n"
                      "log_level = debug\n"
                      "app = /abs/app.so\n"
                      "max_wait_time = 10\n"
                      "package_max_length = 65536\n"
                      "buffer_output_size = 8192\n"
                      "heartbeat_idle_time = 60\n"
                      "heartbeat_check_interval = 10\n"
                      "http_header_max = 4096\n"
                      "http_header_timeout = 5000\n"
                      "http_keepalive_timeout = 0\n"
                      "http_body_timeout = 2000\n"
                      "task_max_queue = 100\n"
                      "ipc_buffer_size = 1048576\n"
                      "redis = 127.0.0.1:6379\n"
                      "send_timeout = 1500\n"
                      "[listen.web]\n"
                      "host = [::1]\n"
                      "port = 8080\n"
                      "backlog = 128\n"
                      "handler = api\n"
                      "document_root = public\n"
                      "  websocket = on\n"
                      "\twebsocket_compression = 1\n"
                      "websocket_max_message_size = 1024\n"
                      "websocket_ping_interval = 30000\n"
                      "package_max_length = 4096\n"
                      "heartbeat_idle_time = 5\n"
                      "heartbeat_check_interval = 1\n"
                      "[listen.sock]\n"
                      "type = tcp\n"
                      "path = run/srv.sock\n"
                      "socket_mode = 600\n"
                      "open_eof_split = TRUE\n"
                      "package_eof = \\0\\t\\\\\\x41\\xfF\n"
                      "[listen.len]\n"
                      "type = tcp\n"
                      "host = 0.0.0.0\n"
                      "port = 8081\n"
                      "open_length_check = true\n"
                      "package_length_type = v\n"
                      "package_length_offset = 2\n"
                      "package_body_offset = 6\n"
                      "[table.t]\n"
                      "size = 16\n"
                      "column.f = float\n"
                      "column.a = int\n"
                      "column.s = string:3\n"
                      "[cron.c1]\n"
                      "handler = job_1\n"
                      "schedule = */5 * * * 1-5\n"
                      "immediate = true\n"
                      "max_wait_time = 0\n"
                      "global_lock = true\n"
                      "[process.p]\n"
                      "handler = _entry\n"
                      "num = 4\n"
                      "restart_interval = 0\n"
                      "pipe = false\n";
    srv__config_t *t = load_ok("all.toml", toml);
    srv__config_t *i = load_ok("all.ini", ini);
    CHECK(srv__config_equal(t, i));
    char want[512];
    CHECK_INT(t->mode, ==, SRV_MODE_BASE);
    CHECK_INT(t->reactor_backend, ==, SRV_BACKEND_EPOLL);
    CHECK_INT(t->max_request_grace, ==, 500); /* default: half of max_request */
    CHECK(t->daemonize);
    snprintf(want, sizeof(want), "%s/run/srv.pid", tmpdir);
    CHECK_STR(t->pid_file, want);
    snprintf(want, sizeof(want), "%s/log/srv.log", tmpdir);
    CHECK_STR(t->log_file, want);
    CHECK_STR(t->app, "/abs/app.so");
    CHECK_INT(t->send_timeout, ==, 1500);
    CHECK_STR(t->listen[0].host, "::1");
    snprintf(want, sizeof(want), "%s/public", tmpdir);
    CHECK_STR(t->listen[0].document_root, want);
    CHECK(i->listen[0].websocket && i->listen[0].websocket_compression);
    snprintf(want, sizeof(want), "%s/run/srv.sock", tmpdir);
    CHECK_STR(t->listen[1].path, want);
    CHECK_STR(t->listen[1].host, "");
    CHECK_INT(t->listen[1].port, ==, 0);
    CHECK(t->listen[1].open_eof_split && t->listen[1].open_eof_check);
    CHECK_MEM(t->listen[1].package_eof, t->listen[1].package_eof_len, "\0\t\\A\xff", 5);
    CHECK_MEM(i->listen[1].package_eof, i->listen[1].package_eof_len, "\0\t\\A\xff", 5);
    CHECK_INT(t->listen[2].package_length_type, ==, 'v');
    CHECK_INT(t->listen[1].socket_mode, ==, 0600);
    CHECK_INT(t->listen[0].socket_mode, ==, 0666);
    i->listen[1].socket_mode = 0660;
    CHECK(!srv__config_equal(t, i));
    i->listen[1].socket_mode = 0600;
    /* The framer gets what the keys say, package_max_length inherited when left at -1. */
    srv__frame_opts_t o;
    srv__config_frame_opts(t, 0, &o);
    CHECK_INT(o.mode, ==, SRV_FRAME_NONE);
    CHECK_INT(o.max_length, ==, 4096);
    srv__config_frame_opts(t, 1, &o);
    CHECK_INT(o.mode, ==, SRV_FRAME_EOF);
    CHECK(o.eof_split);
    CHECK_MEM(o.eof, o.eof_len, "\0\t\\A\xff", 5);
    CHECK_INT(o.max_length, ==, 65536);
    CHECK_INT(srv__frame_opts_check(&o, NULL), ==, 0);
    srv__config_frame_opts(t, 2, &o);
    CHECK_INT(o.mode, ==, SRV_FRAME_LENGTH);
    CHECK_INT(o.length_type, ==, 'v');
    CHECK_INT(o.length_offset, ==, 2);
    CHECK_INT(o.body_offset, ==, 6);
    CHECK_INT(o.max_length, ==, 65536);
    CHECK_INT(srv__frame_opts_check(&o, NULL), ==, 0);
    CHECK_INT(t->table[0].ncolumns, ==, 3);
    CHECK_STR(t->table[0].columns[0].name, "f");
    CHECK_STR(t->table[0].columns[2].name, "s");
    CHECK_INT(t->table[0].columns[2].size, ==, 3);
    CHECK_STR(t->cron[0].schedule, "*/5 * * * 1-5");
    CHECK_INT(t->cron[0].interval_ms, ==, 0);
    CHECK(!t->process[0].pipe);
    CHECK_INT(t->process[0].num, ==, 4);
    free(t);
    free(i);
}

/* package_eof escapes, TOML's own escapes, and the file's relative name. */
static void test_eof_and_relative_file(void)
{
    const char *base = "[server]\napp = \"a.so\"\n[[listen]]\ntype = \"tcp\"\nport = 1\n"
                       "open_eof_check = true\n";
    char text[512];
    /* TOML decodes "\r\n" itself; we decode the literal string's escapes. Both agree. */
    snprintf(text, sizeof(text), "%spackage_eof = \"\\r\\n\\t\"\n", base);
    srv__config_t *a = load_ok("eof1.toml", text);
    snprintf(text, sizeof(text), "%spackage_eof = '\\r\\n\\t'\n", base);
    srv__config_t *b = load_ok("eof2.toml", text);
    CHECK_MEM(a->listen[0].package_eof, a->listen[0].package_eof_len, "\r\n\t", 3);
    CHECK(srv__config_equal(a, b));
    free(b);
    /* Exactly 8 bytes is the limit. */
    snprintf(text, sizeof(text), "%spackage_eof = '\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07'\n",
             base);
    b = load_ok("eof3.toml", text);
    CHECK_MEM(b->listen[0].package_eof, b->listen[0].package_eof_len, "\0\1\2\3\4\5\6\7", 8);
    free(b);

    /* A relative config name is made absolute against the working directory. */
    char cwd[512];
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK_INT(chdir(tmpdir), ==, 0);
    srv__config_error_t err;
    b = malloc(sizeof(*b));
    CHECK(b != NULL);
    CHECK_INT(srv__config_load("./eof1.toml", b, &err), ==, 0);
    CHECK_INT(chdir(cwd), ==, 0);
    char want[512];
    snprintf(want, sizeof(want), "%s/eof1.toml", tmpdir);
    CHECK_STR(b->file, want);
    snprintf(want, sizeof(want), "%s/a.so", tmpdir);
    CHECK_STR(b->app, want);
    CHECK(srv__config_equal(a, b));
    free(a);
    free(b);
}

/* Extension-less names are sniffed; .conf is INI. */
static void test_sniff(void)
{
    srv__config_t *a = load_ok("sniff_toml", "[server]\napp = \"a.so\"\n[[listen]]\nport = 1\n");
    srv__config_t *b = load_ok("sniff_ini", "[server]\napp = a.so\n[listen.listen0]\nport = 1\n");
    srv__config_t *c = load_ok("sniff.conf", "[server]\napp = a.so\n[listen.listen0]\nport = 1\n");
    CHECK(srv__config_equal(a, b));
    CHECK(srv__config_equal(a, c));
    free(a);
    free(b);
    free(c);
}

/* The INI syntax we read ourselves (it was inih's): BOM, CRLF, ';' and '#' comment lines, inline
 * comments after a blank, "key: value", a ';' inside a value, indentation. */
static void test_ini_syntax(void)
{
    const char *toml = "[server]\n"
                       "app = \"/abs/app.so\"\n"
                       "log_level = \"info\"\n"
                       "pid_file = \"/tmp/a;b.pid\"\n"
                       "redis = \"127.0.0.1:6379\"\n"
                       "[[listen]]\n"
                       "name = \"web\"\n"
                       "host = \"::1\"\n"
                       "port = 8080\n";
    const char *ini = "\xEF\xBB\xBF; comment\r\n"
                      "# another comment\r\n"
                      "[server] ; the server\r\n"
                      "app: /abs/app.so\r\n"
                      "log_level = info ; inline comment\r\n"
                      "pid_file = /tmp/a;b.pid\r\n"
                      "\tredis = 127.0.0.1:6379\r\n"
                      "\r\n"
                      "[listen.web]\r\n"
                      "  host = \"::1\"\r\n"
                      "  port = 8080";
    srv__config_t *t = load_ok("syntax.toml", toml);
    srv__config_t *i = load_ok("syntax.ini", ini);
    CHECK(srv__config_equal(t, i));
    CHECK_STR(i->pid_file, "/tmp/a;b.pid");
    CHECK_INT(i->listen[0].line, ==, 9);
    free(t);
    free(i);
}

/* issue 11: INI refused lines over 197 characters where TOML took the same value. A path of 511
 * bytes (the longest the schema takes), a long package_eof escape and a long comment. */
static void test_ini_long_lines(void)
{
    char app[512], comment[901], toml[2048], ini[4096];
    app[0] = '/';
    memset(app + 1, 'a', 507);
    memcpy(app + 508, ".so", 4);
    CHECK_INT(strlen(app), ==, 511);
    memset(comment, 'c', 900);
    comment[900] = '\0';
    const char *eof = "\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07";
    snprintf(toml, sizeof(toml),
             "[server]\napp = \"%s\"\n[[listen]]\ntype = \"tcp\"\nport = 1\n"
             "open_eof_check = true\npackage_eof = '%s'\n",
             app, eof);
    snprintf(ini, sizeof(ini),
             "[server]\n; %s\napp = \"%s\" ; %.400s\n[listen.listen0]\ntype = tcp\nport = 1\n"
             "open_eof_check = true\npackage_eof = %s ; %.800s\n",
             comment, app, comment, eof, comment);
    srv__config_t *t = load_ok("long.toml", toml);
    srv__config_t *i = load_ok("long.ini", ini);
    CHECK(srv__config_equal(t, i));
    CHECK_STR(i->app, app);
    CHECK_MEM(i->listen[0].package_eof, i->listen[0].package_eof_len, "\0\1\2\3\4\5\6\7", 8);
    free(t);
    free(i);
}

static void test_unreadable(void)
{
    srv__config_t *cfg = malloc(sizeof(*cfg));
    srv__config_error_t err;
    char path[512], buf[1024];
    CHECK(cfg != NULL);
    memset(cfg, 0xab, sizeof(*cfg));
    snprintf(path, sizeof(path), "%s/missing.toml", tmpdir);
    CHECK_INT(srv__config_load(path, cfg, &err), ==, -ENOENT);
    char want[1024];
    snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
    CHECK_STR(srv__config_error_format(&err, buf, sizeof(buf)), want);
    CHECK_INT(srv__config_load(tmpdir, cfg, &err), ==, -EISDIR);
    /* A failed load leaves *cfg alone. */
    write_file("bad.toml", "[server]\nworker_num = 0\n", path, sizeof(path));
    CHECK_INT(srv__config_load(path, cfg, &err), ==, -EINVAL);
    unsigned char *p = (unsigned char *)cfg;
    for (size_t i = 0; i < sizeof(*cfg); i++)
        CHECK_INT(p[i], ==, 0xab);
    /* NULL err is allowed. */
    CHECK_INT(srv__config_load(path, cfg, NULL), ==, -EINVAL);
    free(cfg);
}

/* TLS keys and SNI entries in both syntaxes: the same configuration, lists or strings alike. */
static void test_tls(void)
{
    static const char toml[] =
        "[server]\napp = \"app.so\"\n"
        "[[listen]]\nname = \"plain\"\nport = 9500\n"
        "[[listen]]\nname = \"s\"\nport = 9501\nssl = true\nssl_cert_file = \"c.pem\"\n"
        "ssl_key_file = \"k.pem\"\nssl_protocols = [\"TLSv1.3\"]\nssl_ciphers = \"HIGH\"\n"
        "ssl_verify_peer = true\nssl_verify_optional = true\nssl_client_cert_file = \"ca.pem\"\n"
        "ssl_session_tickets = false\nssl_handshake_timeout = 3\n"
        "[[listen.sni]]\nhost = \"*.Example.org\"\nssl_cert_file = \"e.pem\"\n"
        "ssl_key_file = \"e.key\"\n"
        "[[listen.sni]]\nhost = \"b.test\"\nssl_cert_file = \"b.pem\"\nssl_key_file = \"b.key\"\n"
        "[[listen]]\nname = \"t\"\ntype = \"tcp\"\nport = 9502\nssl = true\n"
        "ssl_cert_file = \"c.pem\"\nssl_key_file = \"k.pem\"\nssl_alpn = [\"a\", \"bb\"]\n";
    static const char ini[] =
        "[server]\napp = app.so\n"
        "[listen.plain]\nport = 9500\n"
        "[listen.s]\nport = 9501\nssl = true\nssl_cert_file = c.pem\n"
        "ssl_key_file = k.pem\nssl_protocols = TLSv1.3\nssl_ciphers = HIGH\n"
        "ssl_verify_peer = true\nssl_verify_optional = true\nssl_client_cert_file = ca.pem\n"
        "ssl_session_tickets = false\nssl_handshake_timeout = 3\n"
        "[listen.t]\ntype = tcp\nport = 9502\nssl = true\n"
        "ssl_cert_file = c.pem\nssl_key_file = k.pem\nssl_alpn = a  bb\n"
        "[listen.s.sni.*.example.org]\nssl_cert_file = e.pem\nssl_key_file = e.key\n"
        "[listen.s.sni.b.test]\nssl_cert_file = b.pem\nssl_key_file = b.key\n";
    srv__config_t *t = load_ok("tls.toml", toml), *i = load_ok("tls.ini", ini);
    CHECK(srv__config_equal(t, i));
    const srv__listen_config_t *l = &t->listen[1];
    CHECK(!t->listen[0].ssl && l->ssl && t->listen[2].ssl);
    CHECK_INT(l->ssl_protocols, ==, 1u << 3);
    CHECK_INT(t->listen[0].ssl_protocols, ==, (1u << 2) | (1u << 3));
    CHECK(l->ssl_verify_peer && l->ssl_verify_optional && !l->ssl_session_tickets);
    CHECK_INT(l->ssl_handshake_timeout, ==, 3);
    CHECK_STR(l->ssl_ciphers, "HIGH");
    char want[600];
    snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
    CHECK_STR(l->ssl_client_cert_file, want);
    CHECK_STR(t->listen[2].ssl_alpn, "a bb");
    CHECK_INT(t->nsni, ==, 2);
    CHECK_STR(t->sni[0].host, "*.example.org");
    CHECK_INT(t->sni[0].listener, ==, 1);
    CHECK_STR(t->sni[1].host, "b.test");
    snprintf(want, sizeof(want), "%s/b.key", tmpdir);
    CHECK_STR(i->sni[1].ssl_key_file, want);
    free(t);
    free(i);
}

/* HTTP/2 keys in both syntaxes: [server]'s defaults, a listener's own values, -1 where a
 * listener inherits. */
static void test_http2(void)
{
    static const char toml[] = "[server]\napp = \"app.so\"\nhttp2_max_concurrent_streams = 64\n"
                               "http2_idle_timeout = 30\n"
                               "[[listen]]\nport = 9500\nopen_http2_protocol = true\n"
                               "http2_initial_window_size = 1048576\nhttp2_max_frame_size = 32768\n"
                               "http2_max_header_list_size = 65536\n"
                               "[[listen]]\nport = 9501\nopen_http2_protocol = true\n"
                               "http2_max_concurrent_streams = 8\nhttp2_idle_timeout = 2\n"
                               "[[listen]]\nport = 9502\n";
    static const char ini[] = "[server]\napp = app.so\nhttp2_max_concurrent_streams = 64\n"
                              "http2_idle_timeout = 30\n"
                              "[listen.listen0]\nport = 9500\nopen_http2_protocol = true\n"
                              "http2_initial_window_size = 1048576\nhttp2_max_frame_size = 32768\n"
                              "http2_max_header_list_size = 65536\n"
                              "[listen.listen1]\nport = 9501\nopen_http2_protocol = true\n"
                              "http2_max_concurrent_streams = 8\nhttp2_idle_timeout = 2\n"
                              "[listen.listen2]\nport = 9502\n";
    srv__config_t *t = load_ok("h2.toml", toml), *i = load_ok("h2.ini", ini);
    CHECK(srv__config_equal(t, i));
    CHECK_INT(t->http2_max_concurrent_streams, ==, 64);
    CHECK_INT(t->http2_idle_timeout, ==, 30);
    CHECK_INT(t->http2_initial_window_size, ==, 65536); /* defaults where [server] is silent */
    CHECK_INT(t->http2_max_frame_size, ==, 16384);
    CHECK_INT(t->http2_max_header_list_size, ==, 32768);
    const srv__listen_config_t *a = &t->listen[0], *b = &t->listen[1], *c = &t->listen[2];
    CHECK(a->open_http2_protocol && b->open_http2_protocol && !c->open_http2_protocol);
    CHECK_INT(a->http2_initial_window_size, ==, 1048576);
    CHECK_INT(a->http2_max_frame_size, ==, 32768);
    CHECK_INT(a->http2_max_header_list_size, ==, 65536);
    CHECK_INT(a->http2_max_concurrent_streams, ==, -1);
    CHECK_INT(a->http2_idle_timeout, ==, -1);
    CHECK_INT(b->http2_max_concurrent_streams, ==, 8);
    CHECK_INT(b->http2_idle_timeout, ==, 2);
    CHECK_INT(b->http2_initial_window_size, ==, -1);
    /* A changed HTTP/2 setting is a changed configuration. */
    i->listen[1].http2_idle_timeout = 3;
    CHECK(!srv__config_equal(t, i));
    free(t);
    free(i);
}

/* ALPN as a TLS listener offers it: h2 first with open_http2_protocol (the server's preference
 * decides), http/1.1 alone without; a tcp listener its own ssl_alpn. */
static void test_http2_alpn(void)
{
    static const char toml[] =
        "[server]\napp = \"app.so\"\n"
        "[[listen]]\nport = 9500\nssl = true\nssl_cert_file = \"c.pem\"\nssl_key_file = \"k.pem\"\n"
        "open_http2_protocol = true\n"
        "[[listen]]\nport = 9501\nssl = true\nssl_cert_file = \"c.pem\"\nssl_key_file = \"k.pem\"\n"
        "open_http2_protocol = false\n"
        "[[listen]]\ntype = \"tcp\"\nport = 9502\nssl = true\nssl_cert_file = \"c.pem\"\n"
        "ssl_key_file = \"k.pem\"\nssl_alpn = \"x y\"\n";
    static const char *const want[] = {"h2 http/1.1", "http/1.1", "x y"};
    srv__config_t *t = load_ok("alpn.toml", toml);
    for (int li = 0; li < 3; li++) {
        srv__tls_cert_conf_t sni[SRV_CONFIG_MAX_SNI];
        int map[SRV_CONFIG_MAX_SNI];
        srv__tls_conf_t conf;
        srv__config_tls_conf(t, li, &conf, sni, map);
        CHECK_STR(conf.alpn, want[li]);
    }
    free(t);
}

int main(void)
{
    (void)check_failures_;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/srv-config-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    atexit(cleanup);
    test_demo();
    test_defaults();
    test_all_keys();
    test_eof_and_relative_file();
    test_sniff();
    test_ini_syntax();
    test_ini_long_lines();
    test_unreadable();
    test_tls();
    test_http2();
    test_http2_alpn();
    return 0;
}
