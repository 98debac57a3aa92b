/* catalog.c — type lookups over an ordinary connection; see catalog.h. */
#include "pg/catalog.h"
