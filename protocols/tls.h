/* TLS as a state machine (OpenSSL over memory BIOs): ciphertext in, plaintext out, plaintext
 * in, ciphertext out. No socket is touched here; the connection engine's TLS transport
 * (core/net/transport_tls.c) moves the bytes through the loop.
 *
 * tls_ctx.c: a listener's contexts (its certificate, SNI certificates, versions, ciphers,
 *            client verification, ALPN, session tickets from a shared key ring); checks of
 *            certificate files for `srv check`.
 * tls.c:     one connection: handshake, records, alerts, what it negotiated. */
#ifndef SRV_TLS_H
#define SRV_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "srv/srv.h"

/* Protocol versions (ssl_protocols). */
#define SRV__TLS_V1_0 (1u << 0)
#define SRV__TLS_V1_1 (1u << 1)
#define SRV__TLS_V1_2 (1u << 2)
#define SRV__TLS_V1_3 (1u << 3)
#define SRV__TLS_DEFAULT_PROTOCOLS (SRV__TLS_V1_2 | SRV__TLS_V1_3)

/* "TLSv1.2" -> SRV__TLS_V1_2 ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"); 0 when unknown. */
unsigned srv__tls_protocol_bit(const char *name, size_t len);

/* ---- session ticket keys, shared by every process (they live in the shared region) ---- */

typedef struct srv__tls_ticket_key {
    uint8_t name[16];
    uint8_t aes[32];  /* AES-256-CBC */
    uint8_t hmac[32]; /* HMAC-SHA256 */
} srv__tls_ticket_key_t;

/* New tickets use key[current % 3]; the one before it still decrypts (renewing the ticket), so
 * a ticket stays good for one to two rotation periods. Only the master writes, and it writes the
 * slot no reader uses: the one after current. */
typedef struct srv__tls_keyring {
    _Atomic uint32_t current;
    srv__tls_ticket_key_t key[3];
} srv__tls_keyring_t;

/* Fill ring with fresh random keys (master, at start). Returns 0 or -EIO. */
int srv__tls_keyring_init(srv__tls_keyring_t *ring);
/* Make a new current key; the old current stays accepted. Returns 0 or -EIO. */
int srv__tls_keyring_rotate(srv__tls_keyring_t *ring);

/* ---- a listener's contexts ---- */

typedef struct srv__tls_cert_conf {
    const char *host; /* SNI name, exact or "*.example.org"; NULL for the listener's default */
    const char *cert_file;
    const char *key_file;
} srv__tls_cert_conf_t;

typedef struct srv__tls_conf {
    srv__tls_cert_conf_t cert; /* the default certificate */
    const srv__tls_cert_conf_t *sni;
    int nsni;
    unsigned protocols;       /* SRV__TLS_V* */
    const char *ciphers;      /* TLS 1.2; "" = OpenSSL's default */
    const char *ciphersuites; /* TLS 1.3; "" = OpenSSL's default */
    bool verify_peer;
    bool verify_optional;
    const char *client_cert_file; /* CA bundle; required with verify_peer */
    bool session_tickets;
    const char *alpn; /* space-separated, in the server's order of preference; "" = none */
    const srv__tls_keyring_t *keyring; /* shared ticket keys; NULL: OpenSSL's own per process */
} srv__tls_conf_t;

/* What is wrong with a configuration, for `file:line: key: problem`. */
typedef struct srv__tls_problem {
    int sni;      /* -1: the listener's own keys; else the index into conf->sni */
    char key[32]; /* the config key at fault: "ssl_cert_file", "ssl_key_file", ... */
    char msg[256];
} srv__tls_problem_t;

typedef struct srv__tls_ctx srv__tls_ctx_t;

/* Build a listener's contexts: every file is read and checked now (readable, PEM, the key
 * matches its certificate, the CA bundle loads, the cipher lists parse). NULL with *why filled
 * on a problem. The result is reference-counted: srv__tls_ctx_unref() by its maker, and each
 * connection holds a reference (so a reload can swap contexts under live connections). */
srv__tls_ctx_t *srv__tls_ctx_new(const srv__tls_conf_t *conf, srv__tls_problem_t *why);
void srv__tls_ctx_ref(srv__tls_ctx_t *ctx);
void srv__tls_ctx_unref(srv__tls_ctx_t *ctx);

/* For each certificate of ctx that has expired or expires within days: warn(arg, sni, file,
 * days_left) (sni -1 for the default; days_left < 0 once expired). Returns how many. */
int srv__tls_ctx_expiring(const srv__tls_ctx_t *ctx, int days,
                          void (*warn)(void *arg, int sni, const char *file, long days_left),
                          void *arg);

/* ---- one connection ---- */

typedef struct srv__tls srv__tls_t;

/* A server-side connection on ctx (which it references). NULL on -ENOMEM. */
srv__tls_t *srv__tls_new(srv__tls_ctx_t *ctx);
void srv__tls_free(srv__tls_t *t);

/* Results of srv__tls_feed and srv__tls_read beyond byte counts. */
#define SRV__TLS_EOF 0        /* read: nothing more for now */
#define SRV__TLS_CLOSED (-1)  /* the peer sent close_notify */
#define SRV__TLS_FAILED (-2)  /* a fatal error: handshake failure, bad record; see reason */
#define SRV__TLS_PLAIN (-3)   /* the first bytes are plaintext HTTP, not a TLS record */

/* Ciphertext from the peer (all of it is taken). Returns 0 or SRV__TLS_PLAIN (checked on the
 * connection's first bytes only). */
int srv__tls_feed(srv__tls_t *t, const char *data, size_t len);
/* Advance the handshake and decrypt: plaintext into buf. Returns bytes (> 0), SRV__TLS_EOF when
 * more ciphertext is needed, SRV__TLS_CLOSED, or SRV__TLS_FAILED. Output the handshake made
 * (srv__tls_out) must be sent whatever it returns. */
ssize_t srv__tls_read(srv__tls_t *t, char *buf, size_t cap);
/* Encrypt plaintext (after the handshake): returns bytes taken (all of len, up to the records'
 * memory) or SRV__TLS_FAILED. */
ssize_t srv__tls_write(srv__tls_t *t, const void *data, size_t len);
/* Queue a close_notify alert. */
void srv__tls_shutdown(srv__tls_t *t);
/* Ciphertext waiting to be sent: its bytes at *p (valid until the next call on t). */
size_t srv__tls_out(srv__tls_t *t, const char **p);
void srv__tls_out_consume(srv__tls_t *t, size_t n);

bool srv__tls_established(const srv__tls_t *t);
/* Why the connection failed (OpenSSL's reason), for the log. */
const char *srv__tls_reason(const srv__tls_t *t);
/* What was negotiated (after the handshake). */
void srv__tls_describe(const srv__tls_t *t, srv_tls_t *out);
/* The ALPN protocol selected ("" none). */
const char *srv__tls_alpn(const srv__tls_t *t);
bool srv__tls_resumed(const srv__tls_t *t);

#endif
