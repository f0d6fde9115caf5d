/* Minimal unit-test helpers: asserts print both operands, a failure exits 1, skip exits 77. */
#ifndef SRV_TEST_CHECK_H
#define SRV_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Kept for tests that reference it; unused otherwise. */
__attribute__((unused)) static int check_failures_ = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, op, b)                                                                        \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK_INT(%s %s %s) failed: %lld vs %lld\n", __FILE__,         \
                    __LINE__, #a, #op, #b, a_, b_);                                                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                     \
            fprintf(stderr, "%s:%d: CHECK_STR(%s, %s) failed: \"%s\" vs \"%s\"\n", __FILE__,       \
                    __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(a, alen, b, blen)                                                                \
    do {                                                                                           \
        size_t al_ = (size_t)(alen), bl_ = (size_t)(blen);                                         \
        if (al_ != bl_ || memcmp((a), (b), al_) != 0) {                                            \
            fprintf(stderr, "%s:%d: CHECK_MEM(%s, %s) failed: \"%.*s\" (%zu) vs \"%.*s\" (%zu)\n", \
                    __FILE__, __LINE__, #a, #b, (int)al_, (const char *)(a), al_, (int)bl_,       \
                    (const char *)(b), bl_);                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define SKIP(why)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "skip: %s\n", why);                                                        \
        exit(77);                                                                                  \
    } while (0)

#endif
