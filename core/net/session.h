/* Session ids: [engine:8][generation:36][slot:20], never 0 and never reused. Everyone outside
 * an engine names a connection by one; the engine and the shared connection table split it. */
#ifndef SRV_SESSION_H
#define SRV_SESSION_H

#include <stdint.h>

#define SRV_SESSION_SLOT_BITS 20
#define SRV_SESSION_ENGINE(s) ((int)((s) >> 56))
#define SRV_SESSION_SLOT(s) ((uint32_t)((s) & ((1u << SRV_SESSION_SLOT_BITS) - 1)))
/* Generation + 1: a session id is never 0, which the shared table reads as "free". */
#define SRV_SESSION_MAKE(engine, gen, slot)                                                        \
    (((uint64_t)(engine) << 56) | ((((uint64_t)(gen) + 1) & 0xFFFFFFFFFull) << 20) | (slot))

/* HTTP/2 streams with the app have request ids of their own: the same layout (the engine in
 * the top byte) with this bit set, from a table of their own. */
#define SRV_SESSION_REQ_BIT (1ull << 55)
#define SRV_SESSION_IS_REQ(s) (((s)&SRV_SESSION_REQ_BIT) != 0)
#define SRV_SESSION_MAKE_REQ(engine, gen, slot)                                                    \
    (SRV_SESSION_MAKE(engine, (gen)&0x3FFFFFFFFull, slot) | SRV_SESSION_REQ_BIT)

#endif
