/*
 * pgarray.c — PostgreSQL array literals as JSON arrays (see pgarray.h).
 *
 *   [lo:hi][lo:hi]=   optional dimension decoration (non-default bounds)
 *   { elem D elem D ... }   D = the element type's delimiter
 *   elem: { nested } | "quoted, \\-escaped" | unquoted (NULL = SQL null)
 *
 * The parser writes as it reads and rolls back to where it started when the
 * literal turns out malformed.
 */
#include "event/pgarray.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Postgres arrays have at most 6 dimensions (MAXDIM); allow some slack. */
#define ARRAY_MAX_DEPTH 16

/* A reader over an array literal, with the element writer. */
struct ard {
	const char *p;
	const char *end;
	char delim;
	pgarray_elem_fn elem;
	void *ctx;
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
 * quotes: PGARRAY_ELEM_MAX), so the scratch cannot move while the element
 * writer reads it.
 */
static void write_unescaped(struct buf *out, const struct ard *r, const char *s, size_t n)
{
	size_t mark = out->len, run = 0, m;
	const char *text;

	if (n > (SIZE_MAX - 16) / 7 || !buf_reserve(out, n + PGARRAY_ELEM_MAX(n)))
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
	/* The writer may have grown out (pgarray.h): out->data, not text. */
	r->elem(r->ctx, out, text, m);
	memmove(out->data + mark, out->data + mark + m, out->len - mark - m);
	buf_truncate(out, out->len - m);
}

static void write_element(struct buf *out, const struct ard *r, const char *s, size_t n,
                          bool escaped)
{
	if (escaped)
		write_unescaped(out, r, s, n);
	else
		r->elem(r->ctx, out, s, n);
}

/* "..." with backslash escapes; the quote is already consumed. */
static bool array_quoted(struct buf *out, struct ard *r)
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
	write_element(out, r, start, (size_t)(r->p - start), escaped);
	r->p++;
	return true;
}

/* Unquoted: up to the delimiter or '}', surrounding whitespace dropped
 * (escaped whitespace kept), NULL in any case is SQL null. */
static bool array_unquoted(struct buf *out, struct ard *r)
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
		write_element(out, r, start, (size_t)(last - start), escaped);
	return true;
}

/* One "{...}" level, recursively; false if the literal is malformed. */
static bool array_level(struct buf *out, struct ard *r, int depth)
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
			ok = array_level(out, r, depth + 1);
		else if (eat(r, '"'))
			ok = array_quoted(out, r);
		else
			ok = array_unquoted(out, r);
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

bool pgarray_write(struct buf *out, const char *s, size_t len, char delim, pgarray_elem_fn elem,
                   void *ctx)
{
	struct ard r = {s, s + len, delim, elem, ctx};
	size_t mark = out->len;
	bool ok;

	skip_array_space(&r);
	if (r.p < r.end && *r.p == '[') { /* "[0:1]={...}": the bounds JSON cannot carry */
		const char *eq = memchr(r.p, '=', (size_t)(r.end - r.p));

		r.p = eq ? eq + 1 : r.end;
		skip_array_space(&r);
	}
	ok = array_level(out, &r, 0);
	skip_array_space(&r);
	if (!ok || r.p != r.end) {
		buf_truncate(out, mark);
		return false;
	}
	return true;
}
