/* INI reader: one file's text into a neutral document (doc.h). Knows INI's grammar and how INI
 * spells the sections ([server], [listen.NAME], column.NAME = TYPE:SIZE), nothing of the keys. */
#ifndef SRV_CONFIG_INI_H
#define SRV_CONFIG_INI_H

#include <stddef.h>

#include "config/doc.h"

/* Longest INI line taken, in bytes without its line break: a path key holding
 * SRV_CONFIG_PATH_MAX - 1 bytes, with its quotes, blanks and an inline comment, fits. */
#define SRV__INI_LINE_MAX 1024

/* Read text (len bytes, NUL-terminated) into doc (initialised by the caller). Syntax problems
 * go to doc's diag with their line and reading goes on, so the earliest problem of the file is
 * reported whichever finds it. Returns 0, -EINVAL (a problem was noted) or -ENOMEM. */
int srv__ini_read(srv__doc_t *doc, const char *text, size_t len);

#endif
