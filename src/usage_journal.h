/*-------------------------------------------------------------------------
 *
 * usage_journal.h
 *	  Writing usage to tables: the usage journal and its hourly rollup.
 *
 * IDENTIFICATION
 *	  src/usage_journal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_JOURNAL_H
#define APIKEYS_USAGE_JOURNAL_H

#include "apikeys.h"

extern int64 UsageFlushDatabase(bool rollup);

/* What UsageWrite does */
typedef enum UsageWriteMode
{
	USAGE_FLUSH,				/* shared memory into one journal row */
	USAGE_ROLLUP_ALL,			/* shared memory and the journal into usage */
	USAGE_ROLLUP_PAST_HOURS		/* flush, then the journal's past hours */
} UsageWriteMode;

extern int64 UsageWrite(UsageWriteMode mode);

#endif							/* APIKEYS_USAGE_JOURNAL_H */
