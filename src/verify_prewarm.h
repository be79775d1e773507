/*-------------------------------------------------------------------------
 *
 * verify_prewarm.h
 *	  Reloading the shared verification cache when the server starts.
 *
 * IDENTIFICATION
 *	  src/verify_prewarm.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_PREWARM_H
#define APIKEYS_VERIFY_PREWARM_H

extern void PrewarmRegister(void);

#endif							/* APIKEYS_VERIFY_PREWARM_H */
