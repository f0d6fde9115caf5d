/* srv__config errors: every class of problem (unknown key or section, wrong type, range, enum,
 * cross-key rules, duplicates, syntax) gives "file:line: key: message" with the right line, in
 * both syntaxes. */
#include "config/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "check.h"

#define INI_LINE_MAX 1024 /* documented in README.md */

static char tmpdir[256];

/* Both bases put the first listener on lines 1-2 and [server] on lines 3-4, so a case appends
 * server keys from line 5, or a new section at line 5. */
#define TB "[[listen]]\nport = 9501\n[server]\napp = \"app.so\"\n"
#define IB "[listen.listen0]\nport = 9501\n[server]\napp = app.so\n"

typedef struct err_case {
    const char *toml;     /* NULL: not applicable to TOML */
    const char *ini;      /* NULL: not applicable to INI */
    const char *want;     /* after the file name: ":LINE: key: msg"; a final '*' matches any tail */
    const char *want_ini; /* NULL: same as want */
} err_case_t;

static const err_case_t cases[] = {
    /* ranges */
    {TB "worker_num = 0\n", IB "worker_num = 0\n",
     ":5: worker_num: must be between 1 and 1024, got 0", NULL},
    {TB "worker_num = 1025\n", IB "worker_num = 1025\n",
     ":5: worker_num: must be between 1 and 1024, got 1025", NULL},
    {TB "reactor_num = 65\n", IB "reactor_num = 65\n",
     ":5: reactor_num: must be between 1 and 64, got 65", NULL},
    {TB "task_worker_num = -1\n", IB "task_worker_num = -1\n",
     ":5: task_worker_num: must be between 0 and 1024, got -1", NULL},
    {TB "max_conn = 1000001\n", IB "max_conn = 1000001\n",
     ":5: max_conn: must be between 1 and 1000000, got 1000001", NULL},
    {TB "dispatch_mode = 6\n", IB "dispatch_mode = 6\n",
     ":5: dispatch_mode: must be between 1 and 5, got 6", NULL},
    {TB "max_wait_time = 3601\n", IB "max_wait_time = 3601\n",
     ":5: max_wait_time: must be between 0 and 3600, got 3601", NULL},
    {TB "package_max_length = 63\n", IB "package_max_length = 63\n",
     ":5: package_max_length: must be between 64 and 1073741824, got 63", NULL},
    {TB "buffer_output_size = 4095\n", IB "buffer_output_size = 4095\n",
     ":5: buffer_output_size: must be between 4096 and 1073741824, got 4095", NULL},
    {TB "worker_num = 99999999999999999999\n", IB "worker_num = 99999999999999999999\n", ":5:*",
     ":5: worker_num: must be an integer, got \"99999999999999999999\""},
    /* unknown keys and sections */
    {TB "foo = 1\n", IB "foo = 1\n", ":5: foo: unknown key in [server]", NULL},
    {TB "zzz = 1\naaa = 2\n", IB "zzz = 1\naaa = 2\n", ":5: zzz: unknown key in [server]", NULL},
    {TB "[bogus]\nx = 1\n", IB "[bogus]\nx = 1\n", ":5: bogus: unknown section", NULL},
    {TB "[[bogus]]\nx = 1\n", NULL, ":5: bogus: unknown section", NULL},
    {"worker_num = 2\n" TB, "worker_num = 2\n" IB,
     ":1: worker_num: unknown section (server keys go under [server])",
     ":1: worker_num: must be inside a section such as [server]"},
    {TB "[[listen]]\nport = 2\nwebsocket_compresion = true\n",
     IB "[listen.listen1]\nport = 2\nwebsocket_compresion = true\n",
     ":7: websocket_compresion: unknown key in [listen]", NULL},
    /* wrong types */
    {TB "worker_num = \"two\"\n", IB "worker_num = two\n",
     ":5: worker_num: must be an integer, got \"two\"", NULL},
    {TB "worker_num = 2.5\n", NULL, ":5: worker_num: must be an integer, got float", NULL},
    {TB "daemonize = 1\n", IB "daemonize = maybe\n",
     ":5: daemonize: must be a boolean (true or false), got integer",
     ":5: daemonize: must be a boolean (true or false), got \"maybe\""},
    /* privilege drop (issue 16): names that exist, a chroot directory holding the app */
    {TB "user = \"no-such-user-srv\"\n", IB "user = no-such-user-srv\n",
     ":5: user: no such user \"no-such-user-srv\"", NULL},
    {TB "user = \"nobody\"\ngroup = \"no-such-group-srv\"\n",
     IB "user = nobody\ngroup = no-such-group-srv\n",
     ":6: group: no such group \"no-such-group-srv\"", NULL},
    {TB "group = \"no-such-group-srv\"\n", NULL, ":5: group: no such group*", NULL},
    {TB "user = 5\n", NULL, ":5: user: must be a string, got integer", NULL},
    {TB "user = \"\"\n", IB "user =\n", ":5: user: must not be empty", NULL},
    {TB "chroot = \"jail\"\n", IB "chroot = jail\n",
     ":5: chroot: must be an absolute path, got \"jail\"", NULL},
    {TB "chroot = \"/no/such/dir-srv\"\n", IB "chroot = /no/such/dir-srv\n",
     ":5: chroot: \"/no/such/dir-srv\": No such file or directory", NULL},
    {TB "chroot = \"/etc/passwd\"\n", IB "chroot = /etc/passwd\n",
     ":5: chroot: \"/etc/passwd\" is not a directory", NULL},
    {"[[listen]]\nport = 1\n[server]\napp = \"/usr/lib/app.so\"\nchroot = \"/proc/\"\n",
     "[listen.a]\nport = 1\n[server]\napp = /usr/lib/app.so\nchroot = /proc/\n",
     ":5: app: /usr/lib/app.so is outside chroot /proc (workers load the app from inside it)",
     NULL},
    {TB "app2 = [1]\n", NULL, ":5: app2: unknown key in [server]", NULL},
    {"server = 5\n", NULL, ":1: server: must be a table ([server])", NULL},
    {"[server]\napp = \"a\"\n[listen]\nport = 1\n", NULL,
     ":3: listen: must be an array of tables ([[listen]])", NULL},
    /* enums */
    {TB "mode = \"fork\"\n", IB "mode = fork\n",
     ":5: mode: must be one of process, base; got \"fork\"", NULL},
    {TB "log_level = \"verbose\"\n", IB "log_level = verbose\n",
     ":5: log_level: must be one of error, warn, notice, info, debug; got \"verbose\"", NULL},
    {TB "reactor_backend = \"uring\"\n", IB "reactor_backend = uring\n",
     ":5: reactor_backend: must be one of auto, io_uring, epoll; got \"uring\"", NULL},
    {TB "[[listen]]\ntype = \"sctp\"\nport = 2\n", IB "[listen.listen1]\ntype = sctp\nport = 2\n",
     ":6: type: must be one of http, tcp, udp; got \"sctp\"", NULL},
    {TB "redis = \"localhost\"\n", IB "redis = localhost\n",
     ":5: redis: must be \"host:port\" or a unix socket path, got \"localhost\"", NULL},
    /* required keys */
    {"[[listen]]\nport = 1\n[server]\nworker_num = 2\n",
     "[listen.a]\nport = 1\n[server]\n"
     "worker_num = 2\n",
     ":3: app: required", NULL},
    {"[[listen]]\nport = 1\n", "[listen.a]\nport = 1\n", ": app: required", NULL},
    {"[server]\napp = \"a\"\n", "[server]\napp = a\n",
     ":1: listen: at least one listener is "
     "required",
     NULL},
    /* listeners */
    {TB "[[listen]]\nport = 0\n", IB "[listen.listen1]\nport = 0\n",
     ":6: port: must be between 1 and 65535, got 0", NULL},
    {TB "[[listen]]\nport = 65536\n", IB "[listen.listen1]\nport = 65536\n",
     ":6: port: must be between 1 and 65535, got 65536", NULL},
    {TB "[[listen]]\nport = 1\npath = \"s.sock\"\n",
     IB "[listen.listen1]\nport = 1\npath = s.sock\n",
     ":7: path: port and path are exclusive (one listener binds one address)", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\n", IB "[listen.listen1]\ntype = tcp\n",
     ":5: port: required (or path, for a unix socket)", NULL},
    {TB "[[listen]]\nport = 2\nopen_eof_check = true\npackage_eof = \"x\"\n",
     IB "[listen.listen1]\nport = 2\nopen_eof_check = true\npackage_eof = x\n",
     ":7: open_eof_check: only valid on tcp listeners (this one is http)", NULL},
    {TB "[[listen]]\ntype = \"udp\"\nport = 2\npackage_length_type = \"n\"\n",
     IB "[listen.listen1]\ntype = udp\nport = 2\npackage_length_type = n\n",
     ":8: package_length_type: only valid on tcp listeners (this one is udp)", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\nwebsocket = true\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\nwebsocket = true\n",
     ":8: websocket: only valid on http listeners (this one is tcp)", NULL},
    {TB "[[listen]]\ntype = \"udp\"\nport = 2\ndocument_root = \"www\"\n",
     IB "[listen.listen1]\ntype = udp\nport = 2\ndocument_root = www\n",
     ":8: document_root: only valid on http listeners (this one is udp)", NULL},
    /* HTTP/2 */
    {TB "[[listen]]\nport = 2\ntype = \"tcp\"\nopen_http2_protocol = true\n",
     IB "[listen.listen1]\nport = 2\ntype = tcp\nopen_http2_protocol = true\n",
     ":8: open_http2_protocol: only valid on http listeners (this one is tcp)", NULL},
    {TB "[[listen]]\nport = 2\nhttp2_idle_timeout = 5\n",
     IB "[listen.listen1]\nport = 2\nhttp2_idle_timeout = 5\n",
     ":7: http2_idle_timeout: has no effect without open_http2_protocol = true", NULL},
    {TB "http2_max_concurrent_streams = 10\n", IB "http2_max_concurrent_streams = 10\n",
     ":5: http2_max_concurrent_streams: has no effect: no listener has open_http2_protocol = true",
     NULL},
    /* observability (issue 15) */
    {TB "admin_server = \"localhost:9100\"\n", IB "admin_server = localhost:9100\n",
     ":5: admin_server: must be \"address:port\" with a numeric address (\"127.0.0.1:9100\", "
     "\"[::1]:9100\"), got \"localhost:9100\"",
     NULL},
    {TB "admin_server = \"127.0.0.1:0\"\n", IB "admin_server = 127.0.0.1:0\n",
     ":5: admin_server: must be \"address:port\"*", NULL},
    {TB "admin_token = \"s3cret\"\n", IB "admin_token = s3cret\n",
     ":5: admin_token: has no effect: admin_server is not set", NULL},
    {TB "access_log_format = \"json\"\n", IB "access_log_format = json\n",
     ":5: access_log_format: has no effect: access_log is not set", NULL},
    /* operations (issue 16) */
    {TB "inotify_reload_paths = [\"templates\"]\n", IB "inotify_reload_paths = templates\n",
     ":5: inotify_reload_paths: has no effect: inotify_reload is not true", NULL},
    {TB "inotify_reload = true\ninotify_reload_paths = [\"a b\"]\n", NULL,
     ":6: inotify_reload_paths: list items must be single words", NULL},
    {TB "redis_password = \"x\"\n", IB "redis_password = x\n",
     ":5: redis_password: has no effect: redis is not set", NULL},
    {TB "redis_db = 2\n", IB "redis_db = 2\n", ":5: redis_db: has no effect: redis is not set",
     NULL},
    {TB "cluster = true\n", IB "cluster = true\n", ":5: cluster: has no effect: redis is not set",
     NULL},
    {TB "redis = \"127.0.0.1:6379\"\ninstance_id = \"a\"\n",
     IB "redis = 127.0.0.1:6379\ninstance_id = a\n",
     ":6: instance_id: has no effect: cluster is not true", NULL},
    {TB "maintenance_allow = [\"/health\", \"status\"]\n",
     IB "maintenance_allow = /health status\n",
     ":5: maintenance_allow: \"status\" is not a path (must start with /)", NULL},
    {TB
     "maintenance_allow = [\"/a\",\"/b\",\"/c\",\"/d\",\"/e\",\"/f\",\"/g\",\"/h\",\"/i\",\"/j\","
     "\"/k\",\"/l\",\"/m\",\"/n\",\"/o\",\"/p\",\"/q\"]\n",
     NULL, ":5: maintenance_allow: at most 16 path prefixes", NULL},
    {TB "maintenance_allow = \"/"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n",
     NULL, ":5: maintenance_allow: a prefix longer than 128 bytes", NULL},
    {TB "maintenance_allow = []\n", NULL,
     ":5: maintenance_allow: must be a non-empty list of strings", NULL},
    {TB "access_log = \"a.log\"\naccess_log_format = \"xml\"\n",
     IB "access_log = a.log\naccess_log_format = xml\n",
     ":6: access_log_format: must be one of combined, json; got \"xml\"", NULL},
    {TB "[[listen]]\nport = 2\naccess_log = false\n",
     IB "[listen.listen1]\nport = 2\naccess_log = false\n",
     ":7: access_log: has no effect: [server] sets no access_log", NULL},
    {TB "access_log = \"-\"\n[[listen]]\nport = 2\ntype = \"tcp\"\naccess_log = false\n",
     IB "access_log = -\n[listen.listen1]\nport = 2\ntype = tcp\naccess_log = false\n",
     ":9: access_log: only valid on http listeners (this one is tcp)", NULL},
    {TB "request_slowlog_timeout = -1\n", IB "request_slowlog_timeout = -1\n",
     ":5: request_slowlog_timeout: must be between 0 and 3600000, got -1", NULL},
    {TB "[[listen]]\nport = 2\nopen_http2_protocol = true\nhttp2_max_frame_size = 16383\n",
     IB "[listen.listen1]\nport = 2\nopen_http2_protocol = true\nhttp2_max_frame_size = 16383\n",
     ":8: http2_max_frame_size: must be -1 (inherit) or between 16384 and 16777215, got 16383",
     NULL},
    {TB "http2_max_frame_size = 16777216\n[[listen]]\nport = 2\nopen_http2_protocol = true\n",
     IB "http2_max_frame_size = 16777216\n[listen.listen1]\nport = 2\nopen_http2_protocol = true\n",
     ":5: http2_max_frame_size: must be between 16384 and 16777215, got 16777216", NULL},
    {TB "http2_initial_window_size = 2147483648\n[[listen]]\nport = 2\n"
        "open_http2_protocol = true\n",
     IB "http2_initial_window_size = 2147483648\n[listen.listen1]\nport = 2\n"
        "open_http2_protocol = true\n",
     ":5: http2_initial_window_size: must be between 1 and 2147483647, got 2147483648", NULL},
    {TB "http2_max_header_list_size = 1023\n[[listen]]\nport = 2\nopen_http2_protocol = true\n",
     IB "http2_max_header_list_size = 1023\n[listen.listen1]\nport = 2\n"
        "open_http2_protocol = true\n",
     ":5: http2_max_header_list_size: must be between 1024 and 16777216, got 1023", NULL},
    {TB "[[listen]]\nport = 2\nopen_http2_protocol = true\nhttp2_max_concurrent_streams = 0\n",
     IB "[listen.listen1]\nport = 2\nopen_http2_protocol = true\n"
        "http2_max_concurrent_streams = 0\n",
     ":8: http2_max_concurrent_streams: must be -1 (inherit) or between 1 and 1048576, got 0",
     NULL},
    {TB "[[listen]]\nport = 2\nopen_http2_protocol = true\nhttp2_idle_timeout = 86401\n",
     IB "[listen.listen1]\nport = 2\nopen_http2_protocol = true\nhttp2_idle_timeout = 86401\n",
     ":8: http2_idle_timeout: must be -1 (inherit) or between 1 and 86400, got 86401", NULL},
    {TB "[[listen]]\ntype = \"udp\"\nport = 2\nopen_http2_protocol = false\n",
     IB "[listen.listen1]\ntype = udp\nport = 2\nopen_http2_protocol = false\n",
     ":8: open_http2_protocol: only valid on http listeners (this one is udp)", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\nhttp2_max_frame_size = 32768\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\nhttp2_max_frame_size = 32768\n",
     ":8: http2_max_frame_size: only valid on http listeners (this one is tcp)", NULL},
    {TB "[[listen]]\nport = 2\nopen_http2_protocol = false\nhttp2_max_header_list_size = 4096\n",
     IB "[listen.listen1]\nport = 2\nopen_http2_protocol = off\n"
        "http2_max_header_list_size = 4096\n",
     ":8: http2_max_header_list_size: has no effect without open_http2_protocol = true", NULL},
    {TB "[[listen]]\nport = 2\nhttp2_initial_window_size = -1\n",
     IB "[listen.listen1]\nport = 2\nhttp2_initial_window_size = -1\n",
     ":7: http2_initial_window_size: has no effect without open_http2_protocol = true", NULL},
    /* [server]'s: the first one set is named, when no listener (of several) has HTTP/2 on */
    {TB "http2_max_frame_size = 32768\nhttp2_idle_timeout = 60\n[[listen]]\nport = 2\n"
        "open_http2_protocol = false\n",
     IB "http2_max_frame_size = 32768\nhttp2_idle_timeout = 60\n[listen.listen1]\nport = 2\n"
        "open_http2_protocol = false\n",
     ":5: http2_max_frame_size: has no effect: no listener has open_http2_protocol = true", NULL},
    {TB "http2_max_concurrent_streams = 1048577\n", IB "http2_max_concurrent_streams = 1048577\n",
     ":5: http2_max_concurrent_streams: must be between 1 and 1048576, got 1048577", NULL},
    {TB "http2_idle_timeout = \"60s\"\n", IB "http2_idle_timeout = 60s\n",
     ":5: http2_idle_timeout: must be an integer, got \"60s\"", NULL},
    {TB "[[listen]]\nport = 2\nwebsocket_compression = true\n",
     IB "[listen.listen1]\nport = 2\nwebsocket_compression = true\n",
     ":7: websocket_compression: needs websocket = true", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\nopen_eof_check = true\npackage_eof = \"x\"\n"
        "open_length_check = true\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\nopen_eof_check = true\npackage_eof = x\n"
        "open_length_check = true\n",
     ":10: open_length_check: open_eof_check and open_length_check are mutually exclusive", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\nopen_eof_check = true\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\nopen_eof_check = true\n",
     ":8: package_eof: required when open_eof_check is set", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_length_type = \"x\"\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_length_type = x\n",
     ":8: package_length_type: must be one of c, C, n, N, v, V; got \"x\"", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_length_type = \"NN\"\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_length_type = NN\n",
     ":8: package_length_type: must be one of c, C, n, N, v, V; got \"NN\"", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_eof = '123456789'\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_eof = 123456789\n",
     ":8: package_eof: must be 1 to 8 bytes, got \"123456789\"", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_eof = "
        "'\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\x09'\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_eof = "
        "\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\x09\n",
     ":8: package_eof: must be 1 to 8 bytes, got*", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_eof = '\\q'\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_eof = \\q\n",
     ":8: package_eof: unknown escape \\q (use \\r \\n \\t \\0 \\\\ \\xHH)", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_eof = '\\x4'\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_eof = \\x4\n",
     ":8: package_eof: \\x needs two hex digits", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_eof = 'a\\'\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_eof = a\\\n",
     ":8: package_eof: ends with a lone backslash", NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\npackage_eof = \"\"\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\npackage_eof =\n",
     ":8: package_eof: must be 1 to 8 bytes, got \"\"", NULL},
    {TB "[[listen]]\nport = 2\npackage_max_length = 10\n",
     IB "[listen.listen1]\nport = 2\npackage_max_length = 10\n",
     ":7: package_max_length: must be -1 (inherit) or between 64 and 1073741824, got 10", NULL},
    {TB "[[listen]]\nhost = \"1.2.3.4\"\npath = \"x.sock\"\n",
     IB "[listen.listen1]\nhost = 1.2.3.4\npath = x.sock\n",
     ":6: host: not allowed with path (a unix socket has no host)", NULL},
    {TB "[[listen]]\nhost = \"a b\"\nport = 2\n", IB "[listen.listen1]\nhost = a b\nport = 2\n",
     ":6: host: must be an IP address or a host name, got \"a b\"", NULL},
    {TB "[[listen]]\nname = \"a b\"\nport = 2\n", IB "[listen.a b]\nport = 2\n",
     ":6: name: must match [A-Za-z0-9_-]{1,63}, got \"a b\"",
     ":5: name: must match [A-Za-z0-9_-]{1,63}, got \"a b\""},
    {TB "[[listen]]\nport = 2\nhandler = \"a/b\"\n",
     IB "[listen.listen1]\nport = 2\nhandler = a/b\n",
     ":7: handler: must match [A-Za-z0-9_-]{1,63}, got \"a/b\"", NULL},
    /* issue 11: hosts that are neither a literal nor a host name */
    {TB "[[listen]]\nhost = \"300.1.1.1\"\nport = 2\n",
     IB "[listen.listen1]\nhost = 300.1.1.1\nport = 2\n",
     ":6: host: not a valid IPv4 address (a.b.c.d, each 0 to 255): \"300.1.1.1\"", NULL},
    {TB "[[listen]]\nhost = \"127.1\"\nport = 2\n", IB "[listen.listen1]\nhost = 127.1\nport = 2\n",
     ":6: host: not a valid IPv4 address (a.b.c.d, each 0 to 255): \"127.1\"", NULL},
    {TB "[[listen]]\nhost = \"1.2.3.4.5\"\nport = 2\n",
     IB "[listen.listen1]\nhost = 1.2.3.4.5\nport = 2\n",
     ":6: host: not a valid IPv4 address (a.b.c.d, each 0 to 255): \"1.2.3.4.5\"", NULL},
    {TB "[[listen]]\nhost = \"::g\"\nport = 2\n", IB "[listen.listen1]\nhost = ::g\nport = 2\n",
     ":6: host: not a valid IPv6 address: \"::g\"", NULL},
    {TB "[[listen]]\nhost = \"[localhost]\"\nport = 2\n",
     IB "[listen.listen1]\nhost = [localhost]\nport = 2\n",
     ":6: host: not a valid IPv6 address: \"localhost\"", NULL},
    {TB "[[listen]]\nhost = \"-a.example\"\nport = 2\n",
     IB "[listen.listen1]\nhost = -a.example\nport = 2\n",
     ":6: host: must be an IP address or a host name, got \"-a.example\"", NULL},
    {TB "[[listen]]\nhost = \"a..example\"\nport = 2\n",
     IB "[listen.listen1]\nhost = a..example\nport = 2\n",
     ":6: host: must be an IP address or a host name, got \"a..example\"", NULL},
    {TB "[[listen]]\nhost = \"a_b.example\"\nport = 2\n",
     IB "[listen.listen1]\nhost = a_b.example\nport = 2\n",
     ":6: host: must be an IP address or a host name, got \"a_b.example\"", NULL},
    /* issue 11: framing options protocols/frame.c refuses (every frame would be malformed) */
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\nopen_length_check = true\n"
        "package_body_offset = 1000\npackage_max_length = 64\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\nopen_length_check = true\n"
        "package_body_offset = 1000\npackage_max_length = 64\n",
     ":10: package_max_length: package_max_length (64) is shorter than the frame header (1000 "
     "bytes: package_body_offset = 1000): every frame would be refused as malformed",
     NULL},
    {TB "[[listen]]\ntype = \"tcp\"\nport = 2\nopen_length_check = true\n"
        "package_max_length = 64\npackage_body_offset = 1000\n",
     IB "[listen.listen1]\ntype = tcp\nport = 2\nopen_length_check = true\n"
        "package_max_length = 64\npackage_body_offset = 1000\n",
     ":10: package_body_offset: package_max_length (64) is shorter than the frame header (1000 "
     "bytes: package_body_offset = 1000): every frame would be refused as malformed",
     NULL},
    {TB "package_max_length = 64\n[[listen]]\ntype = \"tcp\"\nport = 2\nopen_length_check = true\n"
        "package_length_type = \"n\"\npackage_length_offset = 63\n",
     IB
     "package_max_length = 64\n[listen.listen1]\ntype = tcp\nport = 2\nopen_length_check = true\n"
     "package_length_type = n\npackage_length_offset = 63\n",
     ":11: package_length_offset: package_max_length (64, from [server]) is shorter than the "
     "frame header (65 bytes: package_length_offset 63 + a 2-byte length field): every frame "
     "would be refused as malformed",
     NULL},
    /* socket_mode */
    {TB "[[listen]]\nport = 2\nsocket_mode = \"0660\"\n",
     IB "[listen.listen1]\nport = 2\nsocket_mode = 0660\n",
     ":7: socket_mode: only valid on unix-socket listeners (this one has no path)", NULL},
    {TB "[[listen]]\npath = \"a.sock\"\nsocket_mode = \"0668\"\n",
     IB "[listen.listen1]\npath = a.sock\nsocket_mode = 0668\n",
     ":7: socket_mode: must be an octal string of permission bits such as \"0660\", got \"0668\"",
     NULL},
    {TB "[[listen]]\npath = \"a.sock\"\nsocket_mode = \"1777\"\n",
     IB "[listen.listen1]\npath = a.sock\nsocket_mode = 1777\n",
     ":7: socket_mode: must be an octal string of permission bits such as \"0660\", got \"1777\"",
     NULL},
    {TB "[[listen]]\npath = \"a.sock\"\nsocket_mode = \"66\"\n",
     IB "[listen.listen1]\npath = a.sock\nsocket_mode = 66\n",
     ":7: socket_mode: must be an octal string of permission bits such as \"0660\", got \"66\"",
     NULL},
    {TB "[[listen]]\npath = \"a.sock\"\nsocket_mode = 660\n", NULL,
     ":7: socket_mode: must be an octal string such as \"0660\", got integer", NULL},
    /* duplicate addresses and names */
    {TB "[[listen]]\ntype = \"tcp\"\nport = 9501\n",
     IB "[listen.listen1]\ntype = tcp\nport = 9501\n",
     ":7: port: 127.0.0.1:9501 (tcp) already used by listener \"listen0\" (line 1)", NULL},
    {TB "[[listen]]\nhost = \"0.0.0.0\"\nport = 9501\n",
     IB "[listen.listen1]\nhost = 0.0.0.0\nport = 9501\n",
     ":7: port: 0.0.0.0:9501 (tcp) already used by listener \"listen0\" (line 1)", NULL},
    {TB "[[listen]]\nhost = \"::1\"\nport = 9\n[[listen]]\nhost = \"[::1]\"\nport = 9\n",
     IB "[listen.listen1]\nhost = ::1\nport = 9\n[listen.listen2]\nhost = [::1]\nport = 9\n",
     ":10: port: [::1]:9 (tcp) already used by listener \"listen1\" (line 5)", NULL},
    {TB "[[listen]]\npath = \"a.sock\"\n[[listen]]\npath = \"./a.sock\"\n",
     IB "[listen.listen1]\npath = a.sock\n[listen.listen2]\npath = ./a.sock\n", ":8: path: *",
     NULL},
    {TB "[[listen]]\ntype = \"tcp\"\npath = \"a.sock\"\n[[listen]]\ntype = \"udp\"\npath = "
        "\"a.sock\"\n",
     IB
     "[listen.listen1]\ntype = tcp\npath = a.sock\n[listen.listen2]\ntype = udp\npath = a.sock\n",
     ":10: path: *", NULL},
    {TB
     "[[listen]]\nhost = \"::\"\nport = 9\n[[listen]]\ntype = \"tcp\"\nhost = \"::1\"\nport = 9\n",
     IB
     "[listen.listen1]\nhost = ::\nport = 9\n[listen.listen2]\ntype = tcp\nhost = ::1\nport = 9\n",
     ":11: port: [::1]:9 (tcp) already used by listener \"listen1\" (line 5)", NULL},
    {TB "[[listen]]\nname = \"listen0\"\nport = 2\n", IB "[listen.listen0]\nport = 2\n",
     ":6: name: duplicate listener name \"listen0\" (first at line 1)",
     ":5: name: duplicate listener name \"listen0\" (first at line 1)"},
    /* tables */
    {TB "[[table]]\nname = \"t\"\nsize = 0\ncolumns = [{name = \"a\", type = \"int\"}]\n",
     IB "[table.t]\n;\nsize = 0\ncolumn.a = int\n",
     ":7: size: must be between 1 and 16777216, got 0", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 16777217\ncolumns = [{name = \"a\", type = \"int\"}]\n",
     IB "[table.t]\n;\nsize = 16777217\ncolumn.a = int\n",
     ":7: size: must be between 1 and 16777216, got 16777217", NULL},
    {TB
     "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"s\", type = \"string\", size = 0}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.s = string:0\n",
     ":8: size: must be between 1 and 65535, got 0",
     ":8: column.s: must be between 1 and 65535, got 0"},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"s\", type = \"string\", size = "
        "65536}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.s = string:65536\n",
     ":8: size: must be between 1 and 65535, got 65536",
     ":8: column.s: must be between 1 and 65535, got 65536"},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"s\", type = \"string\"}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.s = string\n",
     ":8: columns: column \"s\": size is required for string columns", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"s\", type = \"int\", size = 4}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.s = int:4\n",
     ":8: columns: column \"s\": size only applies to string columns", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"s\", type = \"text\"}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.s = text\n",
     ":8: type: must be one of int, float, string; got \"text\"",
     ":8: column.s: must be one of int, float, string; got \"text\""},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"a.b\", type = \"int\"}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.a.b = int\n",
     ":8: name: must match [A-Za-z0-9_-]{1,63}, got \"a.b\"",
     ":8: column.a.b: must match [A-Za-z0-9_-]{1,63}, got \"a.b\""},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"a\", type = \"int\"},\n"
        "{name = \"a\", type = \"float\"}]\n",
     IB "[table.t]\n;\nsize = 1\ncolumn.a = int\ncolumn.a = float\n",
     ":9: columns: duplicate column name \"a\" (first at line 8)", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"a\", type = \"int\", x = 1}]\n",
     NULL, ":8: x: unknown key in a column", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [\"a\"]\n", NULL,
     ":8: columns: each column must be a table like {name = \"x\", type = \"int\"}", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 1\n", IB "[table.t]\n;\nsize = 1\n",
     ":5: columns: at least one column is required", NULL},
    {TB "[[table]]\nname = \"t\"\ncolumns = [{name = \"a\", type = \"int\"}]\n",
     IB "[table.t]\ncolumn.a = int\n", ":5: size: required (rows)", NULL},
    {TB "[[table]]\nsize = 1\ncolumns = [{name = \"a\", type = \"int\"}]\n", NULL,
     ":5: name: required", NULL},
    {TB "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"a\", type = \"int\"}]\n"
        "[[table]]\nname = \"t\"\nsize = 1\ncolumns = [{name = \"a\", type = \"int\"}]\n",
     NULL, ":10: name: duplicate table name \"t\" (first at line 5)", NULL},
    {NULL, IB "[table.t]\nsize = 1\ncolumn.a = int\n[table.t]\nsize = 1\ncolumn.a = int\n",
     ":8: name: duplicate table name \"t\" (first at line 5)", NULL},
    {NULL, IB "[table]\nsize = 1\n", ":5: table: needs a name: [table.NAME]", NULL},
    {NULL, IB "[table.t]\nsize = 1\ncolumns = a\n",
     ":7: columns: unknown key in [table] (INI declares columns as column.NAME = TYPE)", NULL},
    /* cron */
    {TB "[[cron]]\nname = \"c\"\nhandler = \"h\"\ninterval_ms = 5\nschedule = \"* * * * *\"\n",
     IB "[cron.c]\n;\nhandler = h\ninterval_ms = 5\nschedule = * * * * *\n",
     ":9: schedule: interval_ms and schedule are exclusive", NULL},
    {TB "[[cron]]\nname = \"c\"\nhandler = \"h\"\n", IB "[cron.c]\n;\nhandler = h\n",
     ":5: interval_ms: required (or schedule)", NULL},
    {TB "[[cron]]\nname = \"c\"\nhandler = \"h\"\nschedule = \"* * * *\"\n",
     IB "[cron.c]\n;\nhandler = h\nschedule = * * * *\n",
     ":8: schedule: must have 5 fields (minute hour day-of-month month day-of-week), got 4", NULL},
    {TB "[[cron]]\nname = \"c\"\nhandler = \"h\"\ninterval_ms = 0\n",
     IB "[cron.c]\n;\nhandler = h\ninterval_ms = 0\n",
     ":8: interval_ms: must be between 1 and 31536000000, got 0", NULL},
    {TB "[[cron]]\nname = \"c\"\ninterval_ms = 1\n", IB "[cron.c]\n;\ninterval_ms = 1\n",
     ":5: handler: required (a function exported by the app)", NULL},
    {TB "[[cron]]\nname = \"c\"\nhandler = \"1h\"\ninterval_ms = 1\n",
     IB "[cron.c]\n;\nhandler = 1h\ninterval_ms = 1\n",
     ":7: handler: must match [A-Za-z_][A-Za-z0-9_]{0,62}, got \"1h\"", NULL},
    {TB "[[cron]]\nname = \"c\"\nhandler = \"h\"\ninterval_ms = 1\nglobal_lock = true\n",
     IB "[cron.c]\n;\nhandler = h\ninterval_ms = 1\nglobal_lock = true\n",
     ":9: global_lock: needs redis set in [server]", NULL},
    {TB "[[cron]]\nname = \"c\"\nhandler = \"h\"\ninterval_ms = 1\n"
        "[[cron]]\nname = \"c\"\nhandler = \"h\"\ninterval_ms = 1\n",
     IB "[cron.c]\n;\nhandler = h\ninterval_ms = 1\n[cron.c]\n;\nhandler = h\ninterval_ms = 1\n",
     ":10: name: duplicate cron name \"c\" (first at line 5)",
     ":9: name: duplicate cron name \"c\" (first at line 5)"},
    /* process */
    {TB "[[process]]\nname = \"p\"\nhandler = \"h\"\nnum = 0\n",
     IB "[process.p]\n;\nhandler = h\nnum = 0\n", ":8: num: must be between 1 and 256, got 0",
     NULL},
    {TB "[[process]]\nname = \"p\"\nhandler = \"h\"\nnum = 257\n",
     IB "[process.p]\n;\nhandler = h\nnum = 257\n", ":8: num: must be between 1 and 256, got 257",
     NULL},
    {TB "[[process]]\nname = \"p\"\n", IB "[process.p]\n",
     ":5: handler: required (a function exported by the app)", NULL},
    {TB "[[process]]\nname = \"p\"\nhandler = \"h\"\n[[process]]\nname = \"p\"\nhandler = \"h\"\n",
     IB "[process.p]\n;\nhandler = h\n[process.p]\n;\nhandler = h\n",
     ":9: name: duplicate process name \"p\" (first at line 5)",
     ":8: name: duplicate process name \"p\" (first at line 5)"},
    /* syntax */
    {TB "worker_num = = 2\n", IB "garbage line\n", ":5: *",
     ":5: expected 'key = value' or '[section]'"},
    {TB "app = \"b.so\"\n", IB "app = b.so\n", ":5: *", ":5: app: set twice (first at line 4)"},
    {TB "[server]\nworker_num = 1\n", IB "[server]\nworker_num = 1\n", ":5: *",
     ":5: server: section repeated (first at line 3)"},
    {NULL, IB "[server\n", ":5: section header without ']'", NULL},
    {NULL, IB "[listen.b]\nname = c\nport = 3\n",
     ":6: name: comes from the section header [listen.NAME]", NULL},
    /* TLS (the files are read by srv check and start, not by load: see test_tls_config.py) */
    {TB "[[listen]]\nport = 9502\nssl_cert_file = \"c.pem\"\n",
     IB "[listen.b]\nport = 9502\nssl_cert_file = c.pem\n", ":7: ssl_cert_file: needs ssl = true",
     NULL},
    {TB "[[listen]]\ntype = \"udp\"\nport = 9502\nssl = true\n",
     IB "[listen.b]\ntype = udp\nport = 9502\nssl = true\n",
     ":8: ssl: only valid on http and tcp listeners (this one is udp)", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\n", IB "[listen.b]\nport = 9502\nssl = true\n",
     ":7: ssl_cert_file: required with ssl = true", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "ssl_protocols = \"TLSv1.2 SSLv3\"\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "ssl_protocols = TLSv1.2 SSLv3\n",
     ":10: ssl_protocols: unknown protocol \"SSLv3\" (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "ssl_protocols = [\"TLSv1.3\", 1]\n",
     NULL, ":10: ssl_protocols: must be a non-empty list of strings", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "ssl_verify_optional = true\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "ssl_verify_optional = true\n",
     ":10: ssl_verify_optional: needs ssl_verify_peer = true", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "ssl_verify_peer = true\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "ssl_verify_peer = true\n",
     ":10: ssl_client_cert_file: required with ssl_verify_peer = true*", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "ssl_alpn = \"x\"\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "ssl_alpn = x\n",
     ":10: ssl_alpn: only valid on tcp listeners (this one is http)", NULL},
    {TB "[[listen.sni]]\nhost = \"a.test\"\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n",
     IB "[listen.listen0.sni.a.test]\nssl_cert_file = c\nssl_key_file = k\n",
     ":5: sni: listener \"listen0\" has no ssl = true", NULL},
    {NULL, IB "[listen.zz.sni.a.test]\nssl_cert_file = c\nssl_key_file = k\n",
     ":5: sni: [listen.zz.sni.a.test] must follow the section of listener \"zz\"", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "[[listen.sni]]\nhost = \"a..b\"\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "[listen.b.sni.a..b]\nssl_cert_file = c\nssl_key_file = k\n",
     ":11: host: must be a host name or *.domain, got \"a..b\"", ":10:*"},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "[[listen.sni]]\nhost = \"a.test\"\nssl_cert_file = \"c\"\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "[listen.b.sni.a.test]\nssl_cert_file = c\n",
     ":10: ssl_key_file: required", NULL},
    {TB "[[listen]]\nport = 9502\nssl = true\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "[[listen.sni]]\nhost = \"A.test\"\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n"
        "[[listen.sni]]\nhost = \"a.TEST\"\nssl_cert_file = \"c\"\nssl_key_file = \"k\"\n",
     IB "[listen.b]\nport = 9502\nssl = true\nssl_cert_file = c\nssl_key_file = k\n"
        "[listen.b.sni.A.test]\nssl_cert_file = c\nssl_key_file = k\n"
        "[listen.b.sni.a.TEST]\nssl_cert_file = c\nssl_key_file = k\n",
     ":15: host: duplicate SNI host \"a.test\" on listener \"listen1\" (first at line 10)",
     ":13: host: duplicate SNI host \"a.test\" on listener \"b\" (first at line 10)"},
};

