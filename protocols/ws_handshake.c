/* WebSocket opening handshake (RFC 6455 4.2): validating the client's request and writing the
 * 101 response with Sec-WebSocket-Accept (OpenSSL's SHA-1 and base64), the app's subprotocol
 * and permessage-deflate. */
#include "protocols/ws.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "protocols/ws_deflate.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static bool span_ieq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

static srv_str_t trim(srv_str_t s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Does a comma-separated header value contain tok (case-insensitive)? */
static bool list_has(srv_str_t v, const char *tok)
{
    const char *p = v.ptr, *end = v.ptr + v.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        srv_str_t item = {p, (size_t)((comma ? comma : end) - p)};
        item = trim(item);
        if (span_ieq(item.ptr, item.len, tok))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

/* Our own lookup rather than srv_request_header(): we need every occurrence (Connection may
 * be repeated) and the count (a repeated Sec-WebSocket-Key is invalid). */
static int header_count(const srv_request_t *req, const char *name, const char *tok,
                        srv_str_t *first)
{
    int n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const srv_header_t *h = &req->headers[i];
        if (!span_ieq(h->name.ptr, h->name.len, name))
            continue;
        if (tok && !list_has(h->value, tok))
            continue;
        if (n++ == 0 && first)
            *first = trim(h->value);
    }
    return n;
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* base64 of exactly 16 bytes: 22 alphabet characters and "==". */
static bool key_valid(srv_str_t k)
{
    if (k.len != 24 || k.ptr[22] != '=' || k.ptr[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!b64_char(k.ptr[i]))
            return false;
    return true;
}

int srv__ws_handshake_check(const srv_request_t *req, const char **reason)
{
    srv_str_t v = {NULL, 0};

    *reason = NULL;
    /* An Upgrade to something else (h2c, ...) may be ignored (RFC 9110 7.8): plain HTTP. */
    if (header_count(req, "upgrade", "websocket", NULL) == 0) {
        *reason = "not a WebSocket upgrade";
        return -ENOENT;
    }
    if (!span_ieq(req->method.ptr, req->method.len, "GET")) {
        *reason = "WebSocket handshake must use GET";
        return -EINVAL;
    }
    if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1)) {
        *reason = "WebSocket handshake needs HTTP/1.1";
        return -EINVAL;
    }
    if (header_count(req, "connection", "upgrade", NULL) == 0) {
        *reason = "Connection header must contain \"upgrade\"";
        return -EINVAL;
    }
    if (header_count(req, "sec-websocket-version", NULL, &v) != 1 ||
        !span_ieq(v.ptr, v.len, "13")) {
        *reason = "Sec-WebSocket-Version must be 13";
        return -EINVAL;
    }
    if (header_count(req, "sec-websocket-key", NULL, &v) != 1 || !key_valid(v)) {
        *reason = "Sec-WebSocket-Key must be the base64 of 16 bytes";
        return -EINVAL;
    }
    return 0;
}

int srv__ws_accept_key(const char *key, size_t key_len, char out[SRV_WS_ACCEPT_LEN + 1])
{
    char in[64 + sizeof(WS_GUID)];
    unsigned char md[SHA_DIGEST_LENGTH];

    if (key_len > 64)
        return -EINVAL;
    memcpy(in, key, key_len);
    memcpy(in + key_len, WS_GUID, sizeof(WS_GUID) - 1);
    if (SHA1((const unsigned char *)in, key_len + sizeof(WS_GUID) - 1, md) == NULL)
        return -EIO;
    /* EVP_EncodeBlock writes the padded base64 and its NUL: 28 + 1 bytes for 20. */
    if (EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH) != SRV_WS_ACCEPT_LEN)
        return -EIO;
    return 0;
}

/* Append a NUL-terminated string; false when it does not fit. */
static bool put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        return false;
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return true;
}

int srv__ws_handshake_response(const srv_request_t *req, bool allow_deflate,
                               const char *subprotocol, char *buf, size_t cap,
                               srv__ws_options_t *negotiated)
{
    char accept[SRV_WS_ACCEPT_LEN + 1];
    char ext[160];
    srv_str_t key = {NULL, 0};
    size_t len = 0;
    uint8_t wbits = 0;
    int r, deflate = 0;

    if (subprotocol) {
        if (!*subprotocol)
            return -EINVAL;
        for (const char *s = subprotocol; *s; s++)
            if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
                return -EINVAL; /* a header value must not break the response apart */
    }
    if (header_count(req, "sec-websocket-key", NULL, &key) < 1)
        return -EINVAL;
    r = srv__ws_accept_key(key.ptr, key.len, accept);
    if (r < 0)
        return r;
    if (allow_deflate) {
        deflate = srv__ws_deflate_negotiate(req, ext, sizeof(ext), &wbits);
        if (deflate < 0)
            return deflate;
    }
    if (!put(buf, cap, &len,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: ") ||
        !put(buf, cap, &len, accept) || !put(buf, cap, &len, "\r\n"))
        return -ENOSPC;
    if (subprotocol && (!put(buf, cap, &len, "Sec-WebSocket-Protocol: ") ||
                        !put(buf, cap, &len, subprotocol) || !put(buf, cap, &len, "\r\n")))
        return -ENOSPC;
    if (deflate && (!put(buf, cap, &len, "Sec-WebSocket-Extensions: ") ||
                    !put(buf, cap, &len, ext) || !put(buf, cap, &len, "\r\n")))
        return -ENOSPC;
    if (!put(buf, cap, &len, "\r\n"))
        return -ENOSPC;
    if (negotiated) {
        negotiated->deflate = deflate == 1;
        negotiated->deflate_window_bits = deflate == 1 ? wbits : 0;
    }
    return (int)len;
}
