/*-------------------------------------------------------------------------
 *
 * journal.h
 *	  Writing usage to tables: the usage journal and its hourly rollup.
 *
 * IDENTIFICATION
 *	  src/journal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_JOURNAL_H
#define APIKEYS_JOURNAL_H

#include "apikeys.h"

extern int64 UsageFlushDatabase(bool rollup);

#endif							/* APIKEYS_JOURNAL_H */