/* Runs on every exit, so a failing case leaves no files behind either. */
static void cleanup(void)
{
    static const char *const names[] = {"srv.toml", "srv.ini", "ok.toml"};
    char path[512];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int n = snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        if (n > 0 && (size_t)n < sizeof(path))
            unlink(path);
    }
    snprintf(path, sizeof(path), "%s/sub", tmpdir);
    rmdir(path);
    rmdir(tmpdir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

typedef int (*load_fn)(const char *, srv__config_t *, srv__config_error_t *);

/* Load text from a file of that name with load and check the formatted error. */
static void expect_with(load_fn load, const char *name, const char *text, const char *want,
                        int index)
{
    char path[512], got[1024], full[1024];
    srv__config_error_t err;
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    write_file(path, text);
    int rc = load(path, cfg, &err);
    unlink(path);
    free(cfg);
    srv__config_error_format(&err, got, sizeof(got));
    snprintf(full, sizeof(full), "%s%s", path, want);
    size_t n = strlen(full);
    bool ok = rc == -EINVAL &&
              (full[n - 1] == '*' ? strncmp(got, full, n - 1) == 0 : strcmp(got, full) == 0);
    if (!ok) {
        fprintf(stderr, "case %d (%s), rc %d:\n--- text\n%s--- want\n%s\n--- got\n%s\n", index,
                name, rc, text, full, got);
        exit(1);
    }
}

static void expect(const char *name, const char *text, const char *want, int index)
{
    expect_with(srv__config_load, name, text, want, index);
}

/* text loads with load; returns the config (freed by the caller). */
static srv__config_t *expect_ok(load_fn load, const char *name, const char *text)
{
    char path[512], buf[1024];
    srv__config_error_t err;
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    write_file(path, text);
    int rc = load(path, cfg, &err);
    unlink(path);
    if (rc != 0)
        fprintf(stderr, "--- text\n%s--- unexpected error\n%s\n", text,
                srv__config_error_format(&err, buf, sizeof(buf)));
    CHECK_INT(rc, ==, 0);
    return cfg;
}

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const err_case_t *c = &cases[i];
        if (c->toml != NULL)
            expect("srv.toml", c->toml, c->want, (int)i);
        if (c->ini != NULL)
            expect("srv.ini", c->ini, c->want_ini != NULL ? c->want_ini : c->want, (int)i);
    }
}

