/* TOML reader: one file's text into a neutral document (doc.h), with toml++. Knows TOML's shape
 * of the sections ([server], [[listen]], a table's columns = [{...}]), nothing of the keys. */
#ifndef SRV_CONFIG_TOML_H
#define SRV_CONFIG_TOML_H

#include <stddef.h>

#include "config/doc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read text (len bytes, NUL-terminated) into doc (initialised by the caller); path names the
 * file in toml++'s own diagnostics. A syntax error leaves the document empty. Problems go to
 * doc's diag. Returns 0, -EINVAL (a problem was noted) or -ENOMEM. */
int srv__toml_read(srv__doc_t *doc, const char *text, size_t len, const char *path);

#ifdef __cplusplus
}
#endif

#endif
