/* Flood and abuse limits of an HTTP/2 connection; see h2_guard.h. */
#include "protocols/h2_guard.h"

#include <string.h>

void srv__h2_guard_init(srv__h2_guard_t *g, uint32_t max_streams, uint32_t header_list_max,
                        int64_t now)
{
    memset(g, 0, sizeof(*g));
    g->max_streams = max_streams ? max_streams : 1;
    g->header_list_max = header_list_max;
    g->window_start = now;
    g->reset_tokens = 2.0 * g->max_streams;
    g->reset_at = now;
}

/* A new one-second window: the counts start again. */
static void roll(srv__h2_guard_t *g, int64_t now)
{
    if (now - g->window_start < 1000)
        return;
    g->window_start = now;
    g->settings = g->pings = g->empty_data = g->priority = g->window_updates = 0;
    g->data_sent = g->streams_opened = 0;
}

void srv__h2_guard_data_sent(srv__h2_guard_t *g, int64_t now)
{
    roll(g, now);
    g->data_sent++;
}

void srv__h2_guard_stream(srv__h2_guard_t *g, int64_t now)
{
    roll(g, now);
    g->streams_opened++;
}

static uint32_t header_block(srv__h2_guard_t *g, uint8_t type, size_t length, const char **why)
{
    if (type == SRV__H2_HEADERS) {
        g->block_frames = 0;
        g->block_bytes = length;
        return 0;
    }
    g->block_frames++;
    g->block_bytes += length;
    if (g->block_frames > SRV__H2_MAX_CONTINUATION ||
        g->block_bytes > (uint64_t)g->header_list_max + SRV__H2_BLOCK_SLACK) {
        *why = "CONTINUATION flood";
        return SRV__H2_ENHANCE_YOUR_CALM;
    }
    return 0;
}

uint32_t srv__h2_guard_frame(srv__h2_guard_t *g, uint8_t type, uint8_t flags, size_t length,
                             int64_t now, const char **why)
{
    roll(g, now);
    switch (type) {
    case SRV__H2_HEADERS:
    case SRV__H2_CONTINUATION:
        return header_block(g, type, length, why);
    case SRV__H2_SETTINGS:
        if (!(flags & SRV__H2_FLAG_ACK) && ++g->settings > SRV__H2_MAX_SETTINGS) {
            *why = "SETTINGS flood";
            return SRV__H2_ENHANCE_YOUR_CALM;
        }
        return 0;
    case SRV__H2_PING:
        if (!(flags & SRV__H2_FLAG_ACK) && ++g->pings > SRV__H2_MAX_PING) {
            *why = "PING flood";
            return SRV__H2_ENHANCE_YOUR_CALM;
        }
        return 0;
    case SRV__H2_DATA:
        if (length == 0 && !(flags & SRV__H2_FLAG_END_STREAM) &&
            ++g->empty_data > SRV__H2_MAX_EMPTY_DATA) {
            *why = "empty DATA flood";
            return SRV__H2_ENHANCE_YOUR_CALM;
        }
        return 0;
    case SRV__H2_PRIORITY:
        if (++g->priority > SRV__H2_MAX_PRIORITY + g->streams_opened) {
            *why = "PRIORITY flood";
            return SRV__H2_ENHANCE_YOUR_CALM;
        }
        return 0;
    case SRV__H2_WINDOW_UPDATE:
        if (++g->window_updates >
            SRV__H2_WINDOW_UPDATE_BASE + 4u * (g->data_sent + g->streams_opened)) {
            *why = "WINDOW_UPDATE flood";
            return SRV__H2_ENHANCE_YOUR_CALM;
        }
        return 0;
    default:
        return 0;
    }
}

void srv__h2_guard_completed(srv__h2_guard_t *g)
{
    g->completed++;
}

uint32_t srv__h2_guard_reset(srv__h2_guard_t *g, int64_t now, const char **why)
{
    double cap = 2.0 * g->max_streams;
    g->reset_tokens += (double)(now - g->reset_at) * g->max_streams / 1000.0;
    if (g->reset_tokens > cap)
        g->reset_tokens = cap;
    g->reset_at = now;
    g->resets++;
    if (g->reset_tokens < 1.0 || (g->resets > 2u * g->max_streams && g->resets > g->completed)) {
        *why = "rapid reset";
        return SRV__H2_ENHANCE_YOUR_CALM;
    }
    g->reset_tokens -= 1.0;
    return 0;
}