/* issue 11: INI took lines of at most 197 characters (inih's fixed buffer); a path of 511 bytes
 * is valid in TOML and must be in INI. A longer line is refused, not split. */
static void test_long_line(void)
{
    char text[4096];
    int n = snprintf(text, sizeof(text), IB "pid_file = ");
    memset(text + n, 'a', INI_LINE_MAX);
    snprintf(text + n + INI_LINE_MAX, sizeof(text) - (size_t)n - INI_LINE_MAX,
             "\nworker_num = 0\n");
    expect("srv.ini", text, ":5: line too long (1035 bytes, max 1024)", -1);
    /* Short enough for the reader, too long for the key: the key says so. */
    n = snprintf(text, sizeof(text), IB "pid_file = /");
    memset(text + n, 'a', 600);
    snprintf(text + n + 600, sizeof(text) - (size_t)n - 600, "\n");
    expect("srv.ini", text, ":5: pid_file: too long (max 511 bytes), got*", -1);
}

/* Things that look like conflicts but are fine. */
static void test_not_errors(void)
{
    static const char *const toml[] = {
        /* udp and tcp may share a port; v4 and v6 loopback may too */
        TB "[[listen]]\ntype = \"udp\"\nport = 9501\n[[listen]]\nhost = \"::1\"\nport = 9501\n",
        /* a tcp listener may carry eof framing; -1 overrides are fine */
        TB "[[listen]]\ntype = \"tcp\"\nport = 2\nopen_eof_split = true\npackage_eof = '\\n'\n"
           "package_max_length = -1\nheartbeat_idle_time = -1\n",
        /* a unix listener (no port) */
        TB "[[listen]]\ntype = \"tcp\"\npath = \"/tmp/x.sock\"\n",
        /* host names (resolved only by srv__config_check), a fully qualified one too */
        TB "[[listen]]\nhost = \"localhost\"\nport = 2\n[[listen]]\nhost = \"a-1.example.\"\n"
           "port = 3\n",
        /* a header exactly as long as package_max_length; socket_mode on a unix socket */
        TB "[[listen]]\ntype = \"tcp\"\nport = 2\nopen_length_check = true\n"
           "package_body_offset = 64\npackage_max_length = 64\n"
           "[[listen]]\npath = \"s.sock\"\nsocket_mode = \"600\"\n",
        /* v4 and v6 wildcards on one port: IPV6_V6ONLY keeps them apart */
        TB "[[listen]]\nhost = \"0.0.0.0\"\nport = 2\n[[listen]]\nhost = \"::\"\nport = 2\n",
        /* observability: "-" is stderr, not a file name; IPv6 admin address */
        TB "access_log = \"-\"\naccess_log_format = \"json\"\nadmin_server = \"[::1]:9100\"\n"
           "admin_token = \"t\"\nrequest_slowlog_timeout = 50\n[[listen]]\nport = 2\n"
           "access_log = false\n",
        /* privilege drop: a user alone, with a group, a group alone; "/" as chroot */
        TB "user = \"nobody\"\n",
        TB "user = \"nobody\"\ngroup = \"nogroup\"\nchroot = \"/\"\n",
        TB "group = \"nogroup\"\n",
    };
    char path[512], buf[1024];
    snprintf(path, sizeof(path), "%s/ok.toml", tmpdir);
    srv__config_t *cfg = malloc(sizeof(*cfg));
    CHECK(cfg != NULL);
    for (size_t i = 0; i < sizeof(toml) / sizeof(toml[0]); i++) {
        srv__config_error_t err;
        write_file(path, toml[i]);
        int rc = srv__config_load(path, cfg, &err);
        if (rc != 0)
            fprintf(stderr, "case %zu: %s\n", i, srv__config_error_format(&err, buf, sizeof(buf)));
        CHECK_INT(rc, ==, 0);
    }
    unlink(path);
    free(cfg);
    cfg = expect_ok(srv__config_load, "ok.toml", toml[2]);
    CHECK_STR(cfg->listen[1].path, "/tmp/x.sock");
    CHECK_STR(cfg->listen[1].host, "");
    free(cfg);
    cfg = expect_ok(srv__config_load, "ok.toml", toml[4]);
    CHECK_INT(cfg->listen[2].socket_mode, ==, 0600);
    CHECK_INT(cfg->listen[1].socket_mode, ==, 0666);
    free(cfg);
    cfg = expect_ok(srv__config_load, "ok.toml", toml[6]);
    CHECK_STR(cfg->access_log, "-");
    CHECK_INT(cfg->access_log_format, ==, SRV_ALOG_JSON);
    CHECK_STR(cfg->admin_server, "[::1]:9100");
    CHECK_INT(cfg->request_slowlog_timeout, ==, 50);
    CHECK(cfg->listen[0].access_log && !cfg->listen[1].access_log);
    free(cfg);
    cfg = expect_ok(srv__config_load, "ok.toml", toml[8]);
    CHECK_STR(cfg->user, "nobody");
    CHECK_STR(cfg->group, "nogroup");
    CHECK_STR(cfg->chroot, "/");
    free(cfg);
}

