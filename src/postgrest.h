/*-------------------------------------------------------------------------
 *
 * postgrest.h
 *	  What postgrest.c offers besides apikeys.pre_request(): the request's
 *	  client address, chosen the way pre_request chooses it.
 *
 * IDENTIFICATION
 *	  src/postgrest.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_POSTGREST_H
#define APIKEYS_POSTGREST_H

#include "postgres.h"

extern bool RequestClientAddress(Datum *addr);

#endif							/* APIKEYS_POSTGREST_H */
