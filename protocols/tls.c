/* One TLS connection, server side: OpenSSL drives the handshake and the records through a BIO of
 * our own that reads the ciphertext the caller is feeding (no copy into a memory BIO) and
 * appends what OpenSSL writes to a buffer the caller sends. Two output buffers: `out` is what
 * the caller is sending (it never moves while a send is in flight), `pend` collects what
 * OpenSSL writes meanwhile; they swap when `out` has gone. */
#include "protocols/tls.h"
#include "protocols/tls_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/base/buf.h"

#define OUT_INITIAL 4096

struct srv__tls {
    SSL *ssl;
    srv__tls_ctx_t *ctx;
    /* The ciphertext being fed (valid during srv__tls_feed + srv__tls_read). */
    const char *in;
    size_t in_len;
    srv__buf_t out, pend;
    size_t out_off;
    bool seen_first;  /* the first byte was checked for plaintext HTTP */
    bool established; /* handshake done */
    bool failed;
    char reason[160];
};

/* ---- the BIO between OpenSSL and our buffers ---- */

static int bio_write(BIO *b, const char *data, int len)
{
    srv__tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (srv__buf_append(&t->pend, data, (size_t)len, OUT_INITIAL, SIZE_MAX) < 0)
        return -1;
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    srv__tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING: {
        srv__tls_t *t = BIO_get_data(b);
        return t ? (long)t->in_len : 0;
    }
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "srv");
    if (m == NULL)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
}

/* ---- life ---- */

srv__tls_t *srv__tls_new(srv__tls_ctx_t *ctx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, bio_method_make);
    if (bio_method == NULL)
        return NULL;
    srv__tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(srv__tls_ctx_default(ctx));
    BIO *b = BIO_new(bio_method);
    if (t->ssl == NULL || b == NULL) {
        BIO_free(b);
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    SSL_set_accept_state(t->ssl);
    srv__tls_ctx_ref(ctx);
    t->ctx = ctx;
    return t;
}

void srv__tls_free(srv__tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    srv__tls_ctx_unref(t->ctx);
    srv__buf_free(&t->out);
    srv__buf_free(&t->pend);
    free(t);
}

/* ---- bytes in ---- */

/* A request line starts with an upper-case method; a TLS connection starts with a handshake
 * record (22). */
static bool looks_plain_http(char c)
{
    return c >= 'A' && c <= 'Z';
}

int srv__tls_feed(srv__tls_t *t, const char *data, size_t len)
{
    if (!t->seen_first && len > 0) {
        t->seen_first = true;
        if (looks_plain_http(data[0]))
            return SRV__TLS_PLAIN;
    }
    t->in = data;
    t->in_len = len;
    return 0;
}

static void fail(srv__tls_t *t, int err)
{
    t->failed = true;
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        char buf[120];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(t->reason, sizeof(t->reason), "%s", buf);
    } else if (err == SSL_ERROR_SYSCALL) {
        snprintf(t->reason, sizeof(t->reason), "unexpected end of stream");
    } else {
        snprintf(t->reason, sizeof(t->reason), "TLS error %d", err);
    }
    ERR_clear_error();
}

ssize_t srv__tls_read(srv__tls_t *t, char *buf, size_t cap)
{
    if (t->failed)
        return SRV__TLS_FAILED;
    if (!t->established) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int err = SSL_get_error(t->ssl, r);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return SRV__TLS_EOF;
            fail(t, err);
            return SRV__TLS_FAILED;
        }
        t->established = true;
    }
    size_t n = 0;
    int r = SSL_read_ex(t->ssl, buf, cap > INT_MAX ? INT_MAX : cap, &n);
    if (r == 1)
        return (ssize_t)n;
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return SRV__TLS_EOF;
    if (err == SSL_ERROR_ZERO_RETURN)
        return SRV__TLS_CLOSED;
    fail(t, err);
    return SRV__TLS_FAILED;
}

/* ---- bytes out ---- */

ssize_t srv__tls_write(srv__tls_t *t, const void *data, size_t len)
{
    if (t->failed || !t->established)
        return SRV__TLS_FAILED;
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        size_t chunk = len - done > INT_MAX ? INT_MAX : len - done;
        if (SSL_write_ex(t->ssl, (const char *)data + done, chunk, &n) != 1) {
            fail(t, SSL_get_error(t->ssl, 0));
            return SRV__TLS_FAILED;
        }
        done += n;
    }
    return (ssize_t)done;
}

void srv__tls_shutdown(srv__tls_t *t)
{
    if (t->established && !t->failed) {
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

size_t srv__tls_out(srv__tls_t *t, const char **p)
{
    if (t->out_off == t->out.len && t->pend.len > 0) {
        srv__buf_t tmp = t->out;
        t->out = t->pend;
        t->pend = tmp;
        t->pend.len = 0;
        t->out_off = 0;
    }
    if (t->out_off == t->out.len) {
        *p = ""; /* out.data may still be NULL: no pointer arithmetic on it */
        return 0;
    }
    *p = t->out.data + t->out_off;
    return t->out.len - t->out_off;
}

void srv__tls_out_consume(srv__tls_t *t, size_t n)
{
    t->out_off += n;
    if (t->out_off >= t->out.len) {
        t->out_off = t->out.len = 0;
        /* An idle connection keeps no large buffer. */
        if (t->out.cap > 64 * 1024)
            srv__buf_free(&t->out);
        if (t->pend.len == 0 && t->pend.cap > 64 * 1024)
            srv__buf_free(&t->pend);
    }
}

/* ---- what was negotiated ---- */

bool srv__tls_established(const srv__tls_t *t)
{
    return t->established;
}

const char *srv__tls_reason(const srv__tls_t *t)
{
    return t->reason[0] ? t->reason : "closed during the handshake";
}

bool srv__tls_resumed(const srv__tls_t *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

const char *srv__tls_alpn(const srv__tls_t *t)
{
    static _Thread_local char name[256];
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    memcpy(name, p ? (const char *)p : "", len);
    name[len] = '\0';
    return name;
}

static void subject(SSL *ssl, char *out, size_t cap)
{
    out[0] = '\0';
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return;
    BIO *m = BIO_new(BIO_s_mem());
    if (m == NULL)
        return;
    X509_NAME_print_ex(m, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char *p = NULL;
    long n = BIO_get_mem_data(m, &p);
    if (n > 0) {
        size_t len = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(out, p, len);
        out[len] = '\0';
    }
    BIO_free(m);
}

void srv__tls_describe(const srv__tls_t *t, srv_tls_t *out)
{
    memset(out, 0, sizeof(*out));
    out->on = true;
    snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(t->ssl));
    const char *cipher = SSL_get_cipher_name(t->ssl);
    snprintf(out->cipher, sizeof(out->cipher), "%s", cipher ? cipher : "");
    const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(out->sni, sizeof(out->sni), "%s", sni ? sni : "");
    subject(t->ssl, out->client_subject, sizeof(out->client_subject));
}
