#ifndef EMBER_CMPI_SHIM_H
#define EMBER_CMPI_SHIM_H
#include <mpi.h>
#endif
