/*
 * jscan.h — is this text what a JSON number, or a JSON document, must be?
 *
 * The encoder embeds a json/jsonb value or a number's digits as they are
 * only when they pass these checks (RFC 8259, valid UTF-8); anything else
 * becomes a JSON string, so the output stays valid whatever the server sends.
 */
#ifndef PGSTREAM_JSCAN_H
#define PGSTREAM_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

/* s[0..len) is one JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
bool json_number_valid(const char *s, size_t len);

/* s[0..len) is one JSON text in valid UTF-8, nested at most 4096 deep
 * (checked without recursion). *one_line is set when it holds no raw \n,
 * \r or \t, so that it can be copied as it is onto one line. */
bool json_text_valid(const char *s, size_t len, bool *one_line);

#endif
