/* A TLS listener's contexts (see tls.h): one SSL_CTX per certificate (the listener's own, then
 * one per SNI host), all with the same versions, ciphers, client verification, ALPN and session
 * tickets; the server-name callback of the first moves a connection to the one its name picks.
 * Every file is read and checked when the contexts are built, so `srv check`, start and reload
 * refuse a bad certificate with the key at fault, never a handshake later. */
#include "protocols/tls.h"
#include "protocols/tls_internal.h"
#include "protocols/tls_keyring.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

/* A ticket's lifetime hint: one key-rotation period (core/net/tls_keys.h), so a ticket is never
 * offered past the time its key is still accepted. */
#define TICKET_LIFETIME_S 3600

struct srv__tls_ctx {
    _Atomic int refs;
    int n;           /* contexts: [0] the listener's own, [1 + k] SNI entry k */
    SSL_CTX **ctx;
    char **host;     /* lower-case; NULL for [0] */
    char **file;     /* each one's certificate file, for expiry warnings */
    unsigned char alpn[256]; /* the protocols offered, in ALPN's wire format */
    size_t alpn_len;
    const srv__tls_keyring_t *ring;
};

unsigned srv__tls_protocol_bit(const char *name, size_t len)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"TLSv1", SRV__TLS_V1_0},
                 {"TLSv1.1", SRV__TLS_V1_1},
                 {"TLSv1.2", SRV__TLS_V1_2},
                 {"TLSv1.3", SRV__TLS_V1_3}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
            return names[i].bit;
    return 0;
}

static void problem(srv__tls_problem_t *why, int sni, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill why, with OpenSSL's reason for the failure appended when it has one. */
static void problem(srv__tls_problem_t *why, int sni, const char *key, const char *fmt, ...)
{
    why->sni = sni;
    snprintf(why->key, sizeof(why->key), "%s", key);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (reason && n > 0 && (size_t)n < sizeof(why->msg))
        snprintf(why->msg + n, sizeof(why->msg) - (size_t)n, " (%s)", reason);
    ERR_clear_error();
}

/* ---- callbacks ---- */

static srv__tls_ctx_t *owner(const SSL *s)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
}

/* "*.example.org" matches exactly one label before ".example.org". */
static bool host_matches(const char *pattern, const char *name)
{
    if (strcasecmp(pattern, name) == 0)
        return true;
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    const char *dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot, pattern + 1) == 0;
}

static int on_servername(SSL *s, int *alert, void *arg)
{
    (void)alert;
    srv__tls_ctx_t *c = arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    int pick = 0;
    for (int i = 1; i < c->n && pick == 0; i++) /* exact names first */
        if (strcasecmp(c->host[i], name) == 0)
            pick = i;
    for (int i = 1; i < c->n && pick == 0; i++)
        if (host_matches(c->host[i], name))
            pick = i;
    if (pick > 0) {
        SSL_set_SSL_CTX(s, c->ctx[pick]);
        SSL_set_verify(s, SSL_CTX_get_verify_mode(c->ctx[pick]), NULL);
    }
    return SSL_TLSEXT_ERR_OK; /* an unknown name gets the listener's own certificate */
}

