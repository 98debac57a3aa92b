/*
 * tuples.h — pgoutput tuple values written as literals, for the unit tests
 * that build events by hand (test_json.c, test_utf8guard.c).
 */
#ifndef PGSTREAM_TEST_TUPLES_H
#define PGSTREAM_TEST_TUPLES_H

#include "pg/pgoutput.h"

#define TXT(s)                                                                                     \
	{                                                                                          \
		PGO_COL_TEXT, sizeof(s) - 1, s                                                     \
	}
#define NUL                                                                                        \
	{                                                                                          \
		PGO_COL_NULL, 0, NULL                                                              \
	}
#define TOAST                                                                                      \
	{                                                                                          \
		PGO_COL_UNCHANGED_TOAST, 0, NULL                                                   \
	}

#endif
