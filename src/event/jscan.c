/*
 * jscan.c — validators for JSON numbers and JSON texts; they only read
 * (see jscan.h).
 */
#include "event/jscan.h"

#include <stdint.h>
#include <string.h>

#include "event/jstring.h"

/* Deeper json/jsonb documents are not accepted (a string, still valid). */
#define JSON_MAX_DEPTH 4096

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
bool json_number_valid(const char *s, size_t len)
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
	bool raw_space; /* whitespace other than ' ' seen (see *one_line) */
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

		p += json_plain_prefix(p, (size_t)(end - p));
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
			size_t n = json_utf8_seq_len(p, (size_t)(end - p));

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
bool json_text_valid(const char *s, size_t len, bool *one_line)
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
