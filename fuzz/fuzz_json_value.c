/*
 * fuzz_json_value.c — libFuzzer target: arbitrary column text → JSON value.
 *
 * Input layout:
 *   Byte      valtype kind selector (byte % 5: string, bool, number, json, array)
 *   Byte      element kind selector for arrays (byte % 5)
 *   Byte      array delimiter selector: bit 0 picks ';' (box) over ','
 *   Byte[]    the column's text as the server would send it
 *
 * json_write_value() promises valid JSON whatever text it is given (it falls
 * back to a JSON string when the text is not what the type promises); the
 * output is checked by the independent validator in tests/common/. The text
 * is copied into a block of exactly its size, and also rendered through
 * json_write_string(), whose output must be one valid JSON string, and
 * json_utf8_valid(), whose answer must agree with the validator's own
 * UTF-8 decoder.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/jstring.h"
#include "event/value.h"
#include "event/valtype.h"
#include "util/buf.h"

#include "jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect_json(const struct buf *b, const char *what, const char *in, size_t len)
{
	if (!buf_ok(b))
		return;
	if (!jsoncheck_text(b->data, b->len)) {
		fprintf(stderr, "%s produced invalid JSON for %zu input bytes \"%.*s\": %s\n", what,
		        len, (int)len, in, b->data);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct valtype vt;
	struct buf b;
	char *text;
	size_t len;
	int utf8;

	if (size < 3)
		return 0;
	vt.kind = (uint8_t)(data[0] % 5);
	vt.elem = (uint8_t)(data[1] % 5);
	vt.delim = data[2] & 1 ? ';' : ',';
	len = size - 3;
	text = malloc(len ? len : 1);
	if (text == NULL)
		abort();
	memcpy(text, data + 3, len);

	buf_init(&b, 0);
	json_write_value(&b, &vt, text, len);
	expect_json(&b, "json_write_value", text, len);

	/* Any bytes at all make one valid JSON string. */
	buf_clear(&b);
	json_write_string(&b, text, len);
	expect_json(&b, "json_write_string", text, len);
	if (buf_ok(&b) && (b.len < 2 || b.data[0] != '"'))
		abort();

	/* The encoder's UTF-8 check must agree with the validator's. */
	utf8 = json_utf8_valid(text, len);
	if (!!utf8 != !!jsoncheck_utf8(text, len)) {
		fprintf(stderr, "json_utf8_valid says %d for \"%.*s\"\n", utf8, (int)len, text);
		abort();
	}
	buf_reset(&b);
	free(text);
	return 0;
}