/* issue 11: a table larger than RAM plus swap (start failed with ENOMEM mapping the region) is
 * refused with the line of its size; so are tables that only together are too large. */
static void test_table_memory(void)
{
    struct sysinfo si;
    CHECK_INT(sysinfo(&si), ==, 0);
    double limit = ((double)si.totalram + (double)si.totalswap) * si.mem_unit;
    /* 16 Mi rows of a 65535-byte string: 80 + 65544 bytes a row, 1.0 TiB in all. */
    const char *big = TB "[[table]]\nname = \"t\"\nsize = 16777216\n"
                         "columns = [{name = \"s\", type = \"string\", size = 65535}]\n";
    const char *big_ini = IB "[table.t]\nsize = 16777216\ncolumn.s = string:65535\n";
    if (limit < 16777216.0 * 65624) {
        expect("srv.toml", big,
               ":7: size: table \"t\" needs 1.0 TiB of shared memory (16777216 rows of 65624 "
               "bytes), more than this machine's RAM and swap*",
               -1);
        expect("srv.ini", big_ini, ":6: size: table \"t\" needs 1.0 TiB*", -1);
    }
    /* Two tables of 60% each. */
    double rows = limit * 0.6 / 65624;
    if (rows >= 1 && rows <= 16777216) {
        char text[1024];
        snprintf(text, sizeof(text),
                 TB "[[table]]\nname = \"a\"\nsize = %.0f\n"
                    "columns = [{name = \"s\", type = \"string\", size = 65535}]\n"
                    "[[table]]\nname = \"b\"\nsize = %.0f\n"
                    "columns = [{name = \"s\", type = \"string\", size = 65535}]\n",
                 rows, rows);
        expect("srv.toml", text, ":11: size: the tables up to \"b\" need *", -1);
        /* One of them alone is fine. */
        snprintf(text, sizeof(text),
                 TB "[[table]]\nname = \"a\"\nsize = %.0f\n"
                    "columns = [{name = \"s\", type = \"string\", size = 65535}]\n",
                 rows);
        free(expect_ok(srv__config_load, "ok.toml", text));
    }
}

