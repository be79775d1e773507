/*-------------------------------------------------------------------------
 *
 * scopeset.h
 *	  Named scope sets: expanding "@name" in a key's scopes.
 *
 * IDENTIFICATION
 *	  src/scopeset.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_SCOPESET_H
#define APIKEYS_SCOPESET_H

#include "apikeys.h"
#include "utils/array.h"

extern ArrayType *ScopeSetExpand(ArrayType *scopes);

#endif							/* APIKEYS_SCOPESET_H */
