/* Pure helpers for serving files and reading request parts: URL decoding, safe path resolution,
 * MIME types, HTTP dates and byte ranges. No filesystem access: symlink and existence checks
 * are the caller's, with the real filesystem. Every function is thread-safe. */
#ifndef SRV_PROTOCOLS_HTTP_STATIC_H
#define SRV_PROTOCOLS_HTTP_STATIC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "srv/srv.h"

/* Percent-decode len bytes of in into out (NUL-terminated; '+' stays '+'). Returns the decoded
 * length, -EINVAL on a bad %XX escape, -ENOSPC when out (with its NUL) does not fit. */
int srv__url_decode(const char *in, size_t len, char *out, size_t cap);

/* The value of parameter name in query ("a=1&b=x+y"), decoded ('+' is a space) into buf,
 * NUL-terminated. A parameter without '=' has an empty value. Returns the value's length,
 * -ENOENT when absent, -ENOSPC when buf is too small, -EINVAL on a bad escape in the value. */
int srv__http_query_get(srv_str_t query, const char *name, char *buf, size_t cap);

/* Turn a still-encoded URL path ("/a/./b/../c%20d") into a relative file path ("a/c d") in out
 * (NUL-terminated): percent-decode, treat '\\' as '/', drop empty and "." segments, resolve
 * "..". A trailing '/' (or final "." / "..") is kept as a trailing '/' so the caller can tell a
 * directory request; the root is "". Returns the length, -EACCES when the path would climb
 * above the root (however encoded), -EINVAL on a NUL byte or bad escape, -ENOSPC when out is
 * too small. */
int srv__http_path_resolve(srv_str_t url_path, char *out, size_t cap);

/* Content-Type by extension (case-insensitive); text types carry "; charset=utf-8"; unknown
 * or none: "application/octet-stream". Returns a static string. */
const char *srv__http_mime_type(const char *path);

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes) into buf, NUL-terminated. Returns 29
 * or -ENOSPC (cap < 30), -EINVAL when t cannot be represented. */
int srv__http_date_format(time_t t, char *buf, size_t cap);
/* Parse an HTTP date: IMF-fixdate, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year
 * more than 50 years ahead of now means the previous century) or asctime ("Sun Nov  6 08:49:37
 * 1994"). Returns 0 or -EINVAL. */
int srv__http_date_parse(srv_str_t s, time_t *t);

/* One byte range of a representation of size bytes from a Range header value: "bytes=a-b",
 * "bytes=a-", "bytes=-n". Returns 0 with inclusive [*start, *end] clipped to the size,
 * -ERANGE when unsatisfiable (answer 416), -EINVAL when malformed, not bytes, or several ranges
 * (ignore Range and answer 200). */
int srv__http_range_parse(srv_str_t header, uint64_t size, uint64_t *start, uint64_t *end);

#endif