/* issue 11: what only name resolution shows, found by srv__config_check() (`srv check`) and left
 * alone by srv__config_load() (stop, reload and info must work while DNS is down). */
static void test_check_addresses(void)
{
    static const struct {
        const char *toml, *want;
    } checks[] = {
        {TB "[[listen]]\nname = \"a\"\nhost = \"localhost\"\nport = 9\n"
            "[[listen]]\nname = \"b\"\nhost = \"127.0.0.1\"\nport = 9\n",
         ":12: port: 127.0.0.1:9 (tcp) already used by listener \"a\" (line 5): 127.0.0.1 and "
         "localhost (127.0.0.1) are one address"},
        {TB "[[listen]]\nname = \"a\"\nhost = \"0.0.0.0\"\nport = 9\n"
            "[[listen]]\nname = \"b\"\ntype = \"tcp\"\nhost = \"localhost\"\nport = 9\n",
         ":13: port: localhost:9 (tcp) already used by listener \"a\" (line 5): 0.0.0.0 covers "
         "localhost (127.0.0.1)"},
        {TB "[[listen]]\nname = \"a\"\nhost = \"nonexistent.invalid\"\nport = 9\n",
         ":7: host: cannot resolve \"nonexistent.invalid\": *"},
        {TB "[[listen]]\npath = \"sub/../a.sock\"\n[[listen]]\npath = \"a.sock\"\n", ":8: path: *"},
    };
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
    CHECK_INT(mkdir(sub, 0700), ==, 0);
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        expect_with(srv__config_check, "srv.toml", checks[i].toml, checks[i].want, (int)i);
        free(expect_ok(srv__config_load, "ok.toml", checks[i].toml));
    }
    rmdir(sub);
    /* udp and tcp on one name and port; a name on another port. */
    free(expect_ok(srv__config_check, "ok.toml",
                   TB "[[listen]]\ntype = \"udp\"\nhost = \"localhost\"\nport = 9501\n"
                      "[[listen]]\nhost = \"localhost\"\nport = 9502\n"));
}

