/* protocols/tls_ctx.c: every problem a listener's files can have, SNI selection, ALPN, session
 * tickets across contexts sharing a key ring (and not after two rotations), client verification
 * and expiry. Certificates are made at test time in a temporary folder; handshakes run between
 * an OpenSSL client and SSL_new(default context) over a BIO pair, no sockets. */
#include "protocols/tls_internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char dir[64];
static char path_buf[16][256];
static int path_n;

static const char *P(const char *name)
{
    char *p = path_buf[path_n++ % 16];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* CA; leaves for localhost (3650 days), other.example, *.wild.example, soon.example (3 days);
 * a stray key; a file that is not PEM. */
static void make_certs(void)
{
    char cmd[4096];
    snprintf(
        cmd, sizeof(cmd),
        "cd %s && exec >log 2>&1 && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
        "-out ca.pem -days 3650 -subj /CN=testca && "
        "for h in localhost:3650 other.example:3650 '*.wild.example:3650' soon.example:3; do "
        "n=${h%%:*}; d=${h##*:}; f=$(echo \"$n\" | tr -d '*'); "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout \"$f.key\" "
        "-out \"$f.csr\" -subj \"/CN=$n\" && printf 'subjectAltName=DNS:%%s\\n' \"$n\" >ext && "
        "openssl x509 -req -in \"$f.csr\" -CA ca.pem -CAkey ca.key -CAcreateserial -days $d "
        "-extfile ext -out \"$f.pem\" || exit 1; done && "
        "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out stray.key && "
        "echo hello >junk.pem",
        dir);
    if (system(cmd) != 0)
        SKIP("the openssl command failed");
}

/* A self-signed certificate that expired yesterday, made with the API (the 3.0 command line
 * cannot back-date one). */
static void make_expired(void)
{
    FILE *f = fopen(P("localhost.key"), "r");
    CHECK(f != NULL);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -10 * 86400L);
    X509_gmtime_adj(X509_getm_notAfter(x), -86400L);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"expired", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    CHECK(X509_sign(x, k, EVP_sha256()) > 0);
    f = fopen(P("expired.pem"), "w");
    CHECK(f != NULL && PEM_write_X509(f, x) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static srv__tls_conf_t base_conf(void)
{
    srv__tls_conf_t c = {0};
    c.cert.cert_file = P("localhost.pem");
    c.cert.key_file = P("localhost.key");
    c.protocols = SRV__TLS_DEFAULT_PROTOCOLS;
    c.ciphers = c.ciphersuites = c.alpn = "";
    c.session_tickets = true;
    return c;
}

static void expect_problem(const srv__tls_conf_t *c, int sni, const char *key, const char *msg)
{
    srv__tls_problem_t why = {0};
    srv__tls_ctx_t *t = srv__tls_ctx_new(c, &why);
    if (t != NULL)
        fprintf(stderr, "expected %s: %s\n", key, msg);
    CHECK(t == NULL);
    CHECK_INT(why.sni, ==, sni);
    CHECK_STR(why.key, key);
    if (strstr(why.msg, msg) == NULL)
        fprintf(stderr, "got \"%s\", want \"%s\"\n", why.msg, msg);
    CHECK(strstr(why.msg, msg) != NULL);
}

static void test_problems(void)
{
    srv__tls_conf_t c = base_conf();
    c.cert.cert_file = P("missing.pem");
    expect_problem(&c, -1, "ssl_cert_file", "No such file or directory");
    c.cert.cert_file = P("junk.pem");
    expect_problem(&c, -1, "ssl_cert_file", "no PEM certificate chain in");
    c = base_conf();
    c.cert.key_file = P("missing.key");
    expect_problem(&c, -1, "ssl_key_file", "No such file or directory");
    c.cert.key_file = P("junk.pem");
    expect_problem(&c, -1, "ssl_key_file", "no PEM private key in");
    c.cert.key_file = P("stray.key");
    expect_problem(&c, -1, "ssl_key_file", "does not match the certificate in");
    c = base_conf();
    c.ciphers = "NOPE-NOTHING";
    expect_problem(&c, -1, "ssl_ciphers", "no cipher match");
    c = base_conf();
    c.ciphersuites = "TLS_NOPE";
    expect_problem(&c, -1, "ssl_ciphersuites", "no cipher match");
    c = base_conf();
    c.verify_peer = true;
    c.client_cert_file = P("missing-ca.pem");
    expect_problem(&c, -1, "ssl_client_cert_file", "cannot read");
    c.client_cert_file = P("junk.pem");
    expect_problem(&c, -1, "ssl_client_cert_file", "no PEM CA certificate in");
    c = base_conf();
    srv__tls_cert_conf_t sni[2] = {
        {"other.example", P("other.example.pem"), P("other.example.key")},
        {"x.example", P("other.example.pem"), P("stray.key")}};
    c.sni = sni;
    c.nsni = 2;
    expect_problem(&c, 1, "ssl_key_file", "does not match the certificate in");
    c.protocols = 0;
    c.nsni = 0;
    expect_problem(&c, -1, "ssl_protocols", "no protocol version");
    c = base_conf();
    c.alpn =
        "h2 "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    expect_problem(&c, -1, "ssl_alpn", "too long");
}

/* ---- handshakes over a BIO pair ---- */

typedef struct {
    const char *sni;  /* NULL: none */
    const char *alpn; /* wire format, NULL: none */
    SSL_SESSION *session;
    const char *cert, *key; /* client certificate */
    int max_version;        /* 0: the client's default */
} client_opts_t;

typedef struct {
    int ok;            /* both sides finished */
    char subject[128]; /* the server certificate's CN */
    char alpn[32];
    bool reused;
    SSL_SESSION *session; /* the client's, after reading the tickets */
} result_t;

static void handshake(srv__tls_ctx_t *t, const client_opts_t *o, result_t *r)
{
    memset(r, 0, sizeof(*r));
    SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
    CHECK(SSL_CTX_load_verify_locations(cc, P("ca.pem"), NULL) == 1);
    SSL_CTX_set_verify(cc, SSL_VERIFY_PEER, NULL);
    if (o->max_version != 0)
        CHECK(SSL_CTX_set_max_proto_version(cc, o->max_version) == 1);
    if (o->cert != NULL) {
        CHECK(SSL_CTX_use_certificate_file(cc, o->cert, SSL_FILETYPE_PEM) == 1);
        CHECK(SSL_CTX_use_PrivateKey_file(cc, o->key, SSL_FILETYPE_PEM) == 1);
    }
    SSL *c = SSL_new(cc), *s = SSL_new(srv__tls_ctx_default(t));
    BIO *cb, *sb;
    CHECK(BIO_new_bio_pair(&cb, 0, &sb, 0) == 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (o->sni != NULL)
        SSL_set_tlsext_host_name(c, o->sni);
    if (o->alpn != NULL)
        SSL_set_alpn_protos(c, (const unsigned char *)o->alpn, (unsigned)strlen(o->alpn));
    if (o->session != NULL)
        SSL_set_session(c, o->session);
    int cr = 0, sr = 0;
    for (int i = 0; i < 50 && (cr != 1 || sr != 1); i++) {
        if (cr != 1 && (cr = SSL_do_handshake(c)) <= 0 &&
            SSL_get_error(c, cr) != SSL_ERROR_WANT_READ)
            break;
        if (sr != 1 && (sr = SSL_do_handshake(s)) <= 0 &&
            SSL_get_error(s, sr) != SSL_ERROR_WANT_READ)
            break;
    }
    r->ok = cr == 1 && sr == 1;
    if (r->ok) {
        char buf[16];
        CHECK(SSL_read(c, buf, sizeof(buf)) <= 0); /* takes the TLS 1.3 tickets */
        /* a connection freed before a shutdown marks its session not resumable */
        SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        X509 *peer = SSL_get1_peer_certificate(c);
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, r->subject,
                                  sizeof(r->subject));
        X509_free(peer);
        const unsigned char *a;
        unsigned alen;
        SSL_get0_alpn_selected(s, &a, &alen);
        snprintf(r->alpn, sizeof(r->alpn), "%.*s", (int)alen, (const char *)a);
        r->reused = SSL_session_reused(s);
        r->session = SSL_get1_session(c);
    }
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cc);
}

static srv__tls_ctx_t *ctx_new(const srv__tls_conf_t *c)
{
    srv__tls_problem_t why = {0};
    srv__tls_ctx_t *t = srv__tls_ctx_new(c, &why);
    if (t == NULL)
        fprintf(stderr, "ctx: %d %s: %s\n", why.sni, why.key, why.msg);
    CHECK(t != NULL);
    return t;
}

static void test_sni_alpn(void)
{
    srv__tls_conf_t c = base_conf();
    srv__tls_cert_conf_t sni[2] = {
        {"Other.Example", P("other.example.pem"), P("other.example.key")},
        {"*.wild.example", P(".wild.example.pem"), P(".wild.example.key")}};
    c.sni = sni;
    c.nsni = 2;
    c.alpn = "h2 http/1.1";
    srv__tls_ctx_t *t = ctx_new(&c);
    static const struct {
        const char *sni, *cn;
    } cases[] = {{NULL, "localhost"},
                 {"localhost", "localhost"},
                 {"other.example", "other.example"},
                 {"OTHER.example", "other.example"},
                 {"a.wild.example", "*.wild.example"},
                 {"b.a.wild.example", "localhost"},
                 {"wild.example", "localhost"},
                 {"unknown.example", "localhost"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        result_t r;
        client_opts_t o = {.sni = cases[i].sni};
        /* verification of the name is the client's business: here only the CA chain */
        handshake(t, &o, &r);
        CHECK(r.ok);
        CHECK_STR(r.subject, cases[i].cn);
        CHECK_STR(r.alpn, "");
        SSL_SESSION_free(r.session);
    }
    result_t r;
    client_opts_t o = {.alpn = "\x08http/1.1\x02h2"};
    handshake(t, &o, &r);
    CHECK(r.ok);
    CHECK_STR(r.alpn, "h2"); /* the server's preference */
    SSL_SESSION_free(r.session);
    o.alpn = "\x03"
             "foo";
    handshake(t, &o, &r);
    CHECK(r.ok); /* nothing in common: on without ALPN */
    CHECK_STR(r.alpn, "");
    SSL_SESSION_free(r.session);
    srv__tls_ctx_unref(t);
}

static void test_tickets(void)
{
    static srv__tls_keyring_t ring;
    CHECK_INT(srv__tls_keyring_init(&ring), ==, 0);
    srv__tls_conf_t c = base_conf();
    c.keyring = &ring;
    srv__tls_ctx_t *a = ctx_new(&c), *b = ctx_new(&c);
    result_t r1, r2;
    client_opts_t o = {0};
    handshake(a, &o, &r1);
    CHECK(r1.ok && !r1.reused && r1.session != NULL);
    o.session = r1.session;
    handshake(b, &o, &r2); /* another process's contexts, the same ring */
    CHECK(r2.ok && r2.reused);
    SSL_SESSION_free(r2.session);
    CHECK_INT(srv__tls_keyring_rotate(&ring), ==, 0);
    handshake(b, &o, &r2); /* the previous key still decrypts */
    CHECK(r2.ok && r2.reused);
    SSL_SESSION_free(r2.session);
    CHECK_INT(srv__tls_keyring_rotate(&ring), ==, 0);
    handshake(b, &o, &r2); /* rotated twice: a full handshake */
    CHECK(r2.ok && !r2.reused);
    SSL_SESSION_free(r2.session);
    SSL_SESSION_free(r1.session);
    /* TLS 1.2 tickets (curl --tls-max 1.2) go through the same keys */
    o = (client_opts_t){.max_version = TLS1_2_VERSION};
    handshake(a, &o, &r1);
    CHECK(r1.ok && !r1.reused && r1.session != NULL);
    o.session = r1.session;
    handshake(b, &o, &r2);
    CHECK(r2.ok && r2.reused);
    SSL_SESSION_free(r2.session);
    SSL_SESSION_free(r1.session);
    srv__tls_ctx_unref(a);
    srv__tls_ctx_unref(b);
}

static void test_verify(void)
{
    srv__tls_conf_t c = base_conf();
    c.verify_peer = true;
    c.client_cert_file = P("ca.pem");
    srv__tls_ctx_t *t = ctx_new(&c);
    result_t r;
    client_opts_t o = {0};
    handshake(t, &o, &r);
    CHECK(!r.ok); /* no client certificate where one is required */
    o.cert = P("other.example.pem");
    o.key = P("other.example.key");
    handshake(t, &o, &r);
    CHECK(r.ok);
    SSL_SESSION_free(r.session);
    srv__tls_ctx_unref(t);
    c.verify_optional = true;
    t = ctx_new(&c);
    o.cert = NULL;
    handshake(t, &o, &r);
    CHECK(r.ok);
    SSL_SESSION_free(r.session);
    srv__tls_ctx_unref(t);
}

/* ssl_protocols bounds the versions; a mask with a hole builds (the hole is switched off). */
static void test_versions(void)
{
    srv__tls_conf_t c = base_conf();
    c.protocols = SRV__TLS_V1_3;
    srv__tls_ctx_t *t = ctx_new(&c);
    result_t r;
    client_opts_t o = {.max_version = TLS1_2_VERSION};
    handshake(t, &o, &r);
    CHECK(!r.ok);
    o.max_version = 0;
    handshake(t, &o, &r);
    CHECK(r.ok);
    SSL_SESSION_free(r.session);
    srv__tls_ctx_unref(t);
    c.protocols = SRV__TLS_V1_0 | SRV__TLS_V1_2;
    t = ctx_new(&c);
    CHECK(SSL_CTX_get_options(srv__tls_ctx_default(t)) & SSL_OP_NO_TLSv1_1);
    CHECK_INT(SSL_CTX_get_max_proto_version(srv__tls_ctx_default(t)), ==, TLS1_2_VERSION);
    srv__tls_ctx_unref(t);
}

static int nwarn;
static long warn_left[4];
static int warn_sni[4];

static void warn(void *arg, int sni, const char *file, long days_left)
{
    (void)arg;
    (void)file;
    warn_sni[nwarn] = sni;
    warn_left[nwarn++] = days_left;
}

static void test_expiring(void)
{
    srv__tls_conf_t c = base_conf();
    srv__tls_cert_conf_t sni[2] = {{"soon.example", P("soon.example.pem"), P("soon.example.key")},
                                   {"expired", P("expired.pem"), P("localhost.key")}};
    c.sni = sni;
    c.nsni = 2;
    srv__tls_ctx_t *t = ctx_new(&c);
    CHECK_INT(srv__tls_ctx_expiring(t, 14, warn, NULL), ==, 2);
    CHECK_INT(warn_sni[0], ==, 0);
    CHECK(warn_left[0] >= 2 && warn_left[0] <= 3);
    CHECK_INT(warn_sni[1], ==, 1);
    CHECK(warn_left[1] < 0);
    srv__tls_ctx_unref(t);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/srv-tls-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    make_certs();
    make_expired();
    CHECK_INT(srv__tls_protocol_bit("TLSv1.2", 7), ==, SRV__TLS_V1_2);
    CHECK_INT(srv__tls_protocol_bit("TLSv1", 5), ==, SRV__TLS_V1_0);
    CHECK_INT(srv__tls_protocol_bit("TLSv1.4", 7), ==, 0);
    test_problems();
    test_sni_alpn();
    test_tickets();
    test_verify();
    test_versions();
    test_expiring();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return 0;
}
