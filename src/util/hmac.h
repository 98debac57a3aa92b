/*
 * hmac.h — HMAC-SHA-256 (RFC 2104, FIPS 180-4), for --mask-columns.
 *
 * Here rather than OpenSSL's because the encoding side of pgstream is pure
 * (no libpq, no OpenSSL: tests/layering.py), and a masked column is hashed
 * on that side, once per value. The key's pads are hashed once, when the
 * key is set, so a value costs two compressions of its own bytes and two
 * of the pads' midstates.
 */
#ifndef PGSTREAM_HMAC_H
#define PGSTREAM_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed */
	uint8_t block[64];
	size_t used; /* bytes in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);

/* A key, its inner and outer pads already hashed. */
struct hmac_key {
	struct sha256 inner, outer;
};

void hmac_sha256_key(struct hmac_key *k, const void *key, size_t len);
void hmac_sha256(const struct hmac_key *k, const void *data, size_t len, uint8_t out[SHA256_LEN]);

/* The 64 lower-case hex digits of HMAC-SHA-256(k, data), not terminated. */
void hmac_sha256_hex(const struct hmac_key *k, const void *data, size_t len, char out[64]);

#endif