/* Each HTTP/2 setting in [server] and on a listener, in both syntaxes: one past either end of
 * its range is refused with the range (and -1 on a listener only), either end is taken. */
static const struct {
    const char *key;
    long long min, max;
    size_t server_off, listen_off;
} h2_keys[] = {
    {"http2_max_concurrent_streams", 1, 1048576,
     offsetof(srv__config_t, http2_max_concurrent_streams),
     offsetof(srv__listen_config_t, http2_max_concurrent_streams)},
    {"http2_initial_window_size", 1, 2147483647, offsetof(srv__config_t, http2_initial_window_size),
     offsetof(srv__listen_config_t, http2_initial_window_size)},
    {"http2_max_frame_size", 16384, 16777215, offsetof(srv__config_t, http2_max_frame_size),
     offsetof(srv__listen_config_t, http2_max_frame_size)},
    {"http2_max_header_list_size", 1024, 16777216,
     offsetof(srv__config_t, http2_max_header_list_size),
     offsetof(srv__listen_config_t, http2_max_header_list_size)},
    {"http2_idle_timeout", 1, 86400, offsetof(srv__config_t, http2_idle_timeout),
     offsetof(srv__listen_config_t, http2_idle_timeout)},
};

/* key = v in [server] (line 5) or on a second listener with HTTP/2 (line 8), as TOML or INI. */
static void h2_text(char *buf, size_t size, bool ini, bool listener, const char *key, long long v)
{
    const char *open = ini ? "[listen.listen1]" : "[[listen]]";
    if (listener)
        snprintf(buf, size, "%s%s\nport = 2\nopen_http2_protocol = true\n%s = %lld\n",
                 ini ? IB : TB, open, key, v);
    else
        snprintf(buf, size, "%s%s = %lld\n%s\nport = 2\nopen_http2_protocol = true\n",
                 ini ? IB : TB, key, v, open);
}

