/* Incremental UTF-8 validator for WebSocket text. The state packs how many continuation bytes
 * are still due and the range the next one must fall in, which is how overlongs (E0, F0),
 * surrogates (ED) and code points past U+10FFFF (F4) are refused without decoding. */
#include "protocols/utf8.h"

#include <string.h>

/* state layout: bits 0-7 bytes still due, 8-15 lowest allowed next byte, 16-23 highest. */
static uint32_t lead(uint8_t need, uint8_t lo, uint8_t hi)
{
    return (uint32_t)need | ((uint32_t)lo << 8) | ((uint32_t)hi << 16);
}

bool srv__utf8_step(uint32_t *state, const void *p, size_t n)
{
    const uint8_t *s = p;
    uint32_t st = *state;
    size_t i = 0;

    if (st == SRV_UTF8_REJECT)
        return false;
    while (i < n) {
        if (st == SRV_UTF8_ACCEPT) {
            /* ASCII runs are the common case: skip 8 bytes at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i >= n)
                break;
            uint8_t b = s[i++];
            if (b < 0x80)
                continue;
            if (b >= 0xc2 && b <= 0xdf)
                st = lead(1, 0x80, 0xbf);
            else if (b == 0xe0)
                st = lead(2, 0xa0, 0xbf);
            else if (b == 0xed)
                st = lead(2, 0x80, 0x9f);
            else if (b >= 0xe1 && b <= 0xef)
                st = lead(2, 0x80, 0xbf);
            else if (b == 0xf0)
                st = lead(3, 0x90, 0xbf);
            else if (b >= 0xf1 && b <= 0xf3)
                st = lead(3, 0x80, 0xbf);
            else if (b == 0xf4)
                st = lead(3, 0x80, 0x8f);
            else
                goto reject;
        } else {
            uint8_t b = s[i++];
            uint8_t lo = (st >> 8) & 0xff, hi = (st >> 16) & 0xff;
            if (b < lo || b > hi)
                goto reject;
            uint8_t need = (st & 0xff) - 1;
            st = need ? lead(need, 0x80, 0xbf) : SRV_UTF8_ACCEPT;
        }
    }
    *state = st;
    return true;
reject:
    *state = SRV_UTF8_REJECT;
    return false;
}

bool srv__utf8_valid(const void *p, size_t n)
{
    uint32_t st = SRV_UTF8_ACCEPT;
    return srv__utf8_step(&st, p, n) && st == SRV_UTF8_ACCEPT;
}
