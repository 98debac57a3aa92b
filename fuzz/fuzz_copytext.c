/*
 * fuzz_copytext.c — libFuzzer target: COPY text rows → copytext_split().
 *
 * Input layout: byte 0 is the number of columns (mod 33), the rest the row.
 * Whatever the bytes, the split returns 0 or -1 with a message, and every
 * value lies inside the row. Then a round trip: the values found, escaped
 * as the server's COPY TO escapes them, split again to the same values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/copytext.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_COLS 32

/* Escape v as CopyAttributeOutText does into out; returns the length. */
static size_t escape(const struct pgo_value *v, char *out)
{
	size_t n = 0;

	if (v->kind == PGO_COL_NULL) {
		memcpy(out, "\\N", 2);
		return 2;
	}
	for (uint32_t i = 0; i < v->len; i++) {
		char c = v->data[i];
		const char *esc = strchr("\b\f\n\r\t\v\\", c);

		if (c != '\0' && esc != NULL) {
			out[n++] = '\\';
			out[n++] = "bfnrtv\\"[esc - "\b\f\n\r\t\v\\"];
		} else {
			out[n++] = c;
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pgo_value vals[MAX_COLS], again[MAX_COLS];
	uint16_t ncols;
	char *row, *text;
	size_t len, tlen = 0;
	struct err e = {0};

	if (size < 1)
		return 0;
	ncols = data[0] % (MAX_COLS + 1);
	len = size - 1;
	row = malloc(len ? len : 1);
	memcpy(row, data + 1, len);
	if (copytext_split(row, len, vals, ncols, &e) < 0) {
		if (e.msg[0] == '\0')
			abort();
		goto out;
	}
	/* Escaping at most doubles a value; \N is 2 bytes; plus delimiters. */
	text = malloc(2 * len + 3 * (size_t)ncols + 1);
	for (uint16_t i = 0; i < ncols; i++) {
		const struct pgo_value *v = &vals[i];

		if (v->kind == PGO_COL_TEXT && (v->data < row || v->data + v->len > row + len))
			abort();
		if (i)
			text[tlen++] = '\t';
		tlen += escape(v, text + tlen);
	}
	if (copytext_split(text, tlen, again, ncols, &e) < 0)
		abort();
	for (uint16_t i = 0; i < ncols; i++)
		if (again[i].kind != vals[i].kind || again[i].len != vals[i].len ||
		    (vals[i].len && memcmp(again[i].data, vals[i].data, vals[i].len) != 0))
			abort();
	free(text);
out:
	free(row);
	return 0;
}
