/*
 * jstring.c — JSON strings: the UTF-8 rules and the escaper (see jstring.h).
 *
 * The escaper is the encoder's hot loop: runs of bytes that need nothing
 * are found eight at a time and appended with one call.
 */
#include "event/jstring.h"

#include <string.h>

/* How the string escaper treats each byte. */
enum {
	SC_PLAIN = 0, /* copied as is */
	SC_ESCAPE,    /* control character, '"' or '\\': written as an escape */
	SC_UTF8,      /* non-ASCII: copied if it starts a valid sequence, else U+FFFD */
};

#define E SC_ESCAPE
#define M SC_UTF8
static const uint8_t STR_CLASS[256] = {
    E, E, E, E, E, E, E, E, E, E, E, E, E, E, E, E, /* 0x00 */
    E, E, E, E, E, E, E, E, E, E, E, E, E, E, E, E, /* 0x10 */
    0, 0, E, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, E, 0, 0, 0, /* 0x50 '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 (DEL is valid JSON) */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0x80 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0x90 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0xA0 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0xB0 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0xC0 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0xD0 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0xE0 */
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, /* 0xF0 */
};
#undef E
#undef M

static const char HEX_LOWER[] = "0123456789abcdef";

/*
 * Length of the well-formed UTF-8 sequence at p[0..n), or 0 if there is none.
 * Follows RFC 3629's table, so overlong forms (C0, C1, E0 80.., F0 80..),
 * surrogates (ED A0..) and code points above U+10FFFF (F4 90.., F5..) are
 * rejected along with truncated sequences and stray continuation bytes.
 */
size_t json_utf8_seq_len(const uint8_t *p, size_t n)
{
	uint8_t lo = 0x80, hi = 0xBF;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xC2)
		return 0;
	if (p[0] < 0xE0) {
		len = 2;
	} else if (p[0] < 0xF0) {
		len = 3;
		if (p[0] == 0xE0)
			lo = 0xA0;
		else if (p[0] == 0xED)
			hi = 0x9F;
	} else if (p[0] < 0xF5) {
		len = 4;
		if (p[0] == 0xF0)
			lo = 0x90;
		else if (p[0] == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

int json_utf8_valid(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = p[i] < 0x80 ? 1 : json_utf8_seq_len(p + i, len - i);

		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

/*
 * How many of the first len bytes of s are SC_PLAIN. Eight bytes at a time
 * while they last, with the classic word tricks ("determine if a word has a
 * byte less than n", Hacker's Delight 6-1): a byte is not plain if it is
 * below 0x20, equals '"' or '\\', or has its high bit set. Each test may
 * flag more bytes than it should once one is really flagged, never fewer,
 * so a clean word is exact and a flagged one is finished a byte at a time.
 * Values are mostly short ASCII runs; callgrind showed the byte-at-a-time
 * table loop as the encoder's largest cost (10 instructions per byte).
 */
size_t json_plain_prefix(const uint8_t *s, size_t len)
{
	const uint64_t ones = UINT64_C(0x0101010101010101);
	const uint64_t highs = UINT64_C(0x8080808080808080);
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v, quote, bslash;

		memcpy(&v, s + i, 8); /* one unaligned load */
		quote = v ^ (ones * '"');
		bslash = v ^ (ones * '\\');
		if (((v - ones * 0x20) | (quote - ones) | (bslash - ones) | v) & highs)
			break;
	}
	while (i < len && STR_CLASS[s[i]] == SC_PLAIN)
		i++;
	return i;
}

/* The escape for one byte the string body cannot hold raw. */
static void write_escape(struct buf *out, uint8_t c)
{
	char u[6] = {'\\', 'u', '0', '0', HEX_LOWER[c >> 4], HEX_LOWER[c & 0xF]};

	switch (c) {
	case '"':
		buf_append(out, "\\\"", 2);
		return;
	case '\\':
		buf_append(out, "\\\\", 2);
		return;
	case '\b':
		buf_append(out, "\\b", 2);
		return;
	case '\f':
		buf_append(out, "\\f", 2);
		return;
	case '\n':
		buf_append(out, "\\n", 2);
		return;
	case '\r':
		buf_append(out, "\\r", 2);
		return;
	case '\t':
		buf_append(out, "\\t", 2);
		return;
	}
	if (c >= 0x80) /* a byte that is not part of valid UTF-8 */
		buf_append(out, "\\ufffd", 6);
	else
		buf_append(out, u, sizeof u);
}

/* The escaped body of a JSON string, without the quotes. Runs of bytes that
 * need no escape are appended with one call: this is the hot loop. */
static void write_string_body(struct buf *out, const uint8_t *s, size_t len)
{
	size_t run = 0, i = 0;

	if (len == 0)
		return; /* s may be NULL */
	while (i < len) {
		uint8_t cls;

		i += json_plain_prefix(s + i, len - i);
		if (i == len)
			break;
		cls = STR_CLASS[s[i]];
		if (cls == SC_UTF8) {
			size_t n = json_utf8_seq_len(s + i, len - i);

			if (n > 0) {
				i += n;
				continue;
			}
		}
		buf_append(out, s + run, i - run);
		write_escape(out, s[i]);
		run = ++i;
	}
	buf_append(out, s + run, i - run);
}

void json_write_string(struct buf *out, const char *s, size_t len)
{
	buf_putc(out, '"');
	write_string_body(out, (const uint8_t *)s, len);
	buf_putc(out, '"');
}
