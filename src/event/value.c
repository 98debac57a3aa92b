/*
 * value.c — one column value as JSON, by its rendering (see value.h).
 */
#include "event/value.h"

#include <stdbool.h>

#include "event/binary.h"
#include "event/jscan.h"
#include "event/jstring.h"
#include "event/pgarray.h"
#include "event/rfc3339.h"

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

/* An array element: rendered like a value of the element type. */
static void write_element(void *ctx, struct buf *out, const char *s, size_t n)
{
	json_write_value(out, ctx, s, n);
}

static bool write_array(struct buf *out, const struct valtype *vt, const char *s, size_t len)
{
	/* No arrays of arrays in Postgres: a nested literal element stays text. */
	struct valtype elem = {vt->elem == VK_ARRAY ? VK_STRING : vt->elem, VK_STRING, ','};

	return pgarray_write(out, s, len, vt->delim, write_element, &elem);
}

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
	case VK_DECIMAL:
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
		if (write_array(out, vt, s, len))
			return;
		break;
	case VK_DATE:
	case VK_TIMESTAMP:
	case VK_TIMESTAMPTZ:
	case VK_TIMETZ:
		if (rfc3339_write(out, vt->kind, s, len))
			return;
		break;
	}
	json_write_string(out, s, len);
}

void json_write_column(struct buf *out, const struct valtype *vt, const struct pgo_value *v)
{
	switch (v->kind) {
	case PGO_COL_TEXT:
		json_write_value(out, vt, v->data, v->len);
		return;
	case PGO_COL_BINARY:
		json_write_hex(out, (const uint8_t *)v->data, v->len);
		return;
	}
	buf_append(out, "null", 4); /* 'n', and any kind the decoder let through */
}
