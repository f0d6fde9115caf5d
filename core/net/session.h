/* Session ids: [engine:8][request:1][instance:11][generation:24][slot:20], never 0. Everyone
 * outside an engine names a connection by one; the engine and the shared connection table split
 * it. The instance is this server's number in a cluster (cluster = true; 0 without one), so a
 * session id handed to another instance still says where its connection is. A slot's id comes
 * back only after 2^24 - 1 more connections on that slot. */
#ifndef SRV_SESSION_H
#define SRV_SESSION_H

#include <stdint.h>

#define SRV_SESSION_SLOT_BITS 20
#define SRV_SESSION_GEN_MOD 0xFFFFFFull /* generations 1 .. 2^24 - 1 */
#define SRV_SESSION_INST_SHIFT 44
#define SRV_SESSION_INST_MAX 2047
#define SRV_SESSION_ENGINE(s) ((int)((s) >> 56))
#define SRV_SESSION_SLOT(s) ((uint32_t)((s) & ((1u << SRV_SESSION_SLOT_BITS) - 1)))
#define SRV_SESSION_INSTANCE(s) ((int)(((s) >> SRV_SESSION_INST_SHIFT) & SRV_SESSION_INST_MAX))

/* This server's instance number, shifted into place (0 outside a cluster); set once by the
 * master before any engine starts (srv__session_set_instance). */
extern uint64_t srv__session_inst;
void srv__session_set_instance(int number);

/* A generation that is never 0, so neither is the id (the shared table reads 0 as "free"). */
#define SRV_SESSION_MAKE(engine, gen, slot)                                                        \
    (((uint64_t)(engine) << 56) | srv__session_inst |                                              \
     (((uint64_t)(gen) % SRV_SESSION_GEN_MOD + 1) << 20) | (slot))

/* HTTP/2 streams with the app have request ids of their own: the same layout (the engine in
 * the top byte) with this bit set, from a table of their own. */
#define SRV_SESSION_REQ_BIT (1ull << 55)
#define SRV_SESSION_IS_REQ(s) (((s)&SRV_SESSION_REQ_BIT) != 0)
#define SRV_SESSION_MAKE_REQ(engine, gen, slot)                                                    \
    (SRV_SESSION_MAKE(engine, gen, slot) | SRV_SESSION_REQ_BIT)

#endif
