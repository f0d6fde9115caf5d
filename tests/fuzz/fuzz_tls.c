/* libFuzzer target for protocols/tls.c (server side, OpenSSL over memory buffers): a client's
 * bytes, fed in pieces cut where the first byte says, into a connection on a listener context
 * with a throwaway P-256 certificate made by `openssl req` on the first run (in a temporary
 * folder removed at exit), ALPN "h2 http/1.1" and session tickets on. After every piece it
 * reads until more is needed and drains what the handshake wrote. Beyond "no crash" it checks:
 * PLAIN only for the first piece and only when it starts like an HTTP method; no plaintext and
 * no established session from bytes that cannot have completed a handshake (the client's
 * Finished needs the server's key share); once FAILED it stays FAILED (reads and writes) with a
 * reason; output only grows by what the state machine wrote and drains to nothing.
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "protocols/tls.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_tls: could not remove %s\n", g_dir);
}

static srv__tls_ctx_t *context(void)
{
    static srv__tls_ctx_t *ctx;
    if (ctx != NULL)
        return ctx;
    snprintf(g_dir, sizeof(g_dir), "/tmp/srv-fuzz-tls-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        abort();
    atexit(cleanup);
    char cmd[512], cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/cert.pem", g_dir);
    snprintf(key, sizeof(key), "%s/key.pem", g_dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -keyout %s -out %s 2>/dev/null",
             key, cert);
    if (system(cmd) != 0)
        abort();
    srv__tls_conf_t conf = {.cert = {NULL, cert, key},
                            .protocols = SRV__TLS_DEFAULT_PROTOCOLS,
                            .ciphers = "",
                            .ciphersuites = "",
                            .client_cert_file = "",
                            .session_tickets = true,
                            .alpn = "h2 http/1.1"};
    srv__tls_problem_t why;
    ctx = srv__tls_ctx_new(&conf, &why);
    if (ctx == NULL) {
        fprintf(stderr, "fuzz_tls: %s: %s\n", why.key, why.msg);
        abort();
    }
    return ctx;
}

static void drain(srv__tls_t *t)
{
    const char *p;
    size_t n;
    while ((n = srv__tls_out(t, &p)) > 0) {
        volatile char sink = p[0] ^ p[n - 1]; /* ASan: the whole span is readable */
        (void)sink;
        srv__tls_out_consume(t, n > 1000 ? n / 2 : n);
    }
}

/* Feed one piece and read what it makes; false once the connection is over. */
static bool piece(srv__tls_t *t, const char *p, size_t n, bool first, bool *failed)
{
    int rc = srv__tls_feed(t, p, n);
    if (rc == SRV__TLS_PLAIN) {
        if (!first || n == 0 || p[0] < 'A' || p[0] > 'Z')
            abort();
        return false;
    }
    if (rc != 0)
        abort();
    char buf[4096];
    ssize_t r;
    while ((r = srv__tls_read(t, buf, sizeof(buf))) > 0)
        abort(); /* plaintext without a handshake */
    drain(t);
    if (srv__tls_established(t))
        abort();
    if (r == SRV__TLS_FAILED) {
        const char *why = srv__tls_reason(t);
        if (why == NULL || srv__tls_read(t, buf, sizeof(buf)) != SRV__TLS_FAILED ||
            srv__tls_write(t, "x", 1) != SRV__TLS_FAILED)
            abort();
        *failed = true;
        drain(t);
        return false;
    }
    if (r != SRV__TLS_EOF && r != SRV__TLS_CLOSED)
        abort();
    return r == SRV__TLS_EOF;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t step = data[0];
    data++;
    size--;
    srv__tls_t *t = srv__tls_new(context());
    if (t == NULL)
        abort();
    bool failed = false;
    size_t off = 0, k = step ? step : size; /* 0: the whole input at once */
    while (off < size) {
        size_t n = size - off < k ? size - off : k;
        char *p = malloc(n); /* a private copy per read: the state machine borrows it */
        if (p == NULL)
            abort();
        memcpy(p, data + off, n);
        bool go_on = piece(t, p, n, off == 0, &failed);
        free(p);
        off += n;
        if (!go_on)
            break;
    }
    srv__tls_shutdown(t);
    drain(t);
    srv__tls_free(t);
    return 0;
}
