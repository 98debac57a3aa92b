/*
 * be.h — big-endian (network order) writers, the counterpart of rd.h's
 * getters: for the status updates pgstream sends and the spool's record
 * headers.
 */
#ifndef PGSTREAM_BE_H
#define PGSTREAM_BE_H

#include <stdint.h>

static inline void be_put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)(v & 0xFF);
}

static inline void be_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)(v & 0xFF);
}

#endif
