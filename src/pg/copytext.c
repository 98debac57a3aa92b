/*
 * copytext.c — COPY text rows into column values; see copytext.h.
 *
 * The escapes are those of PostgreSQL's CopyReadAttributesText: \b \f \n
 * \r \t \v, \ followed by one to three octal digits, \x followed by one or
 * two hex digits, and \ before any other character standing for that
 * character. The server's COPY TO writes only some of them, but a value
 * decoded here must equal what COPY FROM would read back, so all are
 * accepted.
 */
#include "pg/copytext.h"

#include <stdbool.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode the escapes of field[0..len) in place; returns the new length. */
static size_t unescape(char *field, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		char c = field[r++];

		if (c != '\\' || r == len) {
			field[w++] = c;
			continue;
		}
		c = field[r++];
		switch (c) {
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'v':
			c = '\v';
			break;
		case 'x':
			if (r < len && hexval(field[r]) >= 0) {
				int v = hexval(field[r++]);

				if (r < len && hexval(field[r]) >= 0)
					v = v * 16 + hexval(field[r++]);
				c = (char)v;
			}
			break;
		default:
			if (c >= '0' && c <= '7') {
				int v = c - '0';

				for (int k = 0;
				     k < 2 && r < len && field[r] >= '0' && field[r] <= '7'; k++)
					v = v * 8 + (field[r++] - '0');
				c = (char)(v & 0xff);
			}
			break; /* any other character stands for itself */
		}
		field[w++] = c;
	}
	return w;
}

int copytext_split(char *row, size_t len, struct pgo_value *vals, uint16_t ncols, struct err *e)
{
	size_t start = 0;
	uint16_t n = 0;

	if (len > 0 && row[len - 1] == '\n')
		len--;
	if (ncols == 0)
		return len == 0
		           ? 0
		           : err_set(
		                 e,
		                 "could not read snapshot row: data for a table with no columns");
	for (size_t i = 0;; i++) {
		bool end = i == len;

		if (!end && row[i] == '\\') {
			i++; /* an escaped character is never a delimiter */
			if (i == len)
				return err_set(
				    e, "could not read snapshot row: it ends in a backslash");
			continue;
		}
		if (!end && row[i] != '\t')
			continue;
		if (n == ncols)
			return err_set(e, "could not read snapshot row: more than %u columns",
			               ncols);
		if (i - start == 2 && row[start] == '\\' && row[start + 1] == 'N') {
			vals[n] = (struct pgo_value){.kind = PGO_COL_NULL};
		} else {
			size_t flen = unescape(row + start, i - start);

			vals[n] = (struct pgo_value){
			    .kind = PGO_COL_TEXT, .len = (uint32_t)flen, .data = row + start};
		}
		n++;
		if (end)
			break;
		start = i + 1;
	}
	if (n != ncols)
		return err_set(e, "could not read snapshot row: %u columns, expected %u", n, ncols);
	return 0;
}
