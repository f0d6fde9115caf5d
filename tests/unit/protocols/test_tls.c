/* protocols/tls.c: one server connection driven byte by byte against an OpenSSL client over
 * memory BIOs (no socket): the handshake in pieces of every size, what it negotiated, records
 * both ways (larger than one record), close_notify, plaintext HTTP spotted on the first byte,
 * a corrupted record failing with a reason, output kept still while it is being sent. */
#include "protocols/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "check.h"

static char g_dir[64];

typedef struct pair {
    srv__tls_t *srv;
    SSL *cli;
    BIO *cli_in, *cli_out; /* what the client reads, what it wrote */
} pair_t;

/* Move the server's output to the client (in pieces of step bytes). */
static void srv_to_cli(pair_t *p, size_t step)
{
    const char *b;
    size_t n;
    while ((n = srv__tls_out(p->srv, &b)) > 0) {
        size_t k = n < step ? n : step;
        CHECK_INT(BIO_write(p->cli_in, b, (int)k), ==, (long long)k);
        srv__tls_out_consume(p->srv, k);
    }
}

/* Feed what the client wrote to the server, step bytes at a time; plaintext into buf. */
static size_t cli_to_srv(pair_t *p, size_t step, char *buf, size_t cap)
{
    char wire[65536];
    size_t got = 0;
    int n;
    while ((n = BIO_read(p->cli_out, wire, sizeof(wire))) > 0) {
        for (int off = 0; off < n; off += (int)step) {
            size_t k = (size_t)n - (size_t)off < step ? (size_t)n - (size_t)off : step;
            CHECK_INT(srv__tls_feed(p->srv, wire + off, k), ==, 0);
            ssize_t r;
            while ((r = srv__tls_read(p->srv, buf + got, cap - got)) > 0)
                got += (size_t)r;
            CHECK_INT(r, ==, SRV__TLS_EOF);
        }
    }
    return got;
}

static void handshake(pair_t *p, SSL_CTX *cctx, srv__tls_ctx_t *sctx, size_t step)
{
    p->srv = srv__tls_new(sctx);
    CHECK(p->srv != NULL);
    p->cli = SSL_new(cctx);
    p->cli_in = BIO_new(BIO_s_mem());
    p->cli_out = BIO_new(BIO_s_mem());
    SSL_set_bio(p->cli, p->cli_in, p->cli_out);
    SSL_set_tlsext_host_name(p->cli, "localhost");
    SSL_set_connect_state(p->cli);
    char buf[16];
    for (int round = 0; round < 10 && !SSL_is_init_finished(p->cli); round++) {
        int r = SSL_do_handshake(p->cli);
        CHECK(r == 1 || SSL_get_error(p->cli, r) == SSL_ERROR_WANT_READ);
        CHECK_INT(cli_to_srv(p, step, buf, sizeof(buf)), ==, 0);
        srv_to_cli(p, step);
    }
    CHECK(SSL_is_init_finished(p->cli));
    CHECK(srv__tls_established(p->srv));
}

static void pair_free(pair_t *p)
{
    SSL_free(p->cli);
    srv__tls_free(p->srv);
}

static void test_handshake_and_records(SSL_CTX *cctx, srv__tls_ctx_t *sctx, size_t step)
{
    pair_t p;
    handshake(&p, cctx, sctx, step);
    srv_tls_t info;
    srv__tls_describe(p.srv, &info);
    CHECK(info.on);
    CHECK(strcmp(info.version, "TLSv1.3") == 0);
    CHECK(strcmp(info.sni, "localhost") == 0);
    CHECK(info.cipher[0] != '\0');
    CHECK(info.client_subject[0] == '\0');
    CHECK(!srv__tls_resumed(p.srv));
    /* Client to server: 100 KB, several records. */
    enum { N = 100000 };
    static char msg[N], got[N + 16];
    for (size_t i = 0; i < N; i++)
        msg[i] = (char)(i * 31);
    size_t w = 0;
    CHECK_INT(SSL_write_ex(p.cli, msg, N, &w), ==, 1);
    CHECK_INT(cli_to_srv(&p, step, got, sizeof(got)), ==, N);
    CHECK(memcmp(got, msg, N) == 0);
    /* Server to client: its output does not move while "in flight" (taken, not consumed). */
    CHECK_INT(srv__tls_write(p.srv, msg, N), ==, N);
    const char *b1;
    size_t n1 = srv__tls_out(p.srv, &b1);
    CHECK(n1 > N);
    CHECK_INT(srv__tls_write(p.srv, "more", 4), ==, 4);
    const char *b2;
    CHECK_INT(srv__tls_out(p.srv, &b2), ==, (long long)n1);
    CHECK(b1 == b2);
    srv_to_cli(&p, step);
    size_t r = 0, total = 0;
    while (SSL_read_ex(p.cli, got + total, sizeof(got) - total, &r) == 1)
        total += r;
    CHECK_INT(total, ==, N + 4);
    CHECK(memcmp(got, msg, N) == 0 && memcmp(got + N, "more", 4) == 0);
    /* close_notify from the client: the end of the stream. */
    SSL_shutdown(p.cli);
    char wire[256];
    int n = BIO_read(p.cli_out, wire, sizeof(wire));
    CHECK(n > 0);
    CHECK_INT(srv__tls_feed(p.srv, wire, (size_t)n), ==, 0);
    CHECK_INT(srv__tls_read(p.srv, got, sizeof(got)), ==, SRV__TLS_CLOSED);
    pair_free(&p);
}

