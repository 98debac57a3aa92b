/* rfc3339.c — Postgres ISO times → RFC 3339 (see rfc3339.h). */
#include "event/rfc3339.h"

#include <string.h>

/* The longest value written: a 7-digit year BC, a time with a 6-digit
 * fraction and an offset, with quotes; Postgres's own stay far below. */
#define OUT_MAX 64

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "HH:MM:SS[.f+]" at s[0..): its length, 0 if not one. */
static size_t clock_len(const char *s, size_t len)
{
	size_t n = 8;

	if (len < 8 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' ||
	    !digits(s + 6, 2))
		return 0;
	if (n < len && s[n] == '.') {
		size_t f = n + 1;

		while (f < len && s[f] >= '0' && s[f] <= '9')
			f++;
		if (f == n + 1)
			return 0;
		n = f;
	}
	return n;
}

/* An offset "+HH", "+HH:MM" (s[0..len), whole) into o as "Z" or "+HH:MM".
 * False for anything else, seconds included. */
static bool put_offset(char *o, size_t *w, const char *s, size_t len)
{
	if ((len != 3 && len != 6) || (s[0] != '+' && s[0] != '-') || !digits(s + 1, 2) ||
	    (len == 6 && (s[3] != ':' || !digits(s + 4, 2))))
		return false;
	if (memcmp(s + 1, "00", 2) == 0 && (len == 3 || memcmp(s + 4, "00", 2) == 0)) {
		o[(*w)++] = 'Z';
		return true;
	}
	memcpy(o + *w, s, 3);
	*w += 3;
	if (len == 6) {
		memcpy(o + *w, s + 3, 3);
	} else {
		memcpy(o + *w, ":00", 3);
	}
	*w += 3;
	return true;
}

/* The date "Y+-MM-DD" at s (ylen year digits) into o, the year made
 * astronomical when bc. */
static void put_date(char *o, size_t *w, const char *s, size_t ylen, bool bc)
{
	if (bc) {
		/* year N BC is astronomical 1 - N: 1 BC → 0000, 44 BC → -0043 */
		unsigned long y = 0;
		char d[12];
		size_t n = 0;

		for (size_t i = 0; i < ylen; i++)
			y = y * 10 + (unsigned long)(s[i] - '0');
		y -= 1;
		if (y > 0)
			o[(*w)++] = '-';
		do {
			d[n++] = (char)('0' + y % 10);
			y /= 10;
		} while (y);
		while (n < 4)
			d[n++] = '0';
		while (n)
			o[(*w)++] = d[--n];
	} else {
		memcpy(o + *w, s, ylen);
		*w += ylen;
	}
	memcpy(o + *w, s + ylen, 6);
	*w += 6;
}

bool rfc3339_write(struct buf *out, int kind, const char *s, size_t len)
{
	char o[OUT_MAX];
	size_t w = 0, ylen = 0, pos, c;
	bool bc = false;

	if (len > OUT_MAX - 8)
		return false;
	if (len >= 3 && memcmp(s + len - 3, " BC", 3) == 0) {
		bc = true;
		len -= 3;
	}
	o[w++] = '"';
	if (kind == VK_TIMETZ) {
		c = clock_len(s, len);
		if (c == 0 || bc)
			return false;
		memcpy(o + w, s, c);
		w += c;
		if (!put_offset(o, &w, s + c, len - c))
			return false;
		goto done;
	}
	while (ylen < len && s[ylen] >= '0' && s[ylen] <= '9')
		ylen++;
	/* Y+-MM-DD: "infinity" and other words are not dates */
	if (ylen < 4 || ylen > 7 || len < ylen + 6 || s[ylen] != '-' || !digits(s + ylen + 1, 2) ||
	    s[ylen + 3] != '-' || !digits(s + ylen + 4, 2))
		return false;
	put_date(o, &w, s, ylen, bc);
	pos = ylen + 6;
	if (kind == VK_DATE) {
		if (pos != len)
			return false;
		goto done;
	}
	if (pos >= len || s[pos] != ' ' || (c = clock_len(s + pos + 1, len - pos - 1)) == 0)
		return false;
	o[w++] = 'T';
	memcpy(o + w, s + pos + 1, c);
	w += c;
	pos += 1 + c;
	if (kind == VK_TIMESTAMPTZ) {
		if (!put_offset(o, &w, s + pos, len - pos))
			return false;
	} else if (pos != len) {
		return false;
	}
done:
	o[w++] = '"';
	buf_append(out, o, w);
	return true;
}