static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)s;
    srv__tls_ctx_t *c = arg;
    if (c->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    /* The server's order of preference, as nginx does; no common protocol: go on without. */
    if (SSL_select_next_proto((unsigned char **)out, outlen, c->alpn, (unsigned)c->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

static int mac_key(EVP_MAC_CTX *hctx, const srv__tls_ticket_key_t *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* Session tickets sealed with the shared key ring, so any process resumes them: 1 made or
 * accepted, 2 accepted with the previous key (a fresh ticket is sent), 0 unknown key (a full
 * handshake), -1 failure. */
static int on_ticket(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    srv__tls_ctx_t *c = owner(s);
    srv__tls_ticket_key_t k;
    int rc;
    if (enc) {
        srv__tls_keyring_current(c->ring, &k);
        memcpy(name, k.name, sizeof(k.name));
        rc = RAND_bytes(iv, 16) == 1 &&
                     EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
                     mac_key(hctx, &k) == 1
                 ? 1
                 : -1;
    } else {
        int found = srv__tls_keyring_find(c->ring, name, &k);
        if (found == SRV__TLS_KEY_UNKNOWN)
            return 0;
        rc = mac_key(hctx, &k) == 1 &&
                     EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1
                 ? (found == SRV__TLS_KEY_OLD ? 2 : 1)
                 : -1;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---- building ---- */

/* conf->alpn ("h2 http/1.1") into ALPN's wire format. */
static int alpn_wire(srv__tls_ctx_t *c, const char *list, srv__tls_problem_t *why)
{
    c->alpn_len = 0;
    for (const char *p = list ? list : ""; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        if (n > 255 || c->alpn_len + 1 + n > sizeof(c->alpn)) {
            problem(why, -1, "ssl_alpn", "protocol list too long");
            return -1;
        }
        c->alpn[c->alpn_len++] = (unsigned char)n;
        memcpy(c->alpn + c->alpn_len, p, n);
        c->alpn_len += n;
        p += n;
    }
    return 0;
}

static int versions(SSL_CTX *x, unsigned mask)
{
    static const int v[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    static const long no[] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2,
                              SSL_OP_NO_TLSv1_3};
    int lo = -1, hi = -1;
    for (int i = 0; i < 4; i++)
        if (mask & (1u << i)) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    if (lo < 0 || SSL_CTX_set_min_proto_version(x, v[lo]) != 1 ||
        SSL_CTX_set_max_proto_version(x, v[hi]) != 1)
        return -1;
    for (int i = lo; i <= hi; i++) /* a version left out between two named ones */
        if (!(mask & (1u << i)))
            SSL_CTX_set_options(x, no[i]);
    /* OpenSSL 3's default security level refuses TLS 1.0 and 1.1: naming them means them. */
    if (lo < 2)
        SSL_CTX_set_security_level(x, 0);
    return 0;
}

/* The certificate and its key; problems name the key at fault. */
static int load_cert(SSL_CTX *x, const srv__tls_cert_conf_t *cc, int sni, srv__tls_problem_t *why)
{
    if (access(cc->cert_file, R_OK) != 0) {
        problem(why, sni, "ssl_cert_file", "cannot read %s: %s", cc->cert_file, strerror(errno));
        return -1;
    }
    if (access(cc->key_file, R_OK) != 0) {
        problem(why, sni, "ssl_key_file", "cannot read %s: %s", cc->key_file, strerror(errno));
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(x, cc->cert_file) != 1) {
        problem(why, sni, "ssl_cert_file", "no PEM certificate chain in %s", cc->cert_file);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(x, cc->key_file, SSL_FILETYPE_PEM) != 1) {
        problem(why, sni, "ssl_key_file", "no PEM private key in %s", cc->key_file);
        return -1;
    }
    if (SSL_CTX_check_private_key(x) != 1) {
        problem(why, sni, "ssl_key_file", "the key in %s does not match the certificate in %s",
                cc->key_file, cc->cert_file);
        return -1;
    }
    return 0;
}

static int verify_clients(SSL_CTX *x, const srv__tls_conf_t *conf, srv__tls_problem_t *why)
{
    if (!conf->verify_peer)
        return 0;
    const char *ca = conf->client_cert_file ? conf->client_cert_file : "";
    STACK_OF(X509_NAME) *names = NULL;
    if (access(ca, R_OK) != 0) {
        problem(why, -1, "ssl_client_cert_file", "cannot read %s: %s", ca, strerror(errno));
        return -1;
    }
    if (SSL_CTX_load_verify_locations(x, ca, NULL) != 1 ||
        (names = SSL_load_client_CA_file(ca)) == NULL) {
        problem(why, -1, "ssl_client_cert_file", "no PEM CA certificate in %s", ca);
        return -1;
    }
    SSL_CTX_set_client_CA_list(x, names); /* the CAs a client is asked for */
    SSL_CTX_set_verify(x,
                       SSL_VERIFY_PEER | (conf->verify_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                       NULL);
    return 0;
}

static int sessions(SSL_CTX *x, srv__tls_ctx_t *c, const srv__tls_conf_t *conf)
{
    static const unsigned char sid[] = "srv";
    SSL_CTX_set_session_id_context(x, sid, sizeof(sid) - 1);
    SSL_CTX_set_timeout(x, TICKET_LIFETIME_S);
    if (!conf->session_tickets) {
        /* Session ids then, resumable in this process only. */
        SSL_CTX_set_options(x, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_SERVER);
        return 0;
    }
    SSL_CTX_set_num_tickets(x, 1);
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF); /* tickets carry the state */
    if (c->ring && SSL_CTX_set_tlsext_ticket_key_evp_cb(x, on_ticket) != 1)
        return -1;
    return 0;
}

/* Context k of c (0: the listener's own) for certificate cc. */
static int build_one(srv__tls_ctx_t *c, int k, const srv__tls_conf_t *conf,
                     const srv__tls_cert_conf_t *cc, srv__tls_problem_t *why)
{
    int sni = k - 1;
    SSL_CTX *x = SSL_CTX_new(TLS_server_method());
    if (x == NULL) {
        problem(why, sni, "ssl", "cannot make a TLS context");
        return -1;
    }
    c->ctx[k] = x;
    SSL_CTX_set_app_data(x, c);
    SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
    if (versions(x, conf->protocols) < 0) {
        problem(why, -1, "ssl_protocols", "no protocol version OpenSSL can use");
        return -1;
    }
    if (conf->ciphers && conf->ciphers[0] && SSL_CTX_set_cipher_list(x, conf->ciphers) != 1) {
        problem(why, -1, "ssl_ciphers", "no cipher OpenSSL knows in \"%s\"", conf->ciphers);
        return -1;
    }
    if (conf->ciphersuites && conf->ciphersuites[0] &&
        SSL_CTX_set_ciphersuites(x, conf->ciphersuites) != 1) {
        problem(why, -1, "ssl_ciphersuites", "no TLS 1.3 suite OpenSSL knows in \"%s\"",
                conf->ciphersuites);
        return -1;
    }
    if (load_cert(x, cc, sni, why) < 0 || verify_clients(x, conf, why) < 0)
        return -1;
    if (sessions(x, c, conf) < 0) {
        problem(why, -1, "ssl_session_tickets", "cannot install the shared ticket keys");
        return -1;
    }
    SSL_CTX_set_alpn_select_cb(x, on_alpn, c);
    if (k == 0) {
        SSL_CTX_set_tlsext_servername_callback(x, on_servername);
        SSL_CTX_set_tlsext_servername_arg(x, c);
    }
    c->file[k] = strdup(cc->cert_file);
    c->host[k] = cc->host ? strdup(cc->host) : NULL;
    if (c->file[k] == NULL || (cc->host && c->host[k] == NULL)) {
        problem(why, sni, "ssl", "out of memory");
        return -1;
    }
    return 0;
}

srv__tls_ctx_t *srv__tls_ctx_new(const srv__tls_conf_t *conf, srv__tls_problem_t *why)
{
    memset(why, 0, sizeof(*why));
    why->sni = -1;
    srv__tls_ctx_t *c = calloc(1, sizeof(*c));
    int n = 1 + (conf->nsni > 0 ? conf->nsni : 0);
    if (c == NULL || (c->ctx = calloc((size_t)n, sizeof(*c->ctx))) == NULL ||
        (c->host = calloc((size_t)n, sizeof(*c->host))) == NULL ||
        (c->file = calloc((size_t)n, sizeof(*c->file))) == NULL) {
        problem(why, -1, "ssl", "out of memory");
        if (c)
            c->n = 0;
        srv__tls_ctx_unref(c);
        return NULL;
    }
    c->n = n;
    atomic_init(&c->refs, 1);
    c->ring = conf->keyring;
    if (alpn_wire(c, conf->alpn, why) < 0 || build_one(c, 0, conf, &conf->cert, why) < 0)
        goto fail;
    for (int k = 1; k < n; k++)
        if (build_one(c, k, conf, &conf->sni[k - 1], why) < 0)
            goto fail;
    return c;
fail:
    srv__tls_ctx_unref(c);
    return NULL;
}

void srv__tls_ctx_ref(srv__tls_ctx_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void srv__tls_ctx_unref(srv__tls_ctx_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < c->n; i++) {
        SSL_CTX_free(c->ctx[i]);
        free(c->host[i]);
        free(c->file[i]);
    }
    free(c->ctx);
    free(c->host);
    free(c->file);
    free(c);
}

SSL_CTX *srv__tls_ctx_default(srv__tls_ctx_t *c)
{
    return c->ctx[0];
}

int srv__tls_ctx_expiring(const srv__tls_ctx_t *c, int days,
                          void (*warn)(void *arg, int sni, const char *file, long days_left),
                          void *arg)
{
    int count = 0;
    for (int i = 0; i < c->n; i++) {
        X509 *x = SSL_CTX_get0_certificate(c->ctx[i]);
        int d = 0, s = 0;
        if (x == NULL || ASN1_TIME_diff(&d, &s, NULL, X509_get0_notAfter(x)) != 1)
            continue;
        long left = d < 0 || (d == 0 && s < 0) ? -1 : d;
        if (left < days) {
            warn(arg, i - 1, c->file[i], left);
            count++;
        }
    }
    return count;
}