static void test_plain_and_garbage(SSL_CTX *cctx, srv__tls_ctx_t *sctx)
{
    srv__tls_t *t = srv__tls_new(sctx);
    CHECK_INT(srv__tls_feed(t, "GET / HTTP/1.1\r\n", 16), ==, SRV__TLS_PLAIN);
    srv__tls_free(t);
    t = srv__tls_new(sctx);
    char buf[64];
    CHECK_INT(srv__tls_feed(t, "\x16\x03\x01\x00\x05hello", 10), ==, 0);
    CHECK_INT(srv__tls_read(t, buf, sizeof(buf)), ==, SRV__TLS_FAILED);
    CHECK(strlen(srv__tls_reason(t)) > 0);
    const char *alert;
    CHECK(srv__tls_out(t, &alert) > 0); /* the alert OpenSSL wrote, for the peer */
    srv__tls_free(t);
    /* A record corrupted after the handshake. */
    pair_t p;
    handshake(&p, cctx, sctx, 1 << 20);
    size_t w;
    CHECK_INT(SSL_write_ex(p.cli, "hello", 5, &w), ==, 1);
    char wire[256];
    int n = BIO_read(p.cli_out, wire, sizeof(wire));
    CHECK(n > 10);
    wire[n - 3] ^= 0x55;
    CHECK_INT(srv__tls_feed(p.srv, wire, (size_t)n), ==, 0);
    CHECK_INT(srv__tls_read(p.srv, buf, sizeof(buf)), ==, SRV__TLS_FAILED);
    CHECK(strstr(srv__tls_reason(p.srv), "decrypt") != NULL ||
          strstr(srv__tls_reason(p.srv), "mac") != NULL);
    CHECK_INT(srv__tls_write(p.srv, "x", 1), ==, SRV__TLS_FAILED);
    pair_free(&p);
}

int main(void)
{
    (void)check_failures_;
    snprintf(g_dir, sizeof(g_dir), "/tmp/srv-tls-unit-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    char cmd[512], cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/cert.pem", g_dir);
    snprintf(key, sizeof(key), "%s/key.pem", g_dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -keyout %s -out %s 2>/dev/null",
             key, cert);
    CHECK_INT(system(cmd), ==, 0);
    srv__tls_conf_t conf = {.cert = {NULL, cert, key},
                            .protocols = SRV__TLS_DEFAULT_PROTOCOLS,
                            .ciphers = "",
                            .ciphersuites = "",
                            .client_cert_file = "",
                            .session_tickets = true,
                            .alpn = "http/1.1"};
    srv__tls_problem_t why;
    srv__tls_ctx_t *sctx = srv__tls_ctx_new(&conf, &why);
    if (sctx == NULL) {
        fprintf(stderr, "%s: %s\n", why.key, why.msg);
        CHECK(0);
    }
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    CHECK_INT(SSL_CTX_load_verify_locations(cctx, cert, NULL), ==, 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    static const size_t steps[] = {1, 7, 100, 1 << 20};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        test_handshake_and_records(cctx, sctx, steps[i]);
    test_plain_and_garbage(cctx, sctx);
    SSL_CTX_free(cctx);
    srv__tls_ctx_unref(sctx);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    CHECK_INT(system(cmd), ==, 0);
    return 0;
}
