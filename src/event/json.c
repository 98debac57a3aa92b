/*
 * json.c — event → JSON text (see json.h for the contract).
 *
 * Everything appends to one struct buf and allocates nothing of its own.
 * Output must be valid UTF-8 JSON whatever the server sends, so every typed
 * rendering (number, json, array) first checks that the text really is what
 * its type promises and falls back to a JSON string when it is not. Renderers
 * that write before they know (the array parser) remember out->len and roll
 * back to it on error.
 */
#include "event/json.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/lsn.h"

/* Deeper json/jsonb documents are emitted as strings (still valid output). */
#define JSON_MAX_DEPTH 4096
/* Postgres arrays have at most 6 dimensions (MAXDIM); allow some slack. */
#define ARRAY_MAX_DEPTH 16

/* ------------------------------------------------------------------------
 * UTF-8 and strings
 * ------------------------------------------------------------------------ */

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
static size_t utf8_seq_len(const uint8_t *p, size_t n)
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
		size_t n = p[i] < 0x80 ? 1 : utf8_seq_len(p + i, len - i);

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
static size_t plain_prefix(const uint8_t *s, size_t len)
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

		i += plain_prefix(s + i, len - i);
		if (i == len)
			break;
		cls = STR_CLASS[s[i]];
		if (cls == SC_UTF8) {
			size_t n = utf8_seq_len(s + i, len - i);

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

/* Forget everything written after mark (a renderer's rollback point). */
static void rollback(struct buf *out, size_t mark)
{
	out->len = mark;
	if (out->data)
		out->data[mark] = '\0';
}

/* ------------------------------------------------------------------------
 * Numbers and json text: validators (they only read)
 * ------------------------------------------------------------------------ */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Skip a run of digits; false if there is none. */
static bool scan_digits(const char **p, const char *end)
{
	const char *start = *p;

	while (*p < end && is_digit(**p))
		(*p)++;
	return *p > start;
}

/* RFC 8259: number = [ "-" ] ( "0" / 1-9 *DIGIT ) [ "." 1*DIGIT ]
 *                    [ ( "e" / "E" ) [ "-" / "+" ] 1*DIGIT ] */
static bool json_number_valid(const char *s, size_t len)
{
	const char *p = s, *end = s + len;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p == end || !scan_digits(&p, end))
		return false;
	if (p < end && *p == '.') {
		p++;
		if (!scan_digits(&p, end))
			return false;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!scan_digits(&p, end))
			return false;
	}
	return p == end;
}

/* A reader over json text being validated. */
struct jrd {
	const char *p;
	const char *end;
	bool raw_space; /* whitespace other than ' ' seen (write_json_text) */
};

static bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_json_space(struct jrd *r)
{
	while (r->p < r->end && is_json_space(*r->p)) {
		r->raw_space |= *r->p != ' ';
		r->p++;
	}
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string starting at r->p ('"'): legal escapes, no raw control
 * characters, valid UTF-8. */
static bool scan_json_string(struct jrd *r)
{
	const uint8_t *p = (const uint8_t *)r->p + 1, *end = (const uint8_t *)r->end;

	while (p < end) {
		uint8_t c;

		p += plain_prefix(p, (size_t)(end - p));
		if (p == end)
			break;
		c = *p;
		if (c == '"') {
			r->p = (const char *)p + 1;
			return true;
		} else if (c == '\\') {
			if (end - p < 2)
				return false;
			if (p[1] == 'u') {
				if (end - p < 6 || !is_hex((char)p[2]) || !is_hex((char)p[3]) ||
				    !is_hex((char)p[4]) || !is_hex((char)p[5]))
					return false;
				p += 6;
			} else if (p[1] != '\0' && strchr("\"\\/bfnrt", p[1])) {
				p += 2;
			} else {
				return false;
			}
		} else if (c >= 0x80) {
			size_t n = utf8_seq_len(p, (size_t)(end - p));

			if (n == 0)
				return false;
			p += n;
		} else {
			return false; /* raw control character */
		}
	}
	return false;
}

static bool scan_word(struct jrd *r, const char *word, size_t n)
{
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return false;
	r->p += n;
	return true;
}

/* A byte that can occur in a number; json_number_valid judges the order. */
static bool is_number_char(char c)
{
	return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* A string, number or literal. */
static bool scan_json_scalar(struct jrd *r)
{
	const char *start = r->p;

	if (r->p == r->end)
		return false;
	switch (*r->p) {
	case '"':
		return scan_json_string(r);
	case 't':
		return scan_word(r, "true", 4);
	case 'f':
		return scan_word(r, "false", 5);
	case 'n':
		return scan_word(r, "null", 4);
	}
	while (r->p < r->end && is_number_char(*r->p))
		r->p++;
	return r->p > start && json_number_valid(start, (size_t)(r->p - start));
}

/* An object member's `"key" :`, leaving r at its value. */
static bool scan_json_key(struct jrd *r)
{
	skip_json_space(r);
	if (r->p == r->end || *r->p != '"' || !scan_json_string(r))
		return false;
	skip_json_space(r);
	if (r->p == r->end || *r->p != ':')
		return false;
	r->p++;
	return true;
}

/*
 * Is s[0..len) one RFC 8259 JSON text in valid UTF-8? Iterative, so a deep
 * document cannot exhaust the C stack: open containers are a bit stack
 * (1 = object, 0 = array), each word cleared as the stack reaches it rather
 * than all 512 bytes up front for a document that is usually flat.
 * *one_line tells whether the text holds no \n, \r or \t (jsonb's output
 * never does), so that it can be copied as it is.
 */
static bool json_text_valid(const char *s, size_t len, bool *one_line)
{
	uint64_t objs[JSON_MAX_DEPTH / 64];
	struct jrd r = {s, s + len, false};
	unsigned depth = 0;

	*one_line = false;
	for (;;) {
		/* A value is expected here. */
		skip_json_space(&r);
		if (r.p < r.end && (*r.p == '{' || *r.p == '[')) {
			bool obj = *r.p++ == '{';

			if (depth == JSON_MAX_DEPTH)
				return false;
			if (depth % 64 == 0)
				objs[depth / 64] = 0;
			if (obj)
				objs[depth / 64] |= UINT64_C(1) << (depth % 64);
			else
				objs[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
			skip_json_space(&r);
			if (r.p == r.end || *r.p != (obj ? '}' : ']')) {
				depth++;
				if (obj && !scan_json_key(&r))
					return false;
				continue; /* on to the container's first value */
			}
			r.p++; /* empty container: it is the value */
		} else if (!scan_json_scalar(&r)) {
			return false;
		}
		/* A value ended: close containers until one goes on with ','. */
		for (;;) {
			bool obj;

			skip_json_space(&r);
			if (depth == 0) {
				*one_line = !r.raw_space;
				return r.p == r.end;
			}
			if (r.p == r.end)
				return false;
			obj = (objs[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
			if (*r.p == ',') {
				r.p++;
				if (obj && !scan_json_key(&r))
					return false;
				break;
			}
			if (*r.p++ != (obj ? '}' : ']'))
				return false;
			depth--;
		}
	}
}

/* Copy valid json text. Raw \n \r \t cannot occur inside a valid JSON string,
 * so every one of them is insignificant whitespace: a space keeps the text
 * equivalent and the output on one line. */
static void write_json_text(struct buf *out, const char *s, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
			buf_append(out, s + run, i - run);
			buf_putc(out, ' ');
			run = i + 1;
		}
	}
	buf_append(out, s + run, len - run);
}

/* ------------------------------------------------------------------------
 * Postgres array literals
 *
 *   [lo:hi][lo:hi]=   optional dimension decoration (non-default bounds)
 *   { elem D elem D ... }   D = the element type's delimiter
 *   elem: { nested } | "quoted, \-escaped" | unquoted (NULL = SQL null)
 * ------------------------------------------------------------------------ */

struct ard {
	const char *p;
	const char *end;
	char delim;
};

/* array_in's notion of whitespace. */
static bool is_array_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void skip_array_space(struct ard *r)
{
	while (r->p < r->end && is_array_space(*r->p))
		r->p++;
}

static bool eat(struct ard *r, char c)
{
	if (r->p == r->end || *r->p != c)
		return false;
	r->p++;
	return true;
}

/*
 * Render an element whose text has backslash escapes. The unescaped text is
 * built at the end of out as scratch and rendered right after it, then the
 * rendering is moved down over the scratch. Room for the worst case is
 * reserved first (the text, plus every byte as a six-byte escape and the
 * quotes), so the scratch cannot move while json_write_value reads it.
 */
static void write_unescaped(struct buf *out, const struct valtype *vt, const char *s, size_t n)
{
	size_t mark = out->len, run = 0, m;
	const char *text;

	if (n > (SIZE_MAX - 16) / 7 || !buf_reserve(out, 7 * n + 16))
		return; /* the buf records the failure */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\') {
			buf_append(out, s + run, i - run);
			run = ++i; /* keep the escaped byte as the start of the next run */
		}
	}
	buf_append(out, s + run, n - run);
	m = out->len - mark;
	text = out->data + mark;
	json_write_value(out, vt, text, m);
	assert(text == out->data + mark); /* no reallocation happened */
	memmove(out->data + mark, out->data + mark + m, out->len - mark - m);
	rollback(out, out->len - m);
}

static void write_element(struct buf *out, const struct valtype *vt, const char *s, size_t n,
                          bool escaped)
{
	if (escaped)
		write_unescaped(out, vt, s, n);
	else
		json_write_value(out, vt, s, n);
}

/* "..." with backslash escapes; the quote is already consumed. */
static bool array_quoted(struct buf *out, const struct valtype *vt, struct ard *r)
{
	const char *start = r->p;
	bool escaped = false;

	while (r->p < r->end && *r->p != '"') {
		if (*r->p == '\\') {
			escaped = true;
			if (++r->p == r->end)
				return false;
		}
		r->p++;
	}
	if (r->p == r->end)
		return false;
	write_element(out, vt, start, (size_t)(r->p - start), escaped);
	r->p++;
	return true;
}

/* Unquoted: up to the delimiter or '}', surrounding whitespace dropped
 * (escaped whitespace kept), NULL in any case is SQL null. */
static bool array_unquoted(struct buf *out, const struct valtype *vt, struct ard *r)
{
	const char *start = r->p, *last = r->p;
	bool escaped = false;

	while (r->p < r->end && *r->p != r->delim && *r->p != '}') {
		char c = *r->p++;

		if (c == '{' || c == '"')
			return false;
		if (c == '\\') {
			if (r->p == r->end)
				return false;
			escaped = true;
			r->p++;
		}
		if (c == '\\' || !is_array_space(c))
			last = r->p;
	}
	if (last == start)
		return false; /* empty element: array_in rejects it too */
	if (!escaped && last - start == 4 && strncasecmp(start, "NULL", 4) == 0)
		buf_append(out, "null", 4);
	else
		write_element(out, vt, start, (size_t)(last - start), escaped);
	return true;
}

/* One "{...}" level, recursively; false if the literal is malformed. */
static bool array_level(struct buf *out, const struct valtype *vt, struct ard *r, int depth)
{
	if (depth == ARRAY_MAX_DEPTH || !eat(r, '{'))
		return false;
	buf_putc(out, '[');
	skip_array_space(r);
	if (eat(r, '}')) {
		buf_putc(out, ']');
		return true;
	}
	for (;;) {
		bool ok;

		skip_array_space(r);
		if (r->p < r->end && *r->p == '{')
			ok = array_level(out, vt, r, depth + 1);
		else if (eat(r, '"'))
			ok = array_quoted(out, vt, r);
		else
			ok = array_unquoted(out, vt, r);
		if (!ok)
			return false;
		skip_array_space(r);
		if (eat(r, r->delim)) {
			buf_putc(out, ',');
		} else if (eat(r, '}')) {
			buf_putc(out, ']');
			return true;
		} else {
			return false;
		}
	}
}

static void write_array(struct buf *out, const struct valtype *vt, const char *s, size_t len)
{
	/* No arrays of arrays in Postgres: a nested literal element stays text. */
	struct valtype elem = {vt->elem == VK_ARRAY ? VK_STRING : vt->elem, VK_STRING, ','};
	struct ard r = {s, s + len, vt->delim};
	size_t mark = out->len;
	bool ok;

	skip_array_space(&r);
	if (r.p < r.end && *r.p == '[') { /* "[0:1]={...}": the bounds JSON cannot carry */
		const char *eq = memchr(r.p, '=', (size_t)(r.end - r.p));

		r.p = eq ? eq + 1 : r.end;
		skip_array_space(&r);
	}
	ok = array_level(out, &elem, &r, 0);
	skip_array_space(&r);
	if (!ok || r.p != r.end) {
		rollback(out, mark);
		json_write_string(out, s, len);
	}
}

/* ------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

void json_write_value(struct buf *out, const struct valtype *vt, const char *s, size_t len)
{
	bool one_line;

	switch (vt->kind) {
	case VK_BOOL:
		if (len == 1 && s[0] == 't') {
			buf_append(out, "true", 4);
			return;
		}
		if (len == 1 && s[0] == 'f') {
			buf_append(out, "false", 5);
			return;
		}
		break;
	case VK_NUMBER:
		/* Verbatim digits: a double would round numeric and int8. NaN and
		 * the infinities are not JSON numbers and fall through. */
		if (json_number_valid(s, len)) {
			buf_append(out, s, len);
			return;
		}
		break;
	case VK_JSON:
		if (json_text_valid(s, len, &one_line)) {
			if (one_line)
				buf_append(out, s, len);
			else
				write_json_text(out, s, len);
			return;
		}
		break;
	case VK_ARRAY:
		write_array(out, vt, s, len);
		return;
	}
	json_write_string(out, s, len);
}

