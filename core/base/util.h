/* Small helpers every layer may use: clocks and fd flags. */
#ifndef SRV_UTIL_H
#define SRV_UTIL_H

#include <stdint.h>

int64_t srv__now_ms(void);  /* wall clock ms */
int64_t srv__mono_ms(void); /* monotonic ms */
void srv__set_cloexec(int fd);

#endif
