/* UTF-8 validation (RFC 3629) that can resume across buffer splits: WebSocket text messages
 * arrive in frames cut anywhere, so the validator carries its state between calls. Rejects
 * overlong forms, surrogates (U+D800..DFFF) and code points past U+10FFFF. */
#ifndef SRV_PROTOCOLS_UTF8_H
#define SRV_PROTOCOLS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_UTF8_ACCEPT 0u          /* at a character boundary */
#define SRV_UTF8_REJECT 0xffffffffu /* invalid; sticky */

/* Advance *state over n bytes. Returns false (and sets SRV_UTF8_REJECT) on invalid input.
 * The text is complete and valid only when *state is SRV_UTF8_ACCEPT afterwards. */
bool srv__utf8_step(uint32_t *state, const void *p, size_t n);

/* Whole-buffer check. */
bool srv__utf8_valid(const void *p, size_t n);

#endif
