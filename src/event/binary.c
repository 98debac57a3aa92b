/*
 * binary.c — bytes as JSON strings: bytea's hex text and base64 (see
 * binary.h). Both build their output in chunks on the stack.
 */
#include "event/binary.h"

/* bytea's text form: "\x" and lowercase hex, built in chunks on the stack. */
void json_write_hex(struct buf *out, const uint8_t *p, size_t n)
{
	static const char HEX_LOWER[] = "0123456789abcdef";
	char chunk[256];
	size_t k = 0;

	buf_append(out, "\"\\\\x", 4);
	for (size_t i = 0; i < n; i++) {
		if (k == sizeof chunk) {
			buf_append(out, chunk, k);
			k = 0;
		}
		chunk[k++] = HEX_LOWER[p[i] >> 4];
		chunk[k++] = HEX_LOWER[p[i] & 0xF];
	}
	buf_append(out, chunk, k);
	buf_putc(out, '"');
}

void json_write_base64(struct buf *out, const uint8_t *p, size_t n)
{
	static const char B64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char chunk[256];
	size_t k = 0, i = 0;

	buf_putc(out, '"');
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		if (k == sizeof chunk) {
			buf_append(out, chunk, k);
			k = 0;
		}
		chunk[k++] = B64[v >> 18];
		chunk[k++] = B64[(v >> 12) & 0x3F];
		chunk[k++] = B64[(v >> 6) & 0x3F];
		chunk[k++] = B64[v & 0x3F];
	}
	buf_append(out, chunk, k);
	if (n - i == 1) {
		char tail[4] = {B64[p[i] >> 2], B64[(p[i] & 0x3) << 4], '=', '='};

		buf_append(out, tail, 4);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
		char tail[4] = {B64[v >> 10], B64[(v >> 4) & 0x3F], B64[(v << 2) & 0x3F], '='};

		buf_append(out, tail, 4);
	}
	buf_putc(out, '"');
}
