/*-------------------------------------------------------------------------
 *
 * prewarm.h
 *	  Reloading the shared verification cache when the server starts.
 *
 * IDENTIFICATION
 *	  src/prewarm.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_PREWARM_H
#define APIKEYS_PREWARM_H

extern void PrewarmRegister(void);

#endif							/* APIKEYS_PREWARM_H */
