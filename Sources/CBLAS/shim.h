#ifndef EMBER_CBLAS_SHIM_H
#define EMBER_CBLAS_SHIM_H
#include <cblas.h>
#endif
