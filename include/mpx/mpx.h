/*
 * mpx/mpx.h - the umbrella header of mpx, Python's multiprocessing for every language.
 * Include this; it pulls in one header per module. Clean C99 and C++.
 */
#ifndef MPX_MPX_H
#define MPX_MPX_H

#include "mpx/common.h"
#include "mpx/segment.h"
#include "mpx/sync.h"
#include "mpx/array.h"
#include "mpx/process.h"
#include "mpx/connection.h"
#include "mpx/listener.h"
#include "mpx/queue.h"
#include "mpx/pool.h"
#include "mpx/manager.h"

#endif /* MPX_MPX_H */
