#ifndef EMBER_COPENCL_SHIM_H
#define EMBER_COPENCL_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clblast_c.h>
#endif