static void test_http2_ranges(void)
{
    char text[512], want[256];
    for (size_t k = 0; k < sizeof(h2_keys) / sizeof(h2_keys[0]); k++) {
        const char *key = h2_keys[k].key;
        long long bad[] = {h2_keys[k].min - 1, h2_keys[k].max + 1, -1, -2};
        for (int ini = 0; ini < 2; ini++) {
            const char *name = ini ? "srv.ini" : "srv.toml";
            for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
                for (int listener = 0; listener < 2; listener++) {
                    if (listener && bad[b] == -1)
                        continue; /* inherits */
                    h2_text(text, sizeof(text), ini, listener, key, bad[b]);
                    snprintf(want, sizeof(want),
                             ":%d: %s: must be %sbetween %lld and %lld, got %lld", listener ? 8 : 5,
                             key, listener ? "-1 (inherit) or " : "", h2_keys[k].min,
                             h2_keys[k].max, bad[b]);
                    expect(name, text, want, (int)k);
                }
            }
            long long good[] = {h2_keys[k].min, h2_keys[k].max, -1};
            for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
                for (int listener = good[g] == -1; listener < 2; listener++) {
                    h2_text(text, sizeof(text), ini, listener, key, good[g]);
                    srv__config_t *cfg = expect_ok(srv__config_load, name, text);
                    const char *base = listener ? (const char *)&cfg->listen[1] : (const char *)cfg;
                    int64_t v;
                    memcpy(&v, base + (listener ? h2_keys[k].listen_off : h2_keys[k].server_off),
                           sizeof(v));
                    CHECK_INT(v, ==, good[g]);
                    free(cfg);
                }
            }
        }
    }
}