/* bytea's text form: "\x" and lowercase hex, built in chunks on the stack. */
static void write_hex_string(struct buf *out, const uint8_t *p, size_t n)
{
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

static void write_base64_string(struct buf *out, const uint8_t *p, size_t n)
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

/* One tuple column ('u' columns are filtered out before this). */
static void write_column(struct buf *out, const struct valtype *vt, const struct pgo_value *v)
{
	switch (v->kind) {
	case PGO_COL_TEXT:
		json_write_value(out, vt, v->data, v->len);
		return;
	case PGO_COL_BINARY:
		write_hex_string(out, (const uint8_t *)v->data, v->len);
		return;
	}
	buf_append(out, "null", 4); /* 'n', and any kind the decoder let through */
}

/* ------------------------------------------------------------------------
 * Rows: which columns (rowsel) and how they are laid out (row_style)
 * ------------------------------------------------------------------------ */

enum row_filter {
	ROW_ALL,     /* every column that was sent */
	ROW_KEYS,    /* replica identity columns only */
	ROW_CHANGED, /* columns whose text differs from the other tuple */
};

struct rowsel {
	const struct relation *rel;
	const struct pgo_tuple *tup;
	const struct pgo_tuple *other; /* ROW_CHANGED: the tuple compared with */
	enum row_filter filter;
};

/* A piece of punctuation with its length: write_row runs per column. */
struct lit {
	const char *s;
	size_t n;
};
#define LIT(x)                                                                                     \
	{                                                                                          \
		x, sizeof(x) - 1                                                                   \
	}

struct row_style {
	struct lit first; /* before the first member */
	struct lit sep;   /* between members */
	struct lit colon; /* between a name and its value */
	struct lit end;   /* after the last member of a non-empty row */
};

static const struct row_style COMPACT = {LIT(""), LIT(","), LIT(":"), LIT("}")};
static const struct row_style INDENTED = {LIT("\n  "), LIT(",\n  "), LIT(": "), LIT("\n}")};

static bool is_toast(const struct pgo_tuple *tup, uint16_t i)
{
	return tup != NULL && i < tup->ncols && tup->cols[i].kind == PGO_COL_UNCHANGED_TOAST;
}

/* Columns both the relation and the tuple know; they agree unless the decoder
 * let a mismatched tuple through. */
static uint16_t row_ncols(const struct relation *rel, const struct pgo_tuple *tup)
{
	return tup->ncols < rel->ncols ? tup->ncols : rel->ncols;
}

static bool same_value(const struct pgo_value *a, const struct pgo_value *b)
{
	return a->kind == b->kind && a->len == b->len &&
	       (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool rowsel_includes(const struct rowsel *rs, uint16_t i)
{
	if (is_toast(rs->tup, i))
		return false; /* its value was not sent */
	switch (rs->filter) {
	case ROW_ALL:
		return true;
	case ROW_KEYS:
		return rs->rel->cols[i].flags & RELCACHE_COL_KEY;
	case ROW_CHANGED:
		/* An unchanged TOAST value in the other tuple is unchanged. */
		return i < rs->other->ncols && !is_toast(rs->other, i) &&
		       !same_value(&rs->tup->cols[i], &rs->other->cols[i]);
	}
	return false;
}

/* Returns whether the tuple had an unchanged TOAST column, which the row
 * leaves out, so that the caller lists such columns only when there are any. */
static bool write_row(struct buf *out, const struct rowsel *rs, const struct row_style *st)
{
	const struct relcol *cols = rs->rel->cols;
	uint16_t n = rs->tup ? row_ncols(rs->rel, rs->tup) : 0;
	bool empty = true, toast = false;

	buf_putc(out, '{');
	for (uint16_t i = 0; i < n; i++) {
		if (!rowsel_includes(rs, i)) {
			toast |= is_toast(rs->tup, i);
			continue;
		}
		if (cols[i].json_key && st == &COMPACT) {
			/* the hot path: COMPACT's separator (",", none before the
			 * first member) written as the byte it is */
			if (!empty)
				buf_putc(out, ',');
			buf_append(out, cols[i].json_key, cols[i].json_key_len);
		} else {
			const struct lit *before = empty ? &st->first : &st->sep;

			buf_append(out, before->s, before->n);
			json_write_string(out, cols[i].name, strlen(cols[i].name));
			buf_append(out, st->colon.s, st->colon.n);
		}
		write_column(out, &cols[i].vt, &rs->tup->cols[i]);
		empty = false;
	}
	if (empty)
		buf_putc(out, '}');
	else
		buf_append(out, st->end.s, st->end.n);
	return toast;
}

/* ------------------------------------------------------------------------
 * FORMAT_JSON
 * ------------------------------------------------------------------------ */

/* The JSON path avoids printf: it runs once per event and parses its format
 * string twice. The member writers are inline so that strlen() of their
 * literal keys folds away (callgrind showed it per event otherwise). */

/* ,"key": */
static inline void json_key(struct buf *out, const char *key)
{
	buf_append(out, ",\"", 2);
	buf_puts(out, key);
	buf_append(out, "\":", 2);
}

static inline void json_bool_member(struct buf *out, const char *key, bool v)
{
	json_key(out, key);
	buf_puts(out, v ? "true" : "false");
}

/* ,"key":"0/16C752F8" */
static inline void json_lsn_member(struct buf *out, const char *key, uint64_t lsn)
{
	char s[LSN_STR_MAX];
	int n = lsn_format(lsn, s);

	json_key(out, key);
	buf_putc(out, '"');
	buf_append(out, s, (size_t)n);
	buf_putc(out, '"');
}

/* Append src[0..n) at out[*len], for the fixed-size transaction fragment. */
static void put(char *out, size_t *len, const char *src, size_t n)
{
	memcpy(out + *len, src, n);
	*len += n;
}
#define PUT_LIT(out, len, lit) put(out, len, lit, sizeof(lit) - 1)

/* ',"commit_lsn":"X/X","xid":N,"commit_time":"..."' into out, which must
 * hold sizeof(((struct event_txn *)0)->json) bytes: 15 + 17 + 8 + 10 + 16 +
 * 27 + 1 = 94 at most. Fixed storage, so preparing a transaction allocates
 * nothing. Returns the length. */
static size_t format_txn(const struct event_txn *txn, char *out)
{
	char digits[10];
	size_t len = 0, n = 0;
	uint32_t xid = txn->xid;

	PUT_LIT(out, &len, ",\"commit_lsn\":\"");
	len += (size_t)lsn_format(txn->commit_lsn, out + len);
	PUT_LIT(out, &len, "\",\"xid\":");
	do {
		digits[sizeof digits - ++n] = (char)('0' + xid % 10);
		xid /= 10;
	} while (xid);
	put(out, &len, digits + sizeof digits - n, n);
	PUT_LIT(out, &len, ",\"commit_time\":\"");
	len += (size_t)pgtime_format(txn->commit_time, out + len);
	PUT_LIT(out, &len, "\"");
	return len;
}

static void json_txn_members(struct buf *out, const struct event_txn *txn)
{
	char frag[sizeof txn->json];

	if (txn == NULL) {
		buf_puts(out, ",\"commit_lsn\":null,\"xid\":null,\"commit_time\":null");
		return;
	}
	if (txn->json_len > 0) {
		buf_append(out, txn->json, txn->json_len);
		return;
	}
	buf_append(out, frag, format_txn(txn, frag));
}

void json_txn_prepare(struct event_txn *txn)
{
	txn->json_len = (uint8_t)format_txn(txn, txn->json);
}

static bool json_row_member(struct buf *out, const char *key, const struct rowsel *rs)
{
	json_key(out, key);
	return write_row(out, rs, &COMPACT);
}

/* ,"unchanged_toast":["col",...] for the columns whose value was not sent. */
static void json_unchanged_toast(struct buf *out, const struct event *ev)
{
	bool any = false;

	for (uint16_t i = 0; i < ev->rel->ncols; i++) {
		if (!is_toast(ev->newtup, i) && !is_toast(ev->oldtup, i))
			continue;
		buf_puts(out, any ? "," : ",\"unchanged_toast\":[");
		json_write_string(out, ev->rel->cols[i].name, strlen(ev->rel->cols[i].name));
		any = true;
	}
	if (any)
		buf_putc(out, ']');
}

static void json_change_members(struct buf *out, const struct event *ev)
{
	struct rowsel oldrow = {ev->rel, ev->oldtup, NULL,
	                        ev->old_kind == 'K' ? ROW_KEYS : ROW_ALL};
	struct rowsel newrow = {ev->rel, ev->newtup, NULL, ROW_ALL};
	bool toast = false;

	if (ev->op != EVENT_INSERT && ev->oldtup != NULL)
		toast |= json_row_member(out, "old", &oldrow);
	if (ev->op != EVENT_DELETE && ev->newtup != NULL)
		toast |= json_row_member(out, "new", &newrow);
	if (toast)
		json_unchanged_toast(out, ev);
}

static void json_message_members(struct buf *out, const struct event *ev)
{
	const char *content = (const char *)ev->content;
	bool utf8 = json_utf8_valid(content, ev->content_len);

	json_bool_member(out, "transactional", ev->transactional);
	json_key(out, "prefix");
	json_write_string(out, ev->prefix, strlen(ev->prefix));
	json_key(out, "content");
	if (utf8) {
		json_write_string(out, content, ev->content_len);
	} else {
		write_base64_string(out, ev->content, ev->content_len);
		buf_puts(out, ",\"content_encoding\":\"base64\"");
	}
}

/* ,"schema":"..","table":".." */
static void json_relation_head(struct buf *out, const struct relation *rel)
{
	json_key(out, "schema");
	json_write_string(out, rel->nspname, strlen(rel->nspname));
	json_key(out, "table");
	json_write_string(out, rel->relname, strlen(rel->relname));
}

/* A heap copy of what was rendered into b, which is then cleared; NULL on
 * failure (the encoder then escapes on the fly). */
static char *render_copy(struct buf *b, uint32_t *len)
{
	char *copy = NULL;

	if (buf_ok(b) && b->len > 0 && b->len < UINT32_MAX && (copy = malloc(b->len)) != NULL) {
		memcpy(copy, b->data, b->len);
		*len = (uint32_t)b->len;
	}
	buf_clear(b);
	return copy;
}

void json_relation_prepare(struct relation *rel)
{
	struct buf b;

	buf_init(&b, 0);
	free(rel->json_head);
	json_relation_head(&b, rel);
	rel->json_head = render_copy(&b, &rel->json_head_len);
	for (uint16_t i = 0; i < rel->ncols; i++) {
		struct relcol *col = &rel->cols[i];

		free(col->json_key);
		json_write_string(&b, col->name, strlen(col->name));
		buf_putc(&b, ':');
		col->json_key = render_copy(&b, &col->json_key_len);
	}
	buf_reset(&b);
}

/* '{"op":"insert"' and its siblings, indexed by enum event_op. */
static const struct lit OP_HEAD[] = {
    [EVENT_INSERT] = LIT("{\"op\":\"insert\""),   [EVENT_UPDATE] = LIT("{\"op\":\"update\""),
    [EVENT_DELETE] = LIT("{\"op\":\"delete\""),   [EVENT_TRUNCATE] = LIT("{\"op\":\"truncate\""),
    [EVENT_MESSAGE] = LIT("{\"op\":\"message\""),
};

static void json_event(struct buf *out, const struct event *ev)
{
	buf_append(out, OP_HEAD[ev->op].s, OP_HEAD[ev->op].n);
	if (ev->op != EVENT_MESSAGE && ev->rel->json_head) {
		buf_append(out, ev->rel->json_head, ev->rel->json_head_len);
	} else if (ev->op != EVENT_MESSAGE) {
		json_relation_head(out, ev->rel);
	}
	json_lsn_member(out, "lsn", ev->lsn);
	json_txn_members(out, ev->txn);
	switch (ev->op) {
	case EVENT_INSERT:
	case EVENT_UPDATE:
	case EVENT_DELETE:
		json_change_members(out, ev);
		break;
	case EVENT_TRUNCATE:
		json_bool_member(out, "cascade", ev->cascade);
		json_bool_member(out, "restart_identity", ev->restart_identity);
		break;
	case EVENT_MESSAGE:
		json_message_members(out, ev);
		break;
	}
	buf_puts(out, "}\n");
}

/* ------------------------------------------------------------------------
 * FORMAT_PRETTY
 * ------------------------------------------------------------------------ */

/* A name in a header line: raw when it is one visible word, else quoted so
 * spaces, '=' or control characters cannot fake another field. */
static void pretty_name(struct buf *out, const char *s)
{
	size_t len = strlen(s);
	bool bare = len > 0 && json_utf8_valid(s, len);

	for (size_t i = 0; bare && i < len; i++)
		bare = (uint8_t)s[i] > ' ' && s[i] != '"' && s[i] != '\\' && s[i] != '=' &&
		       s[i] != 0x7F;
	if (bare)
		buf_append(out, s, len);
	else
		json_write_string(out, s, len);
}

/* "[INSERT] table=users lsn=0/16C752F8" without the newline. */
static void pretty_header(struct buf *out, const char *tag, const struct event *ev)
{
	char lsn[LSN_STR_MAX];

	buf_printf(out, "[%s] ", tag);
	if (ev->op == EVENT_MESSAGE) {
		buf_puts(out, "prefix=");
		pretty_name(out, ev->prefix);
	} else {
		buf_puts(out, "table=");
		if (strcmp(ev->rel->nspname, "public") != 0) {
			pretty_name(out, ev->rel->nspname);
			buf_putc(out, '.');
		}
		pretty_name(out, ev->rel->relname);
	}
	lsn_format(ev->lsn, lsn);
	buf_printf(out, " lsn=%s", lsn);
}

/* label={...}\n */
static void pretty_row(struct buf *out, const char *label, const struct rowsel *rs)
{
	buf_printf(out, "%s=", label);
	write_row(out, rs, &INDENTED);
	buf_putc(out, '\n');
}

/* With the whole old row, show only what changed; otherwise show the key
 * (as sent, or taken from the new row) and the whole new row. */
static void pretty_update(struct buf *out, const struct event *ev)
{
	struct rowsel newrow = {ev->rel, ev->newtup, NULL, ROW_ALL};
	struct rowsel key = {ev->rel, ev->newtup, NULL, ROW_KEYS};

	if (ev->old_kind == 'O' && ev->oldtup != NULL && ev->newtup != NULL) {
		struct rowsel oldrow = {ev->rel, ev->oldtup, ev->newtup, ROW_CHANGED};

		newrow.other = ev->oldtup;
		newrow.filter = ROW_CHANGED;
		pretty_row(out, "old", &oldrow);
		pretty_row(out, "new", &newrow);
		return;
	}
	if (ev->old_kind == 'K' && ev->oldtup != NULL)
		key.tup = ev->oldtup;
	pretty_row(out, "key", &key);
	pretty_row(out, "new", &newrow);
}

static void pretty_message(struct buf *out, const struct event *ev)
{
	const char *content = (const char *)ev->content;

	if (json_utf8_valid(content, ev->content_len)) {
		buf_puts(out, "content=");
		json_write_string(out, content, ev->content_len);
	} else {
		buf_puts(out, "content_base64=");
		write_base64_string(out, ev->content, ev->content_len);
	}
	buf_putc(out, '\n');
}

static void pretty_event(struct buf *out, const struct event *ev)
{
	static const char *const TAGS[] = {"INSERT", "UPDATE", "DELETE", "TRUNCATE", "MESSAGE"};
	struct rowsel data = {ev->rel, NULL, NULL, ROW_ALL};

	pretty_header(out, TAGS[ev->op], ev);
	switch (ev->op) {
	case EVENT_INSERT:
		data.tup = ev->newtup;
		buf_putc(out, '\n');
		pretty_row(out, "data", &data);
		break;
	case EVENT_UPDATE:
		buf_putc(out, '\n');
		pretty_update(out, ev);
		break;
	case EVENT_DELETE:
		data.tup = ev->oldtup;
		data.filter = ev->old_kind == 'K' ? ROW_KEYS : ROW_ALL;
		buf_putc(out, '\n');
		pretty_row(out, "data", &data);
		break;
	case EVENT_TRUNCATE:
		buf_printf(out, " cascade=%s restart_identity=%s\n", ev->cascade ? "true" : "false",
		           ev->restart_identity ? "true" : "false");
		break;
	case EVENT_MESSAGE:
		buf_putc(out, '\n');
		pretty_message(out, ev);
		break;
	}
}

void json_write_event(struct buf *out, const struct event *ev, enum json_format fmt)
{
	if (fmt == FORMAT_PRETTY)
		pretty_event(out, ev);
	else
		json_event(out, ev);
}
