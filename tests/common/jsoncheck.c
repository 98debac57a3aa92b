/*
 * jsoncheck.c — a strict JSON validator for tests and fuzz targets; see
 * jsoncheck.h. Written independently of src/event/json.c on purpose: an
 * oracle that shared the encoder's code would share its bugs.
 */
#include "jsoncheck.h"

#include <string.h>

struct vp {
	const unsigned char *p;
	const unsigned char *end;
	int depth;
};

static int v_value(struct vp *v);

static void v_ws(struct vp *v)
{
	while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
		v->p++;
}

/* Decode one UTF-8 scalar value by its bit pattern (independently of the
 * encoder's table-driven check); 0 on anything ill-formed. */
static int v_utf8(struct vp *v)
{
	unsigned c = *v->p, need, cp, min;

	if (c < 0x80) {
		v->p++;
		return 1;
	}
	if ((c & 0xE0) == 0xC0) {
		need = 1, cp = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		need = 2, cp = c & 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		need = 3, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)(v->end - v->p) <= need)
		return 0;
	for (unsigned i = 1; i <= need; i++) {
		if ((v->p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (v->p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	v->p += need + 1;
	return 1;
}

static int v_string(struct vp *v)
{
	v->p++; /* '"' */
	while (v->p < v->end) {
		unsigned char c = *v->p;

		if (c == '"') {
			v->p++;
			return 1;
		}
		if (c < 0x20)
			return 0;
		if (c == '\\') {
			if (v->end - v->p < 2)
				return 0;
			c = v->p[1];
			if (c == 'u') {
				if (v->end - v->p < 6)
					return 0;
				for (int i = 2; i < 6; i++)
					if (!strchr("0123456789abcdefABCDEF", v->p[i]) || !v->p[i])
						return 0;
				v->p += 6;
			} else if (c && strchr("\"\\/bfnrt", c)) {
				v->p += 2;
			} else {
				return 0;
			}
		} else if (!v_utf8(v)) {
			return 0;
		}
	}
	return 0;
}

static int v_digits(struct vp *v)
{
	const unsigned char *start = v->p;

	while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
		v->p++;
	return v->p > start;
}

static int v_number(struct vp *v)
{
	if (v->p < v->end && *v->p == '-')
		v->p++;
	if (v->p < v->end && *v->p == '0')
		v->p++;
	else if (v->p == v->end || *v->p < '1' || *v->p > '9' || !v_digits(v))
		return 0;
	if (v->p < v->end && *v->p == '.') {
		v->p++;
		if (!v_digits(v))
			return 0;
	}
	if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
		v->p++;
		if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
			v->p++;
		if (!v_digits(v))
			return 0;
	}
	return 1;
}

static int v_lit(struct vp *v, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(v->end - v->p) < n || memcmp(v->p, w, n) != 0)
		return 0;
	v->p += n;
	return 1;
}

static int v_container(struct vp *v, unsigned char close)
{
	v->p++;
	v_ws(v);
	if (v->p < v->end && *v->p == close) {
		v->p++;
		return 1;
	}
	for (;;) {
		if (close == '}') {
			v_ws(v);
			if (v->p == v->end || *v->p != '"' || !v_string(v))
				return 0;
			v_ws(v);
			if (v->p == v->end || *v->p++ != ':')
				return 0;
		}
		if (!v_value(v))
			return 0;
		v_ws(v);
		if (v->p == v->end)
			return 0;
		if (*v->p == ',') {
			v->p++;
			continue;
		}
		if (*v->p++ != close)
			return 0;
		return 1;
	}
}

static int v_value(struct vp *v)
{
	int ok;

	v_ws(v);
	if (v->p == v->end || ++v->depth > 10000)
		return 0;
	switch (*v->p) {
	case '{':
		ok = v_container(v, '}');
		break;
	case '[':
		ok = v_container(v, ']');
		break;
	case '"':
		ok = v_string(v);
		break;
	case 't':
		ok = v_lit(v, "true");
		break;
	case 'f':
		ok = v_lit(v, "false");
		break;
	case 'n':
		ok = v_lit(v, "null");
		break;
	default:
		ok = v_number(v);
	}
	v->depth--;
	return ok;
}

/* Is s[0..len) exactly one JSON text? */
int jsoncheck_text(const char *s, size_t len)
{
	struct vp v = {(const unsigned char *)s, (const unsigned char *)s + len, 0};

	if (!v_value(&v))
		return 0;
	v_ws(&v);
	return v.p == v.end;
}

/* A JSONL record: one valid JSON text, then exactly one '\n' at the end. */
int jsoncheck_line(const char *s, size_t len)
{
	return len > 0 && s[len - 1] == '\n' && memchr(s, '\n', len) == s + len - 1 &&
	       jsoncheck_text(s, len - 1);
}

int jsoncheck_utf8(const char *s, size_t len)
{
	struct vp v = {(const unsigned char *)s, (const unsigned char *)s + len, 0};

	while (v.p < v.end)
		if (!v_utf8(&v))
			return 0;
	return 1;
}