static void test_format(void)
{
    srv__config_error_t err = {.file = "/x/srv.toml",
                              .line = 7,
                              .key = "worker_num",
                              .msg = "must be between 1 and 1024, got 0"};
    char buf[1024];
    CHECK_STR(srv__config_error_format(&err, buf, sizeof(buf)),
              "/x/srv.toml:7: worker_num: must be between 1 and 1024, got 0");
    err.line = 0;
    CHECK_STR(srv__config_error_format(&err, buf, sizeof(buf)),
              "/x/srv.toml: worker_num: must be between 1 and 1024, got 0");
    err.key[0] = '\0';
    CHECK_STR(srv__config_error_format(&err, buf, sizeof(buf)),
              "/x/srv.toml: must be between 1 and 1024, got 0");
    err.line = 3;
    CHECK_STR(srv__config_error_format(&err, buf, sizeof(buf)),
              "/x/srv.toml:3: must be between 1 and 1024, got 0");
    CHECK_STR(srv__config_error_format(&err, buf, 5), "/x/s");
}

int main(void)
{
    (void)check_failures_;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/srv-config-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    atexit(cleanup);
    test_format();
    test_cases();
    test_long_line();
    test_not_errors();
    test_table_memory();
    test_check_addresses();
    test_http2_ranges();
    return 0;
}
